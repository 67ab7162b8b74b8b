//! The names kube-once gives itself on the database servers: the PostgreSQL
//! advisory lock key, the MySQL/MariaDB lock name, and the session's
//! `application_name` (who holds the lock, in `pg_stat_activity` and the
//! waiting pods' logs). Pure.

use sha2::{Digest, Sha256};

/// The table of `running` rows (one per lock name: the leader's heartbeat,
/// for the lock-delay), beside the done-records in the app's database.
pub const RUNNING_TABLE: &str = "kube_once_running";

/// The table of attempts (one row per run of the command, success or
/// failure: what `history` shows and the backoff reads), beside the
/// done-records in the app's database.
pub const ATTEMPTS_TABLE: &str = "kube_once_attempts";

/// PostgreSQL advisory lock key: the first 8 bytes of SHA-256(lock name),
/// read as a big-endian signed 64-bit integer. The same number in SQL:
/// `SELECT ('x' || left(encode(sha256('kube-once'), 'hex'), 16))::bit(64)::bigint`.
pub fn advisory_key(lock_name: &str) -> i64 {
    let digest = Sha256::digest(lock_name.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// MySQL/MariaDB lock name. `GET_LOCK` names are server-wide, not per
/// database, so the database name is part of it: `<database>/<lock name>`.
/// Names longer than MySQL's 64-character limit become `kube-once:` + the
/// first 40 hex digits of their SHA-256.
pub fn mysql_lock_name(database: &str, lock_name: &str) -> String {
    let name = format!("{database}/{lock_name}");
    if name.chars().count() <= 64 {
        name
    } else {
        format!("kube-once:{}", &hex::encode(Sha256::digest(name.as_bytes()))[..40])
    }
}

/// `<namespace>/<deployment>/<pod>`, cut to PostgreSQL's 63-byte limit on a
/// character boundary; `kube-once` when nothing is known.
pub fn application_name(namespace: &str, deployment: &str, pod: &str) -> String {
    let name = if namespace.is_empty() && deployment.is_empty() && pod.is_empty() {
        "kube-once".to_string()
    } else {
        format!("{namespace}/{deployment}/{pod}")
    };
    let mut end = name.len().min(63);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advisory_key_matches_the_documented_sql() {
        // The documented SQL reads the first 16 hex digits as a signed 64-bit number.
        let digest = hex::encode(Sha256::digest(b"kube-once"));
        let expected = u64::from_str_radix(&digest[..16], 16).map(|v| v as i64).unwrap_or_default();
        assert_eq!(advisory_key("kube-once"), expected);
        assert_ne!(advisory_key("a"), advisory_key("b"));
    }

    #[test]
    fn mysql_names_fit_64_characters() {
        assert_eq!(mysql_lock_name("app", "kube-once"), "app/kube-once");
        let long = mysql_lock_name("app", &"x".repeat(80));
        assert!(long.len() <= 64 && long.starts_with("kube-once:"));
    }

    #[test]
    fn application_name_is_cut_to_63_bytes() {
        assert_eq!(application_name("", "", ""), "kube-once");
        assert_eq!(application_name("shop", "web", "web-abc"), "shop/web/web-abc");
        let long = application_name("ns", &"é".repeat(40), "pod");
        assert!(long.len() <= 63 && long.starts_with("ns/é"));
    }
}
