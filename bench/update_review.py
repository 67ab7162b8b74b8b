#!/usr/bin/env python3
"""Writes tests/fixtures/perf/update-review.json: the AdmissionReview the API
server sends when a GitOps tool bumps the image of a chart's Deployment that
kube-once injected at creation.

    bench/update_review.py [KUBE_ONCE_BIN]   # default target/debug/kube-once

Built from the corpus (bitnami-airflow's `airflow-web`, the largest chart
Deployment there with argo-cd's), opted in with kube-once's annotations and a
database URL from a Secret. Both copies carry what the API server stores
beside the spec: managedFields (kubectl's client-side apply, the Deployment
controller's status, kube-once's injection attributed to the applier), the
last-applied-configuration annotation, and status.

- oldObject: the stored object, injected by kube-once (`kube-once preview -o
  json` of the applied manifest: the injection is the binary's own).
- object: what `kubectl apply` of the next image tag makes of it: the stored
  object with the new image (kube-once's init container stays: it is not in
  last-applied, so the 3-way merge keeps it), a new last-applied annotation,
  the next generation.

Both objects' fields are in the order the API server writes them: a
struct's in its Go declaration order (tests/fixtures/perf/go-field-order.json,
read from Kubernetes' types.go, see tests/fixtures/perf/SOURCES), so a
container's `name` comes first; a map's keys sorted; managedFields'
fieldsV1 as built.

Deterministic: fixed uids, timestamps and resourceVersions, and keys in a
fixed order; rerun after a change to the injection and commit the result.
"""

import copy
import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "tests/fixtures/manifests/bitnami-airflow.yaml"
OUT = ROOT / "tests/fixtures/perf/update-review.json"
GO_FIELD_ORDER = ROOT / "tests/fixtures/perf/go-field-order.json"
NAME = "airflow-web"
OLD_TAG, NEW_TAG = "3.0.5-debian-12-r0", "3.0.5-debian-12-r1"
CREATED, APPLIED, UPDATED = "2026-10-02T08:14:51Z", "2026-11-30T16:02:09Z", "2026-12-06T09:41:27Z"
UID = "6c1f3a52-9d0e-4b7a-8f21-5e4d3c2b1a09"
ANNOTATIONS = {
    "kube-once.io/run": "airflow db migrate",
    "kube-once.io/database-url-env": "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "kube-once.io/timeout": "10m",
}
OBSERVED_GENERATION = 4
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def manifest(tag):
    """The Deployment as the GitOps repository holds it, at image `tag`."""
    for document in yaml.safe_load_all(SOURCE.read_text()):
        if document and document.get("kind") == "Deployment" and document["metadata"]["name"] == NAME:
            break
    else:
        sys.exit(f"update_review: no Deployment {NAME} in {SOURCE}")
    document["metadata"].setdefault("annotations", {}).update(ANNOTATIONS)
    spec = document["spec"]["template"]["spec"]
    for container in spec.get("initContainers", []) + spec["containers"]:
        container["image"] = container["image"].replace(OLD_TAG, tag)
    app = spec["containers"][0]
    app.setdefault("env", []).append({
        "name": "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "valueFrom": {"secretKeyRef": {"name": "airflow-database", "key": "url"}},
    })
    return document


def injected(document, binary):
    """The object kube-once makes of `document` on CREATE."""
    run = subprocess.run([binary, "preview", "-o", "json", "-f", "-"], input=json.dumps(document),
                         capture_output=True, text=True, check=True)
    # A List of the objects as kube-once makes them.
    return json.loads(run.stdout)["items"][0]


def fields(value, top=True):
    """managedFields' fieldsV1 of `value`, as the API server writes it: maps
    by `f:` key, lists of named items by `k:` merge key, every other list
    and scalar as a leaf."""
    if isinstance(value, dict):
        out = {} if top else {".": {}}
        for key, item in value.items():
            if isinstance(item, list) and item and all(isinstance(i, dict) and "name" in i for i in item):
                out[f"f:{key}"] = {
                    f'k:{{"name":"{i["name"]}"}}': fields(i, top=False) for i in item
                }
            elif isinstance(item, dict):
                out[f"f:{key}"] = fields(item, top=False) if item else {}
            else:
                out[f"f:{key}"] = {}
        return out
    return {}


def managed(applied, injection, status):
    spec_fields = fields({"metadata": {k: v for k, v in applied["metadata"].items() if k in ("annotations", "labels")},
                          "spec": applied["spec"]})
    spec_fields["f:metadata"]["f:annotations"][f"f:{LAST_APPLIED}"] = {}
    return [
        {"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "apps/v1", "time": APPLIED,
         "fieldsType": "FieldsV1", "fieldsV1": spec_fields},
        {"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "apps/v1", "time": CREATED,
         "fieldsType": "FieldsV1", "fieldsV1": fields({"spec": {"template": injection}})},
        {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "apps/v1", "time": APPLIED,
         "fieldsType": "FieldsV1", "subresource": "status",
         "fieldsV1": {"f:metadata": {"f:annotations": {"f:deployment.kubernetes.io/revision": {}}},
                      "f:status": fields(status, top=False)}},
    ]


def status(generation):
    condition = lambda kind, reason, message, time: {  # noqa: E731
        "type": kind, "status": "True", "lastUpdateTime": time, "lastTransitionTime": time,
        "reason": reason, "message": message}
    return {
        "observedGeneration": generation, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1,
        "availableReplicas": 1,
        "conditions": [
            condition("Available", "MinimumReplicasAvailable", "Deployment has minimum availability.", CREATED),
            condition("Progressing", "NewReplicaSetAvailable",
                      f'ReplicaSet "{NAME}-5d9c7f6b8d" has successfully progressed.', APPLIED),
        ],
    }


def stored(injected_object, applied, generation, resource_version, injection):
    """`injected_object` as the API server stores it."""
    out = copy.deepcopy(injected_object)
    metadata = out["metadata"]
    metadata["annotations"]["deployment.kubernetes.io/revision"] = str(generation)
    metadata["annotations"][LAST_APPLIED] = json.dumps(applied, separators=(",", ":"), sort_keys=True) + "\n"
    metadata.update({"uid": UID, "resourceVersion": resource_version, "generation": generation,
                     "creationTimestamp": CREATED})
    # The controller has not seen the new generation yet: status is the old one's.
    out["status"] = status(OBSERVED_GENERATION)
    metadata["managedFields"] = managed(applied, injection, out["status"])
    return out


def api_server_order(value, kind, structs):
    """`value`, a JSON object of Go type `kind` (None: not a struct), with
    its keys in the order Go's encoder writes them: a struct's fields in
    declaration order (any the table does not know after them, sorted),
    a map's keys sorted. Lists keep their order."""
    if isinstance(value, list):
        return [api_server_order(item, kind, structs) for item in value]
    if not isinstance(value, dict):
        return value
    if kind not in structs:
        return {key: value[key] for key in sorted(value)}
    known = [(key, child) for key, child in structs[kind] if key in value]
    names = {key for key, _ in known}
    known += [(key, None) for key in sorted(value) if key not in names]
    # fieldsV1 is written by the API server's own field-set encoder: kept as built.
    return {key: value[key] if key == "fieldsV1" else api_server_order(value[key], child, structs)
            for key, child in known}


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "target/debug/kube-once")
    structs = {kind: [tuple(field) for field in fields] for kind, fields in json.loads(GO_FIELD_ORDER.read_text()).items()}
    old_manifest, new_manifest = manifest(OLD_TAG), manifest(NEW_TAG)
    old_injected = injected(old_manifest, binary)
    # What kube-once added to the template (for its managedFields entry).
    before, after = old_manifest["spec"]["template"], old_injected["spec"]["template"]
    injection = {"metadata": {"annotations": {k: v for k, v in after["metadata"].get("annotations", {}).items()
                                              if k not in before["metadata"].get("annotations", {})}},
                 "spec": {"initContainers": [c for c in after["spec"].get("initContainers", [])
                                             if c not in before["spec"].get("initContainers", [])]}}
    old = stored(old_injected, old_manifest, OBSERVED_GENERATION, "918273", injection)
    # kubectl apply's 3-way merge: the new image everywhere the manifest has
    # it, kube-once's additions kept (they are not in last-applied).
    new_injected = json.loads(json.dumps(old_injected).replace(OLD_TAG, NEW_TAG))
    new = stored(new_injected, new_manifest, OBSERVED_GENERATION + 1, "918273", injection)
    for entry in new["metadata"]["managedFields"][:1]:
        entry["time"] = UPDATED
    review = {
        "kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": "b7e2c1d4-3f5a-4e6b-9c8d-7a6f5e4d3c2b",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "requestKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "requestResource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "name": NAME, "namespace": new["metadata"].get("namespace", "default"), "operation": "UPDATE",
            "userInfo": {"username": "system:serviceaccount:argocd:argocd-application-controller",
                         "uid": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
                         "groups": ["system:serviceaccounts", "system:serviceaccounts:argocd",
                                    "system:authenticated"]},
            "object": api_server_order(new, "Deployment", structs),
            "oldObject": api_server_order(old, "Deployment", structs), "dryRun": False,
            "options": {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1",
                        "fieldManager": "kubectl-client-side-apply"},
        },
    }
    OUT.write_text(json.dumps(review, separators=(",", ":")) + "\n")
    print(f"{OUT.relative_to(ROOT)}: {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
