//! `kube-once lock` against real servers: the real binary as many concurrent
//! processes, kills from both sides, a server that starts late, `sslmode`
//! against a server that accepts only TLS. Each test has its own lock name
//! and record table, so tests run in parallel.
//! PostgreSQL and MariaDB URLs come from scripts/test.sh.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::fs;
use std::time::Duration;

use kube_once_core::annotations::default_key;
use kube_once_lock::names::{advisory_key, mysql_lock_name};
use kube_once_server::certs::{CertBundle, generate};
use support::databases::{self, Db, Kind, Scenario, Throwaway, alive, runtime, wait_until};

const APPEND_AND_SLEEP: &[&str] = &["sh", "-c", r#"echo "start $$" >> "$OUT"; sleep 0.5; echo "end $$" >> "$OUT""#];

/// Which lines of the output file start with `prefix`.
fn positions(lines: &[String], prefix: &str) -> Vec<usize> {
    lines.iter().enumerate().filter(|(_, line)| line.starts_with(prefix)).map(|(i, _)| i).collect()
}

fn exactly_once(db: Db, processes: usize) {
    let mut scenario = Scenario::new(db, "once");
    for _ in 0..processes {
        let cmd = scenario.lock(&["--key", "v1"], APPEND_AND_SLEEP);
        scenario.spawn(cmd);
    }
    let codes = scenario.wait_all();
    let logs = scenario.all_logs();
    assert!(codes.iter().all(|&code| code == 0), "exit codes {codes:?}\n{logs}");
    let lines = scenario.lines();
    assert_eq!(positions(&lines, "start").len(), 1, "exactly one run: {lines:?}");
    let end = positions(&lines, "end");
    assert_eq!(end.len(), 1, "{lines:?}");
    // Every process — leader and followers — exits after the command finished.
    let exits = positions(&lines, "exited");
    assert_eq!(exits.len(), processes, "{lines:?}");
    assert!(exits.iter().all(|&exit| exit > end[0]), "a process exited before the command finished: {lines:?}");
    assert_eq!(scenario.count_events("ran"), 1, "{logs}");
    assert_eq!(scenario.count_events("skipped"), processes - 1, "{logs}");
    assert_eq!(scenario.db.records(&scenario.name, "v1"), 1);
}

fn record_none_runs_all_one_at_a_time(db: Db) {
    let mut scenario = Scenario::new(db, "none");
    let command = ["sh", "-c", r#"echo "start $$" >> "$OUT"; sleep 0.2; echo "end $$" >> "$OUT""#];
    for _ in 0..20 {
        let cmd = scenario.lock(&["--record", "none"], &command);
        scenario.spawn(cmd);
    }
    let codes = scenario.wait_all();
    assert!(codes.iter().all(|&code| code == 0), "exit codes {codes:?}\n{}", scenario.all_logs());
    let runs: Vec<String> = scenario.lines().into_iter().filter(|line| !line.starts_with("exited")).collect();
    assert_eq!(runs.len(), 40, "all 20 ran: {runs:?}");
    // Never two at once: every start is followed by the end of the same run.
    for pair in runs.chunks(2) {
        let start = pair[0].strip_prefix("start ");
        let end = pair[1].strip_prefix("end ");
        assert!(start.is_some() && start == end, "overlapping runs: {runs:?}");
    }
    assert_eq!(scenario.db.records(&scenario.name, "v1"), 0, "record=none writes nothing");
}

fn leader_killed(db: Db) {
    let mut scenario = Scenario::new(db, "killed");
    // The command waits for a go-file, so the leader is surely mid-command when killed.
    let command =
        ["sh", "-c", r#"echo "start $$" >> "$OUT"; while [ ! -e go ]; do sleep 0.05; done; echo "end $$" >> "$OUT""#];
    let leader_cmd = scenario.lock(&["--key", "v1"], &command);
    let leader = scenario.spawn_direct(leader_cmd);
    wait_until("the leader's command to start", || !scenario.lines().is_empty());
    let leader_child: u32 = scenario.lines()[0].trim_start_matches("start ").parse().unwrap();
    for _ in 0..5 {
        let cmd = scenario.lock(&["--key", "v1"], &command);
        scenario.spawn(cmd);
    }
    wait_until("the followers to wait for the lock", || {
        (1..=5).all(|index| scenario.events(index).iter().any(|event| event == "waiting"))
    });
    scenario.processes[leader].child.kill().unwrap(); // SIGKILL
    scenario.wait(leader);
    wait_until("the leader's child to die with it", || !alive(leader_child));
    fs::write(scenario.dir.path().join("go"), "").unwrap();
    let codes: Vec<i32> = (1..=5).map(|index| scenario.wait(index).code().unwrap_or(-1)).collect();
    assert!(codes.iter().all(|&code| code == 0), "{codes:?}\n{}", scenario.all_logs());
    let lines = scenario.lines();
    assert_eq!(positions(&lines, "start").len(), 2, "the leader and one follower ran: {lines:?}");
    let ends = positions(&lines, "end");
    assert_eq!(ends.len(), 1, "{lines:?}");
    assert_ne!(lines[ends[0]], format!("end {leader_child}"), "the killed leader's command went on: {lines:?}");
    assert_eq!(scenario.db.records(&scenario.name, "v1"), 1);
}

fn failing_command_retries(db: Db) {
    let mut scenario = Scenario::new(db, "fails");
    let command = ["sh", "-c", r#"echo "run" >> "$OUT"; exit 3"#];
    for attempt in 1..=2 {
        let cmd = scenario.lock(&["--key", "v1"], &command);
        let index = scenario.spawn(cmd);
        assert_eq!(scenario.wait(index).code(), Some(3), "{}", scenario.all_logs());
        assert_eq!(positions(&scenario.lines(), "run").len(), attempt, "the next run retries");
        assert_eq!(scenario.db.records(&scenario.name, "v1"), 0, "no done-record for a failure");
    }
    assert!(scenario.events(0).iter().any(|event| event == "failed"));
}

fn database_not_up_yet(kind: Kind) {
    let port = Throwaway::free_port();
    let db = Db { kind, url: Throwaway::url(kind, port) };
    let mut scenario = Scenario::new(db, "late");
    for _ in 0..3 {
        let cmd = scenario.lock(&["--key", "v1", "--connect-timeout", "110s"], APPEND_AND_SLEEP);
        scenario.spawn(cmd);
    }
    wait_until("every process to retry the connection", || {
        (0..3).all(|index| scenario.events(index).iter().any(|event| event == "connecting"))
    });
    let _server = Throwaway::start(kind, port);
    let codes = scenario.wait_all();
    assert!(codes.iter().all(|&code| code == 0), "{codes:?}\n{}", scenario.all_logs());
    assert_eq!(positions(&scenario.lines(), "start").len(), 1, "{:?}", scenario.lines());
    assert_eq!(scenario.db.records(&scenario.name, "v1"), 1);
}

/// Kills the lock's session from the server side while the command runs.
fn connection_killed(db: Db) {
    let mut scenario = Scenario::new(db.clone(), "lost");
    let command = ["sh", "-c", r#"echo "start $$" >> "$OUT"; sleep 20; echo "end $$" >> "$OUT""#];
    let mut cmd = scenario.lock(&["--key", "v1"], &command);
    cmd.env("KUBE_ONCE_NAMESPACE", "test").env("KUBE_ONCE_DEPLOYMENT", &scenario.name);
    let index = scenario.spawn_direct(cmd);
    wait_until("the command to start", || !scenario.lines().is_empty());
    let child: u32 = scenario.lines()[0].trim_start_matches("start ").parse().unwrap();
    match db.kind {
        Kind::Postgres => db.execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'test/{}/%'",
            scenario.name
        )),
        _ => {
            let holder =
                db.scalar(&format!("SELECT IS_USED_LOCK('{}')", mysql_lock_name(&db.database(), &scenario.name)));
            db.execute(&format!("KILL {holder}"));
        }
    }
    assert_eq!(scenario.wait(index).code(), Some(70), "{}", scenario.all_logs());
    assert!(!alive(child), "the command was stopped");
    assert!(scenario.events(index).iter().any(|event| event == "lost"), "{}", scenario.all_logs());
    assert!(positions(&scenario.lines(), "end").is_empty());
    assert_eq!(db.records(&scenario.name, "v1"), 0);
}

/// Another session holds the lock for the whole timeout.
fn timeout_names_holder(db: Db) {
    let mut scenario = Scenario::new(db.clone(), "timeout");
    let holder_name = format!("holder-{}", scenario.name);
    let runtime = runtime();
    // Hold the lock from a session of our own; its name must show up in the log.
    let _held = runtime.block_on(async {
        match db.kind {
            Kind::Postgres => {
                let url = format!("{}?application_name={holder_name}", db.url);
                let client = databases::pg(&url).await;
                client.execute("SELECT pg_advisory_lock($1)", &[&advisory_key(&scenario.name)]).await.unwrap();
                Box::new(client) as Box<dyn std::any::Any>
            }
            _ => {
                use mysql_async::prelude::Queryable;
                let mut conn = mysql_async::Conn::from_url(&db.url).await.unwrap();
                let got: Option<i64> = conn
                    .query_first(format!("SELECT GET_LOCK('{}', 0)", mysql_lock_name(&db.database(), &scenario.name)))
                    .await
                    .unwrap();
                assert_eq!(got, Some(1));
                Box::new(conn) as Box<dyn std::any::Any>
            }
        }
    });
    let holder_id = match db.kind {
        Kind::Postgres => holder_name.clone(),
        _ => format!(
            "connection {}",
            db.scalar(&format!("SELECT IS_USED_LOCK('{}')", mysql_lock_name(&db.database(), &scenario.name)))
        ),
    };
    let cmd = scenario.lock(&["--key", "v1", "--timeout", "2s"], APPEND_AND_SLEEP);
    let index = scenario.spawn(cmd);
    assert_eq!(scenario.wait(index).code(), Some(75), "{}", scenario.all_logs());
    let log = scenario.stderr(index);
    let timeout_line = log.lines().find(|line| line.contains(r#""event":"timeout""#)).unwrap_or_default();
    assert!(timeout_line.contains(&holder_id), "the log names the holder `{holder_id}`:\n{log}");
    assert!(positions(&scenario.lines(), "start").is_empty(), "the command did not run");
}

fn new_key_runs_again(db: Db) {
    let mut scenario = Scenario::new(db, "rekey");
    let command = ["sh", "-c", r#"echo "run" >> "$OUT""#];
    for (image, runs) in [("app:1", 1), ("app:1", 1), ("app:2", 2)] {
        let cmd = scenario.lock(&["--image", image], &command);
        let index = scenario.spawn(cmd);
        assert_eq!(scenario.wait(index).code(), Some(0), "{}", scenario.all_logs());
        assert_eq!(positions(&scenario.lines(), "run").len(), runs, "after image {image}");
    }
    let command: Vec<String> = command.iter().map(|arg| arg.to_string()).collect();
    assert_eq!(scenario.db.records(&scenario.name, &default_key("app:1", &command)), 1);
    assert_eq!(scenario.db.records(&scenario.name, &default_key("app:2", &command)), 1);
}

// ---- PostgreSQL ----

#[test]
fn postgres_twenty_processes_run_the_command_once() {
    exactly_once(Db::postgres(), 20);
}

#[test]
fn postgres_record_none_runs_every_pod_one_at_a_time() {
    record_none_runs_all_one_at_a_time(Db::postgres());
}

#[test]
fn postgres_killed_leader_takes_its_child_and_a_follower_runs() {
    leader_killed(Db::postgres());
}

#[test]
fn postgres_failed_command_writes_no_record_and_retries() {
    failing_command_retries(Db::postgres());
}

#[test]
fn postgres_waits_for_a_database_that_starts_late() {
    database_not_up_yet(Kind::Postgres);
}

#[test]
fn postgres_lost_connection_stops_the_command_with_exit_70() {
    connection_killed(Db::postgres());
}

#[test]
fn postgres_timeout_exits_75_naming_the_holder() {
    timeout_names_holder(Db::postgres());
}

#[test]
fn postgres_new_image_runs_again() {
    new_key_runs_again(Db::postgres());
}

/// `CREATE INDEX CONCURRENTLY` waits for every older snapshot: followers
/// blocked inside `pg_advisory_lock` would hold one forever.
#[test]
fn postgres_create_index_concurrently_under_the_lock_completes() {
    let db = Db::postgres();
    let mut scenario = Scenario::new(db.clone(), "cic");
    let table = format!("{}_data", scenario.name);
    db.execute(&format!("CREATE TABLE {table} (id int)"));
    let sql = format!("CREATE INDEX CONCURRENTLY {table}_idx ON {table} (id)");
    let script =
        format!(r#"sleep 0.5; psql -v ON_ERROR_STOP=1 -q "$MIGRATE_URL" -c "{sql}" && echo "migrated" >> "$OUT""#);
    for _ in 0..5 {
        let mut cmd = scenario.lock(&["--key", "v1"], &["sh", "-c", &script]);
        cmd.env("MIGRATE_URL", &db.url);
        scenario.spawn(cmd);
    }
    let codes = scenario.wait_all();
    assert!(codes.iter().all(|&code| code == 0), "{codes:?}\n{}", scenario.all_logs());
    assert_eq!(positions(&scenario.lines(), "migrated").len(), 1);
    let valid = db.scalar(&format!(
        "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = '{table}_idx' AND i.indisvalid"
    ));
    assert_eq!(valid, 1, "the index was built");
    db.execute(&format!("DROP TABLE {table}"));
}

/// The PgBouncer set-up: the lock on a direct URL, the records through the app's URL.
#[test]
fn postgres_separate_lock_url() {
    let db = Db::postgres();
    let mut scenario = Scenario::new(db.clone(), "lockurl");
    let direct = db.url.replacen("postgres://", "postgresql+psycopg2://", 1);
    for _ in 0..5 {
        let mut cmd = scenario.lock(&["--key", "v1", "--lock-url-env", "DIRECT_URL"], APPEND_AND_SLEEP);
        cmd.env("DIRECT_URL", &direct);
        scenario.spawn(cmd);
    }
    let codes = scenario.wait_all();
    assert!(codes.iter().all(|&code| code == 0), "{codes:?}\n{}", scenario.all_logs());
    assert_eq!(positions(&scenario.lines(), "start").len(), 1);
    assert_eq!(db.records(&scenario.name, "v1"), 1);
}

#[test]
fn unreachable_database_exits_69_after_the_deadline() {
    let db = Db { kind: Kind::Postgres, url: Throwaway::url(Kind::Postgres, Throwaway::free_port()) };
    let mut scenario = Scenario::new(db, "unreachable");
    let cmd = scenario.lock(&["--connect-timeout", "1s"], &["true"]);
    let index = scenario.spawn(cmd);
    assert_eq!(scenario.wait(index).code(), Some(69), "{}", scenario.all_logs());
    let events = scenario.events(index);
    assert!(events.iter().filter(|event| *event == "connecting").count() >= 2, "a line per attempt: {events:?}");
    assert_eq!(events.last().map(String::as_str), Some("unreachable"));
}

// ---- PostgreSQL over TLS (sslmode) ----
// The server rejects TCP connections without TLS, so a run that succeeds
// proves the lock's connection was encrypted. The test itself never connects
// (its own client speaks plain text): the output file is the evidence.

const RUN: &[&str] = &["sh", "-c", r#"echo "run" >> "$OUT""#];

/// A throwaway PostgreSQL accepting only TLS over TCP, with a fresh CA and a
/// certificate for 127.0.0.1 (an IP SAN) and localhost.
fn tls_only_postgres() -> (Throwaway, CertBundle) {
    let certs = generate(&["localhost".into(), "127.0.0.1".into()], Duration::from_secs(3600)).unwrap();
    (Throwaway::start_postgres_tls_only(Throwaway::free_port(), &certs), certs)
}

fn tls_url(server: &Throwaway, query: &str) -> String {
    format!("{}?{query}", Throwaway::url(Kind::Postgres, server.port))
}

/// Runs the lock once against `url` with a short connect deadline (every
/// failure here is immediate, retried until the deadline); returns its exit code.
fn run_against(scenario: &mut Scenario, url: &str) -> (usize, Option<i32>) {
    let mut cmd = scenario.lock(&["--key", "v1", "--connect-timeout", "2s"], RUN);
    cmd.env("DATABASE_URL", url);
    let index = scenario.spawn(cmd);
    (index, scenario.wait(index).code())
}

/// The `unreachable` log line of process `index` (the reason it gave up).
fn unreachable_line(scenario: &Scenario, index: usize) -> String {
    let log = scenario.stderr(index);
    let line = log.lines().find(|line| line.contains(r#""event":"unreachable""#));
    line.unwrap_or_else(|| panic!("no `unreachable` line in:\n{log}")).to_string()
}

#[test]
fn postgres_sslmode_require_connects_over_tls() {
    let (server, _certs) = tls_only_postgres();
    let url = tls_url(&server, "sslmode=require");
    let mut scenario = Scenario::new(Db { kind: Kind::Postgres, url: url.clone() }, "tlsrequire");
    let (index, code) = run_against(&mut scenario, &url);
    assert_eq!(code, Some(0), "{}", scenario.all_logs());
    assert_eq!(positions(&scenario.lines(), "run").len(), 1, "{:?}", scenario.lines());
    assert!(scenario.events(index).iter().any(|event| event == "ran"), "{}", scenario.all_logs());
}

#[test]
fn postgres_sslmode_verify_full_trusts_only_sslrootcert() {
    let (server, certs) = tls_only_postgres();
    let mut scenario = Scenario::new(Db { kind: Kind::Postgres, url: tls_url(&server, "") }, "tlsverify");
    let ca = scenario.dir.path().join("ca.crt");
    fs::write(&ca, &certs.ca_pem).unwrap();
    let other_ca = scenario.dir.path().join("other-ca.crt");
    fs::write(&other_ca, generate(&["localhost".into()], Duration::from_secs(3600)).unwrap().ca_pem).unwrap();

    // Another CA first: nothing may run, and the log must say why.
    for mode in ["verify-full", "verify-ca"] {
        let (index, code) = run_against(
            &mut scenario,
            &tls_url(&server, &format!("sslmode={mode}&sslrootcert={}", other_ca.display())),
        );
        assert_eq!(code, Some(69), "{mode} with another CA: {}", scenario.all_logs());
        let reason = unreachable_line(&scenario, index);
        assert!(reason.contains("invalid peer certificate"), "{mode}: the log names the certificate error: {reason}");
    }
    assert!(scenario.lines().iter().all(|line| line != "run"), "nothing ran: {:?}", scenario.lines());

    let (_, code) =
        run_against(&mut scenario, &tls_url(&server, &format!("sslmode=verify-full&sslrootcert={}", ca.display())));
    assert_eq!(code, Some(0), "verify-full with the server's CA: {}", scenario.all_logs());
    assert_eq!(positions(&scenario.lines(), "run").len(), 1, "{:?}", scenario.lines());
}

#[test]
fn postgres_sslmode_disable_against_a_tls_only_server_exits_69_with_the_reason() {
    let (server, _certs) = tls_only_postgres();
    let url = tls_url(&server, "sslmode=disable");
    let mut scenario = Scenario::new(Db { kind: Kind::Postgres, url: url.clone() }, "tlsdisable");
    let (index, code) = run_against(&mut scenario, &url);
    assert_eq!(code, Some(69), "{}", scenario.all_logs());
    let reason = unreachable_line(&scenario, index);
    // The server's own words, passed through.
    assert!(reason.contains("pg_hba.conf rejects connection"), "{reason}");
    assert!(scenario.lines().iter().all(|line| line != "run"), "nothing ran: {:?}", scenario.lines());
}

// ---- MySQL / MariaDB ----

#[test]
fn mysql_twenty_processes_run_the_command_once() {
    exactly_once(Db::mysql(), 20);
}

#[test]
fn mysql_record_none_runs_every_pod_one_at_a_time() {
    record_none_runs_all_one_at_a_time(Db::mysql());
}

#[test]
fn mysql_killed_leader_takes_its_child_and_a_follower_runs() {
    leader_killed(Db::mysql());
}

#[test]
fn mysql_failed_command_writes_no_record_and_retries() {
    failing_command_retries(Db::mysql());
}

#[test]
fn mysql_waits_for_a_database_that_starts_late() {
    database_not_up_yet(Kind::MySql);
}

#[test]
fn mysql_lost_connection_stops_the_command_with_exit_70() {
    connection_killed(Db::mysql());
}

#[test]
fn mysql_timeout_exits_75_naming_the_holder() {
    timeout_names_holder(Db::mysql());
}

#[test]
fn mysql_new_image_runs_again() {
    new_key_runs_again(Db::mysql());
}

// ---- SQLite ----

#[test]
fn sqlite_twenty_processes_run_the_command_once() {
    let dir = tempfile::tempdir().unwrap();
    exactly_once(Db::sqlite(&dir.path().join("app.db")), 20);
}

#[test]
fn unknown_scheme_is_a_usage_error() {
    let scenario = Scenario::new(Db { kind: Kind::Sqlite, url: "mongodb://db/app".into() }, "usage");
    let output = scenario.lock(&[], &["true"]).output().unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("mongodb://") && stderr.contains("postgresql+psycopg2://"), "{stderr}");
}

#[test]
fn install_copies_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let status = std::process::Command::new(support::pod_binary()).arg("install").arg(dir.path()).status().unwrap();
        assert!(status.success());
    }
    let installed = dir.path().join("kube-once");
    assert_eq!(fs::read(&installed).unwrap(), fs::read(support::pod_binary()).unwrap());
    let output = std::process::Command::new(&installed).arg("--version").output().unwrap();
    assert!(output.status.success());
}
