//! What scripts/test.sh provides through the environment: tool paths and
//! database URLs. A missing variable says how to get it.

use std::fmt;
use std::path::PathBuf;

/// A variable scripts/test.sh sets, unset or empty here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing(pub String);

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.0;
        let what = match name.as_str() {
            "KUBE_ONCE_TEST_POSTGRES_URL" | "KUBE_ONCE_TEST_MYSQL_URL" => {
                "starts throwaway PostgreSQL and MariaDB servers and sets it"
            }
            "KUBE_ONCE_HELM" | "KUBE_ONCE_KUBECTL" | "KUBE_ONCE_KUBERNETES_VALIDATE" => {
                "fetches helm, kubectl and kubernetes-validate into target/tools and sets it"
            }
            _ => "sets it",
        };
        write!(f, "{name} is not set: run the tests through scripts/test.sh, which {what}")
    }
}

impl std::error::Error for Missing {}

/// The value of `name`; Err (with how to fix it) when unset or empty.
pub fn var(name: &str) -> Result<String, Missing> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Ok(value),
        _ => Err(Missing(name.to_owned())),
    }
}

/// The value of `name`, or the test fails saying how to set it.
pub fn required(name: &str) -> String {
    var(name).unwrap_or_else(|missing| panic!("{missing}"))
}

/// A tool's path from `name` (KUBE_ONCE_HELM, ...), or the test fails saying how to set it.
pub fn tool(name: &str) -> PathBuf {
    PathBuf::from(required(name))
}
