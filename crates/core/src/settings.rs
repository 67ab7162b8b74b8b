//! The values of the run settings that both a `kube-once.io/` annotation
//! and the webhook configuration's `defaults` set (`record`, `timeout`,
//! `lock-name`): one grammar, so a value the config accepts is one the
//! annotation accepts too, with the same message when it is not.

use std::time::Duration;

/// `table` keeps a done-record per key; `none` runs the command in every pod, one at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    Table,
    None,
}

impl Record {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "table" => Ok(Record::Table),
            "none" => Ok(Record::None),
            _ => Err(format!(
                "`{text}` is not a record mode; write `table` (skip once done) or `none` (run in every pod, one at a time)"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Record::Table => "table",
            Record::None => "none",
        }
    }
}

impl std::str::FromStr for Record {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Record::parse(text)
    }
}

impl std::fmt::Display for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest lock name: MySQL's `GET_LOCK` refuses names over 64 characters.
pub const MAX_LOCK_NAME: usize = 64;

/// Lock names work for PostgreSQL (hashed into an advisory lock id) and
/// MySQL/MariaDB (`GET_LOCK`, at most 64 characters).
pub fn check_lock_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > MAX_LOCK_NAME {
        return Err(format!("must be 1 to {MAX_LOCK_NAME} characters (MySQL's limit for GET_LOCK); shorten it"));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c)) {
        return Err("may only hold letters, digits and - _ . : /; write e.g. shop-migrations".to_owned());
    }
    Ok(())
}

/// `timeout`: a humantime duration of at least one second, e.g. `10m`.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text)
        .map_err(|e| format!("is not a duration ({e}); write e.g. 90s, 10m or 1h30m"))?;
    if duration < Duration::from_secs(1) {
        return Err("is shorter than one second; write e.g. 90s, 10m or 1h30m".to_owned());
    }
    Ok(duration)
}
