//! The termination message: one short paragraph saying how `lock` ended,
//! written to the container's termination-message path so that `kubectl
//! describe pod` and `kubectl get pod -o yaml` show it (and the webhook's
//! watcher can read it) without anyone fetching logs.
//!
//! The kubelet keeps at most 4 KiB of it, so the text is cut to that on a
//! character boundary. Everything in it that came from outside (the
//! command's output, error texts) passes [`Redactor`] first: a migration
//! that prints its connection URL must not put the password into the pod's
//! status, where anyone who may read pods sees it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kube_once_core::annotations::redact_database_url;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

/// The kubelet's default `terminationMessagePath`.
pub const DEFAULT_PATH: &str = "/dev/termination-log";

/// The kubelet reads at most this many bytes of the message.
pub const MAX_BYTES: usize = 4096;

/// What stands for a hidden secret.
const REDACTED: &str = "***";

/// The summary of this run, set where the outcome is decided and written once
/// at the end, and a note on how the run began that outlives the outcome.
#[derive(Debug, Default)]
pub struct Summary {
    outcome: Mutex<Option<String>>,
    note: Mutex<Option<String>>,
}

impl Summary {
    /// Sets the summary; the last one set wins (the outcome that ended the run).
    pub fn set(&self, text: impl Into<String>) {
        if let Ok(mut slot) = self.outcome.lock() {
            *slot = Some(text.into());
        }
    }

    /// A note added after the outcome, whatever it is.
    pub fn note(&self, text: impl Into<String>) {
        if let Ok(mut slot) = self.note.lock() {
            *slot = Some(text.into());
        }
    }

    pub fn get(&self) -> Option<String> {
        let outcome = self.outcome.lock().ok().and_then(|slot| slot.clone())?;
        match self.note.lock().ok().and_then(|slot| slot.clone()) {
            Some(note) => Some(format!("{outcome}; {note}")),
            None => Some(outcome),
        }
    }
}

/// Hides the secrets of the database URLs in text: the URLs as written
/// (their redacted form instead) and each password, raw and percent-encoded.
#[derive(Clone, Default)]
pub struct Redactor {
    /// (secret, replacement), longest first so a URL goes before its password.
    pairs: Vec<(String, String)>,
}

/// Never the secrets themselves, even in debug output.
impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor").field("secrets", &self.pairs.len()).finish()
    }
}

impl Redactor {
    /// From the URLs as the environment holds them and the passwords parsed out of them.
    pub fn new<'a>(urls: impl IntoIterator<Item = &'a str>, passwords: impl IntoIterator<Item = &'a str>) -> Self {
        let mut pairs = Vec::new();
        for url in urls {
            let url = url.trim();
            if !url.is_empty() {
                let shown = redact_database_url(url).unwrap_or_else(|| REDACTED.to_owned());
                if shown != url {
                    pairs.push((url.to_owned(), shown));
                }
            }
        }
        for password in passwords.into_iter().filter(|password| !password.is_empty()) {
            pairs.push((password.to_owned(), REDACTED.to_owned()));
            let encoded = utf8_percent_encode(password, NON_ALPHANUMERIC).to_string();
            if encoded != password {
                pairs.push((encoded, REDACTED.to_owned()));
            }
        }
        pairs.sort_by_key(|(secret, _)| std::cmp::Reverse(secret.len()));
        pairs.dedup();
        Redactor { pairs }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for (secret, replacement) in &self.pairs {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), replacement);
            }
        }
        text
    }
}

/// `text` cut to `max` bytes on a character boundary, ending in `…` when cut.
pub fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let ellipsis = "…";
    let mut end = max.saturating_sub(ellipsis.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ellipsis}", &text[..end])
}

/// How much of a message the quoted output may take, leaving room for the
/// outcome before it within [`MAX_BYTES`].
const QUOTED_BYTES: usize = 3 * 1024;

/// The last `lines` lines of `output`, trimmed, as one paragraph joined by ` | `
/// (the message is read in one line of `kubectl get pod -o wide` or an Event),
/// at most `QUOTED_BYTES`: the end is kept, since the error is usually last.
pub fn last_lines(output: &str, lines: usize) -> String {
    let kept: Vec<&str> = output.lines().map(str::trim_end).filter(|line| !line.trim().is_empty()).collect();
    let joined = kept[kept.len().saturating_sub(lines)..].join(" | ");
    if joined.len() <= QUOTED_BYTES {
        return joined;
    }
    let mut start = joined.len() - QUOTED_BYTES;
    while !joined.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &joined[start..])
}

/// A duration as `12.3 s`.
pub fn seconds(duration_ms: i64) -> String {
    format!("{:.1} s", duration_ms as f64 / 1000.0)
}

/// The first characters of a key, for a message: `1a81…`.
pub fn short_key(key: &str) -> String {
    let mut chars = key.chars();
    let head: String = chars.by_ref().take(12).collect();
    if chars.next().is_some() { format!("{head}…") } else { head }
}

/// Writes the summary, bounded, to `path`. A path that cannot be written
/// (run by hand outside a pod, where `/dev/termination-log` does not exist)
/// is logged at debug level: it changes nothing about the outcome.
pub fn write(path: &Path, text: &str) {
    let text = bounded(text, MAX_BYTES);
    if let Err(problem) = std::fs::write(path, text.as_bytes()) {
        tracing::debug!(
            event = "termination-message",
            path = %path.display(),
            error = %problem,
            "cannot write the termination message"
        );
    }
}

/// The default path, unless overridden.
pub fn path(overridden: Option<PathBuf>) -> PathBuf {
    overridden.unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_cuts_on_a_character_boundary() {
        assert_eq!(bounded("short", 10), "short");
        let long = "é".repeat(3000);
        let cut = bounded(&long, MAX_BYTES);
        assert!(cut.len() <= MAX_BYTES && cut.ends_with('…'), "{}", cut.len());
    }

    #[test]
    fn urls_and_passwords_are_hidden_raw_and_encoded() {
        let url = "postgresql://app:s3cr%2Ft@db:5432/shop";
        let redactor = Redactor::new([url], ["s3cr/t"]);
        let text = format!("connecting to {url} failed; password s3cr/t (s3cr%2Ft) refused");
        let shown = redactor.redact(&text);
        assert!(!shown.contains("s3cr"), "{shown}");
        assert!(shown.contains("postgresql://app:***@db:5432/shop"), "{shown}");
    }

    #[test]
    fn last_lines_keep_the_end() {
        assert_eq!(last_lines("a\n\nb\nc\n", 2), "b | c");
        assert_eq!(last_lines("", 3), "");
        let long = format!("{}\nthe error", "x".repeat(10_000));
        let kept = last_lines(&long, 20);
        assert!(kept.len() <= QUOTED_BYTES + 3 && kept.starts_with('…') && kept.ends_with("| the error"), "{kept}");
    }

    #[test]
    fn keys_are_shortened_for_people() {
        assert_eq!(short_key("fc54e11c4b95c95b482ad44c86656ee0"), "fc54e11c4b95…");
        assert_eq!(short_key("v42"), "v42");
    }
}
