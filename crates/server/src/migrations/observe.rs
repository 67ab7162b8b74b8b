//! What a pod's `kube-once-run` says about its migration, read from the pod
//! alone: pure, so every shape of pod status is tested with plain values.
//!
//! The lock writes a one-line summary as the container's termination message
//! (`ran …`, `skipped: …`, `failed: exit N after …; last lines: …`,
//! `gave up waiting for the lock …`, `backing off: …`). The message is free
//! text (an older pod binary writes none; with `FallbackToLogsOnError` the
//! kubelet puts the last log lines there instead), so the exit code decides
//! whenever the prefix is not one we know.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

use kube_once_core::env;

/// A pod as far as the watch reads it. Not k8s-openapi's `Pod`: decoding
/// every field of a pod's spec and status costs the server binary more than
/// the whole watcher does, and the watch needs a handful of them.
pub type RunPod = kube::core::Object<RunPodSpec, RunPodStatus>;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunPodSpec {
    #[serde(default)]
    pub init_containers: Vec<RunContainer>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct RunContainer {
    pub name: String,
    #[serde(default)]
    pub env: Vec<RunEnv>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct RunEnv {
    pub name: String,
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunPodStatus {
    #[serde(default)]
    pub init_container_statuses: Vec<RunContainerStatus>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunContainerStatus {
    pub name: String,
    #[serde(rename = "containerID")]
    pub container_id: Option<String>,
    pub state: Option<RunState>,
    pub last_state: Option<RunState>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct RunState {
    pub running: Option<RunRunning>,
    pub terminated: Option<RunTerminated>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRunning {
    pub started_at: Option<Time>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunTerminated {
    pub exit_code: i32,
    pub message: Option<String>,
    pub finished_at: Option<Time>,
    #[serde(rename = "containerID")]
    pub container_id: Option<String>,
}

/// The label the injection puts on the pods it changed; the watch selects on it.
pub const INJECTED_LABEL: &str = "kube-once.io/injected";
/// The watch's label selector.
pub const LABEL_SELECTOR: &str = "kube-once.io/injected=true";
/// The initContainer that runs the migration under the lock.
pub const RUN_CONTAINER: &str = "kube-once-run";
/// `kube-once lock`'s exit code when it gave up waiting for the lock.
pub const EXIT_LOCK_TIMEOUT: i32 = 75;
/// Longest Event note the API server accepts (events.k8s.io/v1).
pub const NOTE_LIMIT: usize = 1024;

/// How one run of `kube-once-run` ended; also the `outcome` label of
/// `kube_once_migrations_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ran,
    Skipped,
    Failed,
    LockTimeout,
    BackingOff,
}

impl Outcome {
    pub const ALL: [Outcome; 5] =
        [Outcome::Ran, Outcome::Skipped, Outcome::Failed, Outcome::LockTimeout, Outcome::BackingOff];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ran => "ran",
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
            Outcome::LockTimeout => "lock_timeout",
            Outcome::BackingOff => "backing_off",
        }
    }

    /// Whether the outcome counts as a failure (`..._last_failure_timestamp_seconds`).
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Failed | Outcome::LockTimeout)
    }
}

/// The outcome of a run that exited with `exit_code` and wrote `message`.
pub fn classify(exit_code: i32, message: &str) -> Outcome {
    let first = message.trim_start();
    let known = [
        ("ran ", Outcome::Ran),
        ("skipped", Outcome::Skipped),
        ("failed:", Outcome::Failed),
        ("gave up waiting for the lock", Outcome::LockTimeout),
        ("backing off", Outcome::BackingOff),
    ];
    let by_prefix = known.iter().find(|(prefix, _)| first.starts_with(prefix)).map(|(_, outcome)| *outcome);
    match (by_prefix, exit_code) {
        // A message that claims success while the exit code says otherwise is
        // not believed: the exit code is what the kubelet acted on.
        (Some(Outcome::Ran | Outcome::Skipped), code) if code != 0 => fallback(code),
        (Some(outcome), _) => outcome,
        (None, code) => fallback(code),
    }
}

fn fallback(exit_code: i32) -> Outcome {
    match exit_code {
        0 => Outcome::Ran,
        EXIT_LOCK_TIMEOUT => Outcome::LockTimeout,
        _ => Outcome::Failed,
    }
}

/// One finished run of `kube-once-run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Termination {
    /// Tells runs of one pod apart (the container ID, or the finish time).
    pub run: String,
    pub outcome: Outcome,
    pub exit_code: i32,
    /// The termination message, one line, bounded.
    pub summary: String,
    pub finished_at: Option<Timestamp>,
}

/// `kube-once-run` still running: how long it may wait for the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub run: String,
    pub started_at: Timestamp,
    /// The pod's `KUBE_ONCE_TIMEOUT`, when it is a literal the server can read.
    pub timeout: Option<std::time::Duration>,
}

/// What a pod says about its migration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    /// The migration key (`KUBE_ONCE_KEY`), to tell migrations of one
    /// Deployment apart; empty when the pod does not say.
    pub key: String,
    /// The current and the previous run, when terminated.
    pub terminations: Vec<Termination>,
    pub running: Option<Running>,
}

/// Reads `kube-once-run`'s state (and its last state, which holds the run
/// before a restart) from a pod; `None` when the pod has no such container.
pub fn observe(pod: &RunPod) -> Option<Observation> {
    let container = pod.spec.init_containers.iter().find(|c| c.name == RUN_CONTAINER)?;
    let mut observation = Observation { key: env_value(container, env::KEY).unwrap_or_default(), ..Default::default() };
    let status =
        pod.status.as_ref().and_then(|status| status.init_container_statuses.iter().find(|s| s.name == RUN_CONTAINER));
    let Some(status) = status else { return Some(observation) };
    observation.terminations = terminations(status);
    if let Some(running) = status.state.as_ref().and_then(|state| state.running.as_ref())
        && let Some(started) = &running.started_at
    {
        let run = status.container_id.clone().unwrap_or_else(|| started.0.to_string());
        let timeout = env_value(container, env::TIMEOUT).and_then(|t| humantime::parse_duration(t.trim()).ok());
        observation.running = Some(Running { run, started_at: started.0, timeout });
    }
    Some(observation)
}

fn terminations(status: &RunContainerStatus) -> Vec<Termination> {
    let current = status.state.as_ref().and_then(|s| s.terminated.as_ref());
    let last = status.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    [last, current]
        .into_iter()
        .flatten()
        .map(|terminated| {
            let message = terminated.message.as_deref().unwrap_or_default();
            let finished_at = terminated.finished_at.as_ref().map(|t| t.0);
            let run = terminated
                .container_id
                .clone()
                .or_else(|| finished_at.map(|t| t.to_string()))
                .unwrap_or_else(|| format!("exit {} {message}", terminated.exit_code));
            Termination {
                run,
                outcome: classify(terminated.exit_code, message),
                exit_code: terminated.exit_code,
                summary: one_line(message, NOTE_LIMIT / 2),
                finished_at,
            }
        })
        .collect()
}

fn env_value(container: &RunContainer, name: &str) -> Option<String> {
    container.env.iter().find(|var| var.name == name)?.value.clone()
}

/// `text` on one line (log tails have several), cut at `limit` bytes on a
/// character boundary, with `…` when cut.
pub fn one_line(text: &str, limit: usize) -> String {
    let joined =
        text.split(['\n', '\r']).map(str::trim).filter(|line| !line.is_empty()).collect::<Vec<_>>().join(" | ");
    truncate(&joined, limit)
}

/// `text` cut at `limit` bytes on a character boundary, with `…` when cut.
pub fn truncate(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut end = limit.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// How much of a waiting pod's `kube-once-run` log `serve` reads to name
/// the lock holder: the newest lines only (a `waiting` line comes every 5 s,
/// and nothing else is logged while a pod waits), bounded in bytes too.
pub const LOG_TAIL_LINES: i64 = 20;
pub const LOG_LIMIT_BYTES: i64 = 32 * 1024;
/// Longest holder copied from a log into a note (PostgreSQL's holder, with
/// its 63-byte `application_name`, is about 100).
pub const HOLDER_LIMIT: usize = 256;

/// What the newest lines of a `kube-once-run` log say about the wait for the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitLog {
    /// The newest `waiting` line names this holder (cleaned and cut).
    HeldBy(String),
    /// The pod acquired the lock after its last `waiting` line: it is not
    /// waiting, it runs its command.
    Acquired,
    /// No `waiting` line naming a holder.
    Silent,
}

/// Reads the newest `waiting` or `acquired` line of kube-once's own (its
/// target is `kube_once…`) in either format the pod binary writes: JSON
/// (`"event":"waiting"`, field `holder`) or text (`event="waiting" …
/// holder="…"`). The log is a pod's text: the holder copied has no control
/// or bidi characters and is at most [`HOLDER_LIMIT`] bytes.
pub fn read_wait(log: &str) -> WaitLog {
    for line in log.lines().rev() {
        let line = line.trim();
        let parsed = if line.starts_with('{') { json_line(line) } else { text_line(&strip_ansi(line)) };
        match parsed {
            Some((event, _)) if event == "acquired" => return WaitLog::Acquired,
            Some((event, Some(holder))) if event == "waiting" => {
                let holder = sanitise(&holder, HOLDER_LIMIT);
                if !holder.is_empty() {
                    return WaitLog::HeldBy(holder);
                }
            }
            _ => {}
        }
    }
    WaitLog::Silent
}

/// A JSON line of kube-once's: its event and holder fields.
fn json_line(line: &str) -> Option<(String, Option<String>)> {
    #[derive(Deserialize)]
    struct Line {
        event: Option<String>,
        holder: Option<String>,
        target: Option<String>,
    }
    let line: Line = serde_json::from_str(line).ok()?;
    if !line.target?.starts_with("kube_once") {
        return None;
    }
    Some((line.event?, line.holder))
}

/// A line of tracing's text format (`TIME LEVEL target: message fields`,
/// string fields quoted as Rust's `Debug` writes them, so a quote inside a
/// value is `\"`): the last ` event="` is the field, not the message.
fn text_line(line: &str) -> Option<(String, Option<String>)> {
    let target = line.split_whitespace().nth(2)?;
    if !(target.starts_with("kube_once") && target.ends_with(':')) {
        return None;
    }
    let fields = &line[line.rfind(" event=\"")? + " event=".len()..];
    let event = unquote_debug(fields)?;
    let holder = fields.find(" holder=\"").and_then(|at| unquote_debug(&fields[at + " holder=".len()..]));
    Some((event, holder))
}

/// The string at the start of `quoted`, written by `Debug` for `str`
/// (`"a \"b\" \u{1b}"`); `None` when it does not end.
fn unquote_debug(quoted: &str) -> Option<String> {
    let mut chars = quoted.strip_prefix('"')?.chars();
    let mut out = String::new();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                '0' => out.push('\0'),
                'u' => {
                    let hex: String = chars.by_ref().skip_while(|c| *c == '{').take_while(|c| *c != '}').collect();
                    out.push(u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32).unwrap_or('\u{fffd}'));
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// `line` without ANSI escape sequences (a text log written to a terminal
/// colours its field names).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if ('\u{40}'..='\u{7e}').contains(&c) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Text from a pod made safe to copy into an Event: control characters
/// (escape sequences, newlines) and bidi overrides become spaces, runs of
/// spaces one, and it is cut at `limit` bytes.
pub fn sanitise(text: &str, limit: usize) -> String {
    let bidi = |c: char| matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    let cleaned: String = text.chars().map(|c| if c.is_control() || bidi(c) { ' ' } else { c }).collect();
    truncate(&cleaned.split_whitespace().collect::<Vec<_>>().join(" "), limit)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_message_prefix_decides_and_the_exit_code_when_it_is_unknown() {
        assert_eq!(classify(0, "ran \"flask db upgrade\" in 12.3 s (key 1a81)"), Outcome::Ran);
        assert_eq!(classify(0, "skipped: done by pod web-7d9-abc at 10:02:11Z"), Outcome::Skipped);
        assert_eq!(classify(1, "failed: exit 1 after 4.2 s; last lines: boom"), Outcome::Failed);
        assert_eq!(
            classify(75, "gave up waiting for the lock after 15m; held by pod web-x since 10:00Z"),
            Outcome::LockTimeout
        );
        assert_eq!(classify(76, "backing off: last attempt failed: exit 1"), Outcome::BackingOff);
        // An older pod binary writes nothing; FallbackToLogsOnError puts logs there.
        assert_eq!(classify(0, ""), Outcome::Ran);
        assert_eq!(classify(75, ""), Outcome::LockTimeout);
        assert_eq!(classify(2, "Traceback (most recent call last):\n  File"), Outcome::Failed);
        // A success message with a failing exit code is not believed.
        assert_eq!(classify(1, "ran it, honest"), Outcome::Failed);
    }

    #[test]
    fn summaries_are_one_line_and_bounded_on_a_character_boundary() {
        assert_eq!(one_line("failed: exit 1\n  last\r\n\nlines ", 100), "failed: exit 1 | last | lines");
        let long = "é".repeat(600);
        let cut = one_line(&long, 512);
        assert!(cut.len() <= 512 && cut.ends_with('…'), "{} bytes", cut.len());
    }

    fn pod(status: serde_json::Value) -> RunPod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-7d9-abc", "namespace": "shop"},
            "spec": {
                "initContainers": [
                    {"name": "kube-once-install", "image": "tools"},
                    {"name": "kube-once-run", "image": "shop:2", "env": [
                        {"name": "KUBE_ONCE_KEY", "value": "1a81"},
                        {"name": "KUBE_ONCE_TIMEOUT", "value": "15m"},
                    ]},
                ],
                "containers": [{"name": "app", "image": "shop:2"}],
            },
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn a_crash_looping_run_shows_its_last_failure_and_its_current_start() {
        let observed = observe(&pod(json!({"initContainerStatuses": [{
            "name": "kube-once-run", "ready": false, "restartCount": 1, "image": "shop:2", "imageID": "",
            "containerID": "containerd://b",
            "state": {"running": {"startedAt": "2026-12-06T10:00:10Z"}},
            "lastState": {"terminated": {"exitCode": 1, "containerID": "containerd://a",
                "finishedAt": "2026-12-06T10:00:05Z", "message": "failed: exit 1 after 4.2 s; last lines: no such table\n"}},
        }]})))
        .unwrap();
        assert_eq!(observed.key, "1a81");
        assert_eq!(observed.terminations.len(), 1);
        let failed = &observed.terminations[0];
        assert_eq!((failed.outcome, failed.exit_code, failed.run.as_str()), (Outcome::Failed, 1, "containerd://a"));
        assert_eq!(failed.summary, "failed: exit 1 after 4.2 s; last lines: no such table");
        let running = observed.running.unwrap();
        assert_eq!(
            (running.run.as_str(), running.timeout),
            ("containerd://b", Some(std::time::Duration::from_secs(900)))
        );
    }

    #[test]
    fn pods_without_the_run_container_or_a_status_say_nothing_wrong() {
        let mut plain = pod(json!({}));
        assert_eq!(observe(&plain).unwrap().terminations, vec![]);
        plain.spec.init_containers.clear();
        assert!(observe(&plain).is_none());
    }

    const JSON_WAITING: &str = r#"{"timestamp":"2026-12-06T15:17:44.730031Z","level":"INFO","message":"waiting for lock `kube-once`, held by pid 29263 application_name=\"apps/web/web-0\" from 127.0.0.1, connected for 4s","event":"waiting","lock":"kube-once","holder":"pid 29263 application_name=\"apps/web/web-0\" from 127.0.0.1, connected for 4s","waited_s":0,"target":"kube_once_lock"}"#;
    const TEXT_WAITING: &str = r#"2026-12-06T15:17:41.701998Z  INFO kube_once_lock: waiting for lock `kube-once`, held by pid 29263 application_name="apps/web/web-0" from 127.0.0.1, connected for 1s event="waiting" lock="kube-once" holder="pid 29263 application_name=\"apps/web/web-0\" from 127.0.0.1, connected for 1s" waited_s=0"#;

    #[test]
    fn the_holder_is_read_from_the_newest_waiting_line_of_either_format() {
        let holder_from_log = |log: &str| match read_wait(log) {
            WaitLog::HeldBy(holder) => Some(holder),
            _ => None,
        };
        let json = format!("{}\n{JSON_WAITING}\n", r#"{"level":"INFO","event":"connecting","message":"x"}"#);
        assert_eq!(
            holder_from_log(&json).as_deref(),
            Some(r#"pid 29263 application_name="apps/web/web-0" from 127.0.0.1, connected for 4s"#)
        );
        assert_eq!(
            holder_from_log(TEXT_WAITING).as_deref(),
            Some(r#"pid 29263 application_name="apps/web/web-0" from 127.0.0.1, connected for 1s"#)
        );
        let newest = JSON_WAITING.replace("for 4s\",\"waited_s", "for 9s\",\"waited_s");
        assert!(holder_from_log(&format!("{JSON_WAITING}\n{newest}")).unwrap().ends_with("for 9s"));
        // A colouring terminal's escape codes around the field names.
        let coloured = TEXT_WAITING.replace(" holder=", " \u{1b}[3mholder\u{1b}[0m\u{1b}[2m=\u{1b}[0m");
        assert!(holder_from_log(&coloured).unwrap().starts_with("pid 29263"), "{coloured}");
        // A mixed log (the format changed between restarts) and lines that are not waiting lines.
        assert!(
            holder_from_log(&format!("{TEXT_WAITING}\nnot json {{\n{{\"event\":\"timeout\",\"holder\":\"x\"}}"))
                .is_some()
        );
        for log in [
            "",
            "connecting\n",
            r#"{"event":"timeout","holder":"x","target":"kube_once_lock"}"#,
            r#"{"event":"waiting","target":"kube_once_lock"}"#,
            r#"{"event":"waiting","holder":"the app's own line","target":"app"}"#,
            "t INFO kube_once_lock: w event=\"waiting\" holder=\"unterminated",
            "t INFO app: w event=\"waiting\" holder=\"not ours\"",
        ] {
            assert_eq!(read_wait(log), WaitLog::Silent, "{log}");
        }
    }

    #[test]
    fn a_pod_that_acquired_the_lock_after_waiting_is_not_waiting() {
        let acquired = r#"{"level":"INFO","message":"lock acquired","event":"acquired","target":"kube_once_lock"}"#;
        let log = format!("{JSON_WAITING}\n{acquired}\nthe migration's own output\n");
        assert_eq!(read_wait(&log), WaitLog::Acquired);
        let text = "t  INFO kube_once_lock: lock acquired event=\"acquired\" lock=\"kube-once\" waited_ms=3";
        assert_eq!(read_wait(&format!("{TEXT_WAITING}\n{text}")), WaitLog::Acquired);
        // A holder whose name reads like a field does not fool the text parser.
        let forged = r#"t INFO kube_once_lock: held by x event="acquired" event="waiting" lock="l" holder="x event=\"acquired\"" waited_s=1"#;
        assert_eq!(read_wait(forged), WaitLog::HeldBy(r#"x event="acquired""#.to_owned()));
    }

    #[test]
    fn a_hostile_holder_is_copied_without_control_characters_and_bounded() {
        let hostile =
            "evil\u{1b}]0;title\u{7}\r\nWarning  Forged  \u{202e}gnp.exe \u{0}".to_owned() + &"x".repeat(1 << 20);
        let line = serde_json::json!({"event": "waiting", "holder": hostile}).to_string();
        let line = line.replace('}', r#","target":"kube_once_lock"}"#);
        let WaitLog::HeldBy(holder) = read_wait(&line) else { panic!("{line}") };
        assert!(holder.len() <= HOLDER_LIMIT && holder.ends_with('…'), "{} bytes", holder.len());
        assert!(!holder.chars().any(|c| c.is_control() || c == '\u{202e}'), "{holder:?}");
        assert!(holder.starts_with("evil ]0;title Warning Forged gnp.exe x"), "{holder:?}");
        let text =
            format!("t INFO kube_once_lock: w event=\"waiting\" holder={:?} waited_s=1", "a\u{1b}[31mred\nb\u{9c}");
        assert_eq!(read_wait(&text), WaitLog::HeldBy("a [31mred b".to_owned()));
    }
}
