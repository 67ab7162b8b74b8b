//! The pure core: golden patches per edge case, the properties every
//! mutation must have (patch applies to the desired object, idempotent,
//! reversible, stable, narrow), refusals, config parsing. Fixtures in
//! tests/fixtures/core at the repository's root; `UPDATE_GOLDEN=1 cargo
//! nextest run -p kube-once-core` rewrites the golden patches.

// Test helpers outside #[test] fns: a failed expectation should panic here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../../tests/support/core_cases.rs"]
mod core_cases;
#[path = "../../../tests/support/edits.rs"]
mod edits;
#[path = "../../../tests/support/golden.rs"]
mod golden;

use kube_once_core::{self as core, Config, Kind, Mutation, Reason, Refusal, STATUS_ANNOTATION};
use serde_json::{Value, json};

fn mutate(object: &Value, config: &Config) -> Mutation {
    core::mutate(object, None, config).unwrap_or_else(|refusal| panic!("refused: {refusal}"))
}

fn apply(object: &Value, mutation: &Mutation) -> Value {
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &mutation.patch).unwrap();
    patched
}

fn without_contract_annotations(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(annotations) = object.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
        annotations.retain(|key, _| !key.starts_with(core::PREFIX));
    }
    object
}

/// The pod template, wherever the object's kind keeps it.
fn template(object: &Value) -> &Value {
    Kind::read_as(object).template(object).unwrap()
}

fn template_mut(object: &mut Value) -> &mut Value {
    let path: String = Kind::read_as(object).template_path().iter().map(|key| format!("/{key}")).collect();
    object.pointer_mut(&path).unwrap()
}

/// The properties every mutation must have, checked on any annotated input.
fn check_properties(input: &Value, config: &Config) -> Mutation {
    let mutation = mutate(input, config);
    assert_eq!(apply(input, &mutation), mutation.object, "the patch must lead to the desired object");

    let again = mutate(&mutation.object, config);
    assert!(again.patch.0.is_empty(), "admitting the result again must change nothing: {:?}", again.patch);
    let update = core::mutate(&mutation.object, Some(&mutation.object), config).unwrap();
    assert!(update.patch.0.is_empty(), "an UPDATE that changes nothing must not patch");

    let removed = without_contract_annotations(&mutation.object);
    let reverted = mutate(&removed, config);
    assert_eq!(apply(&removed, &reverted), reverted.object);
    if Kind::read_as(input).template_mutable() {
        // Removing the annotations gives back what the user had without kube-once.
        let original = mutate(&without_contract_annotations(input), config).object;
        assert_eq!(
            template(&reverted.object),
            template(&original),
            "removing the annotations must strip the injection"
        );
    } else {
        // A Job made from an injected template without annotations of its
        // own (a CronJob's Job) keeps it: stripping would undo its owner's.
        assert!(reverted.patch.0.is_empty(), "a Job is left as created: {:?}", reverted.patch);
    }
    mutation
}

/// The properties of an UPDATE (`old` is the stored object): the patch leads
/// to the desired object, which the same UPDATE again leaves alone, and from
/// which removing the annotations strips the injection.
fn check_update_properties(input: &Value, old: &Value, config: &Config) -> Mutation {
    let mutation = core::mutate(input, Some(old), config).unwrap_or_else(|refusal| panic!("refused: {refusal}"));
    assert_eq!(apply(input, &mutation), mutation.object, "the patch must lead to the desired object");
    let again = core::mutate(&mutation.object, Some(&mutation.object), config).unwrap();
    assert!(again.patch.0.is_empty(), "an UPDATE that changes nothing must not patch: {:?}", again.patch);
    if !Kind::read_as(input).template_mutable() {
        assert!(mutation.patch.0.is_empty(), "a Job's UPDATE never patches its template: {:?}", mutation.patch);
        return mutation;
    }
    let original = mutate(&without_contract_annotations(input), config).object;
    let removed = without_contract_annotations(&mutation.object);
    let reverted = core::mutate(&removed, Some(&mutation.object), config).unwrap();
    assert_eq!(template(&reverted.object), template(&original), "removing the annotations must strip the injection");
    mutation
}

/// The admission path keeps the containers' lists aside as text
/// (`Workload::parse`); the same Deployment with everything inline (no
/// lists aside, how every field was read before) gets the same answer.
#[test]
fn lists_kept_aside_give_the_answer_of_lists_inline() {
    for core_cases::Case { name: case, input, old, config, .. } in core_cases::all() {
        let (text, old_text) = (input.to_string(), old.as_ref().map(Value::to_string));
        let aside = core::Workload::parse(&text).unwrap();
        let old_aside = old_text.as_deref().map(|text| core::Workload::parse(text).unwrap());
        let inline = |value: &Value| core::Workload {
            value: value.clone(),
            texts: Default::default(),
            containers: Default::default(),
        };
        assert_eq!(
            core::changes(&aside, old_aside.as_ref(), &config),
            core::changes(&inline(&input), old.as_ref().map(inline).as_ref(), &config),
            "{case}"
        );
    }
}

#[test]
fn golden_patches() {
    let cases = core_cases::all();
    let names: Vec<&str> = cases.iter().map(|case| case.name.as_str()).collect();
    assert!(cases.len() >= 11, "golden cases went missing: {names:?}");
    let mut golden = golden::Golden::new();
    for case in &cases {
        let mutation = match &case.old {
            Some(old) => check_update_properties(&case.input, old, &case.config),
            None => check_properties(&case.input, &case.config),
        };
        let actual = serde_json::to_string_pretty(&mutation.patch).unwrap() + "\n";
        golden.check(&case.patch_path, &actual);
    }
    golden.finish();
}

fn case(name: &str) -> Value {
    core_cases::input(name)
}

fn ops(mutation: &Mutation) -> Vec<(String, String)> {
    serde_json::to_value(&mutation.patch)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|op| (op["op"].as_str().unwrap().to_owned(), op["path"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn edge_cases_patch_where_expected() {
    let config = Config::default();
    let op = |o: &str, p: &str| (o.to_owned(), p.to_owned());

    let m = mutate(&case("already-injected"), &config);
    assert!(m.patch.0.is_empty());

    let m = mutate(&case("existing-init-containers"), &config);
    let names: Vec<&str> = m
        .object
        .pointer("/spec/template/spec/initContainers")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cloud-sql-proxy", "wait-for-db", "kube-once-install", "kube-once-run"]);
    assert!(ops(&m).contains(&op("add", "/spec/template/spec/initContainers/2")));

    let m = mutate(&case("several-containers"), &config);
    let run = &m.object.pointer("/spec/template/spec/initContainers/1").unwrap();
    assert_eq!(run["image"], "registry.example.com/store:7.0.1");
    assert_eq!(run["workingDir"], "/rails");
    assert_eq!(
        run["command"],
        json!(["/kube-once-bin/kube-once", "lock", "--", "bundle", "exec", "rails", "db:migrate"])
    );

    let m = mutate(&case("pointer-escaping"), &core_cases::config("pointer-escaping.config.yaml"));
    assert_eq!(
        ops(&m),
        [
            op("add", "/spec/template/metadata/annotations/kube-once.io~1status"),
            op("add", "/spec/template/spec/nodeSelector/example.com~1pool~0a"),
        ]
    );

    let m = mutate(&case("existing-node-selector-tolerations"), &config);
    let tolerations = m.object.pointer("/spec/template/spec/tolerations").unwrap().as_array().unwrap();
    assert_eq!(tolerations.len(), 2, "the toleration the user already had must not be duplicated");
    assert_eq!(m.object.pointer("/spec/template/spec/nodeSelector/cloud.google.com~1gke-spot").unwrap(), "true");

    let m = mutate(&case("annotation-removed"), &config);
    assert!(m.object.pointer("/spec/template/spec/initContainers").is_none());
    assert!(m.object.pointer("/spec/template/spec/volumes").is_none());
    assert!(m.object.pointer("/spec/template/metadata/annotations").is_none());
    assert_eq!(m.object.pointer("/spec/template/spec/nodeSelector").unwrap(), &json!({"kubernetes.io/arch": "amd64"}));

    let m = mutate(&case("preemptible-only"), &config);
    assert!(m.object.pointer("/spec/template/spec/initContainers").is_none());
    assert_eq!(
        m.object.pointer("/spec/template/spec/nodeSelector").unwrap(),
        &json!({"kubernetes.azure.com/scalesetpriority": "spot"})
    );
}

fn env_of(container: &Value) -> Vec<(String, Value)> {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_owned(), e.get("value").cloned().unwrap_or(Value::Null)))
        .collect()
}

#[test]
fn the_plan_travels_as_env_after_the_app_env() {
    let m = mutate(&case("database-url-template"), &Config::default());
    let run = m.object.pointer("/spec/template/spec/initContainers/1").unwrap();
    let env = env_of(run);
    let names: Vec<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "DB_HOST",
            "DB_USER",
            "DB_PASSWORD",
            "DIRECT_DATABASE_URL",
            "KUBE_ONCE_DATABASE_URL_ENV",
            "KUBE_ONCE_DATABASE_URL",
            "KUBE_ONCE_LOCK_URL_ENV",
            "KUBE_ONCE_LOCK_NAME",
            "KUBE_ONCE_KEY",
            "KUBE_ONCE_RECORD",
            "KUBE_ONCE_TIMEOUT",
            "KUBE_ONCE_IMAGE",
            "KUBE_ONCE_DEPLOYMENT",
            "KUBE_ONCE_NAMESPACE",
            "KUBE_ONCE_POD_NAME",
        ]
    );
    let value = |name: &str| env.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert_eq!(value("KUBE_ONCE_DATABASE_URL_ENV"), "KUBE_ONCE_DATABASE_URL");
    assert_eq!(
        value("KUBE_ONCE_DATABASE_URL"),
        "postgresql+psycopg2://$(DB_USER):$(DB_PASSWORD)@$(DB_HOST):6432/billing?sslmode=require"
    );
    assert_eq!(value("KUBE_ONCE_TIMEOUT"), "1h 30m");
    assert_eq!(value("KUBE_ONCE_RECORD"), "none");
    assert_eq!(value("KUBE_ONCE_KEY"), "billing-schema-42");
    assert_eq!(
        run["command"],
        json!(["/kube-once-bin/kube-once", "lock", "--", "sh", "-c", "flask db upgrade && flask seed --if-empty"])
    );
    assert!(m.warnings.iter().any(|w| w.contains("record: none")), "{:?}", m.warnings);
    assert!(
        !m.warnings.iter().any(|w| w.contains("is not in the env")),
        "all referenced vars are declared: {:?}",
        m.warnings
    );

    // The install container is restricted and uses the config's tools image.
    let config = core_cases::config("config-defaults.config.yaml");
    let m = mutate(&case("config-defaults"), &config);
    let install = m.object.pointer("/spec/template/spec/initContainers/0").unwrap();
    assert_eq!(install["image"], "registry.internal/kube-once:0.1.0");
    assert_eq!(install["command"], json!(["/pod/kube-once", "install", "/kube-once-bin"]));
    assert_eq!(
        install["securityContext"],
        json!({"runAsNonRoot": true, "runAsUser": 65532, "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}, "readOnlyRootFilesystem": true})
    );
    let env = env_of(m.object.pointer("/spec/template/spec/initContainers/1").unwrap());
    let value = |name: &str| env.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert_eq!(value("KUBE_ONCE_TIMEOUT"), "30m");
    assert_eq!(value("KUBE_ONCE_LOCK_NAME"), "data-platform");
    assert_eq!(value("KUBE_ONCE_RECORD"), "none");
    assert_eq!(
        value("KUBE_ONCE_KEY"),
        core::annotations::default_key("registry.example.com/batch:2", &["./bin/migrate".into(), "up".into()])
    );
    assert_eq!(m.object.pointer("/spec/template/spec/nodeSelector").unwrap(), &json!({"node-pool": "spot"}));
    assert!(m.warnings.iter().any(|w| w.contains("preemptible nodes (on-prem-spot)")), "{:?}", m.warnings);
}

#[test]
fn default_key_depends_on_image_and_command() {
    let key = |image: &str, command: &[&str]| {
        core::annotations::default_key(image, &command.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    };
    let base = key("app:1", &["flask", "db", "upgrade"]);
    assert_eq!(base.len(), 32);
    assert_eq!(base, key("app:1", &["flask", "db", "upgrade"]));
    assert_ne!(base, key("app:2", &["flask", "db", "upgrade"]));
    assert_ne!(base, key("app:1", &["flask", "db upgrade"]), "word boundaries count");
}

#[test]
fn stability_rule_keeps_injected_parts_when_the_template_is_unchanged() {
    let input = case("no-init-containers");
    let old = mutate(&input, &Config::default()).object;
    let changed =
        Config::from_yaml("toolsImage: registry.internal/kube-once:9.9.9\ndefaults: {timeout: 45m}\n").unwrap();

    // The stored object, re-applied unchanged with a newer webhook config.
    let m = core::mutate(&old, Some(&old), &changed).unwrap();
    assert!(m.patch.0.is_empty(), "{:?}", m.patch);
    // The user's manifest re-applied (injection missing), replicas changed: old injection back, byte-identical.
    let mut reapplied = input.clone();
    reapplied["spec"]["replicas"] = json!(5);
    let m = core::mutate(&reapplied, Some(&old), &changed).unwrap();
    assert_eq!(template(&m.object), template(&old));
    assert_eq!(apply(&reapplied, &m), m.object);
    assert!(!m.warnings.iter().any(|w| w.contains("backward compatible")), "not a first injection: {:?}", m.warnings);

    // A real template change re-injects with the current config.
    let mut new_image = old.clone();
    new_image["spec"]["template"]["spec"]["containers"][0]["image"] = json!("registry.example.com/shop:1.5.0");
    let m = core::mutate(&new_image, Some(&old), &changed).unwrap();
    assert_eq!(
        m.object.pointer("/spec/template/spec/initContainers/0/image").unwrap(),
        "registry.internal/kube-once:9.9.9"
    );
    assert_eq!(
        m.object.pointer("/spec/template/spec/initContainers/1/image").unwrap(),
        "registry.example.com/shop:1.5.0"
    );
    assert_eq!(apply(&new_image, &m), m.object);

    // So does a changed annotation, though the template is the same.
    let mut new_command = old.clone();
    new_command["metadata"]["annotations"]["kube-once.io/run"] = json!("flask db upgrade --sql");
    let m = core::mutate(&new_command, Some(&old), &changed).unwrap();
    assert!(
        m.object
            .pointer("/spec/template/spec/initContainers/1/command")
            .unwrap()
            .as_array()
            .unwrap()
            .contains(&json!("--sql"))
    );
}

/// The user's init containers count as the template: unchanged, the
/// injection stays as it was (a newer webhook config is not rolled out);
/// one changed (an image bump reaches init containers too), the injection
/// follows the current config and the user's change stays.
#[test]
fn stability_rule_compares_the_users_init_containers() {
    let input = case("existing-init-containers");
    let old = mutate(&input, &Config::default()).object;
    let changed = Config::from_yaml("toolsImage: registry.internal/kube-once:9.9.9\n").unwrap();
    let init_image = |object: &Value, index: usize| {
        object.pointer(&format!("/spec/template/spec/initContainers/{index}/image")).unwrap().clone()
    };

    let mut reapplied = input.clone();
    reapplied["spec"]["replicas"] = json!(3);
    let m = core::mutate(&reapplied, Some(&old), &changed).unwrap();
    assert_eq!(template(&m.object), template(&old), "unchanged: the old injection, byte for byte");

    for (index, container) in [(0, "cloud-sql-proxy"), (1, "wait-for-db")] {
        let mut bumped = old.clone();
        bumped["spec"]["template"]["spec"]["initContainers"][index]["image"] = json!("registry.example.com/new:2");
        let m = core::mutate(&bumped, Some(&old), &changed).unwrap();
        assert_eq!(init_image(&m.object, index), json!("registry.example.com/new:2"), "{container} kept as changed");
        assert_eq!(init_image(&m.object, 2), json!("registry.internal/kube-once:9.9.9"), "{container}: re-injected");
        assert_eq!(apply(&bumped, &m), m.object);
    }

    // One more of the user's, after the injection: not the old template either.
    let mut added = old.clone();
    added["spec"]["template"]["spec"]["initContainers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "warm-cache", "image": "busybox:1.36"}));
    let m = core::mutate(&added, Some(&old), &changed).unwrap();
    let names: Vec<_> = m.object["spec"]["template"]["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["cloud-sql-proxy", "wait-for-db", "warm-cache", "kube-once-install", "kube-once-run"]);
    assert_eq!(init_image(&m.object, 3), json!("registry.internal/kube-once:9.9.9"));
}

/// Native sidecars (init containers that keep running) come before
/// kube-once's, so a proxy is up when the migration starts. The patch adds
/// kube-once's after them and names none of them, however many: the
/// request's items are compared as text up to the first that differs.
#[test]
fn many_native_sidecars_stay_first_and_out_of_the_patch() {
    let mut input = case("existing-init-containers");
    let sidecars = (0..2000).map(|i| json!({"name": format!("s{i}"), "image": "proxy:1", "restartPolicy": "Always"}));
    template_mut(&mut input)["spec"]["initContainers"].as_array_mut().unwrap().splice(0..0, sidecars);

    let m = check_properties(&input, &Config::default());
    let items = |m: &Mutation| -> Vec<(String, String)> {
        let item =
            |path: &str| path.strip_prefix("/spec/template/spec/initContainers/").is_some_and(|i| !i.contains('/'));
        ops(m).into_iter().filter(|(_, path)| item(path)).collect()
    };
    let at = |index: usize| ("add".to_owned(), format!("/spec/template/spec/initContainers/{index}"));
    assert_eq!(items(&m), [at(2002), at(2003)]);

    // One sidecar changed on an UPDATE: that one is replaced, the rest stay out.
    let mut bumped = m.object.clone();
    bumped["spec"]["template"]["spec"]["initContainers"][1500]["image"] = json!("proxy:2");
    let stale = Config::from_yaml("toolsImage: registry.internal/kube-once:9.9.9\n").unwrap();
    let update = core::mutate(&bumped, Some(&m.object), &stale).unwrap();
    assert_eq!(apply(&bumped, &update), update.object);
    let touched = items(&update);
    assert!(touched.iter().all(|(_, path)| !path.ends_with("/initContainers/1500")), "{touched:?}");
    assert!(touched.len() <= 4, "only kube-once's are patched: {touched:?}");
    assert_eq!(update.object["spec"]["template"]["spec"]["initContainers"][1500]["image"], "proxy:2");
}

/// The app containers stay the request's text, read one at a time: among
/// many sidecars the app is the one `kube-once.io/container` names, and
/// each copied field comes from the container it equals (for a whole field
/// the first such, for a list the longest prefix), wherever it is.
#[test]
fn among_many_sidecars_the_app_and_the_copy_sources_are_read_from_text() {
    let mut input = case("several-containers");
    let resources = json!({"limits": {"memory": "1Gi"}});
    let containers = template_mut(&mut input)["spec"]["containers"].as_array_mut().unwrap();
    containers[1]["resources"] = resources.clone();
    let mut sidecars: Vec<Value> = (0..2000).map(|i| json!({"name": format!("s{i}"), "image": "side:1"})).collect();
    sidecars[3]["resources"] = resources;
    sidecars[4]["env"] = json!([{"name": "RAILS_ENV", "value": "production"}]);
    containers.splice(0..0, sidecars);

    let m = check_properties(&input, &Config::default());
    let patch = serde_json::to_value(&m.patch).unwrap();
    let copies: Vec<(&str, &str)> = patch
        .as_array()
        .unwrap()
        .iter()
        .filter(|op| op["op"] == "copy")
        .map(|op| (op["from"].as_str().unwrap(), op["path"].as_str().unwrap()))
        .collect();
    let run = "/spec/template/spec/initContainers/1";
    assert_eq!(
        copies,
        [
            ("/spec/template/spec/containers/2001/env", format!("{run}/env").as_str()),
            ("/spec/template/spec/containers/2001/volumeMounts", &format!("{run}/volumeMounts")),
            ("/spec/template/spec/containers/3/resources", &format!("{run}/resources")),
        ]
    );
    let run_container = m.object.pointer(run).unwrap();
    assert_eq!(run_container["image"], "registry.example.com/store:7.0.1");
    assert_eq!(run_container["workingDir"], "/rails");
    // DATABASE_URL is in the app's env (read from its text): no warning about it.
    assert!(!m.warnings.iter().any(|w| w.contains("is not in the env")), "{:?}", m.warnings);

    // The admission path (the review's text, not a value) gives the same answer.
    let text = input.to_string();
    let changes = core::changes(&core::Workload::parse(&text).unwrap(), None, &Config::default()).unwrap();
    assert_eq!(changes.patch, m.patch);

    // A name no container has is refused with the names there are.
    input["metadata"]["annotations"]["kube-once.io/container"] = json!("missing");
    let refusal = core::mutate(&input, None, &Config::default()).unwrap_err();
    assert_eq!(refusal.reason(), Reason::UnknownContainer);
    assert!(refusal.to_string().contains("use one of: s0, s1, "), "{refusal}");
    assert!(refusal.to_string().ends_with("s1999, nginx, app, log-shipper"), "{refusal}");
}

/// The stability rule on the admission path: the app containers of the
/// stored object and of the update are compared as text first, then in
/// meaning, so the same containers written another way keep the injection
/// and a changed one does not.
#[test]
fn the_stability_rule_compares_app_containers_in_meaning() {
    let input = case("several-containers");
    let old = mutate(&input, &Config::default()).object;
    let changed = Config::from_yaml("toolsImage: registry.internal/kube-once:9.9.9\n").unwrap();
    let old_text = old.to_string();
    let nginx = r#"{"image":"nginx:1.27","name":"nginx"}"#;
    assert!(old_text.contains(nginx), "{old_text}");
    let update = |text: &str| {
        let (object, old) = (core::Workload::parse(text).unwrap(), core::Workload::parse(&old_text).unwrap());
        core::changes(&object, Some(&old), &changed).unwrap().patch
    };
    // The same text, and the same containers written otherwise: nothing to patch.
    assert!(update(&old_text).0.is_empty());
    let reformatted = old_text.replace(nginx, r#"{ "name": "nginx",  "image": "nginx:1.27" }"#);
    assert_ne!(reformatted, old_text);
    assert!(update(&reformatted).0.is_empty(), "{:?}", update(&reformatted));
    // A changed sidecar is a changed template: injected again with the current config.
    let patch = update(&old_text.replace(nginx, r#"{"image":"nginx:1.28","name":"nginx"}"#));
    let patch = serde_json::to_string(&patch).unwrap();
    assert!(patch.contains("registry.internal/kube-once:9.9.9"), "{patch}");
}

/// The template's annotations and volumes are kept as the request wrote
/// them but for kube-once's own: what the user adds to them after an
/// injection stays, through a re-injection and through stripping, even in
/// an annotations map kube-once created.
#[test]
fn what_the_user_adds_beside_the_injection_stays() {
    let input = case("no-init-containers");
    assert!(template(&input)["metadata"].get("annotations").is_none(), "the case must let kube-once create them");
    let old = mutate(&input, &Config::default()).object;
    let mut edited = old.clone();
    template_mut(&mut edited)["metadata"]["annotations"]["example.com/owner"] = json!("team-a");
    template_mut(&mut edited)["spec"]["volumes"]
        .as_array_mut()
        .unwrap()
        .insert(0, json!({"name": "data", "emptyDir": {}}));
    template_mut(&mut edited)["spec"]["containers"][0]["image"] = json!("registry.example.com/shop:1.6.0");

    let m = core::mutate(&edited, Some(&old), &Config::default()).unwrap();
    assert_eq!(apply(&edited, &m), m.object);
    let annotations = &template(&m.object)["metadata"]["annotations"];
    assert_eq!(annotations["example.com/owner"], "team-a");
    assert!(annotations.get(STATUS_ANNOTATION).is_some());
    let names: Vec<&str> = template(&m.object)["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|volume| volume["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["data", "uploads", "kube-once-bin"]);

    let removed = without_contract_annotations(&m.object);
    let stripped = core::mutate(&removed, Some(&m.object), &Config::default()).unwrap();
    assert_eq!(apply(&removed, &stripped), stripped.object);
    assert_eq!(template(&stripped.object)["metadata"]["annotations"], json!({"example.com/owner": "team-a"}));
    let mut volumes = template(&input)["spec"]["volumes"].clone();
    volumes.as_array_mut().unwrap().insert(0, json!({"name": "data", "emptyDir": {}}));
    assert_eq!(template(&stripped.object)["spec"]["volumes"], volumes);
}

fn image_volume_config() -> Config {
    core_cases::config("image-volume.config.yaml")
}

fn status_of(object: &Value) -> Value {
    let text = object.pointer("/spec/template/metadata/annotations").unwrap()[STATUS_ANNOTATION].as_str().unwrap();
    serde_json::from_str(text).unwrap()
}

#[test]
fn image_volume_delivery_mounts_the_tools_image_into_kube_once_run() {
    let m = mutate(&case("image-volume"), &image_volume_config());
    let spec = m.object.pointer("/spec/template/spec").unwrap();
    let names: Vec<&str> =
        spec["initContainers"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["cloud-sql-proxy", "kube-once-run"], "no kube-once-install");
    assert_eq!(
        spec["volumes"],
        json!([
            {"name": "static", "emptyDir": {}},
            {"name": "kube-once-bin", "image": {"reference": "registry.internal/kube-once:0.1.0", "pullPolicy": "IfNotPresent"}},
        ])
    );
    let run = &spec["initContainers"][1];
    assert_eq!(
        run["volumeMounts"],
        json!([
            {"name": "static", "mountPath": "/srv/static"},
            {"name": "kube-once-bin", "mountPath": "/kube-once-bin", "readOnly": true, "subPath": "pod"},
        ])
    );
    assert_eq!(run["command"][0], "/kube-once-bin/kube-once");
    let status = status_of(&m.object);
    assert_eq!(status["delivery"], "imageVolume");
    assert_eq!(status["initContainers"], json!(["kube-once-run"]));
    assert_eq!(status["volumes"], json!(["kube-once-bin"]));

    // The names stay reserved in both modes, so a later switch of delivery cannot collide.
    let mut taken = case("image-volume");
    taken["spec"]["template"]["spec"]["initContainers"][0]["name"] = json!("kube-once-install");
    let refusal = core::mutate(&taken, None, &image_volume_config()).unwrap_err();
    assert_eq!(refusal.reason(), Reason::ReservedName, "{refusal}");

    // initContainer delivery records nothing new: statuses written before the field read the same.
    let m = mutate(&case("no-init-containers"), &Config::default());
    assert!(status_of(&m.object).get("delivery").is_none());
}

#[test]
fn delivery_is_a_config_key_with_a_helpful_error() {
    assert_eq!(Config::default().delivery, core::Delivery::InitContainer);
    assert_eq!(Config::from_yaml("delivery: initContainer\n").unwrap().delivery, core::Delivery::InitContainer);
    assert_eq!(Config::from_yaml("delivery: imageVolume\n").unwrap().delivery, core::Delivery::ImageVolume);
    let message = Config::from_yaml("delivery: imagevolume\n").unwrap_err().to_string();
    for part in ["`delivery`", "`imagevolume`", "initContainer", "imageVolume", "1.35"] {
        assert!(message.contains(part), "{message:?} should contain {part:?}");
    }
}

/// The stability rule across a delivery change: a Deployment the user did
/// not touch keeps the delivery it was injected with; a change re-injects
/// with the configured one, leaving nothing of the other behind.
#[test]
fn a_delivery_change_applies_only_when_the_user_changes_the_deployment() {
    let input = case("no-init-containers");
    let old = mutate(&input, &Config::default()).object;
    let image_volume = image_volume_config();

    let m = core::mutate(&old, Some(&old), &image_volume).unwrap();
    assert!(m.patch.0.is_empty(), "{:?}", m.patch);
    let mut rescaled = input.clone();
    rescaled["spec"]["replicas"] = json!(5);
    let m = core::mutate(&rescaled, Some(&old), &image_volume).unwrap();
    assert_eq!(template(&m.object), template(&old), "re-applied manifest: the stored injection comes back");

    let mut bumped = old.clone();
    bumped["spec"]["template"]["spec"]["containers"][0]["image"] = json!("registry.example.com/shop:1.5.0");
    let switched = core::mutate(&bumped, Some(&old), &image_volume).unwrap().object;
    let mut fresh = input.clone();
    fresh["spec"]["template"]["spec"]["containers"][0]["image"] = json!("registry.example.com/shop:1.5.0");
    assert_eq!(template(&switched), template(&mutate(&fresh, &image_volume).object));
    assert_eq!(status_of(&switched)["delivery"], "imageVolume");
    let text = serde_json::to_string(template(&switched)).unwrap();
    assert!(!text.contains("kube-once-install") && !text.contains("emptyDir\":{}}]"), "{text}");

    // And back.
    let mut bumped_again = switched.clone();
    bumped_again["spec"]["template"]["spec"]["containers"][0]["image"] = json!("registry.example.com/shop:1.6.0");
    let back = core::mutate(&bumped_again, Some(&switched), &Config::default()).unwrap().object;
    let names: Vec<&str> = back
        .pointer("/spec/template/spec/initContainers")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["kube-once-install", "kube-once-run"]);
    assert!(status_of(&back).get("delivery").is_none());
    assert!(back.pointer("/spec/template/spec/volumes/1/emptyDir").is_some());
}

#[test]
fn objects_without_kube_once_annotations_are_untouched() {
    let mut input = case("no-init-containers");
    input["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "3"});
    let m = mutate(&input, &Config::default());
    assert!(m.patch.0.is_empty());
    assert_eq!(m.object, input);
    assert!(m.warnings.is_empty());
    // Even a broken pod template is none of kube-once's business then.
    let m =
        mutate(&json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}}), &Config::default());
    assert!(m.patch.0.is_empty());
}

fn refusal(annotations: Value) -> Refusal {
    refusal_with(annotations, &Config::default())
}

fn refusal_with(annotations: Value, config: &Config) -> Refusal {
    let mut input = case("several-containers");
    input["metadata"]["annotations"] = annotations;
    match core::mutate(&input, None, config) {
        Ok(m) => panic!("admitted: {:?}", m.warnings),
        Err(refusal) => {
            assert!(refusal.to_string().starts_with("Deployment store/rails: "), "must name the Deployment: {refusal}");
            refusal
        }
    }
}

/// `kube-once.io/run: rake db:migrate` plus `extra`, refused.
fn run_refusal(extra: Value) -> Refusal {
    let mut annotations = json!({"kube-once.io/run": "rake db:migrate"});
    annotations.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    refusal(annotations)
}

#[test]
fn every_malformed_annotation_is_refused_with_its_reason_and_annotation() {
    use Reason::*;
    let cases: Vec<(Refusal, Reason, Option<&str>)> = vec![
        (refusal(json!({"kube-once.io/run": ""})), BadValue, Some("run")),
        (refusal(json!({"kube-once.io/run": "flask 'db upgrade"})), BadValue, Some("run")),
        (refusal(json!({"kube-once.io/run": "[\"flask\", 1]"})), BadValue, Some("run")),
        (refusal(json!({"kube-once.io/run": "[]"})), BadValue, Some("run")),
        (refusal(json!({"kube-once.io/run": "flask db upgrade\nflask seed"})), BadValue, Some("run")),
        (refusal(json!({"kube-once.io/run": "flask db\0 upgrade"})), BadValue, Some("run")),
        (refusal(json!({"kube-once.io/run": "[\"flask\", \"db\\u0000\"]"})), BadValue, Some("run")),
        (refusal(json!({"kube-once.io/run": 1})), BadValue, Some("run")),
        (refusal(json!({"kube-once.io/rnu": "flask db upgrade"})), UnknownAnnotation, None),
        (refusal(json!({"kube-once.io/status": "{}"})), MisplacedAnnotation, None),
        (refusal(json!({"kube-once.io/timeout": "10m"})), NeedsRun, Some("timeout")),
        (refusal(json!({"kube-once.io/key": "v1"})), NeedsRun, Some("key")),
        (run_refusal(json!({"kube-once.io/container": "web"})), UnknownContainer, Some("container")),
        (run_refusal(json!({"kube-once.io/timeout": "ten minutes"})), BadValue, Some("timeout")),
        (run_refusal(json!({"kube-once.io/timeout": "0s"})), BadValue, Some("timeout")),
        (run_refusal(json!({"kube-once.io/record": "always"})), BadValue, Some("record")),
        (run_refusal(json!({"kube-once.io/lock-name": "x".repeat(65)})), BadValue, Some("lock-name")),
        (run_refusal(json!({"kube-once.io/lock-name": "my lock"})), BadValue, Some("lock-name")),
        (run_refusal(json!({"kube-once.io/key": "a\nb"})), BadValue, Some("key")),
        (run_refusal(json!({"kube-once.io/key": ""})), BadValue, Some("key")),
        (run_refusal(json!({"kube-once.io/key": "é".repeat(256)})), BadValue, Some("key")),
        (run_refusal(json!({"kube-once.io/database-url-env": "DATABASE URL"})), BadValue, Some("database-url-env")),
        (run_refusal(json!({"kube-once.io/lock-url-env": "$(X)"})), BadValue, Some("lock-url-env")),
        (
            run_refusal(json!({"kube-once.io/database-url": "postgresql://app:s3cret@db/app"})),
            LiteralPassword,
            Some("database-url"),
        ),
        (
            run_refusal(json!({"kube-once.io/database-url": "postgresql://$(DB_USER)@db/app?password=hunter2"})),
            LiteralPassword,
            Some("database-url"),
        ),
        (
            run_refusal(json!({"kube-once.io/database-url": "postgresql://$(DB_USER:$(P)@db/app"})),
            BadValue,
            Some("database-url"),
        ),
        (run_refusal(json!({"kube-once.io/database-url": "redis://$(HOST)/0"})), BadValue, Some("database-url")),
        (run_refusal(json!({"kube-once.io/database-url": "db.internal"})), BadValue, Some("database-url")),
        (
            run_refusal(json!({"kube-once.io/database-url": "$(URL)", "kube-once.io/database-url-env": "URL"})),
            ConflictingAnnotations,
            Some("database-url"),
        ),
        (run_refusal(json!({"kube-once.io/preemptible": "gke-spto"})), UnknownPreset, Some("preemptible")),
        (run_refusal(json!({"kube-once.io/preemptible": "true"})), NoDefaultPreset, Some("preemptible")),
    ];
    for (refusal, reason, annotation) in cases {
        assert_eq!((refusal.reason(), refusal.annotation()), (reason, annotation), "{refusal}");
    }

    let mut template_annotated = case("several-containers");
    template_annotated["spec"]["template"]["metadata"]["annotations"] = json!({"kube-once.io/run": "x"});
    let refusal = core::mutate(&template_annotated, None, &Config::default()).unwrap_err();
    assert_eq!(refusal.reason(), MisplacedAnnotation, "{refusal}");
}

/// The prose users read: what is wrong, with the value, and how to fix it.
#[test]
fn malformed_annotations_are_refused_with_precise_messages() {
    let message = |refusal: Refusal| refusal.to_string();
    let cases: Vec<(String, &[&str])> = vec![
        (message(refusal(json!({"kube-once.io/run": ""}))), &["kube-once.io/run", "is empty"]),
        (
            message(refusal(json!({"kube-once.io/run": "flask 'db upgrade"}))),
            &["kube-once.io/run", "cannot be split", "JSON array"],
        ),
        (
            message(refusal(json!({"kube-once.io/run": "[\"flask\", 1]"}))),
            &["kube-once.io/run", "not an array of strings"],
        ),
        (
            message(refusal(json!({"kube-once.io/run": "flask db upgrade\nflask seed"}))),
            &["kube-once.io/run", "line break", "JSON array"],
        ),
        (message(refusal(json!({"kube-once.io/run": "flask\0"}))), &["kube-once.io/run", "NUL", "remove it"]),
        (
            message(refusal(json!({"kube-once.io/rnu": "flask db upgrade"}))),
            &["kube-once.io/rnu", "not a kube-once annotation", "did you mean kube-once.io/run?"],
        ),
        (message(refusal(json!({"kube-once.io/status": "{}"}))), &["pod template only"]),
        (
            message(refusal(json!({"kube-once.io/timeout": "10m"}))),
            &["kube-once.io/timeout", "no effect without kube-once.io/run"],
        ),
        (
            message(run_refusal(json!({"kube-once.io/container": "web"}))),
            &["kube-once.io/container", "\"web\"", "nginx, app, log-shipper"],
        ),
        (
            message(run_refusal(json!({"kube-once.io/timeout": "ten minutes"}))),
            &["kube-once.io/timeout", "\"ten minutes\"", "not a duration", "10m"],
        ),
        (message(run_refusal(json!({"kube-once.io/timeout": "0s"}))), &["shorter than one second"]),
        (message(run_refusal(json!({"kube-once.io/record": "always"}))), &["kube-once.io/record", "`table`", "`none`"]),
        (
            message(run_refusal(json!({"kube-once.io/lock-name": "x".repeat(65)}))),
            &["kube-once.io/lock-name", "1 to 64"],
        ),
        (message(run_refusal(json!({"kube-once.io/key": "a\nb"}))), &["kube-once.io/key", "control characters"]),
        (
            message(run_refusal(json!({"kube-once.io/key": "é".repeat(256)}))),
            &["kube-once.io/key", "1 to 255 characters"],
        ),
        (
            message(run_refusal(json!({"kube-once.io/database-url": "postgresql://app:s3cret@db/app"}))),
            &["kube-once.io/database-url", "literal password", "$(DB_PASSWORD)"],
        ),
        (message(run_refusal(json!({"kube-once.io/database-url": "redis://$(HOST)/0"}))), &["scheme `redis`"]),
        (
            message(run_refusal(
                json!({"kube-once.io/database-url": "$(URL)", "kube-once.io/database-url-env": "URL"}),
            )),
            &["keep only one"],
        ),
        (
            message(run_refusal(json!({"kube-once.io/preemptible": "gke-spto"}))),
            &["kube-once.io/preemptible", "\"gke-spto\"", "not a known preset", "gke-spot"],
        ),
        (
            message(run_refusal(json!({"kube-once.io/preemptible": "true"}))),
            &["no defaultPreset configured", "gke-spot"],
        ),
    ];
    for (message, expected) in cases {
        for part in expected {
            assert!(message.contains(part), "{message:?} should contain {part:?}");
        }
    }
    let mut template_annotated = case("several-containers");
    template_annotated["spec"]["template"]["metadata"]["annotations"] = json!({"kube-once.io/run": "x"});
    let message = core::mutate(&template_annotated, None, &Config::default()).unwrap_err().to_string();
    assert!(message.contains("move it to the Deployment's metadata.annotations"), "{message}");
}

/// `key` is at most 255 characters, not bytes: 255 two-byte characters pass.
#[test]
fn key_length_counts_characters() {
    let mut input = case("several-containers");
    input["metadata"]["annotations"] =
        json!({"kube-once.io/run": "rake db:migrate", "kube-once.io/key": "é".repeat(255)});
    mutate(&input, &Config::default());
}

/// A huge unknown annotation name is refused in time linear in its size:
/// no "did you mean" (an edit distance) for it, and the message quotes it cut short.
#[test]
fn a_multi_megabyte_unknown_annotation_name_is_refused() {
    let name = format!("kube-once.io/{}", "r".repeat(3 * 1024 * 1024));
    let refusal = refusal(json!({name: "x"}));
    assert_eq!(refusal.reason(), Reason::UnknownAnnotation);
    let message = refusal.to_string();
    assert!(message.contains("not a kube-once annotation") && !message.contains("did you mean"), "{message:.300}");
    assert!(message.len() < 2_000, "the message quotes the name cut short: {} bytes", message.len());
}

#[test]
fn conflicts_with_the_users_pod_template_are_refused() {
    let mut input = case("existing-node-selector-tolerations");
    input["spec"]["template"]["spec"]["nodeSelector"]["cloud.google.com/gke-spot"] = json!("false");
    let refusal = core::mutate(&input, None, &Config::default()).unwrap_err();
    assert_eq!((refusal.reason(), refusal.annotation()), (Reason::NodeSelectorConflict, Some("preemptible")));
    let message = refusal.to_string();
    assert!(
        message.contains("cloud.google.com/gke-spot=true")
            && message.contains("already has cloud.google.com/gke-spot=\"false\""),
        "{message}"
    );

    let mut input = case("no-init-containers");
    input["spec"]["template"]["spec"]["initContainers"] = json!([{"name": "kube-once-run", "image": "x"}]);
    let refusal = core::mutate(&input, None, &Config::default()).unwrap_err();
    assert_eq!(refusal.reason(), Reason::ReservedName);
    let message = refusal.to_string();
    assert!(message.contains("\"kube-once-run\"") && message.contains("rename it"), "{message}");

    let mut input = case("no-init-containers");
    input["spec"]["template"]["spec"]["volumes"] = json!([{"name": "kube-once-bin", "emptyDir": {}}]);
    assert_eq!(core::mutate(&input, None, &Config::default()).unwrap_err().reason(), Reason::ReservedName);

    let mut input = case("no-init-containers");
    input["spec"]["template"]["metadata"]["annotations"] = json!({STATUS_ANNOTATION: "not json"});
    let refusal = core::mutate(&input, None, &Config::default()).unwrap_err();
    assert_eq!(refusal.reason(), Reason::BadStatus);
    assert!(refusal.to_string().contains("not a status written by kube-once"), "{refusal}");
}

#[test]
fn an_incomplete_pod_template_is_refused() {
    let annotated = |spec: Value| {
        let mut input = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "annotations": {"kube-once.io/run": "x"}},
        });
        if !spec.is_null() {
            input["spec"] = spec;
        }
        core::mutate(&input, None, &Config::default()).unwrap_err()
    };
    for (spec, part) in [
        (Value::Null, "spec.template.spec.containers is empty"),
        (json!({"template": {}}), "spec.template.spec.containers is empty"),
        (json!({"template": {"spec": {"containers": []}}}), "containers is empty"),
        (json!({"template": {"spec": {"containers": [{"name": "app"}]}}}), "has no image"),
    ] {
        let refusal = annotated(spec);
        assert_eq!(refusal.reason(), Reason::IncompleteTemplate, "{refusal}");
        assert!(refusal.to_string().contains(part), "{refusal}");
    }
    // Without `run` no app container is looked for; the pod spec still is.
    for (spec, part) in
        [(json!({}), "spec.template is missing"), (json!({"template": {}}), "spec.template.spec is missing")]
    {
        let input = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "annotations": {"kube-once.io/preemptible": "gke-spot"}},
            "spec": spec,
        });
        let refusal = core::mutate(&input, None, &Config::default()).unwrap_err();
        assert_eq!(refusal.reason(), Reason::IncompleteTemplate, "{refusal}");
        assert!(refusal.to_string().contains(part), "{refusal}");
    }
}

#[test]
fn refusal_reasons_have_stable_distinct_labels() {
    let labels: Vec<&str> = Reason::ALL.iter().map(|reason| reason.as_str()).collect();
    let mut unique = labels.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), labels.len(), "{labels:?}");
    for (index, reason) in Reason::ALL.iter().enumerate() {
        assert_eq!(*reason as usize, index, "Reason::ALL is in declaration order");
        assert!(reason.as_str().chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{reason}");
    }
}

#[test]
fn warnings_say_what_the_user_should_know() {
    let mut input = case("several-containers");
    input["metadata"]["annotations"]["kube-once.io/database-url-env"] = json!("SQLALCHEMY_DATABASE_URI");
    let m = mutate(&input, &Config::default());
    assert!(
        m.warnings.iter().any(|w| w.contains("SQLALCHEMY_DATABASE_URI is not in the env of container \"app\"")),
        "{:?}",
        m.warnings
    );
    assert!(m.warnings.iter().any(|w| w.contains("backward compatible")), "{:?}", m.warnings);
    // envFrom cannot be checked by name: no warning then.
    input["spec"]["template"]["spec"]["containers"][1]["envFrom"] = json!([{"secretRef": {"name": "db"}}]);
    let m = mutate(&input, &Config::default());
    assert!(!m.warnings.iter().any(|w| w.contains("is not in the env")), "{:?}", m.warnings);
}

#[test]
fn config_files_are_validated_and_name_unknown_keys() {
    assert_eq!(Config::from_yaml("").unwrap(), Config::default());
    assert_eq!(Config::from_yaml("# only comments\n").unwrap(), Config::default());
    let documented =
        Config::from_yaml(&std::fs::read_to_string(core_cases::repo().join("webhook-config/config.yaml")).unwrap())
            .unwrap();
    assert_eq!(documented, Config::default(), "webhook-config/config.yaml says it sets the built-in defaults");
    for name in ["gke-preemptible", "gke-spot", "eks-spot", "aks-spot", "karpenter-spot"] {
        assert!(documented.preset(name).is_some(), "built-in preset {name} missing");
    }
    let gke = Config::default().preset("gke-preemptible").cloned().unwrap();
    assert_eq!(
        serde_json::to_value(&gke).unwrap(),
        json!({
            "nodeSelector": {"cloud.google.com/gke-preemptible": "true"},
            "tolerations": [{"key": "cloud.google.com/gke-preemptible", "operator": "Equal", "value": "true", "effect": "NoSchedule"}],
        })
    );

    let error = |text: &str| Config::from_yaml(text).unwrap_err().to_string();
    assert!(error("toolImage: x\n").contains("unknown field `toolImage`"), "{}", error("toolImage: x\n"));
    assert!(error("defaults:\n  timout: 5m\n").contains("unknown field `timout`"));
    assert!(error("presets:\n  p:\n    nodeSelectors: {a: b}\n").contains("unknown field `nodeSelectors`"));
    assert!(
        error("presets:\n  p:\n    tolerations: [{key: a, effects: NoSchedule}]\n").contains("unknown field `effects`")
    );
    assert!(error("defaultPreset: nope\n").contains("`defaultPreset`"));
    assert!(error("defaults: {timeout: soon}\n").contains("`defaults.timeout`"));
    assert!(error("defaults: {record: sometimes}\n").contains("`defaults.record`"));
    assert!(error("defaults: {lockName: \"a b\"}\n").contains("`defaults.lockName`"));
    assert!(error("presets: {empty: {}}\n").contains("`presets.empty`"));

    // What the API server would refuse in every pod template using it.
    for (text, parts) in [
        ("toolsImage: \"registry.internal/tools:1\\0\"\n", &["`toolsImage`", "control character", "e.g."][..]),
        ("toolsImage: \"registry.internal/tools:1\\n\"\n", &["`toolsImage`", "control character"]),
        ("presets:\n  p:\n    nodeSelector: {\"\": spot}\n", &["`presets.p`", "empty key", "e.g."]),
        (
            "presets:\n  p:\n    tolerations: [{key: a, operator: Bogus}]\n",
            &["`presets.p`", "tolerations[0]", "`Bogus`", "Exists or Equal"],
        ),
        (
            "presets:\n  p:\n    tolerations: [{key: a, operator: Exists, value: b}]\n",
            &["`presets.p`", "remove the value"],
        ),
        ("presets:\n  p:\n    tolerations: [{operator: Equal, value: b}]\n", &["`presets.p`", "no key"]),
        ("presets:\n  p:\n    tolerations: [{key: a, effect: NoRun}]\n", &["`presets.p`", "`NoRun`", "NoExecute"]),
        (
            "presets:\n  p:\n    tolerations: [{key: a, effect: NoSchedule, tolerationSeconds: 5}]\n",
            &["`presets.p`", "tolerationSeconds"],
        ),
    ] {
        let message = error(text);
        for part in parts {
            assert!(message.contains(part), "{text:?}: {message:?} should contain {part:?}");
        }
    }
    let accepted = Config::from_yaml(
        "presets:\n  p:\n    tolerations: [{operator: Exists}, {key: a, operator: Exists, effect: NoExecute, tolerationSeconds: 30}]\n",
    );
    assert!(accepted.is_ok(), "{accepted:?}");
}

/// A Deployment generated for the properties: random containers, env,
/// initContainers, volumes, placement, template annotations (with keys that
/// need pointer escaping) and maybe kube-once annotations.
mod generated {
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    fn name() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9-]{0,8}"
    }

    fn env() -> impl Strategy<Value = Vec<Value>> {
        prop::collection::vec(("[A-Z_]{1,8}", "[ -~]{0,12}"), 0..4)
            .prop_map(|vars| vars.into_iter().map(|(n, v)| json!({"name": n, "value": v})).collect())
    }

    fn container() -> impl Strategy<Value = Value> {
        (name(), name(), env(), prop::option::of(Just(json!({"runAsUser": 1000})))).prop_map(
            |(name, image, env, security)| {
                let mut c = json!({"name": name, "image": format!("{image}:1"), "env": env});
                if let Some(security) = security {
                    c["securityContext"] = security;
                }
                c
            },
        )
    }

    fn contract() -> impl Strategy<Value = Map<String, Value>> {
        (
            prop::option::of(prop_oneof![
                Just("flask db upgrade"),
                Just("[\"rails\", \"db:migrate\"]"),
                Just("sh -c 'a && b'")
            ]),
            prop::option::of(prop_oneof![Just("gke-spot"), Just("eks-spot"), Just("aks-spot"), Just("false")]),
            prop::option::of(prop_oneof![Just("10m"), Just("1h")]),
        )
            .prop_map(|(run, preemptible, timeout)| {
                let mut map = Map::new();
                if let Some(run) = run {
                    map.insert("kube-once.io/run".into(), json!(run));
                    if let Some(timeout) = timeout {
                        map.insert("kube-once.io/timeout".into(), json!(timeout));
                    }
                }
                if let Some(preemptible) = preemptible {
                    map.insert("kube-once.io/preemptible".into(), json!(preemptible));
                }
                map
            })
    }

    pub fn deployment(annotated: bool) -> impl Strategy<Value = Value> {
        (
            prop::collection::vec(container(), 1..3),
            prop::option::of(prop::collection::vec(container(), 0..3)),
            prop::option::of(prop::collection::vec(name().prop_map(|n| json!({"name": n, "emptyDir": {}})), 0..3)),
            prop::option::of(prop::collection::btree_map("[a-z~/.]{1,10}", "[a-z]{0,4}", 0..3)),
            prop::option::of(prop::collection::vec(
                prop_oneof![
                    Just(json!({"key": "dedicated", "operator": "Exists"})),
                    Just(json!({"key": "cloud.google.com/gke-spot", "value": "true", "effect": "NoSchedule"})),
                    Just(json!({"key": "kubernetes.azure.com/scalesetpriority", "operator": "Equal", "value": "spot", "effect": "NoSchedule"})),
                ],
                0..3,
            )),
            prop::option::of(prop::collection::btree_map("[a-z~/.]{1,10}", "[a-z]{0,4}", 0..3)),
            if annotated { contract().boxed() } else { Just(Map::new()).boxed() },
        )
            .prop_map(|(containers, init, volumes, selector, tolerations, template_annotations, contract)| {
                let mut spec = json!({"containers": containers});
                if let Some(init) = init {
                    spec["initContainers"] = json!(init);
                }
                if let Some(volumes) = volumes {
                    spec["volumes"] = json!(volumes);
                }
                if let Some(selector) = selector {
                    spec["nodeSelector"] = json!(selector);
                }
                if let Some(tolerations) = tolerations {
                    spec["tolerations"] = json!(tolerations);
                }
                let mut metadata = json!({"labels": {"app": "x"}});
                if let Some(annotations) = template_annotations {
                    metadata["annotations"] = json!(annotations);
                }
                let mut deployment = json!({
                    "apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "gen", "namespace": "prop"},
                    "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": {"metadata": metadata, "spec": spec}},
                });
                if !contract.is_empty() {
                    deployment["metadata"]["annotations"] = Value::Object(contract);
                }
                deployment
            })
    }

    /// A generated Deployment as each of `kinds`: the same pod template
    /// where that kind keeps it.
    pub fn workload(annotated: bool, kinds: &'static [kube_once_core::Kind]) -> BoxedStrategy<Value> {
        (deployment(annotated), prop::sample::select(kinds))
            .prop_map(|(deployment, kind)| as_kind(deployment, kind))
            .boxed()
    }

    pub fn as_kind(mut deployment: Value, kind: kube_once_core::Kind) -> Value {
        use kube_once_core::Kind;
        deployment["apiVersion"] = json!(kind.api_version());
        deployment["kind"] = json!(kind.name());
        let template = deployment["spec"]["template"].take();
        deployment["spec"] = match kind {
            Kind::CronJob => json!({"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template}}}),
            Kind::Job => json!({"template": template}),
            _ => json!({"selector": {"matchLabels": {"app": "x"}}, "template": template}),
        };
        deployment
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// The kinds whose pod template an UPDATE may change (not a Job's).
    static ALL_KINDS: [Kind; 6] = Kind::ALL;
    static MUTABLE_TEMPLATES: [Kind; 5] =
        [Kind::Deployment, Kind::StatefulSet, Kind::DaemonSet, Kind::CronJob, Kind::Rollout];

    /// The default config (initContainer delivery) and the same with `delivery: imageVolume`.
    fn deliveries() -> [Config; 2] {
        [Config::default(), Config::from_yaml("delivery: imageVolume\n").unwrap()]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn non_annotated_deployments_get_no_patch(deployment in generated::workload(false, &ALL_KINDS)) {
            let m = core::mutate(&deployment, None, &Config::default()).unwrap();
            prop_assert!(m.patch.0.is_empty());
            prop_assert_eq!(m.object, deployment);
        }

        #[test]
        fn mutation_is_consistent_idempotent_and_reversible(deployment in generated::workload(true, &ALL_KINDS)) {
            for config in deliveries() {
                // Reserved names or a nodeSelector conflict may be refused; everything admitted must hold.
                match core::mutate(&deployment, None, &config) {
                    Ok(_) => {
                        check_properties(&deployment, &config);
                    }
                    Err(refusal) => prop_assert!(
                        matches!(refusal.reason(), Reason::ReservedName | Reason::NodeSelectorConflict),
                        "{}", refusal
                    ),
                }
            }
        }

        /// `preview -o yaml` of a generated workload, written in block YAML
        /// with either indentation style or as pretty JSON: the output only
        /// adds lines (or changes one where tests/support/edits.rs says it
        /// may), is an edit (never a rewrite), reads back as the patch
        /// applied to the input, and previews to itself.
        #[test]
        fn preview_yaml_edits_and_reads_back_as_the_patched_object(
            workload in generated::workload(true, &ALL_KINDS),
            style in 0..3usize,
        ) {
            use kube_once_core::yaml::{Limits, read_stream, write::{Indents, write_indented}};
            let Ok(mutation) = core::mutate(&workload, None, &Config::default()) else { return Ok(()) };
            let text = match style {
                0 => write_indented(&workload, None, Indents::DEFAULT),
                1 => write_indented(&workload, None, Indents { map: 4, seq: 0 }),
                _ => serde_json::to_string_pretty(&workload).unwrap() + "\n",
            };
            let preview = core::preview(&text, &Config::default(), &Limits::default()).unwrap();
            for document in &preview.documents {
                prop_assert!(preview.edited(document).is_ok(), "written anew:\n{}", text);
            }
            let output = preview.render(core::Format::Yaml).unwrap();
            if let Err(hunk) = edits::only_added_lines("the generated workload", &text, &output) {
                prop_assert!(false, "{}", hunk);
            }
            let read = read_stream(&output, &Limits::default()).unwrap();
            prop_assert_eq!(read.len(), 1);
            prop_assert_eq!(read[0].to_json().unwrap(), Some(apply(&workload, &mutation)));
            let again = core::preview(&output, &Config::default(), &Limits::default()).unwrap();
            prop_assert_eq!(again.render(core::Format::Yaml).unwrap(), output);
        }

        /// Injected with one delivery, admitted under a config with the
        /// other: kept while the user changes nothing, switched cleanly
        /// (as if injected fresh) when the user changes the pod template.
        #[test]
        fn a_delivery_change_is_stable_and_switches_on_a_users_change(
            deployment in generated::workload(true, &MUTABLE_TEMPLATES)
        ) {
            let [initial, other] = deliveries();
            for (before, after) in [(&initial, &other), (&other, &initial)] {
                let Ok(injected) = core::mutate(&deployment, None, before) else { continue };
                let injected = injected.object;
                let noop = core::mutate(&injected, Some(&injected), after).unwrap();
                prop_assert!(noop.patch.0.is_empty(), "{:?}", noop.patch);

                let mut changed = injected.clone();
                template_mut(&mut changed)["metadata"]["labels"]["release"] = json!("next");
                let mut fresh = deployment.clone();
                template_mut(&mut fresh)["metadata"]["labels"]["release"] = json!("next");
                let switched = core::mutate(&changed, Some(&injected), after).unwrap();
                prop_assert_eq!(apply(&changed, &switched), switched.object.clone());
                let fresh = mutate(&fresh, after).object;
                prop_assert_eq!(template(&switched.object), template(&fresh));
                let again = core::mutate(&switched.object, Some(&switched.object), after).unwrap();
                prop_assert!(again.patch.0.is_empty(), "{:?}", again.patch);
            }
        }
    }
}

#[test]
fn a_one_megabyte_deployment_gets_a_small_patch() {
    let mut input = case("no-init-containers");
    let env: Vec<Value> = (0..14_000).map(|i| json!({"name": format!("FEATURE_FLAG_{i:05}"), "value": format!("value-{i:05}-enabled-for-tenant-group")})).collect();
    // In the app container itself: `kube-once-run` copies its env, and the
    // patch says so with an RFC 6902 `copy` instead of repeating it.
    input["spec"]["template"]["spec"]["containers"][0]["env"].as_array_mut().unwrap().extend(env);
    let size = serde_json::to_vec(&input).unwrap().len();
    assert!(size > 1_000_000, "the input must be over 1 MB, is {size}");

    let m = check_properties(&input, &Config::default());
    let patch_size = serde_json::to_vec(&m.patch).unwrap().len();
    assert!(patch_size <= 16 * 1024, "the patch must follow the change, not the object: {patch_size} bytes");
    let again = core::mutate(&m.object, Some(&m.object), &Config::default()).unwrap();
    assert!(again.patch.0.is_empty());
}

/// The admission path (`changes` over the review's text) of a 1 MB app
/// container: the patch copies what `kube-once-run` takes from it, so it
/// stays small however large the container is.
#[test]
fn the_patch_of_a_one_megabyte_app_container_follows_the_change() {
    let env: Vec<Value> = (0..5_000)
        .map(|i| json!({"name": format!("SETTING_{i:04}"), "value": format!("{i:04}{}", "x".repeat(180))}))
        .collect();
    let app = json!({"name": "app", "image": "a:1", "env": env, "resources": {"limits": {"cpu": "1"}}});
    let object = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "app", "namespace": "shop", "annotations": {"kube-once.io/run": "rake db:migrate"}},
        "spec": {"selector": {"matchLabels": {"app": "app"}}, "template": {"metadata": {"labels": {"app": "app"}}, "spec": {"containers": [app]}}},
    });
    let size = serde_json::to_vec(&object).unwrap().len();
    assert!(size > 1_000_000, "the object must be over 1 MB, is {size}");
    let text = object.to_string();
    let changes = core::changes(&core::Workload::parse(&text).unwrap(), None, &Config::default()).unwrap();
    let patch_size = serde_json::to_vec(&changes.patch).unwrap().len();
    assert!(patch_size <= 16 * 1024, "the patch must follow the change, not the object: {patch_size} bytes");
}

/// Each kind's patch lands where that kind keeps its pod template, and the
/// lock is told which workload it runs for.
#[test]
fn each_kind_is_patched_where_its_pod_template_is() {
    let config = Config::default();
    for (name, kind, base, workload) in [
        ("no-init-containers", Kind::Deployment, "/spec/template/", "shop"),
        ("statefulset", Kind::StatefulSet, "/spec/template/", "statefulset/ledger"),
        ("daemonset", Kind::DaemonSet, "/spec/template/", "daemonset/agent"),
        ("job", Kind::Job, "/spec/template/", "job/seed"),
        ("cronjob", Kind::CronJob, "/spec/jobTemplate/spec/template/", "cronjob/report"),
        ("rollout", Kind::Rollout, "/spec/template/", "rollout/storefront"),
    ] {
        let (input, case) = (case(name), name);
        assert_eq!(Kind::of(&input), Some(kind), "{case}");
        let m = mutate(&input, &config);
        assert!(!m.patch.0.is_empty(), "{case}");
        for (op, path) in ops(&m) {
            assert!(path.starts_with(base), "{case}: {op} {path} is outside {base}");
        }
        let run = template(&m.object)["spec"]["initContainers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "kube-once-run")
            .unwrap();
        let env = run["env"].as_array().unwrap();
        let deployment = env.iter().find(|var| var["name"] == "KUBE_ONCE_DEPLOYMENT").unwrap();
        assert_eq!(deployment["value"], workload, "{case}");
        // Jobs run to completion: no old pods serve while new ones migrate.
        let serving = m.warnings.iter().any(|w| w.contains("old pods keep serving"));
        assert_eq!(serving, kind.long_running(), "{case}: {:?}", m.warnings);
    }
}

/// A Job's pod template cannot change after creation: an UPDATE never
/// patches it, and says so when the annotations changed; a Job made from
/// an injected template (a CronJob's) is not stripped.
#[test]
fn a_job_is_injected_at_create_only() {
    let config = Config::default();
    let cases = core_cases::case("job-update");
    let old = cases.old.unwrap();
    let m = core::mutate(&cases.input, Some(&old), &config).unwrap();
    assert!(m.patch.0.is_empty(), "{:?}", m.patch);
    assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
    assert!(
        m.warnings[0].starts_with("Job shop/seed: a Job's pod template cannot change after creation"),
        "{}",
        m.warnings[0]
    );
    assert!(m.warnings[0].ends_with("take effect on a new Job (delete and re-create it)"), "{}", m.warnings[0]);
    // The same annotations: nothing to say.
    let same = core::mutate(&old, Some(&old), &config).unwrap();
    assert!(same.patch.0.is_empty() && same.warnings.is_empty(), "{:?}", same.warnings);
    // Even a refusable UPDATE is left alone: the template is what it was created with.
    let mut bad = old.clone();
    bad["metadata"]["annotations"]["kube-once.io/timeout"] = json!("forever");
    assert!(core::mutate(&bad, Some(&old), &config).unwrap().patch.0.is_empty());

    // What a CronJob's controller creates: the injected template, without
    // the CronJob's annotations.
    let cron = mutate(&case("cronjob"), &config).object;
    let job = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "report-29000000", "namespace": "shop"},
        "spec": cron["spec"]["jobTemplate"]["spec"].clone(),
    });
    let m = mutate(&job, &config);
    assert!(m.patch.0.is_empty(), "a CronJob's Job keeps its injection: {:?}", m.patch);
    assert!(core::is_injected(&job));
}

#[test]
fn a_rollout_with_a_workload_ref_is_refused_with_where_to_annotate() {
    let rollout = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "storefront", "namespace": "shop", "annotations": {"kube-once.io/run": "rake db:migrate"}},
        "spec": {"workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "storefront-base"}},
    });
    let refusal = core::mutate(&rollout, None, &Config::default()).unwrap_err();
    assert_eq!(refusal.reason(), Reason::IncompleteTemplate);
    assert_eq!(
        refusal.message(),
        "Rollout shop/storefront: the Rollout has no pod template of its own (spec.workloadRef uses Deployment \
         storefront-base's), so kube-once has nothing to inject into here; move the kube-once.io/ annotations to \
         Deployment storefront-base, whose injected template the Rollout's pods then use"
    );
    // Without annotations it is none of kube-once's business.
    let plain = without_contract_annotations(&rollout);
    assert!(core::mutate(&plain, None, &Config::default()).unwrap().patch.0.is_empty());
    // A CronJob without its template says where the containers belong.
    let cron = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "r", "annotations": {"kube-once.io/run": "x"}}, "spec": {}});
    let refusal = core::mutate(&cron, None, &Config::default()).unwrap_err();
    assert_eq!(
        refusal.message(),
        "CronJob r: kube-once.io/run needs an app container, but spec.jobTemplate.spec.template.spec.containers is \
         empty; add the app container"
    );
}

#[test]
fn refusals_name_the_kind_and_its_template_path() {
    let mut cron = case("cronjob");
    cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["annotations"] = json!({"kube-once.io/run": "x"});
    let refusal = core::mutate(&cron, None, &Config::default()).unwrap_err();
    assert_eq!(refusal.reason(), Reason::MisplacedAnnotation);
    assert!(
        refusal.message().starts_with("CronJob shop/report: annotation kube-once.io/run is on the pod template (spec.jobTemplate.spec.template.metadata.annotations)"),
        "{refusal}"
    );
    assert!(refusal.message().ends_with("move it to the CronJob's metadata.annotations"), "{refusal}");
    // On the Job template each Job would carry it and be injected apart from
    // the CronJob: refused too, whatever the CronJob's own annotations.
    for own in [Some(json!({"kube-once.io/run": "bin/rails db:migrate"})), None] {
        let mut cron = case("cronjob");
        match own {
            Some(own) => cron["metadata"]["annotations"] = own,
            None => cron["metadata"].as_object_mut().unwrap().retain(|key, _| key != "annotations"),
        }
        cron["spec"]["jobTemplate"]["metadata"] =
            json!({"annotations": {"team": "billing", "kube-once.io/timeout": "5m"}});
        let refusal = core::mutate(&cron, None, &Config::default()).unwrap_err();
        assert_eq!(refusal.reason(), Reason::MisplacedAnnotation);
        assert_eq!(
            refusal.message(),
            "CronJob shop/report: annotation kube-once.io/timeout is on the Job template \
             (spec.jobTemplate.metadata.annotations), where kube-once does not read it for the CronJob (each Job \
             would carry it and be injected on its own); move it to the CronJob's metadata.annotations"
        );
        // Other tools' annotations there are none of kube-once's business.
        cron["spec"]["jobTemplate"]["metadata"]["annotations"] = json!({"team": "billing"});
        assert!(core::mutate(&cron, None, &Config::default()).is_ok());
    }
    // A contract annotation written as the workload's label is refused;
    // other kube-once.io/ labels are not kube-once's to judge.
    let mut sts = case("statefulset");
    sts["metadata"]["labels"] = json!({"app": "ledger", "kube-once.io/run": "migrate"});
    let refusal = core::mutate(&sts, None, &Config::default()).unwrap_err();
    assert_eq!(refusal.reason(), Reason::MisplacedAnnotation);
    assert_eq!(
        refusal.message(),
        "StatefulSet shop/ledger: kube-once.io/run is a label (metadata.labels), and kube-once reads only \
         annotations; move it to the StatefulSet's metadata.annotations"
    );
    sts["metadata"]["labels"] = json!({"app": "ledger", "kube-once.io/ignore": "true"});
    assert!(core::mutate(&sts, None, &Config::default()).is_ok());
    let mut sts = case("statefulset");
    sts["metadata"]["annotations"]["kube-once.io/timeout"] = json!("soon");
    let refusal = core::mutate(&sts, None, &Config::default()).unwrap_err();
    assert!(
        refusal.message().starts_with("StatefulSet shop/ledger: annotation kube-once.io/timeout: \"soon\""),
        "{refusal}"
    );
}

/// A rollout that fails its progress deadline while kube-once-run still
/// waits or runs is a stall the user sees only at the deadline: warned
/// about where the deadline is shorter than the timeout, for the kinds that
/// have one.
#[test]
fn a_timeout_past_the_progress_deadline_is_warned_about() {
    let deadline_warning = |m: &Mutation| m.warnings.iter().find(|w| w.contains("progressDeadlineSeconds")).cloned();
    let mut deployment = case("no-init-containers");
    let warned = deadline_warning(&mutate(&deployment, &Config::default())).expect("15m against the default 600 s");
    assert!(warned.contains("(15m)") && warned.contains("(600 s, the default)"), "{warned}");

    deployment["spec"]["progressDeadlineSeconds"] = json!(1200);
    assert_eq!(deadline_warning(&mutate(&deployment, &Config::default())), None, "20 minutes cover 15");
    deployment["metadata"]["annotations"]["kube-once.io/timeout"] = json!("30m");
    let warned = deadline_warning(&mutate(&deployment, &Config::default())).expect("30m against 1200 s");
    assert!(warned.contains("(30m)") && warned.contains("(1200 s)"), "{warned}");

    // A StatefulSet's rollout has no progress deadline.
    assert_eq!(deadline_warning(&mutate(&case("statefulset"), &Config::default())), None);
}

/// A repeated key or a number no 64-bit integer holds, in what the core
/// reads or copies, leaves the copy source ambiguous: refused, saying what
/// and where. The same in the parts nobody reads is left alone: an app
/// container is read (and checked) when `kube-once.io/run` selects it.
#[test]
fn repeated_keys_and_numbers_beyond_64_bits_are_refused_where_the_core_reads() {
    let container = r#"{"name": "app", "image": "a:1", "env": [{"name": "A", "value": "1"}]}"#;
    let run = r#", "annotations": {"kube-once.io/run": "migrate"}"#;
    let deployment = |metadata: &str, spec: &str| {
        format!(
            r#"{{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {{"name": "web"{metadata}}},
                "spec": {{"replicas": 1, "template": {{"spec": {{{spec}}}}}}}}}"#
        )
    };
    let refused = [
        (
            deployment("", &format!(r#""containers": [{container}], "containers": []"#)),
            "duplicate key `containers` at /spec/template/spec:",
        ),
        (
            deployment("", &format!(r#""initContainers": [], "containers": [{container}], "initContainers": []"#)),
            "duplicate key `initContainers` at /spec/template/spec:",
        ),
        (
            deployment(run, r#""containers": [{"name": "app", "name": "other", "image": "a:1"}]"#),
            "duplicate key `name` at /spec/template/spec/containers/0:",
        ),
        (
            deployment(run, r#""containers": [{"name": "app", "env": [], "env": [{"name": "B"}]}]"#),
            "duplicate key `env` at /spec/template/spec/containers/0:",
        ),
        (
            deployment(run, r#""containers": [{"name": "app", "envFrom": [], "volumeMounts": [], "envFrom": null}]"#),
            "duplicate key `envFrom` at /spec/template/spec/containers/0:",
        ),
        (
            deployment(r#", "annotations": {"kube-once.io/run": "a", "kube-once.io/run": "b"}"#, r#""containers": []"#),
            "duplicate key `kube-once.io/run` at /metadata/annotations:",
        ),
        (
            deployment("", r#""containers": [], "nodeSelector": {"a~/b": "x", "a~/b": "y"}"#),
            "duplicate key `a~/b` at /spec/template/spec/nodeSelector:",
        ),
        (
            deployment(
                run,
                r#""containers": [{"name": "app", "image": "a:1", "resources": {"limits": {"cpu": 18446744073709551616}}}]"#,
            ),
            "the number at /spec/template/spec/containers/0/resources/limits/cpu (1.8446744073709552e19) is outside the 64-bit integers",
        ),
        (
            deployment("", r#""containers": [], "terminationGracePeriodSeconds": 1e300"#),
            "the number at /spec/template/spec/terminationGracePeriodSeconds (1e300) is outside",
        ),
    ];
    for (text, expected) in refused {
        let error = match core::Workload::parse(&text) {
            Ok(workload) => match core::changes(&workload, None, &Config::default()) {
                Ok(changes) => panic!("admitted: {text}\n{changes:?}"),
                Err(refusal) => {
                    // The position within the container read on its own would mislead.
                    assert_eq!(refusal.reason(), Reason::BadValue, "{refusal}");
                    assert!(!refusal.to_string().contains(" at line "), "{refusal}");
                    refusal.to_string()
                }
            },
            Err(error) => error.to_string(),
        };
        assert!(error.contains(expected), "{text}\n{error}\nexpected: {expected}");
    }
    // What fits 64 bits is read as written; a float is not an integer but
    // no reader guesses about it; the unread parts are not looked at.
    let fits = deployment(
        r#", "labels": {"a": "1", "a": "2"}, "x": 1e300"#,
        &format!(r#""containers": [{container}], "priority": 18446744073709551615, "overhead": {{"cpu": 0.5}}, "x": -9223372036854775808"#),
    )
    .replace(r#""replicas": 1"#, r#""replicas": 1, "replicas": 99999999999999999999"#);
    let read = core::Workload::parse(&fits).unwrap_or_else(|error| panic!("{error}"));
    let spec = &read.value["spec"]["template"]["spec"];
    assert_eq!((spec["priority"].as_u64(), spec["x"].as_i64()), (Some(u64::MAX), Some(i64::MIN)));
    assert_eq!(spec["overhead"]["cpu"], json!(0.5));
    // env, envFrom and volumeMounts are copied as written, never read item
    // by item: their text is the copy source whatever it repeats.
    let verbatim = deployment(
        "",
        r#""containers": [{"name": "app", "env": [{"name": "A", "value": "1", "name": "B", "x": -9223372036854775809}], "volumeMounts": [{"name": "v", "mountPath": "/a", "mountPath": "/b"}]}]"#,
    );
    assert!(core::Workload::parse(&verbatim).is_ok(), "the kept-aside lists are not checked");
    // An app container nobody selects is not read, so not checked.
    let unread = deployment(
        run,
        r#""containers": [{"name": "app", "image": "a:1"}, {"name": "side", "name": "x", "ports": [{"containerPort": 18446744073709551616}]}]"#,
    );
    let workload = core::Workload::parse(&unread).unwrap_or_else(|error| panic!("{error}"));
    assert!(core::changes(&workload, None, &Config::default()).is_ok());
    // Nor are the fields of the selected one that kube-once neither reads
    // nor copies (probes, ports); a repeated field name still is refused.
    let unread = deployment(
        run,
        r#""containers": [{"name": "app", "image": "a:1", "ports": [{"containerPort": 18446744073709551616, "name": "a", "name": "b"}]}]"#,
    );
    let workload = core::Workload::parse(&unread).unwrap_or_else(|error| panic!("{error}"));
    assert!(core::changes(&workload, None, &Config::default()).is_ok());
    let repeated = deployment(run, r#""containers": [{"name": "app", "image": "a:1", "ports": [], "ports": []}]"#);
    let workload = core::Workload::parse(&repeated).unwrap_or_else(|error| panic!("{error}"));
    let refusal = core::changes(&workload, None, &Config::default()).unwrap_err();
    assert!(refusal.to_string().contains("duplicate key `ports` at /spec/template/spec/containers/0:"), "{refusal}");
}

/// A sidecar whose keys repeat is never a copy source, even when its list
/// is the text kube-once-run copies: which `env` counts is not told, so
/// the copy names the first container read unambiguously.
#[test]
fn a_sidecar_whose_keys_repeat_is_not_a_copy_source() {
    let env = r#"[{"name": "DATABASE_URL", "value": "postgres://db/app"}]"#;
    let text = |sidecar_env: &str| {
        format!(
            r#"{{"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {{"name": "web", "annotations": {{"kube-once.io/run": "migrate", "kube-once.io/container": "app"}}}},
                "spec": {{"template": {{"spec": {{"containers": [
                    {{"name": "side", "image": "s:1", "env": {env}{sidecar_env}}},
                    {{"name": "app", "image": "a:1", "env": {env}}}
                ]}}}}}}}}"#
        )
    };
    let copy_from = |text: &str| {
        let workload = core::Workload::parse(text).unwrap_or_else(|error| panic!("{error}"));
        let patch = core::changes(&workload, None, &Config::default()).unwrap().patch;
        let patch = serde_json::to_value(&patch).unwrap();
        let copies: Vec<String> = patch
            .as_array()
            .unwrap()
            .iter()
            .filter(|op| op["op"] == "copy" && op["path"].as_str().unwrap().ends_with("/env"))
            .map(|op| op["from"].as_str().unwrap().to_owned())
            .collect();
        copies
    };
    // Read unambiguously, the first container whose list is the same is the source.
    assert_eq!(copy_from(&text("")), ["/spec/template/spec/containers/0/env"]);
    // The same list, repeated: the sidecar is skipped, the app is the source.
    assert_eq!(copy_from(&text(&format!(r#", "env": {env}"#))), ["/spec/template/spec/containers/1/env"]);
}
