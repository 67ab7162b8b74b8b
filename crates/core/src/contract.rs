//! The annotation contract as documentation: one row per `kube-once.io/`
//! annotation, in the order users meet them. `docs/annotations.md` holds the
//! table rendered from [`ANNOTATIONS`] (`tests/docs.rs` keeps it in sync;
//! `UPDATE_GOLDEN=1` rewrites it), so the reference cannot drift from
//! [`annotations::KNOWN`], which the parser accepts.

use crate::annotations;

/// One annotation of the contract, as the reference shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnotationDoc {
    /// Name without the `kube-once.io/` prefix (one of `annotations::KNOWN`).
    pub name: &'static str,
    /// What it does and what values it takes (Markdown, one paragraph).
    pub meaning: &'static str,
    /// What applies when it is absent (Markdown; `—` for nothing).
    pub default: &'static str,
}

/// Every annotation of the contract.
pub const ANNOTATIONS: &[AnnotationDoc] = &[
    AnnotationDoc {
        name: annotations::RUN,
        meaning: "The command to run once per rollout. A JSON array of strings (`'[\"flask\", \"db\", \"upgrade\"]'`) \
                  or words split like a POSIX shell splits them (`flask db upgrade`, quotes respected). No shell runs \
                  unless you write one: `sh -c 'flask db upgrade && flask seed'`. Its presence opts the Deployment in; \
                  empty or unbalanced quotes are refused.",
        default: "—",
    },
    AnnotationDoc {
        name: annotations::CONTAINER,
        meaning: "The app container whose image, env, envFrom, volumeMounts, workingDir, imagePullPolicy, \
                  securityContext and resources the command uses. Must name an existing container.",
        default: "the first container",
    },
    AnnotationDoc {
        name: annotations::DATABASE_URL_ENV,
        meaning: "Name of the env var of that container holding the database URL.",
        default: "`DATABASE_URL`",
    },
    AnnotationDoc {
        name: annotations::DATABASE_URL,
        meaning: "A URL template with Kubernetes `$(VAR)` references, for apps that keep host, user and password in \
                  separate variables: `postgresql://$(DB_USER):$(DB_PASSWORD)@$(DB_HOST)/app` (any form `lock` reads: \
                  JDBC, Go MySQL DSN, libpq keyword/value too). A literal password (in the user info, a `password=` \
                  parameter or keyword) is refused, and the refusal shows it as `***`: put it in a Secret and \
                  reference it. Conflicts with `database-url-env`.",
        default: "—",
    },
    AnnotationDoc {
        name: annotations::LOCK_URL_ENV,
        meaning: "Env var with a direct database URL used only for the lock (PgBouncer in transaction pooling \
                  silently loses session locks).",
        default: "the database URL",
    },
    AnnotationDoc {
        name: annotations::LOCK_NAME,
        meaning: "Name of the lock; Deployments sharing a database and a lock name serialize with each other. \
                  1–64 characters (MySQL's `GET_LOCK` limit) of letters, digits and `- _ . : /`.",
        default: "`kube-once` (config `defaults.lockName`)",
    },
    AnnotationDoc {
        name: annotations::KEY,
        meaning: "What counts as \"already done\" (1–255 characters, one line).",
        default: "hash of the image and the command",
    },
    AnnotationDoc {
        name: annotations::RECORD,
        meaning: "`table` keeps a done-record so later pods skip at once; `none` runs the (idempotent) command in \
                  every pod, one at a time.",
        default: "`table` (config `defaults.record`)",
    },
    AnnotationDoc {
        name: annotations::TIMEOUT,
        meaning: "How long a pod waits for the lock before failing, e.g. `90s`, `10m`, `1h30m` (at least 1s).",
        default: "`15m` (config `defaults.timeout`)",
    },
    AnnotationDoc {
        name: annotations::PREEMPTIBLE,
        meaning: "Put the pods on preemptible/spot nodes: a preset name (`gke-preemptible`, `gke-spot`, `eks-spot`, \
                  `aks-spot`, `karpenter-spot`, or one from the config file), `true` for the cluster's \
                  `defaultPreset` (refused when none is configured), `false` for nothing. Works with or without \
                  `run`.",
        default: "—",
    },
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::config::{Config, Defaults};

    #[test]
    fn documents_exactly_the_known_annotations_once_each() {
        let documented: Vec<&str> = ANNOTATIONS.iter().map(|doc| doc.name).collect();
        let unique: BTreeSet<&str> = documented.iter().copied().collect();
        assert_eq!(unique.len(), documented.len(), "an annotation is documented twice: {documented:?}");
        let known: BTreeSet<&str> = annotations::KNOWN.iter().copied().collect();
        assert_eq!(unique, known, "docs (left) and the parser's annotations::KNOWN (right) differ");
    }

    #[test]
    fn every_row_says_something() {
        for doc in ANNOTATIONS {
            assert!(!doc.meaning.trim().is_empty() && !doc.default.trim().is_empty(), "{doc:?}");
            assert!(!doc.meaning.contains('\n') && !doc.meaning.contains('|'), "not one table cell: {doc:?}");
        }
    }

    /// The defaults shown are the ones the code applies.
    #[test]
    fn documented_defaults_are_the_code_defaults() {
        let default_of = |name: &str| ANNOTATIONS.iter().find(|doc| doc.name == name).map(|doc| doc.default);
        let config = Config::default();
        let shown = |value: &str| format!("`{value}`");
        let expect = [
            (annotations::DATABASE_URL_ENV, shown(annotations::DEFAULT_DATABASE_URL_ENV)),
            (annotations::LOCK_NAME, shown(Defaults::LOCK_NAME)),
            (annotations::RECORD, shown(config.defaults.record.as_str())),
            (annotations::TIMEOUT, shown(&humantime::format_duration(Defaults::TIMEOUT).to_string())),
        ];
        for (name, value) in expect {
            let default = default_of(name).unwrap_or_default();
            assert!(default.starts_with(&value), "kube-once.io/{name}: documented default {default:?}, code {value}");
        }
    }
}
