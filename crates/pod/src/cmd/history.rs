//! `history`: the done-records, newest first, then the keys failing now and
//! the command running now, as a table or JSON. Read through the same URL
//! as `lock` (the env var `--database-url-env` names).

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use kube_once_core::env;
use kube_once_lock::history::{self, Connection, Failure, Filter, RunningRow, StoredRecord};
use kube_once_lock::url::Target;
use kube_once_lock::{defaults, exit};

/// Where the done-records are: shared by `history` and `forget`.
#[derive(Debug, Clone, Args)]
pub struct RecordsArgs {
    /// Name of the env var holding the database URL.
    #[arg(long, env = env::DATABASE_URL_ENV, default_value = defaults::DATABASE_URL_ENV)]
    pub database_url_env: String,

    /// Table holding the done-records.
    #[arg(long, env = env::RECORD_TABLE, default_value = defaults::RECORD_TABLE)]
    pub record_table: String,
}

impl RecordsArgs {
    fn options(&self) -> history::HistoryOptions {
        history::HistoryOptions {
            database_url_env: self.database_url_env.clone(),
            record_table: self.record_table.clone(),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub records: RecordsArgs,

    /// Only the run of this key.
    #[arg(long)]
    pub key: Option<String>,

    /// Only runs of this image.
    #[arg(long)]
    pub image: Option<String>,

    /// The lock whose running command (its leader's heartbeat) is shown.
    #[arg(long, env = env::LOCK_NAME, default_value = defaults::LOCK_NAME)]
    pub lock_name: String,

    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// How many of the newest attempts `history` reads to find the failing keys.
const ATTEMPTS_READ: u32 = 1000;

/// What `history` shows: the done-records, the keys failing now, the command running now.
pub struct Overview {
    pub runs: Vec<StoredRecord>,
    pub failing: Vec<Failure>,
    pub running: Vec<RunningRow>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns, for people.
    Table,
    /// One JSON array of objects, for scripts.
    Json,
}

/// Exit codes: 0 listed (also when nothing was recorded yet), 64 usage or
/// configuration (a TLS setting that cannot verify the server), 69 database
/// unreachable or unreadable.
pub fn run(args: HistoryArgs) -> ExitCode {
    let filter = Filter { key: args.key.clone(), image: args.image.clone() };
    let table = args.records.record_table.clone();
    with_connection("history", &args.records, |mut connection| async move {
        let listed = connection.list(&table, &filter).await;
        let attempts = connection.attempts(&table, &filter, ATTEMPTS_READ).await;
        // A `running` row names no key: shown only when no filter narrows the view.
        let running = if filter.is_empty() { connection.running().await } else { Ok(Vec::new()) };
        connection.close().await;
        let Some(runs) = listed? else {
            match args.output {
                Output::Table => println!("{}", no_table(&table)),
                Output::Json => {
                    println!("[]");
                    eprintln!("{}", no_table(&table));
                }
            }
            return Ok(ExitCode::SUCCESS);
        };
        let failing = history::failures(&attempts?, &runs);
        let running: Vec<RunningRow> = running?.into_iter().filter(|row| row.lock_name == args.lock_name).collect();
        let overview = Overview { runs, failing, running };
        let text = match args.output {
            Output::Table => {
                let mut text = match &overview.runs {
                    runs if !runs.is_empty() => render_table(runs),
                    // Failed attempts, listed below, are no runs of this table: say which kind is missing.
                    _ if filter.is_empty() => format!("no successful run recorded yet (table {table} is empty)\n"),
                    _ => format!("no recorded run matches {}\n", filter.describe()),
                };
                text.push_str(&render_now(&overview));
                text
            }
            Output::Json => format!("{}\n", render_overview_json(&overview)),
        };
        print(&text)?;
        Ok(ExitCode::SUCCESS)
    })
}

pub(super) fn no_table(table: &str) -> String {
    format!("no runs recorded yet (table {table} does not exist)")
}

pub(super) fn print(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// Reads the URL, connects once on a current-thread runtime and runs `work`:
/// usage and configuration problems (a CA that cannot verify the server)
/// exit 64, connection and database errors 69.
pub(super) fn with_connection<F, Fut>(command: &str, records: &RecordsArgs, work: F) -> ExitCode
where
    F: FnOnce(Connection) -> Fut,
    Fut: Future<Output = anyhow::Result<ExitCode>>,
{
    let target = match history::target(&records.options(), |var| std::env::var(var).ok()) {
        Ok(target) => target,
        Err(problem) => {
            eprintln!("kube-once {command}: {problem}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            return super::report::<()>(Err(anyhow::Error::new(error).context("cannot start the async runtime")));
        }
    };
    runtime.block_on(async {
        let connection = match history::connect(&target).await {
            Ok(connection) => connection,
            Err(problem) => {
                if let Some(configuration) = history::configuration_error(&target, &problem) {
                    eprintln!("kube-once {command}: {configuration}");
                    return ExitCode::from(exit::USAGE);
                }
                // A file has no server to reach.
                let reachable = match target {
                    Target::Sqlite(_) => String::new(),
                    _ => format!(" and that the {} server is reachable from here", target.backend_name()),
                };
                eprintln!(
                    "kube-once {command}: {problem:#}; check the URL in ${}{reachable}",
                    records.database_url_env
                );
                return ExitCode::from(exit::UNREACHABLE);
            }
        };
        match work(connection).await {
            Ok(code) => code,
            Err(problem) => {
                eprintln!("kube-once {command}: {problem:#}");
                ExitCode::from(exit::UNREACHABLE)
            }
        }
    })
}

/// An empty cell (no image or pod given to `lock`) shows as `-`, so every line has every column.
fn cell(text: &str) -> String {
    if text.is_empty() { "-".to_string() } else { text.to_string() }
}

/// The records as aligned columns under a header; the command last, as it
/// is the longest and may hold spaces.
pub fn render_table(runs: &[StoredRecord]) -> String {
    let header = ["KEY", "IMAGE", "POD", "STARTED", "FINISHED", "DURATION", "EXIT", "COMMAND"];
    let rows: Vec<[String; 8]> = runs
        .iter()
        .map(|StoredRecord { record, started_ms, finished_ms }| {
            [
                cell(&record.key),
                cell(&record.image),
                cell(&record.pod),
                history::rfc3339_seconds(*started_ms),
                history::rfc3339_seconds(*finished_ms),
                format_duration(record.duration_ms),
                record.exit_code.to_string(),
                cell(&record.command),
            ]
        })
        .collect();
    aligned(header, &rows)
}

/// The keys failing now and the command running now, each a section after
/// the done-records; nothing when there are none.
pub fn render_now(overview: &Overview) -> String {
    let mut text = String::new();
    if !overview.failing.is_empty() {
        text.push_str("\nFAILING (the last attempt failed; no done-record)\n");
        let header = ["KEY", "NAMESPACE/DEPLOYMENT", "POD", "FINISHED", "DURATION", "EXIT", "FAILURES", "COMMAND"];
        let rows: Vec<[String; 8]> = overview
            .failing
            .iter()
            .map(|Failure { last, failures }| {
                let a = &last.attempt;
                [
                    cell(&a.key),
                    cell(&workload(&a.namespace, &a.deployment)),
                    cell(&a.pod),
                    history::rfc3339_seconds(last.finished_ms),
                    format_duration(a.duration_ms),
                    a.exit_code.to_string(),
                    failures.to_string(),
                    cell(&a.command),
                ]
            })
            .collect();
        text.push_str(&aligned(header, &rows));
        for Failure { last, .. } in &overview.failing {
            let lines = kube_once_lock::termination::last_lines(&last.attempt.output, 3);
            if !lines.is_empty() {
                text.push_str(&format!("{}: last lines: {lines}\n", last.attempt.key));
            }
        }
    }
    if !overview.running.is_empty() {
        text.push_str("\nRUNNING NOW\n");
        let header = ["LOCK", "HOLDER", "STARTED", "HEARTBEAT"];
        let rows: Vec<[String; 4]> = overview
            .running
            .iter()
            .map(|row| {
                [
                    cell(&row.lock_name),
                    cell(&row.holder),
                    history::rfc3339_seconds(row.started_ms),
                    format!("{} ago", format_duration(row.heartbeat_age_ms)),
                ]
            })
            .collect();
        text.push_str(&aligned(header, &rows));
    }
    text
}

/// `namespace/deployment`, or what is known of it.
fn workload(namespace: &str, deployment: &str) -> String {
    match (namespace, deployment) {
        ("", "") => String::new(),
        (namespace, deployment) => format!("{namespace}/{deployment}"),
    }
}

/// Rows as aligned columns under `header`; the last column unpadded.
fn aligned<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(|title| title.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let mut line = |cells: &[&str]| {
        let mut out = String::new();
        for (index, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if index + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.extend(std::iter::repeat_n(' ', width - cell.chars().count() + 2));
            }
        }
        text.push_str(out.trim_end());
        text.push('\n');
    };
    line(&header);
    for row in rows {
        line(&row.each_ref().map(String::as_str));
    }
    text
}

/// `1.234s`, `2m 5s`: milliseconds below a minute, whole seconds above.
fn format_duration(ms: i64) -> String {
    let ms = u64::try_from(ms).unwrap_or(0);
    if ms < 60_000 {
        format!("{}.{:03}s", ms / 1000, ms % 1000)
    } else {
        humantime::format_duration(std::time::Duration::from_secs(ms / 1000)).to_string()
    }
}

/// One JSON array: the done-records newest first (`outcome: ran`), then the
/// keys failing now (`outcome: failed`), then the command running now
/// (`outcome: running`); times as RFC 3339 UTC with milliseconds.
pub fn render_overview_json(overview: &Overview) -> String {
    let mut array: Vec<serde_json::Value> = json_runs(&overview.runs);
    for Failure { last, failures } in &overview.failing {
        let a = &last.attempt;
        array.push(serde_json::json!({
            "outcome": "failed",
            "key": a.key,
            "image": a.image,
            "command": a.command,
            "namespace": a.namespace,
            "deployment": a.deployment,
            "pod": a.pod,
            "started_at": history::rfc3339_millis(last.started_ms),
            "finished_at": history::rfc3339_millis(last.finished_ms),
            "duration_ms": a.duration_ms,
            "exit_code": a.exit_code,
            "failures": failures,
            "output": a.output,
        }));
    }
    for row in &overview.running {
        array.push(serde_json::json!({
            "outcome": "running",
            "lock": row.lock_name,
            "holder": row.holder,
            "started_at": history::rfc3339_millis(row.started_ms),
            "heartbeat_age_ms": row.heartbeat_age_ms,
        }));
    }
    serde_json::Value::Array(array).to_string()
}

/// The done-records alone as one JSON array (see [`render_overview_json`]).
pub fn render_json(runs: &[StoredRecord]) -> String {
    serde_json::Value::Array(json_runs(runs)).to_string()
}

fn json_runs(runs: &[StoredRecord]) -> Vec<serde_json::Value> {
    let array: Vec<serde_json::Value> = runs
        .iter()
        .map(|StoredRecord { record, started_ms, finished_ms }| {
            serde_json::json!({
                "outcome": "ran",
                "key": record.key,
                "image": record.image,
                "command": record.command,
                "pod": record.pod,
                "started_at": history::rfc3339_millis(*started_ms),
                "finished_at": history::rfc3339_millis(*finished_ms),
                "duration_ms": record.duration_ms,
                "exit_code": record.exit_code,
            })
        })
        .collect();
    array
}

#[cfg(test)]
mod tests {
    use kube_once_lock::history::DoneRecord;

    use super::*;

    fn run(key: &str, command: &str) -> StoredRecord {
        StoredRecord {
            record: DoneRecord {
                key: key.into(),
                command: command.into(),
                image: "app:1".into(),
                pod: "web-7d9-abc".into(),
                duration_ms: 1500,
                exit_code: 0,
            },
            started_ms: 1_700_000_000_000,
            finished_ms: 1_700_000_001_500,
        }
    }

    #[test]
    fn table_columns_line_up() {
        let text = render_table(&[run("v1", "flask db upgrade"), run("a-much-longer-key", "true")]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        let column = |line: &str, word: &str| line.find(word);
        assert_eq!(column(lines[0], "IMAGE"), column(lines[1], "app:1"), "{text}");
        assert_eq!(column(lines[0], "COMMAND"), column(lines[1], "flask"), "{text}");
        assert_eq!(column(lines[0], "COMMAND"), column(lines[2], "true"), "{text}");
        assert!(lines[1].contains("2023-11-14T22:13:20Z") && lines[1].contains("1.500s"), "{text}");
        let mut anonymous = run("v1", "true");
        anonymous.record.pod = String::new();
        let anonymous = render_table(&[anonymous]);
        assert_eq!(anonymous.lines().nth(1).map(|line| line.split_whitespace().nth(2)), Some(Some("-")), "{anonymous}");
    }

    #[test]
    fn json_is_one_array() {
        let value: serde_json::Value = serde_json::from_str(&render_json(&[run("v1", "true")])).unwrap_or_default();
        assert_eq!(value[0]["key"], "v1");
        assert_eq!(value[0]["started_at"], "2023-11-14T22:13:20.000Z");
        assert_eq!(value[0]["duration_ms"], 1500);
        assert_eq!(render_json(&[]), "[]");
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(42), "0.042s");
        assert_eq!(format_duration(125_000), "2m 5s");
    }
}
