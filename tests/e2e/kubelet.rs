//! The kubelet's stand-in: starts a pod from a Deployment's pod template by
//! running its initContainers in order as local processes, with the env the
//! container spec declares (resolved as the kubelet resolves it), its emptyDir
//! volumes as directories of the pod, its image volumes as read-only
//! directories holding the image's files, and images stood in for by local
//! files. When every initContainer has succeeded, the pod "reaches" its main
//! containers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use crate::cluster::{Cluster, str_at, strings_at};
use crate::expansion::expand;

/// What the harness knows of an image: its env (Dockerfile ENV), its
/// entrypoint, and where some of its files are on this machine.
#[derive(Debug, Clone, Default)]
pub struct Image {
    pub env: Vec<(String, String)>,
    pub entrypoint: Vec<String>,
    /// Absolute path inside the image → local path.
    pub files: BTreeMap<String, PathBuf>,
}

/// The image "registry": containers whose image is not here are not run
/// (their images are not ours to stand in for) and are reported as skipped.
pub type Images = BTreeMap<String, Image>;

#[derive(Debug, Clone)]
pub struct PodRun {
    pub name: String,
    /// initContainers run, in order.
    pub ran: Vec<String>,
    /// initContainers whose image has no stand-in.
    pub skipped: Vec<String>,
    /// Why the pod did not reach its main containers (None: it did).
    pub failure: Option<String>,
    /// How each initContainer that ran ended, as the kubelet reports it in
    /// the pod's `status.initContainerStatuses[].state.terminated`.
    pub terminated: Vec<Terminated>,
}

/// A container's terminated state: exit code and termination message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminated {
    pub container: String,
    pub exit_code: i32,
    /// What the container wrote to its terminationMessagePath; with
    /// `terminationMessagePolicy: FallbackToLogsOnError`, the tail of its log
    /// when it failed and wrote nothing. Bounded as the kubelet bounds it.
    pub message: String,
}

/// The kubelet reads at most this much of a termination message file.
const MESSAGE_LIMIT: usize = 4096;
/// FallbackToLogsOnError: the last lines of the log, at most this many and this many bytes.
const FALLBACK_LINES: usize = 80;
const FALLBACK_BYTES: usize = 2048;
/// The environment variable through which the pod binary's lock is told
/// where its termination message goes. The kubelet mounts a file at the
/// container's terminationMessagePath (`/dev/termination-log`); processes
/// here share one filesystem, so each container gets its own file instead,
/// named to it by this variable (the flag's env, which the injection never sets).
const TERMINATION_LOG_ENV: &str = "KUBE_ONCE_TERMINATION_LOG";

/// Longest time one initContainer may run before the pod counts as failed.
const CONTAINER_DEADLINE: Duration = Duration::from_secs(120);

/// Starts `count` pods of `template` at once, each in its own directory under `root`.
pub async fn run_replicas(
    count: usize,
    deployment: &str,
    namespace: &str,
    template: &Value,
    cluster: &Arc<Cluster>,
    images: &Arc<Images>,
    root: &Path,
) -> Result<Vec<PodRun>> {
    let hash = template_hash(template);
    let names: Vec<String> = (0..count).map(|index| format!("{deployment}-{hash}-{index}")).collect();
    run_pods(&names, namespace, template, cluster, images, root).await
}

/// A container that has just started, and the file its output (stdout and
/// stderr, as the container runtime keeps them) goes to: its log.
#[derive(Debug, Clone)]
pub struct Started {
    pub pod: String,
    pub container: String,
    pub log: PathBuf,
    pub started_at: k8s_openapi::jiff::Timestamp,
}

/// Told of each container as it starts, as the kubelet reports a running
/// container's state and serves its log through the API server.
pub type OnStart = Arc<dyn Fn(Started) + Send + Sync>;

/// Starts the pods `names` of `template` at once, each in its own directory under `root`.
pub async fn run_pods(
    names: &[String],
    namespace: &str,
    template: &Value,
    cluster: &Arc<Cluster>,
    images: &Arc<Images>,
    root: &Path,
) -> Result<Vec<PodRun>> {
    run_pods_reporting(names, namespace, template, cluster, images, root, None).await
}

/// [`run_pods`], telling `on_start` of every container as it starts.
pub async fn run_pods_reporting(
    names: &[String],
    namespace: &str,
    template: &Value,
    cluster: &Arc<Cluster>,
    images: &Arc<Images>,
    root: &Path,
    on_start: Option<OnStart>,
) -> Result<Vec<PodRun>> {
    let mut pods = tokio::task::JoinSet::new();
    for name in names {
        let name = name.clone();
        let dir = root.join(&name);
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let (namespace, template, cluster, images, on_start) =
            (namespace.to_owned(), template.clone(), Arc::clone(cluster), Arc::clone(images), on_start.clone());
        pods.spawn(async move {
            let outcome = run_pod(&name, &namespace, &template, &cluster, &images, &dir, on_start.as_ref()).await;
            outcome.into_run(name)
        });
    }
    let mut runs = Vec::new();
    while let Some(joined) = pods.join_next().await {
        runs.push(joined.context("a pod task panicked")?);
    }
    runs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(runs)
}

/// The pod-template-hash stand-in: pods of different templates get different names.
pub fn template_hash(template: &Value) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(template.to_string().as_bytes());
    hex::encode(&digest[..5])
}

struct Outcome {
    ran: Vec<String>,
    skipped: Vec<String>,
    failure: Option<String>,
    terminated: Vec<Terminated>,
}

impl Outcome {
    fn into_run(self, name: String) -> PodRun {
        PodRun { name, ran: self.ran, skipped: self.skipped, failure: self.failure, terminated: self.terminated }
    }
}

/// Runs the pod's initContainers in order, stopping at the first failure.
async fn run_pod(
    name: &str,
    namespace: &str,
    template: &Value,
    cluster: &Cluster,
    images: &Images,
    dir: &Path,
    on_start: Option<&OnStart>,
) -> Outcome {
    let mut outcome = Outcome { ran: Vec::new(), skipped: Vec::new(), failure: None, terminated: Vec::new() };
    let pod = PodPlace { name, namespace, dir, on_start };
    let result = run_init_containers(&pod, template, cluster, images, &mut outcome).await;
    outcome.failure = result.err().map(|e| format!("{e:#}"));
    outcome
}

/// Which pod, where it runs, and who is told of its containers' starts.
#[derive(Clone, Copy)]
struct PodPlace<'a> {
    name: &'a str,
    namespace: &'a str,
    dir: &'a Path,
    on_start: Option<&'a OnStart>,
}

async fn run_init_containers(
    place: &PodPlace<'_>,
    template: &Value,
    cluster: &Cluster,
    images: &Images,
    outcome: &mut Outcome,
) -> Result<()> {
    let PodPlace { name: pod, namespace, dir, on_start } = *place;
    let spec = template.get("spec").context("pod template without spec")?;
    let volumes = pod_volumes(spec, images, dir)?;
    let init_containers = spec.get("initContainers").and_then(Value::as_array).cloned().unwrap_or_default();
    for container in &init_containers {
        let name = str_at(container, "/name").context("initContainer without name")?;
        let image_ref = str_at(container, "/image").context("initContainer without image")?;
        let Some(image) = images.get(image_ref) else {
            outcome.skipped.push(name.to_owned());
            continue;
        };
        let env = resolve_env(container, pod, namespace, cluster)
            .with_context(|| format!("CreateContainerConfigError: initContainer {name}"))?;
        let argv = command_line(container, image, &volumes)
            .with_context(|| format!("initContainer {name}: cannot build its command"))?;
        let started = |log: &Path| {
            if let Some(on_start) = on_start {
                let started_at = k8s_openapi::jiff::Timestamp::now();
                on_start(Started { pod: pod.to_owned(), container: name.to_owned(), log: log.to_owned(), started_at });
            }
        };
        let terminated = run_container(container, name, &argv, image, &env, dir, started).await?;
        let exit_code = terminated.exit_code;
        outcome.terminated.push(terminated);
        if exit_code != 0 {
            bail!("initContainer {name} failed (exit status: {exit_code}): {}", log_tail(&log_path(dir, name)));
        }
        outcome.ran.push(name.to_owned());
    }
    Ok(())
}

/// Volume name → its directory in the pod, for the volume types the harness
/// stands in for: emptyDir (an empty directory) and image (KEP-4639: the
/// image's files, read-only; the pod fails as with ErrImagePull when the
/// image has no stand-in). Other types are not mounted.
fn pod_volumes(spec: &Value, images: &Images, dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut volumes = BTreeMap::new();
    for volume in spec.get("volumes").and_then(Value::as_array).into_iter().flatten() {
        let name = str_at(volume, "/name").context("volume without name")?;
        let path = dir.join("volumes").join(name);
        if volume.get("emptyDir").is_some() {
            std::fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
        } else if let Some(source) = volume.get("image") {
            let reference =
                str_at(source, "/reference").with_context(|| format!("image volume {name} without reference"))?;
            let image = images
                .get(reference)
                .with_context(|| format!("ErrImagePull: image volume {name}: no image {reference} (no stand-in)"))?;
            mount_image(image, &path).with_context(|| format!("image volume {name} ({reference})"))?;
        } else {
            continue;
        }
        volumes.insert(name.to_owned(), path);
    }
    Ok(volumes)
}

/// The image's files under `root` at their paths in the image, as links to
/// the stand-in files. (Not made read-only: nothing of kube-once writes
/// there, and the temporary directories must stay removable.)
fn mount_image(image: &Image, root: &Path) -> Result<()> {
    std::fs::create_dir_all(root).with_context(|| format!("cannot create {}", root.display()))?;
    for (in_image, local) in &image.files {
        let target = root.join(in_image.trim_start_matches('/'));
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::os::unix::fs::symlink(local, &target)
            .with_context(|| format!("cannot link {} to {}", target.display(), local.display()))?;
    }
    Ok(())
}

/// command (or the image's entrypoint) + args, with paths inside mounted
/// emptyDirs and stood-in image files mapped to this machine.
fn command_line(container: &Value, image: &Image, volumes: &BTreeMap<String, PathBuf>) -> Result<Vec<String>> {
    let strings = |key: &str| strings_at(container, key);
    let mut argv = match strings("command") {
        command if command.is_empty() => image.entrypoint.clone(),
        command => command,
    };
    argv.extend(strings("args"));
    if argv.is_empty() {
        bail!("no command, no args and no entrypoint");
    }
    let mut mounts = Vec::new();
    for mount in container.get("volumeMounts").and_then(Value::as_array).into_iter().flatten() {
        let (Some(name), Some(path)) = (str_at(mount, "/name"), str_at(mount, "/mountPath")) else {
            bail!("volumeMount without name or mountPath: {mount}");
        };
        if let Some(local) = volumes.get(name) {
            // subPath: that directory of the volume is what the container sees.
            let local = match str_at(mount, "/subPath").filter(|sub| !sub.is_empty()) {
                Some(sub) if sub.starts_with('/') || sub.split('/').any(|part| part == "..") => {
                    bail!("volumeMount {name}: subPath {sub:?} must be a relative path without ..")
                }
                Some(sub) => {
                    let local = local.join(sub);
                    ensure!(local.exists(), "volumeMount {name}: subPath {sub:?} does not exist in the volume");
                    local
                }
                None => local.clone(),
            };
            mounts.push((path.trim_end_matches('/').to_owned(), local));
        }
    }
    Ok(argv.into_iter().map(|arg| map_path(&arg, image, &mounts)).collect())
}

fn map_path(arg: &str, image: &Image, mounts: &[(String, PathBuf)]) -> String {
    for (mount_path, local) in mounts {
        if let Some(rest) = arg.strip_prefix(mount_path.as_str())
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return format!("{}{rest}", local.display());
        }
    }
    match image.files.get(arg) {
        Some(local) => local.display().to_string(),
        None => arg.to_owned(),
    }
}

fn log_path(dir: &Path, container: &str) -> PathBuf {
    dir.join(format!("{container}.log"))
}

/// Runs one container to its end; how it ended, as the kubelet reports it.
async fn run_container(
    container: &Value,
    name: &str,
    argv: &[String],
    image: &Image,
    env: &[(String, String)],
    dir: &Path,
    started: impl FnOnce(&Path),
) -> Result<Terminated> {
    let log_path = log_path(dir, name);
    let log = std::fs::File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
    let message_path = dir.join(format!("{name}.termination-log"));
    std::fs::File::create(&message_path).with_context(|| format!("cannot create {}", message_path.display()))?;
    let mut command = tokio::process::Command::new(&argv[0]);
    command
        .args(&argv[1..])
        // A container sees its image's env and its spec's env, nothing of the host's.
        .env_clear()
        .envs(image.env.iter().map(|(k, v)| (k, v)))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env(TERMINATION_LOG_ENV, &message_path)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
    let mut child = command.spawn().with_context(|| format!("initContainer {name}: cannot start {argv:?}"))?;
    started(&log_path);
    let status = match tokio::time::timeout(CONTAINER_DEADLINE, child.wait()).await {
        Ok(status) => status.with_context(|| format!("initContainer {name}: cannot wait for it"))?,
        Err(_) => bail!("initContainer {name} still running after {CONTAINER_DEADLINE:?}: {}", log_tail(&log_path)),
    };
    // A signal is exit 128 + its number in the container runtime's report.
    let exit_code =
        status.code().unwrap_or_else(|| 128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0));
    let policy = str_at(container, "/terminationMessagePolicy").unwrap_or("File");
    let message = termination_message(&message_path, &log_path, exit_code, policy);
    Ok(Terminated { container: name.to_owned(), exit_code, message })
}

/// The message the kubelet reports: the file's first 4 KiB; for a failed
/// container under FallbackToLogsOnError that wrote none, its log's tail.
fn termination_message(message_path: &Path, log_path: &Path, exit_code: i32, policy: &str) -> String {
    let bytes = std::fs::read(message_path).unwrap_or_default();
    let message = String::from_utf8_lossy(&bytes[..bytes.len().min(MESSAGE_LIMIT)]).into_owned();
    if !message.is_empty() || exit_code == 0 || policy != "FallbackToLogsOnError" {
        return message;
    }
    let log = std::fs::read(log_path).unwrap_or_default();
    let tail = &log[log.len().saturating_sub(FALLBACK_BYTES)..];
    let text = String::from_utf8_lossy(tail);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(FALLBACK_LINES)..].join("\n")
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// The container's env as the kubelet builds it: envFrom sources first (in
/// order, with their prefix), then `env` entries in order, each `value`
/// expanded against what is defined so far; later definitions win.
pub fn resolve_env(container: &Value, pod: &str, namespace: &str, cluster: &Cluster) -> Result<Vec<(String, String)>> {
    let mut vars: Vec<(String, String)> = Vec::new();
    fn set(vars: &mut Vec<(String, String)>, name: String, value: String) {
        match vars.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => vars.push((name, value)),
        }
    }
    for source in container.get("envFrom").and_then(Value::as_array).into_iter().flatten() {
        let prefix = str_at(source, "/prefix").unwrap_or_default();
        let (store, reference, kind) = match (source.get("secretRef"), source.get("configMapRef")) {
            (Some(reference), None) => (&cluster.secrets, reference, "Secret"),
            (None, Some(reference)) => (&cluster.config_maps, reference, "ConfigMap"),
            _ => bail!("envFrom entry needs exactly one of secretRef, configMapRef: {source}"),
        };
        let name = str_at(reference, "/name").context("envFrom reference without name")?;
        match store.get(&(namespace.to_owned(), name.to_owned())) {
            Some(data) => {
                for (key, value) in data {
                    set(&mut vars, format!("{prefix}{key}"), value.clone());
                }
            }
            None if optional(reference) => {}
            None => bail!("{kind} \"{name}\" not found"),
        }
    }
    for entry in container.get("env").and_then(Value::as_array).into_iter().flatten() {
        let name = str_at(entry, "/name").context("env entry without name")?.to_owned();
        let value = if let Some(value) = entry.get("value").and_then(Value::as_str) {
            expand(value, |reference| vars.iter().find(|(n, _)| n == reference).map(|(_, v)| v.clone()))
        } else if let Some(from) = entry.get("valueFrom") {
            match value_from(from, pod, namespace, cluster).with_context(|| format!("env {name}"))? {
                Some(value) => value,
                None => continue, // optional reference to something missing: the var is not set
            }
        } else {
            String::new()
        };
        set(&mut vars, name, value);
    }
    Ok(vars)
}

fn optional(reference: &Value) -> bool {
    reference.get("optional").and_then(Value::as_bool).unwrap_or(false)
}

fn value_from(from: &Value, pod: &str, namespace: &str, cluster: &Cluster) -> Result<Option<String>> {
    let key_ref = |reference: &Value, store: &BTreeMap<(String, String), BTreeMap<String, String>>, kind: &str| {
        let name = str_at(reference, "/name").context("reference without name")?;
        let key = str_at(reference, "/key").context("reference without key")?;
        match store.get(&(namespace.to_owned(), name.to_owned())).map(|data| data.get(key)) {
            Some(Some(value)) => Ok(Some(value.clone())),
            _ if optional(reference) => Ok(None),
            None => bail!("{kind} \"{name}\" not found"),
            Some(None) => bail!("couldn't find key {key} in {kind} {namespace}/{name}"),
        }
    };
    if let Some(reference) = from.get("secretKeyRef") {
        return key_ref(reference, &cluster.secrets, "Secret");
    }
    if let Some(reference) = from.get("configMapKeyRef") {
        return key_ref(reference, &cluster.config_maps, "ConfigMap");
    }
    if let Some(field) = from.get("fieldRef") {
        return match str_at(field, "/fieldPath") {
            Some("metadata.name") => Ok(Some(pod.to_owned())),
            Some("metadata.namespace") => Ok(Some(namespace.to_owned())),
            other => bail!(
                "fieldRef {other:?} is not stood in for by the harness (only metadata.name and metadata.namespace)"
            ),
        };
    }
    bail!("valueFrom {from} is not stood in for by the harness")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster() -> Result<Cluster> {
        let mut cluster = Cluster::default();
        cluster.add(&[
            json!({"kind": "Secret", "metadata": {"name": "db", "namespace": "apps"},
                   "data": {"password": "czNjcjN0"}, "stringData": {"user": "app", "URL": "postgres://x"}}),
            json!({"kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "apps"}, "data": {"host": "db:5432"}}),
        ])?;
        Ok(cluster)
    }

    #[test]
    fn resolves_env_as_the_kubelet_does() -> Result<()> {
        let container = json!({
            "envFrom": [{"secretRef": {"name": "db"}, "prefix": "DB_"}, {"configMapRef": {"name": "absent", "optional": true}}],
            "env": [
                {"name": "EARLY", "value": "$(DB_HOST)"},
                {"name": "DB_HOST", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "host"}}},
                {"name": "URL", "value": "postgres://$(DB_user):$(DB_password)@$(DB_HOST)/app?x=$$(DB_HOST)"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "MAYBE", "valueFrom": {"secretKeyRef": {"name": "db", "key": "nope", "optional": true}}},
                {"name": "DB_URL", "value": "overridden"},
                {"name": "BLANK"},
            ]
        });
        let env: BTreeMap<String, String> =
            resolve_env(&container, "web-abc-0", "apps", &cluster()?)?.into_iter().collect();
        assert_eq!(env["EARLY"], "$(DB_HOST)", "a reference to a later var stays as written");
        assert_eq!(env["URL"], "postgres://app:s3cr3t@db:5432/app?x=$(DB_HOST)");
        assert_eq!(env["POD"], "web-abc-0");
        assert_eq!(env["NS"], "apps");
        assert_eq!(env["DB_URL"], "overridden");
        assert_eq!(env["BLANK"], "");
        assert!(!env.contains_key("MAYBE"));
        Ok(())
    }

    #[test]
    fn missing_references_fail_the_container() -> Result<()> {
        let cluster = cluster()?;
        let missing_key = json!({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "db", "key": "nope"}}}]});
        let missing_secret = json!({"envFrom": [{"secretRef": {"name": "nope"}}]});
        for container in [missing_key, missing_secret] {
            assert!(resolve_env(&container, "p", "apps", &cluster).is_err(), "{container}");
        }
        Ok(())
    }

    #[test]
    fn the_termination_message_is_the_file_or_under_fallback_the_log_tail_of_a_failure() -> Result<()> {
        let work = tempfile::tempdir()?;
        let (message, log) = (work.path().join("message"), work.path().join("log"));
        let lines: Vec<String> = (1..=100).map(|n| format!("line {n}")).collect();
        std::fs::write(&log, lines.join("\n"))?;
        std::fs::write(&message, "")?;
        let fallback = termination_message(&message, &log, 1, "FallbackToLogsOnError");
        assert!(fallback.starts_with("line 21\n") && fallback.ends_with("line 100"), "the last 80 lines: {fallback}");
        assert_eq!(termination_message(&message, &log, 0, "FallbackToLogsOnError"), "", "no fallback on success");
        assert_eq!(termination_message(&message, &log, 1, "File"), "", "no fallback under File");
        std::fs::write(&log, "x".repeat(5000))?;
        assert_eq!(termination_message(&message, &log, 1, "FallbackToLogsOnError").len(), 2048, "at most 2 KiB of log");
        std::fs::write(&message, "y".repeat(5000))?;
        assert_eq!(
            termination_message(&message, &log, 1, "FallbackToLogsOnError"),
            "y".repeat(4096),
            "the file wins, 4 KiB of it"
        );
        Ok(())
    }

    #[test]
    fn maps_mounted_paths_and_image_files() {
        let image =
            Image { files: [("/kube-once".to_owned(), PathBuf::from("/build/kube-once"))].into(), ..Image::default() };
        let mounts = [("/kube-once-bin".to_owned(), PathBuf::from("/pods/p/volumes/kube-once-bin"))];
        assert_eq!(map_path("/kube-once", &image, &mounts), "/build/kube-once");
        assert_eq!(map_path("/kube-once-bin", &image, &mounts), "/pods/p/volumes/kube-once-bin");
        assert_eq!(map_path("/kube-once-bin/kube-once", &image, &mounts), "/pods/p/volumes/kube-once-bin/kube-once");
        assert_eq!(map_path("/kube-once-binary", &image, &mounts), "/kube-once-binary");
        assert_eq!(map_path("flask", &image, &mounts), "flask");
    }

    #[test]
    fn mounts_an_image_volume_as_the_images_files_with_sub_path() -> Result<()> {
        let work = tempfile::tempdir()?;
        let pod_binary = work.path().join("pod-binary");
        std::fs::write(&pod_binary, "#!/bin/sh\n")?;
        let tools = Image {
            files: [
                ("/kube-once".to_owned(), work.path().join("server-binary")),
                ("/pod/kube-once".to_owned(), pod_binary.clone()),
            ]
            .into(),
            ..Image::default()
        };
        let images: Images = [("tools:1".to_owned(), tools), ("app:1".to_owned(), Image::default())].into();
        let spec = json!({"volumes": [
            {"name": "bin", "image": {"reference": "tools:1", "pullPolicy": "IfNotPresent"}},
            {"name": "scratch", "emptyDir": {}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
        ]});
        let pod = work.path().join("pod");
        let volumes = pod_volumes(&spec, &images, &pod)?;
        assert_eq!(volumes.keys().collect::<Vec<_>>(), ["bin", "scratch"], "only the stood-in types");
        assert_eq!(std::fs::canonicalize(volumes["bin"].join("pod/kube-once"))?, std::fs::canonicalize(&pod_binary)?);

        let container = json!({"command": ["/kube-once-bin/kube-once", "lock"],
                               "volumeMounts": [{"name": "bin", "mountPath": "/kube-once-bin", "readOnly": true, "subPath": "pod"}]});
        let argv = command_line(&container, &images["app:1"], &volumes)?;
        assert_eq!(argv[0], volumes["bin"].join("pod/kube-once").display().to_string());
        for sub in ["nope", "../pod", "/pod"] {
            let mut bad = container.clone();
            bad["volumeMounts"][0]["subPath"] = json!(sub);
            assert!(command_line(&bad, &images["app:1"], &volumes).is_err(), "subPath {sub:?} must fail the container");
        }

        let unknown = json!({"volumes": [{"name": "bin", "image": {"reference": "tools:2"}}]});
        let Err(error) = pod_volumes(&unknown, &images, &work.path().join("pod2")) else {
            bail!("an image volume of an image without stand-in must fail the pod");
        };
        assert!(format!("{error:#}").contains("ErrImagePull"), "{error:#}");
        Ok(())
    }
}
