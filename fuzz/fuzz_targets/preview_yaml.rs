//! Arbitrary text as `kube-once preview` input: YAML or JSON, one or many
//! documents. Every Deployment that parses goes through the core and the
//! renderings preview prints; nothing may panic.
#![no_main]

use kube_once_core::{self as core, Config, render};
use kube_once_core::manifest::{is_deployment, parse_documents};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(documents) = parse_documents(text) else { return };
    let config = Config::default();
    for object in documents.iter().filter(|object| is_deployment(object)) {
        let Ok(mutation) = core::mutate(object, None, &config) else { continue };
        let before = render::to_yaml(object).unwrap_or_default();
        let after = render::to_yaml(&mutation.object).unwrap_or_default();
        let _ = render::unified_diff("deployment", &before, &after);
        let _ = serde_json::to_string(&mutation.patch);
    }
});
