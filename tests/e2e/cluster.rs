//! The stand-in cluster's stored objects: Namespaces (for the webhook's
//! namespaceSelector) and Secrets / ConfigMaps (for the kubelet's env).

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde_json::Value;

pub fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// The strings of the array `value[key]` (a container's command or args); empty when absent.
pub fn strings_at(value: &Value, key: &str) -> Vec<String> {
    value
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

#[derive(Debug, Default, Clone)]
pub struct Cluster {
    /// Namespace name → labels, including `kubernetes.io/metadata.name`.
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// (namespace, name) → decoded data.
    pub secrets: BTreeMap<(String, String), BTreeMap<String, String>>,
    pub config_maps: BTreeMap<(String, String), BTreeMap<String, String>>,
}

impl Cluster {
    /// Stores Namespaces, Secrets and ConfigMaps; other kinds are not this store's business.
    pub fn add(&mut self, objects: &[Value]) -> Result<()> {
        for object in objects {
            let kind = str_at(object, "/kind").unwrap_or_default();
            let name = str_at(object, "/metadata/name").context("object without metadata.name")?.to_owned();
            let namespace = str_at(object, "/metadata/namespace").unwrap_or("default").to_owned();
            match kind {
                "Namespace" => {
                    let mut labels = string_map(object.pointer("/metadata/labels"))?;
                    // The API server sets this label on every namespace (since 1.21).
                    labels.insert("kubernetes.io/metadata.name".to_owned(), name.clone());
                    self.namespaces.insert(name, labels);
                }
                "Secret" => {
                    let mut data = BTreeMap::new();
                    for (key, encoded) in string_map(object.get("data"))? {
                        let bytes = base64_simd::STANDARD
                            .decode_to_vec(&encoded)
                            .with_context(|| format!("Secret {namespace}/{name}: data.{key} is not base64"))?;
                        data.insert(key, String::from_utf8(bytes).context("Secret data is not UTF-8")?);
                    }
                    // stringData is merged into data by the API server, and wins.
                    data.extend(string_map(object.get("stringData"))?);
                    self.secrets.insert((namespace, name), data);
                }
                "ConfigMap" => {
                    self.config_maps.insert((namespace, name), string_map(object.get("data"))?);
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub fn namespace_labels(&self, namespace: &str) -> Result<&BTreeMap<String, String>> {
        match self.namespaces.get(namespace) {
            Some(labels) => Ok(labels),
            None => bail!(
                "namespace {namespace} does not exist in the stand-in cluster (tests/fixtures/e2e/namespaces.yaml)"
            ),
        }
    }
}

pub fn string_map(value: Option<&Value>) -> Result<BTreeMap<String, String>> {
    let Some(value) = value.filter(|v| !v.is_null()) else { return Ok(BTreeMap::new()) };
    let Some(map) = value.as_object() else { bail!("expected a map of strings, got {value}") };
    map.iter()
        .map(|(k, v)| match v.as_str() {
            Some(s) => Ok((k.clone(), s.to_owned())),
            None => bail!("value of {k} is not a string: {v}"),
        })
        .collect()
}
