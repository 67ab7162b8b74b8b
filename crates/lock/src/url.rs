//! Database URLs as apps keep them (SQLAlchemy, Django, Rails, twelve-factor
//! `DATABASE_URL`), parsed into a backend and its connection parameters.
//! Pure: no I/O, so every form is unit-tested.

use std::fmt;
use std::path::PathBuf;

/// The schemes we accept, in the order the usage message lists them.
pub const ACCEPTED_SCHEMES: &[&str] = &[
    "postgres://",
    "postgresql://",
    "postgresql+psycopg2://",
    "postgresql+psycopg://",
    "postgresql+asyncpg://",
    "postgresql+pg8000://",
    "mysql://",
    "mysql+pymysql://",
    "mysql+mysqldb://",
    "mysql+mysqlconnector://",
    "mysql+asyncmy://",
    "mysql+aiomysql://",
    "mariadb://",
    "mariadb+pymysql://",
    "mariadb+mariadbconnector://",
    "sqlite:///relative.db",
    "sqlite:////absolute.db",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Postgres(Server),
    MySql(Server),
    Sqlite(PathBuf),
}

impl Target {
    pub fn backend_name(&self) -> &'static str {
        match self {
            Target::Postgres(_) => "PostgreSQL",
            Target::MySql(_) => "MySQL/MariaDB",
            Target::Sqlite(_) => "SQLite",
        }
    }
}

/// Where a database server is and how to talk to it.
#[derive(Clone, PartialEq, Eq)]
pub struct Server {
    pub host: Host,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub database: Option<String>,
    pub tls: TlsMode,
    /// CA bundle (PEM) to verify the server with, instead of the built-in roots.
    pub root_cert: Option<PathBuf>,
    /// Query parameters we do not use (driver options such as `charset`); logged, not fatal.
    pub ignored: Vec<String>,
}

/// Never print the password, even in debug output.
impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("database", &self.database)
            .field("tls", &self.tls)
            .field("root_cert", &self.root_cert)
            .field("ignored", &self.ignored)
            .finish()
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Tcp(host) => write!(f, "{host}")?,
            Host::Socket(dir) => write!(f, "{}", dir.display())?,
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        if let Some(database) = &self.database {
            write!(f, "/{database}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Tcp(String),
    /// A Unix socket: the directory (PostgreSQL) or the socket file (MySQL).
    Socket(PathBuf),
}

/// libpq's `sslmode` levels; MySQL's `ssl-mode` values map onto them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    /// Try TLS without verification, fall back to plain text (libpq's default).
    Prefer,
    /// Encrypt, do not verify the certificate.
    Require,
    /// Verify the chain, not the host name.
    VerifyCa,
    /// Verify the chain and the host name.
    VerifyFull,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("the database URL has no scheme (expected e.g. postgresql://user:pass@host/db); accepted: {accepted}", accepted = ACCEPTED_SCHEMES.join(", "))]
    NoScheme,
    #[error("the database URL scheme `{0}://` is not supported; accepted: {accepted}", accepted = ACCEPTED_SCHEMES.join(", "))]
    UnknownScheme(String),
    /// The text is not quoted: a mangled URL may put part of the password there.
    #[error(
        "the database URL has a bad port: write a number from 1 to 65535 after the host. If the password holds `@`, `:` or `/`, percent-escape them (%40, %3A, %2F)"
    )]
    BadPort,
    #[error(
        "the database URL's host is not a host name or an IP address; if the password holds `@`, `:`, `/`, `?` or `#`, percent-escape them (%40, %3A, %2F, %3F, %23)"
    )]
    BadHost,
    #[error("the database URL names no host; write e.g. {0}://user:pass@db.example:5432/app")]
    NoHost(&'static str),
    /// Only which part; its text may hold the password of a mangled URL.
    #[error(
        "the database URL has a bad percent-escape in its {0}: write `%` as %25 and every escape as % and two hex digits"
    )]
    BadEscape(Part),
    /// The value is not quoted (it might be a misplaced secret).
    #[error("the database URL parameter `{name}` has a value that is not known; use one of {accepted}")]
    BadParameter { name: String, accepted: &'static str },
    #[error(
        "the SQLite URL names no file; write sqlite:///relative.db or sqlite:////absolute/path.db (an in-memory database cannot be shared between pods)"
    )]
    SqliteNoFile,
}

/// A part of a database URL, named in errors instead of its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Host,
    Database,
    Query,
    Path,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Host => "host",
            Part::Database => "database name",
            Part::Query => "query parameters",
            Part::Path => "file path",
        })
    }
}

pub fn parse(url: &str) -> Result<Target, UrlError> {
    let (scheme, rest) = url.split_once("://").ok_or(UrlError::NoScheme)?;
    let scheme = scheme.to_ascii_lowercase();
    // SQLAlchemy writes `dialect+driver://`; the driver does not matter to us.
    let dialect = scheme.split('+').next().unwrap_or_default();
    match dialect {
        "postgres" | "postgresql" | "pgsql" => Ok(Target::Postgres(parse_server(rest, Dialect::Postgres)?)),
        "mysql" | "mariadb" => Ok(Target::MySql(parse_server(rest, Dialect::MySql)?)),
        "sqlite" => parse_sqlite(rest),
        _ => Err(UrlError::UnknownScheme(scheme)),
    }
}

#[derive(Clone, Copy)]
enum Dialect {
    Postgres,
    MySql,
}

impl Dialect {
    fn scheme(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgresql",
            Dialect::MySql => "mysql",
        }
    }
}

/// `sqlite:///rel.db` is relative to the working directory, `sqlite:////abs.db`
/// is absolute (SQLAlchemy's convention: the third slash ends the empty host).
fn parse_sqlite(rest: &str) -> Result<Target, UrlError> {
    let path = rest.strip_prefix('/').unwrap_or(rest);
    let path = path.split('?').next().unwrap_or_default();
    let path = percent_decode(path, Part::Path)?;
    if path.is_empty() || path == ":memory:" || path == "/" {
        return Err(UrlError::SqliteNoFile);
    }
    Ok(Target::Sqlite(PathBuf::from(path)))
}

/// Splits `[userinfo@]host[:port][/database][?query]`.
///
/// Passwords come from secret stores and generators and are often not
/// percent-escaped: they may hold `/`, `?`, `#`, `:` and `@`. The user name
/// cannot hold `:`, `/`, `?`, `#` or `@` (SQLAlchemy's rule), and the host
/// part cannot hold `@`, so the userinfo ends at the LAST `@` when the text
/// before its first `:` is a plain user name. An `@` in the database name or
/// a query value (e.g. a path in `sslrootcert`) must then be written `%40`.
/// Errors never quote the parts, since a password written in an unexpected
/// form may end up in any of them.
fn parse_server(rest: &str, dialect: Dialect) -> Result<Server, UrlError> {
    let (userinfo, rest) = split_userinfo(rest);
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let (hostport, path) = match before_query.split_once('/') {
        Some((authority, path)) => (authority, Some(path)),
        None => (before_query, None),
    };
    let (user, password) = match userinfo {
        Some(info) => match info.split_once(':') {
            Some((user, password)) => (non_empty(percent_decode_lenient(user)), Some(percent_decode_lenient(password))),
            None => (non_empty(percent_decode_lenient(info)), None),
        },
        None => (None, None),
    };
    let (host, port) = split_host_port(hostport)?;
    let mut server = Server {
        host: authority_host(host, hostport.starts_with('['))?,
        port,
        user,
        password,
        database: path.map(|path| percent_decode(path, Part::Database)).transpose()?.and_then(non_empty),
        tls: match dialect {
            Dialect::Postgres => TlsMode::Prefer,
            Dialect::MySql => TlsMode::Disable,
        },
        root_cert: None,
        ignored: Vec::new(),
    };
    for pair in query.unwrap_or_default().split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(name, Part::Query)?;
        let value =
            if name == "password" { percent_decode_lenient(value) } else { percent_decode(value, Part::Query)? };
        apply_parameter(&mut server, dialect, &name, &value)?;
    }
    if matches!(&server.host, Host::Tcp(host) if host.is_empty()) {
        return Err(UrlError::NoHost(dialect.scheme()));
    }
    Ok(server)
}

/// The host of the authority: a name, an IP address, or a percent-escaped
/// socket directory (`%2Fvar%2Frun%2Fpostgresql`, as libpq writes it).
/// Anything else is refused without quoting it: a `:` or `#` there means the
/// password was split off wrong (e.g. no `@`), and the host appears in logs.
fn authority_host(host: &str, bracketed: bool) -> Result<Host, UrlError> {
    let host = percent_decode(host, Part::Host)?;
    if host.starts_with('/') {
        return Ok(Host::Socket(PathBuf::from(host)));
    }
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    // IPv6 (only in `[...]`), with an optional zone: `[fe80::1%eth0]`.
    let ipv6 = bracketed && host.chars().all(|c| plain(c) || matches!(c, ':' | '%'));
    if host.chars().all(plain) || ipv6 { Ok(Host::Tcp(host)) } else { Err(UrlError::BadHost) }
}

/// `(userinfo, the rest)`: the userinfo ends at the last `@`, provided the
/// user name before the first `:` is plain (no `/`, `?`, `#`); otherwise the
/// `@` belongs to the path or query of a URL without userinfo.
fn split_userinfo(rest: &str) -> (Option<&str>, &str) {
    if let Some((userinfo, after)) = rest.rsplit_once('@')
        && !userinfo.split(':').next().unwrap_or_default().contains(['/', '?', '#', '@'])
    {
        return (Some(userinfo), after);
    }
    // `user@host/db?sslrootcert=/a@b`: no password, an `@` further on.
    match rest.split_once('@') {
        Some((userinfo, after)) if !userinfo.contains(['/', '?', '#']) => (Some(userinfo), after),
        _ => (None, rest),
    }
}

fn apply_parameter(server: &mut Server, dialect: Dialect, name: &str, value: &str) -> Result<(), UrlError> {
    let bad = |accepted| UrlError::BadParameter { name: name.to_string(), accepted };
    match (dialect, name) {
        (Dialect::Postgres, "sslmode") => {
            server.tls = match value {
                "disable" | "allow" => TlsMode::Disable,
                "prefer" => TlsMode::Prefer,
                "require" => TlsMode::Require,
                "verify-ca" => TlsMode::VerifyCa,
                "verify-full" => TlsMode::VerifyFull,
                _ => return Err(bad("disable, allow, prefer, require, verify-ca, verify-full")),
            }
        }
        (Dialect::MySql, "ssl-mode" | "ssl_mode" | "sslmode") => {
            server.tls = match value.to_ascii_uppercase().replace('-', "_").as_str() {
                "DISABLED" | "DISABLE" => TlsMode::Disable,
                "PREFERRED" | "PREFER" => TlsMode::Prefer,
                "REQUIRED" | "REQUIRE" => TlsMode::Require,
                "VERIFY_CA" => TlsMode::VerifyCa,
                "VERIFY_IDENTITY" | "VERIFY_FULL" => TlsMode::VerifyFull,
                _ => return Err(bad("DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY")),
            }
        }
        (Dialect::MySql, "ssl" | "require_secure_transport") => {
            server.tls = match value.to_ascii_lowercase().as_str() {
                "true" | "1" | "on" | "yes" => TlsMode::VerifyFull,
                "false" | "0" | "off" | "no" => TlsMode::Disable,
                _ => return Err(bad("true, false")),
            }
        }
        (Dialect::Postgres, "sslrootcert") | (Dialect::MySql, "ssl_ca" | "ssl-ca" | "sslca") => {
            server.root_cert = Some(PathBuf::from(value));
            // A CA given without a mode means "verify with it" (pymysql, mysqlclient).
            if matches!(dialect, Dialect::MySql) && server.tls == TlsMode::Disable {
                server.tls = TlsMode::VerifyCa;
            }
        }
        (Dialect::Postgres, "host") | (Dialect::MySql, "unix_socket" | "socket") => {
            server.host =
                if value.starts_with('/') { Host::Socket(PathBuf::from(value)) } else { Host::Tcp(value.to_string()) };
        }
        (_, "port") => server.port = Some(parse_port(value)?),
        (_, "user") => server.user = non_empty(value.to_string()),
        (_, "password") => server.password = Some(value.to_string()),
        (Dialect::Postgres, "dbname") | (Dialect::MySql, "database" | "db") => {
            server.database = non_empty(value.to_string())
        }
        _ => server.ignored.push(name.to_string()),
    }
    Ok(())
}

fn split_host_port(hostport: &str) -> Result<(&str, Option<u16>), UrlError> {
    // [::1]:5432
    if let Some(inner) = hostport.strip_prefix('[') {
        return match inner.split_once(']') {
            Some((host, "")) => Ok((host, None)),
            Some((host, port)) => match port.strip_prefix(':') {
                Some(port) => Ok((host, Some(parse_port(port)?))),
                None => Err(UrlError::BadPort),
            },
            None => Err(UrlError::BadPort),
        };
    }
    match hostport.rsplit_once(':') {
        Some((host, "")) => Ok((host, None)),
        Some((host, port)) => Ok((host, Some(parse_port(port)?))),
        None => Ok((hostport, None)),
    }
}

fn parse_port(text: &str) -> Result<u16, UrlError> {
    match text.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(UrlError::BadPort),
    }
}

fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

fn percent_decode(text: &str, part: Part) -> Result<String, UrlError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            out.push(hex_byte(bytes, index + 1).ok_or(UrlError::BadEscape(part))?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UrlError::BadEscape(part))
}

/// User names and passwords: a `%` not followed by two hex digits is kept as
/// it is (what SQLAlchemy's `unquote` does), and bytes that do not decode to
/// UTF-8 are kept escaped, so a password never makes the URL an error.
fn percent_decode_lenient(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match (bytes[index], hex_byte(bytes, index + 1)) {
            (b'%', Some(byte)) => {
                out.push(byte);
                index += 3;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_string())
}

/// The byte written as two hex digits at `at`.
fn hex_byte(bytes: &[u8], at: usize) -> Option<u8> {
    let hex = std::str::from_utf8(bytes.get(at..at + 2)?).ok()?;
    if !hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(url: &str) -> Server {
        match parse(url) {
            Ok(Target::Postgres(server) | Target::MySql(server)) => server,
            other => unreachable!("{url}: {other:?}"),
        }
    }

    #[test]
    fn every_postgres_scheme_is_postgres() {
        for scheme in ["postgres", "postgresql", "postgresql+psycopg2", "postgresql+asyncpg", "POSTGRESQL"] {
            let url = format!("{scheme}://app:secret@db.example:6432/shop");
            let Ok(Target::Postgres(server)) = parse(&url) else { unreachable!("{url}") };
            assert_eq!(server.host, Host::Tcp("db.example".into()));
            assert_eq!(server.port, Some(6432));
            assert_eq!(server.user.as_deref(), Some("app"));
            assert_eq!(server.password.as_deref(), Some("secret"));
            assert_eq!(server.database.as_deref(), Some("shop"));
            assert_eq!(server.tls, TlsMode::Prefer);
        }
    }

    #[test]
    fn every_mysql_scheme_is_mysql() {
        for scheme in ["mysql", "mysql+pymysql", "mariadb", "mariadb+mariadbconnector"] {
            let url = format!("{scheme}://root@127.0.0.1/test?charset=utf8mb4");
            let Ok(Target::MySql(server)) = parse(&url) else { unreachable!("{url}") };
            assert_eq!(server.host, Host::Tcp("127.0.0.1".into()));
            assert_eq!(server.port, None);
            assert_eq!(server.password, None);
            assert_eq!(server.database.as_deref(), Some("test"));
            assert_eq!(server.ignored, vec!["charset".to_string()]);
            assert_eq!(server.tls, TlsMode::Disable);
        }
    }

    #[test]
    fn sqlite_relative_and_absolute() {
        assert_eq!(parse("sqlite:///rel.db"), Ok(Target::Sqlite("rel.db".into())));
        assert_eq!(parse("sqlite:///data/app.db"), Ok(Target::Sqlite("data/app.db".into())));
        assert_eq!(parse("sqlite:////abs.db"), Ok(Target::Sqlite("/abs.db".into())));
        assert_eq!(parse("sqlite:////var/lib/app.db?mode=rw"), Ok(Target::Sqlite("/var/lib/app.db".into())));
        assert_eq!(parse("sqlite://"), Err(UrlError::SqliteNoFile));
        assert_eq!(parse("sqlite:///:memory:"), Err(UrlError::SqliteNoFile));
    }

    #[test]
    fn unknown_scheme_lists_the_accepted_ones() {
        let error = parse("mongodb://db/app").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("`mongodb://`"), "{error}");
        assert!(error.contains("postgresql+psycopg2://") && error.contains("mariadb://"), "{error}");
        assert!(error.contains("sqlite:////absolute.db"), "{error}");
        assert_eq!(parse("db.example:5432"), Err(UrlError::NoScheme));
    }

    #[test]
    fn sslmode_and_root_cert() {
        let s = server("postgresql://u@h/d?sslmode=require");
        assert_eq!(s.tls, TlsMode::Require);
        let s = server("postgresql://u@h/d?sslmode=verify-full&sslrootcert=/etc/ca.pem");
        assert_eq!(s.tls, TlsMode::VerifyFull);
        assert_eq!(s.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        assert!(matches!(parse("postgresql://u@h/d?sslmode=bogus"), Err(UrlError::BadParameter { .. })));
        assert_eq!(server("mysql://u@h/d?ssl-mode=REQUIRED").tls, TlsMode::Require);
        assert_eq!(server("mysql://u@h/d?ssl_mode=verify_identity").tls, TlsMode::VerifyFull);
        assert_eq!(server("mysql://u@h/d?ssl_ca=/ca.pem").tls, TlsMode::VerifyCa);
    }

    #[test]
    fn escapes_sockets_and_ipv6() {
        let s = server("postgresql://app:p%40ss%3Aword@db/app");
        assert_eq!(s.password.as_deref(), Some("p@ss:word"));
        let s = server("postgresql://app:p@ss@db/app");
        assert_eq!(s.password.as_deref(), Some("p@ss"));
        assert_eq!(s.host, Host::Tcp("db".into()));
        let s = server("postgresql://app@/app?host=/var/run/postgresql");
        assert_eq!(s.host, Host::Socket("/var/run/postgresql".into()));
        let s = server("postgresql://app@%2Fvar%2Frun%2Fpostgresql/app");
        assert_eq!(s.host, Host::Socket("/var/run/postgresql".into()));
        assert_eq!(parse("postgresql://app:#x127.0.0.1:5432/app"), Err(UrlError::BadHost));
        assert_eq!(parse("postgresql://app:S3cret127.0.0.1:5432/app"), Err(UrlError::BadHost));
        let s = server("postgresql://[::1]:5433/app");
        assert_eq!((s.host, s.port), (Host::Tcp("::1".into()), Some(5433)));
        assert_eq!(parse("postgresql://h:99999/d"), Err(UrlError::BadPort));
        assert!(matches!(parse("postgresql:///d"), Err(UrlError::NoHost(_))));
        assert_eq!(parse("postgresql://h/d%zz"), Err(UrlError::BadEscape(Part::Database)));
    }

    #[test]
    fn unescaped_passwords_end_at_the_last_at_sign() {
        for password in ["S3cret/PW", "a?b", "x#y", "p@ss/w?rd#1", "a:b:c", "100%", "%zz%4", "%41", "/?#@:%"] {
            let url = format!("postgresql://app:{password}@db.example:5433/shop?sslmode=require");
            let s = server(&url);
            let expected = if password == "%41" { "A" } else { password };
            assert_eq!(s.password.as_deref(), Some(expected), "{url}");
            assert_eq!(s.user.as_deref(), Some("app"), "{url}");
            assert_eq!((s.host, s.port), (Host::Tcp("db.example".into()), Some(5433)), "{url}");
            assert_eq!(s.database.as_deref(), Some("shop"), "{url}");
            assert_eq!(s.tls, TlsMode::Require, "{url}");
        }
        // No password, an `@` further on: the first `@` ends the user.
        let s = server("postgresql://app@db/shop?sslrootcert=/etc/a@b/ca.pem");
        assert_eq!((s.user.as_deref(), s.host), (Some("app"), Host::Tcp("db".into())));
        assert_eq!(s.root_cert, Some(PathBuf::from("/etc/a@b/ca.pem")));
        // No userinfo at all, an `@` in the query.
        let s = server("postgresql://db/shop?sslrootcert=/etc/a@b/ca.pem");
        assert_eq!((s.user, s.host), (None, Host::Tcp("db".into())));
    }

    #[test]
    fn errors_never_quote_the_url() {
        for (url, error) in [
            ("postgresql://u:pw@h:S3cretPW/d", UrlError::BadPort),
            ("postgresql://h:99999/S3cretPW", UrlError::BadPort),
            ("postgresql://h/S3cretPW%zz", UrlError::BadEscape(Part::Database)),
            ("postgresql://h/d?sslmode=S3cretPW", UrlError::BadParameter { name: "sslmode".into(), accepted: "" }),
        ] {
            let parsed = parse(url);
            let text = match &parsed {
                Err(problem) => format!("{problem} {problem:?}"),
                Ok(_) => unreachable!("{url} parsed"),
            };
            assert!(!text.contains("S3cretPW"), "{url}: {text}");
            assert_eq!(
                std::mem::discriminant(&parsed.err().unwrap_or(UrlError::NoScheme)),
                std::mem::discriminant(&error)
            );
        }
    }

    #[test]
    fn password_never_printed() {
        let s = server("postgresql://app:hunter2@db:5432/app");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.to_string(), "db:5432/app");
    }
}
