"""Checks the kube-once OCI image layout that scripts/build-image.sh wrote.

Run through scripts/check-image.sh, which passes what to expect. Reads the
layout with the standard library only (no daemon, no registry): the one
index, one manifest per platform, each platform's config and file tree. Each
binary is extracted and checked with `file` (static, right architecture) and
run with `--version` (through qemu-user for a foreign architecture). Prints
one line per platform with its compressed size; exits 1 on the first problem.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
FILE_MACHINE = {"amd64": "x86-64", "arm64": "ARM aarch64"}


class Bad(Exception):
    pass


def blob(layout, descriptor):
    algorithm, digest = descriptor["digest"].split(":", 1)
    with open(os.path.join(layout, "blobs", algorithm, digest), "rb") as f:
        data = f.read()
    if len(data) != descriptor["size"] or hashlib.new(algorithm, data).hexdigest() != digest:
        raise Bad(f"blob {descriptor['digest']} does not match its descriptor")
    return data


def the_index(layout, tag):
    with open(os.path.join(layout, "index.json")) as f:
        top = json.load(f)
    tagged = [m for m in top["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
    if len(tagged) != 1:
        raise Bad(f"index.json has {len(tagged)} entries tagged {tag!r}, expected 1")
    if tagged[0]["mediaType"] != INDEX:
        raise Bad(f"{tag!r} is a {tagged[0]['mediaType']}, expected one multi-platform image index")
    return json.loads(blob(layout, tagged[0]))


def check_platform(layout, descriptor, arch, expected, runner, max_bytes, scratch):
    manifest_bytes = blob(layout, descriptor)
    manifest = json.loads(manifest_bytes)
    if manifest.get("mediaType", MANIFEST) != MANIFEST:
        raise Bad(f"{arch}: manifest media type {manifest.get('mediaType')}")
    config = json.loads(blob(layout, manifest["config"]))
    if (config.get("os"), config.get("architecture")) != ("linux", arch):
        raise Bad(f"{arch}: config says {config.get('os')}/{config.get('architecture')}")
    run = config.get("config", {})
    for field, want in (("User", "65532:65532"), ("Entrypoint", ["/kube-once"]), ("Cmd", ["serve"])):
        if run.get(field) != want:
            raise Bad(f"{arch}: config {field} is {run.get(field)!r}, expected {want!r}")

    files = {}
    compressed = len(manifest_bytes) + manifest["config"]["size"]
    root = os.path.join(scratch, arch)
    for layer in manifest["layers"]:
        data = blob(layout, layer)
        compressed += len(data)
        if layer["mediaType"].endswith("+gzip"):
            data = gzip.decompress(data)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                name = member.name[2:] if member.name.startswith("./") else member.name
                name = name.strip("/")
                if not name:
                    continue
                if os.path.basename(name).startswith(".wh."):
                    raise Bad(f"{arch}: whiteout {name}: expected plain layers")
                files[name] = member
                if member.isfile():
                    target = os.path.join(root, name)
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    with tar.extractfile(member) as source, open(target, "wb") as out:
                        out.write(source.read())
                    os.chmod(target, 0o755)

    regular = sorted(name for name, m in files.items() if not m.isdir())
    if regular != sorted(expected):
        raise Bad(f"{arch}: image holds {regular}, expected exactly {sorted(expected)}")
    for shell in ("bin/sh", "usr/bin/sh", "bin/busybox"):
        if shell in files:
            raise Bad(f"{arch}: image has /{shell}")
    for name, member in files.items():
        if (member.uid, member.gid) != (0, 0) or member.mode & 0o022:
            raise Bad(f"{arch}: /{name} is {member.uid}:{member.gid} mode {oct(member.mode)}: "
                      "expected root-owned and not writable by group or others")
        # Any user runs them: 65532 here, the app's own user when the image is
        # mounted into app pods as an image volume (docs/delivery.md).
        if member.mode & 0o555 != 0o555:
            raise Bad(f"{arch}: /{name} has mode {oct(member.mode)}: expected readable and executable by all")

    for name in expected:
        path = os.path.join(root, name)
        description = subprocess.run(["file", "-b", path], check=True, capture_output=True, text=True).stdout
        if FILE_MACHINE[arch] not in description:
            raise Bad(f"{arch}: /{name} is not a {arch} binary: {description.strip()}")
        if "interpreter" in description or "dynamically linked" in description or not (
                "statically linked" in description or "static-pie linked" in description):
            raise Bad(f"{arch}: /{name} is not static: {description.strip()}")
        command = runner + [path, "--version"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if result.returncode != 0 or not result.stdout.startswith("kube-once"):
            raise Bad(f"{arch}: {' '.join(command)} exited {result.returncode}: {result.stdout}{result.stderr}")
        print(f"  linux/{arch} /{name}: {files[name].size} bytes, static, runs: {result.stdout.strip()}"
              + (f" (under {' '.join(runner)})" if runner else ""))

    if compressed > max_bytes:
        raise Bad(f"{arch}: {compressed} bytes compressed, over the {max_bytes}-byte bound")
    print(f"  linux/{arch}: {compressed} bytes compressed ({compressed / 1048576:.2f} MiB; bound {max_bytes}), "
          f"manifest {descriptor['digest'][:19]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("layout")
    parser.add_argument("--tag", default="latest")
    parser.add_argument("--arch", action="append", required=True, help="ARCH or ARCH=RUNNER")
    parser.add_argument("--expect", action="append", required=True, help="a file the image must hold")
    parser.add_argument("--max-bytes", type=int, required=True, help="bound on each platform's compressed size")
    args = parser.parse_args()

    arches = dict((a.split("=", 1) + [""])[:2] for a in args.arch)
    try:
        index = the_index(args.layout, args.tag)
        by_platform = {}
        for descriptor in index["manifests"]:
            platform = descriptor.get("platform", {})
            key = (platform.get("os"), platform.get("architecture"))
            if key in by_platform:
                raise Bad(f"two manifests for {key[0]}/{key[1]}")
            by_platform[key] = descriptor
        want = sorted(("linux", arch) for arch in arches)
        if sorted(by_platform) != want:
            raise Bad(f"index platforms {sorted(by_platform)}, expected {want}")
        print(f"{args.layout}:{args.tag}: one index, platforms {', '.join('/'.join(p) for p in want)}")
        with tempfile.TemporaryDirectory() as scratch:
            for arch, runner in arches.items():
                check_platform(args.layout, by_platform[("linux", arch)], arch, args.expect, runner.split(),
                               args.max_bytes, scratch)
    except Bad as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
