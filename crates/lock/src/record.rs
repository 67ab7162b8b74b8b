//! The done-record: one row per key in a table of the app's database, written
//! after the command succeeded, so later pods (and pods that waited) skip at
//! once: what it holds, how `history` selects records, its table's name and
//! the key's length. Pure; the SQL lives with each dialect. The default key is the core's
//! (`kube_once_core::annotations::default_key`), the names kube-once gives
//! itself on the servers are in [`crate::names`].

/// What gets written when the command succeeded, and read back by `history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoneRecord {
    pub key: String,
    /// The command as a shell would read it (for humans; it was run without a shell).
    pub command: String,
    pub image: String,
    pub pod: String,
    pub duration_ms: i64,
    pub exit_code: i32,
}

/// A done-record read back, with the instants the database stamped on it
/// when it was written (its own clock, not the pod's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub record: DoneRecord,
    /// Milliseconds since the Unix epoch.
    pub started_ms: i64,
    pub finished_ms: i64,
}

/// A leader's `running` row (`names::RUNNING_TABLE`): a command running now
/// under the lock `lock_name`, and how long ago its heartbeat was refreshed
/// (by the database's clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningRow {
    pub lock_name: String,
    /// `<namespace>/<deployment>/<pod>` of the leader.
    pub holder: String,
    /// Milliseconds since the Unix epoch.
    pub started_ms: i64,
    pub heartbeat_age_ms: i64,
}

/// Which records: every field given must match exactly; none given, all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub key: Option<String>,
    pub image: Option<String>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.key.is_none() && self.image.is_none()
    }

    /// `--key K --image I`, for messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(key) = &self.key {
            parts.push(format!("--key {key}"));
        }
        if let Some(image) = &self.image {
            parts.push(format!("--image {image}"));
        }
        parts.join(" ")
    }

    /// ` WHERE <condition> AND <condition>` (nothing without a field) and the
    /// values in the same order. The dialect writes each condition from the
    /// column and its 0-based position, so it decides how values compare.
    pub(crate) fn where_clause(&self, condition: impl Fn(&str, usize) -> String) -> (String, Vec<&str>) {
        let fields = [("key", &self.key), ("image", &self.image)];
        let given: Vec<(&str, &str)> =
            fields.into_iter().filter_map(|(column, value)| Some((column, value.as_deref()?))).collect();
        if given.is_empty() {
            return (String::new(), Vec::new());
        }
        let conditions: Vec<String> =
            given.iter().enumerate().map(|(index, (column, _))| condition(column, index)).collect();
        (format!(" WHERE {}", conditions.join(" AND ")), given.into_iter().map(|(_, value)| value).collect())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "record table name `{0}` is not a plain SQL identifier; use letters, digits and underscores (at most 63, not starting with a digit), e.g. kube_once_runs"
)]
pub struct BadTableName(pub String);

/// Record tables are interpolated into SQL, so only plain identifiers pass.
pub fn validate_table_name(name: &str) -> Result<(), BadTableName> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if first_ok && rest_ok && name.len() <= 63 { Ok(()) } else { Err(BadTableName(name.to_string())) }
}

/// Keys are compared and stored whole on every backend: longer keys are
/// refused (the MySQL/MariaDB column holds 255 characters), in the same unit
/// as the webhook's check of the `key` annotation (characters).
pub const MAX_KEY: usize = kube_once_core::annotations::MAX_KEY;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "the key is {0} characters long; at most {MAX_KEY} are stored. Shorten the key (it is compared as written: case, accents and spaces count), or leave it out to use the hash of the image and command"
)]
pub struct KeyTooLong(pub usize);

/// Checks the key's length in characters (not bytes).
pub fn validate_key(key: &str) -> Result<(), KeyTooLong> {
    let length = key.chars().count();
    if length > MAX_KEY { Err(KeyTooLong(length)) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names() {
        assert!(validate_table_name("kube_once_runs").is_ok());
        assert!(validate_table_name("_t1").is_ok());
        for bad in ["", "1runs", "runs; drop table x", "a-b", "\"q\"", &"x".repeat(64)] {
            assert!(validate_table_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn where_clauses_name_the_given_fields_in_order() {
        let both = Filter { key: Some("v1".into()), image: Some("app:2".into()) };
        let numbered = |column: &str, index: usize| format!("{column} = ${}", index + 1);
        assert_eq!(both.where_clause(numbered), (" WHERE key = $1 AND image = $2".to_string(), vec!["v1", "app:2"]));
        let image = Filter { key: None, image: Some("app:2".into()) };
        assert_eq!(image.where_clause(numbered), (" WHERE image = $1".to_string(), vec!["app:2"]));
        assert_eq!(image.describe(), "--image app:2");
        assert_eq!(Filter::default().where_clause(numbered), (String::new(), Vec::<&str>::new()));
    }

    #[test]
    fn keys_are_counted_in_characters() {
        assert!(validate_key(&"é".repeat(MAX_KEY)).is_ok());
        assert_eq!(validate_key(&"é".repeat(MAX_KEY + 1)), Err(KeyTooLong(MAX_KEY + 1)));
        assert!(validate_key("").is_ok());
    }
}
