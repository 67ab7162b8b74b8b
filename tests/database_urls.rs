//! Database URLs as frameworks write them, through the real pod binary
//! against the real servers of scripts/test.sh: each form runs the command
//! once and records it. A TLS setting that cannot work (a CA that did not
//! sign the server's certificate, a CA file that is not there) exits 64 at
//! once, naming the parameter, instead of being retried as "unreachable".

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::fs;
use std::time::{Duration, Instant};

use kube_once_lock::url::{self, Host, Server, Target};
use kube_once_server::certs::{CertBundle, generate};
use support::databases::{Db, Kind, Scenario, Throwaway};

/// Appends `run` to the scenario's output file.
const RUN: &[&str] = &["sh", "-c", r#"echo "run" >> "$OUT""#];

/// A password with every URL delimiter, for the forms that must carry it
/// (MariaDB checks it, and so does a PostgreSQL started with SCRAM; the
/// suite's own PostgreSQL trusts every connection).
const PASSWORD: &str = "p@ss:w/rd?#&=+";

/// Host, port and database of a test server, from its URL.
fn parts(db: &Db) -> (String, u16, String) {
    let (Ok(Target::Postgres(server)) | Ok(Target::MySql(server))) = url::parse(&db.url) else {
        panic!("not a server URL: {}", db.url)
    };
    let Server { host: Host::Tcp(host), port, database, .. } = server else { panic!("not over TCP: {}", db.url) };
    let port = port.unwrap_or(if db.kind == Kind::Postgres { 5432 } else { 3306 });
    (host, port, database.unwrap_or_default())
}

/// Percent-encodes everything but letters and digits.
fn encoded(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// Runs `lock --key v1` with `DATABASE_URL=url` and returns process index and exit code.
fn run_with(scenario: &mut Scenario, url: &str, connect_timeout: &str) -> (usize, Option<i32>) {
    let mut cmd = scenario.lock(&["--key", "v1", "--connect-timeout", connect_timeout], RUN);
    cmd.env("DATABASE_URL", url);
    let index = scenario.spawn(cmd);
    (index, scenario.wait(index).code())
}

/// `url` runs the command once and writes the done-record, in the database `db` names.
fn assert_runs(db: &Db, test: &str, url: &str) {
    let mut scenario = Scenario::new(db.clone(), test);
    let (index, code) = run_with(&mut scenario, url, "30s");
    assert_eq!(code, Some(0), "{url}:\n{}", scenario.all_logs());
    assert_eq!(scenario.lines().iter().filter(|line| *line == "run").count(), 1, "{url}: {:?}", scenario.lines());
    assert!(scenario.events(index).iter().any(|event| event == "ran"), "{url}:\n{}", scenario.all_logs());
    assert_eq!(scenario.db.records(&scenario.name, "v1"), 1, "{url}: one done-record");
}

#[test]
fn postgres_forms_of_frameworks_run_the_command() {
    let db = Db::postgres();
    let (host, port, database) = parts(&db);
    let forms = [
        ("pgsql", format!("pgsql://postgres@{host}:{port}/{database}")),
        ("postgis", format!("postgis://postgres@{host}:{port}/{database}?sslmode=prefer")),
        (
            "jdbc",
            format!("jdbc:postgresql://{host}:{port}/{database}?user=postgres&password=x%26y&ApplicationName=web"),
        ),
        (
            "keywords",
            format!("host={host} port={port} user=postgres password='it\\'s x' dbname='{database}' sslmode=disable"),
        ),
    ];
    for (test, url) in forms {
        assert_runs(&db, test, &url);
    }
}

#[test]
fn mysql_forms_of_frameworks_run_the_command_with_a_password_full_of_delimiters() {
    let db = Db::mysql();
    let (host, port, database) = parts(&db);
    let user = format!("ko_urls_{}", std::process::id());
    let sql_password = PASSWORD.replace('\'', "''");
    for from in ["%", "localhost", "127.0.0.1"] {
        db.execute(&format!(
            "CREATE USER IF NOT EXISTS '{user}'@'{from}' IDENTIFIED BY '{sql_password}'; \
             GRANT ALL PRIVILEGES ON `{database}`.* TO '{user}'@'{from}'"
        ));
    }
    let forms = [
        // Rails: unescaped, the userinfo ends at the last `@`.
        ("mysql2", format!("mysql2://{user}:{PASSWORD}@{host}:{port}/{database}?encoding=utf8mb4&pool=5")),
        ("trilogy", format!("trilogy://{user}:{}@{host}:{port}/{database}", encoded(PASSWORD))),
        (
            "jdbc",
            format!(
                "jdbc:mysql://{host}:{port}/{database}?user={user}&password={}&useSSL=false&serverTimezone=UTC",
                encoded(PASSWORD)
            ),
        ),
        // Go: the password as written, never unescaped.
        ("godsn", format!("{user}:{PASSWORD}@tcp({host}:{port})/{database}?parseTime=true&tls=false")),
    ];
    for (test, url) in forms {
        assert_runs(&db, test, &url);
    }
    // The password counts: a wrong one is refused by the server.
    let mut scenario = Scenario::new(db.clone(), "wrongpw");
    let wrong = format!("{user}:not-{PASSWORD}@tcp({host}:{port})/{database}");
    let (index, code) = run_with(&mut scenario, &wrong, "1s");
    assert_eq!(code, Some(69), "{}", scenario.all_logs());
    let log = scenario.stderr(index);
    assert!(log.contains("Access denied") && log.contains("refused the user name or password"), "{log}");
    for from in ["%", "localhost", "127.0.0.1"] {
        db.execute(&format!("DROP USER IF EXISTS '{user}'@'{from}'"));
    }
}

/// PostgreSQL with SCRAM over TCP: each form carries the password to the
/// server, and a refused password never appears in what the pod prints.
#[test]
fn postgres_forms_carry_a_password_full_of_delimiters_and_a_refusal_never_repeats_it() {
    let user = "ko_urls";
    let server = Throwaway::start_postgres_with_password(support::net::free_port(), user, PASSWORD);
    let port = server.port;
    let db = Db { kind: Kind::Postgres, url: format!("postgres://{user}:{}@127.0.0.1:{port}/test", encoded(PASSWORD)) };
    let quoted = |password: &str| format!("'{}'", password.replace('\\', "\\\\").replace('\'', "\\'"));
    let forms = [
        ("escaped", db.url.clone()),
        // As secret stores write it: the userinfo ends at the last `@`.
        ("unescaped", format!("postgresql://{user}:{PASSWORD}@127.0.0.1:{port}/test?sslmode=disable")),
        ("jdbc", format!("jdbc:postgresql://127.0.0.1:{port}/test?user={user}&password={}", encoded(PASSWORD))),
        ("keywords", format!("host=127.0.0.1 port={port} user={user} password={} dbname=test", quoted(PASSWORD))),
    ];
    for (test, url) in forms {
        assert_runs(&db, test, &url);
    }

    let wrong = format!("not-{PASSWORD}");
    let mut scenario = Scenario::new(db.clone(), "pgwrongpw");
    for url in [
        format!("postgresql://{user}:{wrong}@127.0.0.1:{port}/test"),
        format!("host=127.0.0.1 port={port} user={user} password={} dbname=test", quoted(&wrong)),
    ] {
        let (index, code) = run_with(&mut scenario, &url, "1s");
        let log = scenario.stderr(index);
        assert_eq!(code, Some(69), "{log}");
        assert!(log.contains("password authentication failed"), "says why: {log}");
        assert!(log.contains("refused the user name or password: check them"), "says what to fix: {log}");
        for secret in [wrong.as_str(), PASSWORD, &encoded(PASSWORD), "p@ss"] {
            assert!(!log.contains(secret), "`{secret}` repeated:\n{log}");
        }
    }
    assert!(!scenario.lines().iter().any(|line| line == "run"), "nothing ran: {:?}", scenario.lines());
}

// ---- TLS: PostgreSQL accepting only TLS over TCP ----

fn tls_only_postgres() -> (Throwaway, CertBundle) {
    let certs = generate(&["localhost".into(), "127.0.0.1".into()], Duration::from_secs(3600)).unwrap();
    (Throwaway::start_postgres_tls_only(support::net::free_port(), &certs), certs)
}

/// The JDBC and keyword/value forms verify the server with their CA
/// parameter; the keyword form reaches the Unix socket too.
#[test]
fn tls_variants_of_the_jdbc_and_keyword_forms_verify_with_the_given_ca() {
    let (server, certs) = tls_only_postgres();
    let db = Db { kind: Kind::Postgres, url: String::new() };
    let mut scenario = Scenario::new(db, "tlsforms");
    let ca = scenario.dir.path().join("ca.crt");
    fs::write(&ca, &certs.ca_pem).unwrap();
    let port = server.port;
    for url in [
        format!("jdbc:postgresql://127.0.0.1:{port}/test?user=postgres&ssl=true&sslrootcert={}", ca.display()),
        format!(
            "host=127.0.0.1 port={port} user=postgres dbname=test sslmode=verify-full sslrootcert='{}'",
            ca.display()
        ),
        format!("postgis://postgres@localhost:{port}/test?sslmode=verify-full&sslrootcert={}", ca.display()),
        // The keyword form's Unix socket directory (the server allows it without TLS).
        format!("host={} port={port} user=postgres dbname=test sslmode=disable", server.socket().display()),
    ] {
        let runs = |scenario: &Scenario| scenario.lines().iter().filter(|line| *line == "run").count();
        let before = runs(&scenario);
        let mut cmd = scenario.lock(&["--connect-timeout", "30s", "--record", "none"], RUN);
        cmd.env("DATABASE_URL", &url);
        let index = scenario.spawn(cmd);
        assert_eq!(scenario.wait(index).code(), Some(0), "{url}:\n{}", scenario.stderr(index));
        assert_eq!(runs(&scenario), before + 1, "{url}: ran once");
    }
}

/// A CA that did not sign the server's certificate: exit 64 at once (the
/// connect deadline is 5 minutes), no retry, the parameter named.
#[test]
fn a_wrong_ca_is_a_configuration_error_within_seconds() {
    let (server, _certs) = tls_only_postgres();
    let db = Db { kind: Kind::Postgres, url: String::new() };
    let mut scenario = Scenario::new(db, "tlswrongca");
    let other_ca = scenario.dir.path().join("other-ca.crt");
    fs::write(&other_ca, generate(&["localhost".into()], Duration::from_secs(3600)).unwrap().ca_pem).unwrap();
    let port = server.port;
    for url in [
        format!("postgresql://postgres@127.0.0.1:{port}/test?sslmode=verify-full&sslrootcert={}", other_ca.display()),
        format!("postgresql://postgres@127.0.0.1:{port}/test?sslmode=verify-ca&sslrootcert={}", other_ca.display()),
        format!("jdbc:postgresql://127.0.0.1:{port}/test?user=postgres&ssl=true&sslrootcert={}", other_ca.display()),
        // No CA given: the built-in Mozilla roots do not know this one either.
        format!("host=127.0.0.1 port={port} user=postgres dbname=test sslmode=verify-full"),
    ] {
        let started = Instant::now();
        let (index, code) = run_with(&mut scenario, &url, "5m");
        let took = started.elapsed();
        let log = scenario.stderr(index);
        assert_eq!(code, Some(64), "{url}:\n{log}");
        assert!(took < Duration::from_secs(30), "{url}: took {took:?}, retried?\n{log}");
        let events = scenario.events(index);
        assert!(!events.iter().any(|event| event == "connecting"), "{url}: retried: {events:?}");
        let line = log.lines().find(|line| line.contains(r#""event":"config""#)).unwrap_or_else(|| panic!("{log}"));
        assert!(line.contains("sslrootcert") && line.contains("not trusted"), "{url}: names the parameter: {line}");
    }
    assert!(!scenario.lines().iter().any(|line| line == "run"), "nothing ran: {:?}", scenario.lines());
}

/// A CA file that is not there fails before any connection, on both backends.
#[test]
fn a_missing_ca_file_is_a_configuration_error_before_connecting() {
    let db = Db { kind: Kind::Postgres, url: String::new() };
    let mut scenario = Scenario::new(db, "noca");
    let port = support::net::free_port();
    for (url, parameter) in [
        (
            format!("postgresql://app@127.0.0.1:{port}/app?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"),
            "sslrootcert",
        ),
        (format!("app:pw@tcp(127.0.0.1:{port})/app?ssl-ca=/nonexistent/ca.pem"), "ssl-ca"),
    ] {
        let (index, code) = run_with(&mut scenario, &url, "5m");
        let log = scenario.stderr(index);
        assert_eq!(code, Some(64), "{url}:\n{log}");
        assert!(log.contains(&format!("{parameter}=/nonexistent/ca.pem")), "{url}: {log}");
        assert!(!scenario.events(index).iter().any(|event| event == "connecting"), "{url}: {log}");
    }
}

/// `history` and `forget` read the same URL as `lock`: a CA that did not
/// sign the server's certificate, or a CA file that is not there, is the
/// same configuration error, exit 64 at once naming the parameter, not 69
/// ("unreachable").
#[test]
fn history_and_forget_report_a_tls_configuration_error_as_lock_does() {
    let (server, _certs) = tls_only_postgres();
    let dir = tempfile::tempdir().unwrap();
    let other_ca = dir.path().join("other-ca.crt");
    fs::write(&other_ca, generate(&["localhost".into()], Duration::from_secs(3600)).unwrap().ca_pem).unwrap();
    let port = server.port;
    let wrong_ca =
        format!("postgresql://postgres@127.0.0.1:{port}/test?sslmode=verify-full&sslrootcert={}", other_ca.display());
    let missing_ca =
        format!("postgresql://postgres@127.0.0.1:{port}/test?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem");
    for (url, says) in [(&wrong_ca, "not trusted"), (&missing_ca, "/nonexistent/ca.pem")] {
        for args in [&["history"][..], &["forget", "--key", "k", "--yes"][..]] {
            let started = Instant::now();
            let output = std::process::Command::new(support::pod_binary())
                .args(args)
                .env("DATABASE_URL", url)
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(64), "{args:?} {url}:\n{stderr}");
            assert!(
                stderr.contains("sslrootcert") && stderr.contains(says),
                "{args:?} {url}: names the parameter: {stderr}"
            );
            assert!(started.elapsed() < Duration::from_secs(30), "{args:?} {url}: took {:?}", started.elapsed());
        }
    }
}

/// MariaDB offering TLS: the framework forms verify with their CA parameter,
/// and another CA is a configuration error within seconds, naming `ssl-ca`.
/// The Go DSN's `unix(/path)` reaches the socket.
#[test]
fn mysql_tls_verifies_with_the_given_ca_and_a_wrong_ca_exits_64_at_once() {
    let certs = generate(&["localhost".into(), "127.0.0.1".into()], Duration::from_secs(3600)).unwrap();
    let server = Throwaway::start_mariadb_tls(support::net::free_port(), &certs);
    let db = Db { kind: Kind::MySql, url: Throwaway::url(Kind::MySql, server.port) };
    let mut scenario = Scenario::new(db, "mytls");
    let ca = scenario.dir.path().join("ca.crt");
    fs::write(&ca, &certs.ca_pem).unwrap();
    let other_ca = scenario.dir.path().join("other-ca.crt");
    fs::write(&other_ca, generate(&["localhost".into()], Duration::from_secs(3600)).unwrap().ca_pem).unwrap();
    let port = server.port;

    for url in [
        format!("root@tcp(127.0.0.1:{port})/test?ssl-mode=VERIFY_IDENTITY&ssl-ca={}", other_ca.display()),
        format!("jdbc:mysql://127.0.0.1:{port}/test?user=root&sslMode=VERIFY_CA&serverSslCert={}", other_ca.display()),
    ] {
        let started = Instant::now();
        let (index, code) = run_with(&mut scenario, &url, "5m");
        let log = scenario.stderr(index);
        assert_eq!(code, Some(64), "{url}:\n{log}");
        assert!(started.elapsed() < Duration::from_secs(30), "{url}: retried?\n{log}");
        let line = log.lines().find(|line| line.contains(r#""event":"config""#)).unwrap_or_else(|| panic!("{log}"));
        assert!(line.contains("ssl-ca") && line.contains("not trusted"), "{url}: names the parameter: {line}");
    }
    assert!(!scenario.lines().iter().any(|line| line == "run"), "nothing ran: {:?}", scenario.lines());

    for url in [
        format!("mysql2://root@127.0.0.1:{port}/test?sslmode=verify_identity&sslca={}", ca.display()),
        format!("root@tcp(127.0.0.1:{port})/test?tls=true&ssl-ca={}", ca.display()),
        // The Go driver's Unix socket form (no TLS there).
        format!("root@unix({})/test", server.socket().display()),
    ] {
        let before = scenario.lines().iter().filter(|line| *line == "run").count();
        let mut cmd = scenario.lock(&["--connect-timeout", "30s", "--record", "none"], RUN);
        cmd.env("DATABASE_URL", &url);
        let index = scenario.spawn(cmd);
        assert_eq!(scenario.wait(index).code(), Some(0), "{url}:\n{}", scenario.stderr(index));
        assert_eq!(scenario.lines().iter().filter(|line| *line == "run").count(), before + 1, "{url}: ran once");
    }
}

/// A URL that demands TLS of a server that does not offer it: exit 64 at
/// once, not five minutes of "unreachable".
#[test]
fn tls_demanded_of_a_server_without_it_exits_64_at_once() {
    let postgres = Db::postgres();
    let (pg_host, pg_port, pg_database) = parts(&postgres);
    let mysql = Db::mysql();
    let (my_host, my_port, my_database) = parts(&mysql);
    for (db, url, parameter) in [
        (
            &postgres,
            format!("postgresql://postgres@{pg_host}:{pg_port}/{pg_database}?sslmode=require"),
            "sslmode=prefer",
        ),
        (&mysql, format!("root@tcp({my_host}:{my_port})/{my_database}?ssl-mode=REQUIRED"), "ssl-mode=DISABLED"),
    ] {
        let mut scenario = Scenario::new(db.clone(), "notls");
        let started = Instant::now();
        let (index, code) = run_with(&mut scenario, &url, "5m");
        let log = scenario.stderr(index);
        assert_eq!(code, Some(64), "{url}:\n{log}");
        assert!(started.elapsed() < Duration::from_secs(30), "{url}: retried?\n{log}");
        let line = log.lines().find(|line| line.contains(r#""event":"config""#)).unwrap_or_else(|| panic!("{log}"));
        assert!(line.contains("does not offer TLS") && line.contains(parameter), "{url}: {line}");
    }
}
