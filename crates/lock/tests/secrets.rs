//! No URL part that may hold a password reaches an error or a log line.
//! Generated URLs carry a marker inside a password written the way secret
//! generators write them (unescaped `/`, `?`, `#`, `@`, `:`, stray `%`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube_once_core::annotations::{DatabaseUrlError, check_database_url, redact_database_url};
use kube_once_lock::url::{Server, Target};
use kube_once_lock::{LockOptions, plan, run_with_env};
use proptest::prelude::*;

/// Starts with a letter that is no hex digit, so no `%` before it makes an escape.
const MARKER: &str = "ZqMarker9";

fn schemes() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "postgresql",
        "postgres",
        "postgresql+psycopg2",
        "pgsql",
        "postgis",
        "mysql",
        "mysql+pymysql",
        "mysql2",
        "trilogy",
        "mariadb",
    ])
}

/// Printable ASCII, the URL delimiters included, but no `$(`: around the
/// marker it would make `$(ZqMarker9)`, a Kubernetes env reference, which
/// the webhook rightly does not take for a literal password.
fn noise() -> impl Strategy<Value = String> {
    "[ -~]{0,10}".prop_map(|noise| noise.replace("$(", "$_("))
}

prop_compose! {
    fn secret_url()(
        scheme in schemes(),
        user in "[a-z][a-z0-9_]{0,7}",
        before in noise(),
        after in noise(),
        host in prop::sample::select(vec!["127.0.0.1", "db.example", "[::1]"]),
        port in prop::option::of(1u16..),
        database in "[a-z]{1,8}",
        query in prop::sample::select(vec!["", "?sslmode=disable", "?charset=utf8mb4&connect_timeout=3"]),
    ) -> String {
        let port = port.map(|port| format!(":{port}")).unwrap_or_default();
        format!("{scheme}://{user}:{before}{MARKER}{after}@{host}{port}/{database}{query}")
    }
}

/// The forms without a scheme and the JDBC ones, the password written raw,
/// as a generator or a careless hand leaves it.
fn in_form(form: usize, password: &str, port: u16) -> String {
    let quoted = password.replace('\\', "\\\\").replace('\'', "\\'");
    match form {
        0 => format!("jdbc:postgresql://127.0.0.1:{port}/app?user=app&password={password}&ssl=true"),
        1 => format!("jdbc:mysql://127.0.0.1:{port}/app?user=app&password={password}"),
        2 => format!("app:{password}@tcp(127.0.0.1:{port})/app?parseTime=true"),
        3 => format!("host=127.0.0.1 port={port} user=app password='{quoted}' dbname=app"),
        _ => format!("host=127.0.0.1 port={port} user=app password={password} dbname=app"),
    }
}

const FORMS: usize = 5;

prop_compose! {
    fn secret_in_any_form()(form in 0..FORMS, before in noise(), after in noise(), port in 1u16..) -> String {
        in_form(form, &format!("{before}{MARKER}{after}"), port)
    }
}

fn options() -> LockOptions {
    LockOptions { connect_timeout: Duration::ZERO, ..LockOptions::new(vec!["true".into()]) }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The plan's errors and its debug form never hold the marker, and a
    /// URL that parses has the whole password where it belongs.
    #[test]
    fn the_plan_never_shows_the_password(url in secret_url()) {
        let planned = plan(&options(), |var| (var == "DATABASE_URL").then(|| url.clone()));
        match planned {
            Ok(plan) => {
                let shown = format!("{plan:?}");
                prop_assert!(!shown.contains(MARKER), "{shown}");
                let (Target::Postgres(server) | Target::MySql(server)) = &plan.target else { panic!("{url}") };
                prop_assert!(server.password.as_deref().is_some_and(|password| password.contains(MARKER)), "{url}");
                prop_assert!(!server.to_string().contains(MARKER));
            }
            Err(problem) => {
                let shown = format!("{problem} {problem:?}");
                let shown = format!("{shown} {:#}", anyhow::Error::new(problem));
                prop_assert!(!shown.contains(MARKER), "{url}: {shown}");
            }
        }
    }
}

/// What `lock` takes for a password, the webhook's `database-url` check
/// takes for a literal password too, and the refusal never shows it.
fn webhook_agrees(url: &str) -> Result<(), TestCaseError> {
    let lock_password = match kube_once_lock::url::parse(url) {
        Ok(Target::Postgres(server) | Target::MySql(server)) => server.password,
        _ => None,
    };
    let checked = check_database_url(url);
    if lock_password.is_some_and(|password| password.contains(MARKER)) {
        prop_assert_eq!(&checked, &Err(DatabaseUrlError::LiteralPassword), "{}", url);
    }
    if checked.is_err() {
        let shown = format!("{:?} {:?}", checked, redact_database_url(url));
        prop_assert!(!shown.contains(MARKER), "{}: {}", url, shown);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_form_keeps_the_password_out_of_errors_and_debug(url in prop_oneof![secret_url(), secret_in_any_form()]) {
        match plan(&options(), |var| (var == "DATABASE_URL").then(|| url.clone())) {
            Ok(plan) => prop_assert!(!format!("{plan:?}").contains(MARKER), "{}", url),
            Err(problem) => {
                let shown = format!("{problem} {problem:?}");
                let shown = format!("{shown} {:#}", anyhow::Error::new(problem));
                prop_assert!(!shown.contains(MARKER), "{}: {}", url, shown);
            }
        }
        webhook_agrees(&url)?;
    }
}

/// A case the generator found: a Go DSN whose password starts with `//`
/// reads like a URL of scheme `app` with the password as its user name.
/// The `@tcp(` address makes it a DSN for `lock` and the webhook alike.
#[test]
fn a_go_dsn_whose_password_starts_like_a_url_is_still_a_dsn() {
    let url = format!("app://{MARKER}@tcp(127.0.0.1:1)/app?parseTime=true");
    let Ok(Target::MySql(server)) = kube_once_lock::url::parse(&url) else { panic!("{url} is a Go DSN") };
    assert_eq!(server.user.as_deref(), Some("app"));
    assert_eq!(server.password.as_deref(), Some(format!("//{MARKER}").as_str()));
    assert_eq!(redact_database_url(&url).as_deref(), Some("app:***@tcp(127.0.0.1:1)/app?parseTime=true"));
    webhook_agrees(&url).unwrap();
}

/// A writer the log lines of one test go to.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `lock` against `url` (nothing listens there) and returns its exit code and log.
fn run_logged(url: &str) -> (ExitCode, String, String) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let url = url.to_string();
    let dir = tempfile::tempdir().unwrap();
    let message = dir.path().join("termination-log");
    let options = LockOptions { termination_log: Some(message.clone()), ..options() };
    let code = tracing::subscriber::with_default(subscriber, || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(run_with_env(options, |var| (var == "DATABASE_URL").then(|| url.clone())))
    });
    let log = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    (code, log, std::fs::read_to_string(&message).unwrap_or_default())
}

/// A local port nobody listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Every log line of a `lock` that cannot connect (or refuses the URL).
    #[test]
    fn the_log_never_shows_the_password(
        scheme in schemes(),
        before in noise(),
        after in noise(),
        query in prop::sample::select(vec!["", "?sslmode=disable", "?sslmode=bogus", "?charset=utf8mb4"]),
        form in 0..FORMS * 2,
    ) {
        let port = closed_port();
        let url = match form {
            // Half the cases in a scheme's URL, the others in the other forms.
            form if form < FORMS => in_form(form, &format!("{before}{MARKER}{after}"), port),
            _ => format!("{scheme}://app:{before}{MARKER}{after}@127.0.0.1:{port}/app{query}"),
        };
        let (code, log, message) = run_logged(&url);
        prop_assert!(code == ExitCode::from(69) || code == ExitCode::from(64), "{url}: {code:?}\n{log}");
        prop_assert!(!log.is_empty(), "{url}: no log");
        prop_assert!(!log.contains(MARKER), "{url}:\n{log}");
        prop_assert!(!message.is_empty(), "{url}: no termination message");
        prop_assert!(!message.contains(MARKER), "{url}: termination message {message}");
    }
}

/// The server's own display (host, port, database), used in every connection error.
#[test]
fn server_display_and_debug_hide_the_password() {
    let url = format!("postgresql://app:a/b?c#d@e{MARKER}@db:5432/app");
    let Ok(Target::Postgres(server)) = kube_once_lock::url::parse(&url) else { panic!("{url}") };
    let server: Server = server;
    assert_eq!(server.password.as_deref(), Some(format!("a/b?c#d@e{MARKER}").as_str()));
    assert!(!format!("{server} {server:?}").contains(MARKER));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// What the command prints goes into the termination message and the
    /// attempts table through the plan's redactor: a migration that prints
    /// its URL, or the password alone (raw or percent-encoded), shows neither.
    #[test]
    fn the_commands_output_is_redacted(url in prop_oneof![secret_url(), secret_in_any_form()]) {
        let Ok(plan) = plan(&options(), |var| (var == "DATABASE_URL").then(|| url.clone())) else { return Ok(()) };
        let (Target::Postgres(server) | Target::MySql(server)) = &plan.target else { return Ok(()) };
        let password = server.password.clone().unwrap_or_default();
        prop_assume!(password.contains(MARKER));
        let encoded = percent_encoding::utf8_percent_encode(&password, percent_encoding::NON_ALPHANUMERIC).to_string();
        let output = format!("connecting to {url}\nFATAL: password {password} (or {encoded}) refused\n");
        let shown = plan.redactor.redact(&output);
        prop_assert!(!shown.contains(MARKER), "{}: {}", url, shown);
    }
}
