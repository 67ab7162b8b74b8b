//! `kube-once history` and `kube-once forget` against real servers: the
//! records are written by real `lock` processes (the pod binary), read and
//! deleted by the pod binary and the full CLI. Every scenario runs on
//! PostgreSQL, MariaDB and SQLite (`on_every_database!`), each with its own
//! record table, so tests run in parallel.
//! PostgreSQL and MariaDB URLs come from scripts/test.sh.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use support::databases::{Db, Kind, Scenario, Throwaway};

/// One test per database for `scenario(db: Db)`: `<scenario>::postgres`, `::mysql`, `::sqlite`.
macro_rules! on_every_database {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[test]
            fn postgres() {
                super::$scenario(super::Db::postgres());
            }

            #[test]
            fn mysql() {
                super::$scenario(super::Db::mysql());
            }

            #[test]
            fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                super::$scenario(super::Db::sqlite(&dir.path().join("app.db")));
            }
        }
    )*};
}

on_every_database!(
    lists_runs_newest_first_and_filters,
    forget_makes_the_next_lock_run_again,
    keys_differing_only_in_case_accent_or_trailing_space_stay_apart,
    missing_table_is_not_an_error,
    shows_a_failed_a_running_and_a_done_key,
    forget_clears_a_keys_failures
);

/// Appends `run <key>` to the output file (the key is the script's `$1`).
const RECORD_RUN: &str = r#"echo "run $1" >> "$OUT""#;

/// `binary SUBCOMMAND ARGS` against the scenario's database and record table,
/// with `KUBE_ONCE_*` from the test environment cleared and stdin empty (no terminal).
fn kube_once(scenario: &Scenario, binary: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(binary);
    for (var, _) in std::env::vars().filter(|(var, _)| var.starts_with("KUBE_ONCE_")) {
        cmd.env_remove(var);
    }
    cmd.env("DATABASE_URL", &scenario.db.url)
        .env("KUBE_ONCE_RECORD_TABLE", &scenario.name)
        .current_dir(scenario.dir.path())
        .args(args)
        .stdin(Stdio::null());
    cmd.output().unwrap()
}

fn pod(scenario: &Scenario, args: &[&str]) -> Output {
    kube_once(scenario, &support::pod_binary(), args)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn describe(output: &Output) -> String {
    format!("exit {:?}\nstdout:\n{}\nstderr:\n{}", output.status.code(), text(&output.stdout), text(&output.stderr))
}

/// Runs `lock` to completion with this key and image; its exit code.
fn lock(scenario: &mut Scenario, key: &str, image: &str) -> i32 {
    let cmd = scenario.lock(&["--key", key, "--image", image], &["sh", "-c", RECORD_RUN, "sh", key]);
    let index = scenario.spawn(cmd);
    scenario.wait(index).code().unwrap_or(-1)
}

/// How many times the command ran for `key`.
fn runs_of(scenario: &Scenario, key: &str) -> usize {
    scenario.lines().iter().filter(|line| **line == format!("run {key}")).count()
}

fn history_json(scenario: &Scenario, args: &[&str]) -> Vec<serde_json::Value> {
    let output = pod(scenario, &[&["history", "-o", "json"], args].concat());
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).expect("one JSON document");
    value.as_array().cloned().expect("a JSON array")
}

fn keys(runs: &[serde_json::Value]) -> Vec<&str> {
    runs.iter().map(|run| run["key"].as_str().unwrap()).collect()
}

fn lists_runs_newest_first_and_filters(db: Db) {
    let mut scenario = Scenario::new(db, "history");
    let before = SystemTime::now();
    for (key, image) in [("v1", "app:1"), ("v2", "app:2"), ("v3", "app:2")] {
        assert_eq!(lock(&mut scenario, key, image), 0, "{}", scenario.all_logs());
    }
    let after = SystemTime::now();

    let runs = history_json(&scenario, &[]);
    assert_eq!(keys(&runs), ["v3", "v2", "v1"], "newest first: {runs:?}");
    let v1 = &runs[2];
    assert_eq!(v1["image"], "app:1");
    assert_eq!(v1["pod"], "pod-0");
    assert_eq!(v1["exit_code"], 0);
    assert_eq!(v1["command"], r#"sh -c 'echo "run $1" >> "$OUT"' sh v1"#);
    assert!(v1["duration_ms"].as_i64().unwrap() >= 0, "{v1}");
    // The instants are the real ones in UTC, whatever time zone the server keeps
    // (a DATETIME read in the wrong zone would be hours off). A second of slack
    // for the database rounding to its own precision.
    let slack = Duration::from_secs(1);
    for run in &runs {
        let started = humantime::parse_rfc3339(run["started_at"].as_str().unwrap()).unwrap();
        let finished = humantime::parse_rfc3339(run["finished_at"].as_str().unwrap()).unwrap();
        assert!(started + slack >= before && finished <= after + slack, "{run} not within the test's run");
        assert!(started <= finished, "{run}");
    }

    assert_eq!(keys(&history_json(&scenario, &["--image", "app:2"])), ["v3", "v2"]);
    assert_eq!(keys(&history_json(&scenario, &["--key", "v2"])), ["v2"]);
    assert!(history_json(&scenario, &["--key", "v1", "--image", "app:2"]).is_empty());

    // The table: a header, then one aligned line per run, newest first.
    let table = pod(&scenario, &["history"]);
    assert_eq!(table.status.code(), Some(0), "{}", describe(&table));
    let stdout = text(&table.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(lines[0].starts_with("KEY") && lines[0].contains("IMAGE") && lines[0].contains("COMMAND"), "{stdout}");
    let first_words: Vec<&str> = lines[1..].iter().map(|line| line.split_whitespace().next().unwrap()).collect();
    assert_eq!(first_words, ["v3", "v2", "v1"], "{stdout}");
    let image_column = lines[0].find("IMAGE").unwrap();
    assert!(lines[1..].iter().all(|line| line[image_column..].starts_with("app:")), "aligned: {stdout}");
    let none = pod(&scenario, &["history", "--key", "v9"]);
    assert!(text(&none.stdout).contains("no recorded run matches --key v9"), "{}", describe(&none));

    // The full CLI shares the command layer: the same answer.
    let cli = kube_once(&scenario, &support::binary(), &["history"]);
    assert_eq!(text(&cli.stdout), stdout, "{}", describe(&cli));
}

fn forget_makes_the_next_lock_run_again(db: Db) {
    let mut scenario = Scenario::new(db, "forget");
    for (key, image) in [("v1", "app:1"), ("v1", "app:1"), ("v2", "app:2"), ("v3", "app:2")] {
        assert_eq!(lock(&mut scenario, key, image), 0, "{}", scenario.all_logs());
    }
    assert_eq!(runs_of(&scenario, "v1"), 1, "the second lock skipped");

    // No terminal to ask on and no --yes: refused, nothing deleted.
    let refused = pod(&scenario, &["forget", "--key", "v1"]);
    assert_eq!(refused.status.code(), Some(64), "{}", describe(&refused));
    assert!(text(&refused.stderr).contains("--yes"), "{}", describe(&refused));
    assert_eq!(scenario.db.records(&scenario.name, "v1"), 1);

    // Neither --key nor --image: a usage error from the parser.
    let unfiltered = pod(&scenario, &["forget", "--yes"]);
    assert_eq!(unfiltered.status.code(), Some(64), "{}", describe(&unfiltered));

    let forgot = pod(&scenario, &["forget", "--key", "v1", "--yes"]);
    assert_eq!(forgot.status.code(), Some(0), "{}", describe(&forgot));
    assert!(text(&forgot.stdout).contains("deleted 1 done-record"), "{}", describe(&forgot));
    assert_eq!(keys(&history_json(&scenario, &[])), ["v3", "v2"]);

    assert_eq!(lock(&mut scenario, "v1", "app:1"), 0, "{}", scenario.all_logs());
    assert_eq!(runs_of(&scenario, "v1"), 2, "forgotten, so it ran again");

    let by_image = pod(&scenario, &["forget", "--image", "app:2", "--yes"]);
    assert!(text(&by_image.stdout).contains("deleted 2 done-record"), "{}", describe(&by_image));
    assert_eq!(keys(&history_json(&scenario, &[])), ["v1"]);
    let nothing = pod(&scenario, &["forget", "--image", "app:2", "--yes"]);
    assert!(text(&nothing.stdout).contains("deleted 0 done-record"), "{}", describe(&nothing));
}

/// Keys that differ only in case, an accent or a trailing space are
/// different keys alike for `lock` (the done-record check), `history --key`
/// and `forget --key`.
fn keys_differing_only_in_case_accent_or_trailing_space_stay_apart(db: Db) {
    let mut scenario = Scenario::new(db, "exact");
    let all = ["k", "K", "k ", "e", "é"];
    for round in 1..=2 {
        for key in all {
            assert_eq!(lock(&mut scenario, key, "app:1"), 0, "{}", scenario.all_logs());
            assert_eq!(runs_of(&scenario, key), 1, "round {round}, key {key:?}: {:?}", scenario.lines());
        }
    }
    for key in all {
        assert_eq!(keys(&history_json(&scenario, &["--key", key])), [key], "history --key {key:?}");
    }

    for key in ["k", "é"] {
        let forgot = pod(&scenario, &["forget", "--key", key, "--yes"]);
        assert!(text(&forgot.stdout).contains("deleted 1 done-record"), "forget --key {key:?}: {}", describe(&forgot));
    }
    let mut left = keys(&history_json(&scenario, &[])).into_iter().map(str::to_string).collect::<Vec<_>>();
    left.sort();
    assert_eq!(left, ["K", "e", "k "], "forget deleted only the keys it was given");

    for key in all {
        assert_eq!(lock(&mut scenario, key, "app:1"), 0, "{}", scenario.all_logs());
        let expected = if key == "k" || key == "é" { 2 } else { 1 };
        assert_eq!(runs_of(&scenario, key), expected, "after forget, key {key:?}: {:?}", scenario.lines());
    }
}

/// A record table made by an older kube-once (its MySQL DDL word for word:
/// the server's default, case-insensitive collation) that no `lock` has
/// migrated yet: `history` and `forget` still select exactly.
#[test]
fn mysql_an_old_case_insensitive_table_is_read_exactly() {
    let scenario = Scenario::new(Db::mysql(), "oldci");
    let table = &scenario.name;
    scenario.db.execute(&format!(
        "CREATE TABLE `{table}` (`key` VARCHAR(255) PRIMARY KEY, command TEXT NOT NULL, image TEXT NOT NULL, \
         pod VARCHAR(253) NOT NULL, started_at DATETIME(3) NOT NULL, finished_at DATETIME(3) NOT NULL, \
         duration_ms BIGINT NOT NULL, exit_code INT NOT NULL); \
         INSERT INTO `{table}` VALUES ('Release-A', 'old', 'App:1', 'pod', NOW(3), NOW(3), 1, 0)"
    ));
    for near in [&["--key", "release-a"][..], &["--key", "Release-A "], &["--image", "app:1"]] {
        assert!(history_json(&scenario, near).is_empty(), "history {near:?} matched Release-A");
        let forget = pod(&scenario, &[&["forget", "--yes"], near].concat());
        assert!(text(&forget.stdout).contains("deleted 0 done-record"), "forget {near:?}: {}", describe(&forget));
    }
    assert_eq!(keys(&history_json(&scenario, &["--key", "Release-A", "--image", "App:1"])), ["Release-A"]);
    assert_eq!(scenario.db.records(table, "Release-A"), 1);
}

fn missing_table_is_not_an_error(db: Db) {
    let scenario = Scenario::new(db, "empty");
    if scenario.db.kind == Kind::Sqlite {
        // An empty file is an empty SQLite database (a missing file is an error: see below).
        let path = scenario.db.url.trim_start_matches("sqlite:///");
        std::fs::write(path, "").unwrap();
    }
    let expected = format!("no runs recorded yet (table {} does not exist)", scenario.name);
    let table = pod(&scenario, &["history"]);
    assert_eq!(table.status.code(), Some(0), "{}", describe(&table));
    assert_eq!(text(&table.stdout).trim(), expected);
    let json = pod(&scenario, &["history", "-o", "json"]);
    assert_eq!((json.status.code(), text(&json.stdout).trim()), (Some(0), "[]"), "{}", describe(&json));
    let forget = pod(&scenario, &["forget", "--key", "v1", "--yes"]);
    assert_eq!(forget.status.code(), Some(0), "{}", describe(&forget));
    assert_eq!(text(&forget.stdout).trim(), expected);
}

/// `forget` on a terminal (a pty from util-linux `script`) shows the records
/// and deletes only on `y`.
#[test]
fn forget_asks_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let mut scenario = Scenario::new(Db::sqlite(&dir.path().join("app.db")), "tty");
    assert_eq!(lock(&mut scenario, "v1", "app:1"), 0, "{}", scenario.all_logs());
    let on_a_terminal = |answer: &str| {
        let command = format!("'{}' forget --key v1", support::pod_binary().display());
        let mut cmd = Command::new("script");
        for (var, _) in std::env::vars().filter(|(var, _)| var.starts_with("KUBE_ONCE_")) {
            cmd.env_remove(var);
        }
        let mut child = cmd
            .args(["--quiet", "--return", "--command", &command, "/dev/null"])
            .env("DATABASE_URL", &scenario.db.url)
            .env("KUBE_ONCE_RECORD_TABLE", &scenario.name)
            .current_dir(scenario.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("util-linux script");
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), answer.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let declined = on_a_terminal("n\n");
    let shown = text(&declined.stdout);
    assert!(shown.contains("app:1") && shown.contains("[y/N]") && shown.contains("nothing deleted"), "{shown}");
    assert_eq!(scenario.db.records(&scenario.name, "v1"), 1);
    let confirmed = on_a_terminal("y\n");
    assert!(text(&confirmed.stdout).contains("deleted 1 done-record"), "{}", describe(&confirmed));
    assert_eq!(scenario.db.records(&scenario.name, "v1"), 0);
}

/// MySQL's DATETIME keeps no time zone: `lock` writes NOW(3) in the
/// session's zone and `history` must read it back in the same zone. A server
/// of its own (the zone is global), five hours off UTC; the listing scenario
/// checks every instant against the test's own clock.
#[test]
fn mysql_times_are_utc_whatever_the_server_time_zone() {
    let server = Throwaway::start(Kind::MySql, support::net::free_port());
    let db = Db { kind: Kind::MySql, url: Throwaway::url(Kind::MySql, server.port) };
    db.execute("SET GLOBAL time_zone = '+05:00'");
    lists_runs_newest_first_and_filters(db);
}

#[test]
fn sqlite_missing_file_is_an_error_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.db");
    let scenario = Scenario::new(Db::sqlite(&path), "typo");
    let output = pod(&scenario, &["history"]);
    assert_eq!(output.status.code(), Some(69), "{}", describe(&output));
    assert!(text(&output.stderr).contains("typo.db"), "{}", describe(&output));
    assert!(!path.exists(), "history created {}", path.display());

    // The SQLAlchemy spelling with three slashes is relative: say so.
    let relative = Scenario::new(Db { kind: Kind::Sqlite, url: "sqlite:///typo.db".into() }, "typo");
    let output = pod(&relative, &["history"]);
    assert_eq!(output.status.code(), Some(69), "{}", describe(&output));
    let message = text(&output.stderr);
    assert!(message.contains("write sqlite:////typo.db"), "{}", describe(&output));
    assert!(message.contains("check the URL in $DATABASE_URL"), "{}", describe(&output));
    assert!(!message.contains("server"), "a file has no server: {}", describe(&output));
}

#[test]
fn usage_errors_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = Scenario::new(Db::sqlite(&dir.path().join("app.db")), "usage");
    let table = pod(&scenario, &["history", "--record-table", "runs; drop table x"]);
    assert_eq!(table.status.code(), Some(64), "{}", describe(&table));
    assert!(text(&table.stderr).contains("not a plain SQL identifier"), "{}", describe(&table));
    let unset = pod(&scenario, &["history", "--database-url-env", "NO_SUCH_VAR"]);
    assert_eq!(unset.status.code(), Some(64), "{}", describe(&unset));
    assert!(text(&unset.stderr).contains("NO_SUCH_VAR"), "{}", describe(&unset));
}

/// `text` with the digits of every instant (`2026-12-06T09:48:13Z`, with
/// or without milliseconds) and duration (`0.512s`) turned into `N`: the
/// same width, so the table's alignment stays as it was.
fn without_times(text: &str) -> String {
    let mut out = String::new();
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        let digits_only = |part: &str| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit() || c == '.');
        let is_time = token.len() >= 20 && token.ends_with('Z') && token.as_bytes()[10] == b'T';
        let is_duration = token.strip_suffix('s').is_some_and(digits_only) && token.contains('.');
        if is_time || is_duration {
            out.extend(token.chars().map(|c| if c.is_ascii_digit() { 'N' } else { c }));
        } else {
            out.push_str(token);
        }
        token.clear();
    };
    for c in text.chars() {
        if c == ' ' || c == '\n' {
            flush(&mut token, &mut out);
            out.push(c);
        } else {
            token.push(c);
        }
    }
    flush(&mut token, &mut out);
    out
}

/// The JSON with its instants and durations replaced by placeholders.
fn json_without_times(value: &mut serde_json::Value) {
    for item in value.as_array_mut().unwrap() {
        for (field, value) in item.as_object_mut().unwrap() {
            if field.ends_with("_at") {
                *value = "<time>".into();
            } else if field.ends_with("_ms") {
                *value = 0.into();
            }
        }
    }
}

/// The lock of [`shows_a_failed_a_running_and_a_done_key`]'s running command.
const OVERVIEW_LOCK: &str = "ko_history_overview";

/// A done key (`v1`), a failing one (`v2`: its exit code, pod, workload and
/// last output) and a command running now (`v3`, from its leader's `running`
/// row: SQLite keeps none), as a table and as JSON; golden files per kind.
fn shows_a_failed_a_running_and_a_done_key(db: Db) {
    let sqlite = db.kind == Kind::Sqlite;
    let mut scenario = Scenario::new(db, "overview");
    let workload = ["--namespace", "web", "--deployment", "shop", "--image", "app:1"];
    let done = scenario.lock(&[&["--key", "v1"][..], &workload].concat(), &["sh", "-c", RECORD_RUN, "sh", "v1"]);
    let index = scenario.spawn(done);
    assert_eq!(scenario.wait(index).code(), Some(0), "{}", scenario.all_logs());
    let failing = ["sh", "-c", r#"echo "migration 42: no such column" >&2; exit 3"#];
    let failed = scenario.lock(&[&["--key", "v2"][..], &workload].concat(), &failing);
    let index = scenario.spawn(failed);
    assert_eq!(scenario.wait(index).code(), Some(3), "{}", scenario.all_logs());
    let waiting = ["sh", "-c", r#"while [ ! -e go ]; do sleep 0.05; done"#];
    let mut running = scenario.lock(&[&["--key", "v3"][..], &workload].concat(), &waiting);
    // A lock name of this test's own (not the scenario's random one), so the golden files hold it.
    running.env("KUBE_ONCE_LOCK_NAME", OVERVIEW_LOCK);
    let leader = scenario.spawn(running);
    support::databases::wait_until("the running command", || scenario.events(leader).iter().any(|e| e == "started"));

    let table = pod(&scenario, &["history", "--lock-name", OVERVIEW_LOCK]);
    let json = pod(&scenario, &["history", "--lock-name", OVERVIEW_LOCK, "-o", "json"]);
    std::fs::write(scenario.dir.path().join("go"), "").unwrap();
    assert_eq!(scenario.wait(leader).code(), Some(0), "{}", scenario.all_logs());

    assert_eq!(table.status.code(), Some(0), "{}", describe(&table));
    assert_eq!(json.status.code(), Some(0), "{}", describe(&json));
    let name = if sqlite { "overview-sqlite" } else { "overview" };
    let dir = support::fixtures("history");
    let mut golden = support::golden::Golden::new();
    golden.check(&dir.join(format!("{name}.txt")), &without_times(&text(&table.stdout)));
    let mut value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    json_without_times(&mut value);
    golden.check(&dir.join(format!("{name}.json")), &format!("{}\n", serde_json::to_string_pretty(&value).unwrap()));
    golden.finish();
}

/// A key backing off after a failure runs at once after `forget --key`.
fn forget_clears_a_keys_failures(db: Db) {
    let mut scenario = Scenario::new(db, "forgetfail");
    let failing = ["sh", "-c", r#"echo "run" >> "$OUT"; exit 3"#];
    let run = |scenario: &mut Scenario| {
        let cmd = scenario.lock(&["--key", "v1", "--failure-backoff", "5m"], &failing);
        let index = scenario.spawn(cmd);
        scenario.wait(index).code()
    };
    assert_eq!(run(&mut scenario), Some(3));
    // Only a failure so far: `history` says no run succeeded, not that none happened.
    let history = pod(&scenario, &["history"]);
    let shown = text(&history.stdout);
    assert!(shown.starts_with("no successful run recorded yet"), "{}", describe(&history));
    assert!(shown.contains("FAILING") && shown.contains("v1"), "{}", describe(&history));
    assert_eq!(run(&mut scenario), Some(76), "backing off: {}", scenario.all_logs());
    let forget = pod(&scenario, &["forget", "--key", "v1", "--yes"]);
    assert_eq!(forget.status.code(), Some(0), "{}", describe(&forget));
    assert!(text(&forget.stdout).contains("deleted 1 recorded attempt(s) matching --key v1"), "{}", describe(&forget));
    assert_eq!(run(&mut scenario), Some(3), "runs again at once: {}", scenario.all_logs());
    assert_eq!(scenario.lines().iter().filter(|line| *line == "run").count(), 2, "two runs");
}
