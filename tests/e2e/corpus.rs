//! The corpus: `tests/fixtures/e2e/corpus/NAME.yaml` (a Deployment and the
//! Secrets/ConfigMaps it refers to, as a chart renders them) with
//! `NAME.expect.yaml` (what the stand-ins must observe). The other kinds'
//! cases (`tests/fixtures/e2e/kinds/`) have the same format.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use kube_once_core::Kind;
use serde::Deserialize;
use serde_json::Value;

use crate::cluster::str_at;
use crate::support::yaml::documents as parse_documents;

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/e2e")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Allowed with a patch.
    Patched,
    /// Allowed, nothing changed (or never sent).
    Unchanged,
    /// Denied with a readable message.
    Refused,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseKind {
    Postgres,
    Mysql,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expectation {
    /// Whether the API server calls the webhook (rules, namespaceSelector, matchConditions).
    pub sent: bool,
    pub outcome: Outcome,
    /// Words the refusal message must contain.
    #[serde(default)]
    pub refusal: Vec<String>,
    /// The container whose image and env kube-once-run must take.
    pub app_container: Option<String>,
    /// kube-once-run's command after `lock --`.
    pub run_command: Option<Vec<String>>,
    /// KUBE_ONCE_* values kube-once-run must declare.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The user's initContainers, which must stay first and in order.
    #[serde(default)]
    pub user_init_containers: Vec<String>,
    /// Keys the pod template's nodeSelector must have after mutation.
    #[serde(default)]
    pub node_selector_keys: Vec<String>,
    /// Whether the response must carry warnings.
    #[serde(default)]
    pub warnings: bool,
    /// The app container is PSS-restricted, so the injected ones must be too.
    #[serde(default)]
    pub restricted: bool,
    /// Run the pods like the kubelet.
    pub run: Option<RunExpectation>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunExpectation {
    pub database: DatabaseKind,
    /// Executions of the migration per rollout of 5 pods.
    pub runs_per_rollout: usize,
}

#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    /// The case file's text: placeholders are filled per run ([`Case::objects`]).
    pub text: String,
    /// The case's workload: a Deployment in the corpus, any supported kind in `kinds/`.
    pub deployment: Value,
    pub expect: Expectation,
}

impl Case {
    /// The case's objects with `{{placeholders}}` replaced.
    pub fn objects(&self, placeholders: &BTreeMap<String, String>) -> Result<Vec<Value>> {
        let mut text = self.text.clone();
        for (name, value) in placeholders {
            text = text.replace(&format!("{{{{{name}}}}}"), value);
        }
        if let Some(start) = text.find("{{") {
            let rest = &text[start..];
            let end = rest.find("}}").map_or(rest.len(), |i| i + 2);
            bail!(
                "case {}: placeholder {} has no value (does the expectation name the right database?)",
                self.name,
                &rest[..end]
            );
        }
        parse_documents(&text, &self.name)
    }

    pub fn namespace(&self) -> &str {
        str_at(&self.deployment, "/metadata/namespace").unwrap_or("default")
    }

    pub fn deployment_name(&self) -> &str {
        str_at(&self.deployment, "/metadata/name").unwrap_or_default()
    }
}

/// Every case of the corpus, sorted by name.
pub fn load_all() -> Result<Vec<Case>> {
    load_all_in("corpus")
}

/// Every case in `tests/fixtures/e2e/<dir>` (same format), sorted by name.
pub fn load_all_in(dir: &str) -> Result<Vec<Case>> {
    let dir = fixtures_dir().join(dir);
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let file_name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(name) = file_name.strip_suffix(".yaml").filter(|n| !n.ends_with(".expect")) {
            names.push(name.to_owned());
        }
    }
    names.sort();
    names.iter().map(|name| load(&dir, name)).collect()
}

fn load(dir: &Path, name: &str) -> Result<Case> {
    let path = dir.join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let expect_path = dir.join(format!("{name}.expect.yaml"));
    let expect_text = std::fs::read_to_string(&expect_path)
        .with_context(|| format!("case {name} has no expectation file {}", expect_path.display()))?;
    let expect: Expectation = serde_yaml_ng::from_str(&expect_text)
        .with_context(|| format!("{}: invalid expectation", expect_path.display()))?;
    // Placeholders live in Secret/ConfigMap values only; parse with them as they are.
    let objects = parse_documents(&text, name)?;
    let mut workloads = objects.into_iter().filter(|o| Kind::of(o).is_some());
    let (Some(deployment), None) = (workloads.next(), workloads.next()) else {
        bail!("case {name}: needs exactly one workload ({})", Kind::supported_list());
    };
    Ok(Case { name: name.to_owned(), text, deployment, expect })
}
