//! Database URLs as apps and frameworks keep them, parsed into a backend and
//! its connection parameters: URLs (SQLAlchemy, Django, Rails, twelve-factor
//! `DATABASE_URL`), JDBC URLs (Spring, Flyway), the Go MySQL driver's DSN and
//! libpq's keyword/value string. Pure: no I/O, so every form is unit-tested.

use std::fmt;
use std::path::PathBuf;

use percent_encoding::percent_decode_str;

/// The forms we accept, in the order the usage message lists them.
pub const ACCEPTED_FORMS: &[&str] = &[
    "postgres://",
    "postgresql://",
    "postgresql+psycopg2://",
    "postgresql+psycopg://",
    "postgresql+asyncpg://",
    "postgresql+pg8000://",
    "pgsql://",
    "postgis://",
    "jdbc:postgresql://",
    "host=… port=… user=… dbname=… (libpq keyword/value)",
    "mysql://",
    "mysql+pymysql://",
    "mysql+mysqldb://",
    "mysql+mysqlconnector://",
    "mysql+asyncmy://",
    "mysql+aiomysql://",
    "mysql2://",
    "trilogy://",
    "mariadb://",
    "mariadb+pymysql://",
    "mariadb+mariadbconnector://",
    "jdbc:mysql://",
    "jdbc:mariadb://",
    "user:pass@tcp(host:3306)/db and user:pass@unix(/path/mysqld.sock)/db (Go MySQL driver)",
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
    /// Unused parameters after a `password` parameter: counted, never named,
    /// since an unescaped `&` in the password makes its tail look like one.
    pub ignored_unnamed: usize,
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
            .field("ignored_unnamed", &self.ignored_unnamed)
            .finish()
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Tcp(host) if host.contains(':') => write!(f, "[{host}]")?,
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

/// libpq's `sslmode` levels, weakest first; MySQL's `ssl-mode` values map onto them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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
    #[error("the database URL is in no form kube-once knows (expected e.g. postgresql://user:pass@host/db); accepted: {accepted}", accepted = ACCEPTED_FORMS.join(", "))]
    NoScheme,
    /// Only a plain scheme (letters, digits, `+ . -`) is ever quoted here.
    #[error("the database URL scheme `{0}://` is not supported; accepted: {accepted}", accepted = ACCEPTED_FORMS.join(", "))]
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
    /// libpq and JDBC accept `host1,host2` to try in turn; a lock must be
    /// taken on the one primary, which kube-once cannot pick.
    #[error(
        "the database URL names several hosts (separated by `,`); name the primary alone, since the lock must be taken where the writes go"
    )]
    SeveralHosts,
    #[error("the database URL names no host; write e.g. {0}")]
    NoHost(&'static str),
    /// Only which part; its text may hold the password of a mangled URL.
    #[error(
        "the database URL has a bad percent-escape in its {0}: write `%` as %25 and every escape as % and two hex digits"
    )]
    BadEscape(Part),
    /// The value is not quoted (it might be a misplaced secret).
    #[error("the database URL parameter `{name}` has a value that is not known; use one of {accepted}")]
    BadParameter { name: String, accepted: &'static str },
    /// Neither the text nor its position is quoted: it is most likely the
    /// tail of a password that holds an unescaped `&`.
    #[error(
        "the database URL's query has a part without `=` after its `password` parameter; if the password holds `&`, `#` or `+`, percent-encode them (%26, %23, %2B)"
    )]
    PasswordTail,
    #[error(
        "the connection string (keyword=value form) has a word without `=`; write keyword=value pairs and quote values that hold spaces: password='…' (with \\' for a quote and \\\\ for a backslash inside)"
    )]
    KeywordWithoutValue,
    #[error(
        "the connection string (keyword=value form) has a quoted value without its closing `'`; write \\' for a quote inside a value"
    )]
    UnterminatedQuote,
    #[error(
        "the Go MySQL DSN is malformed; write user:pass@tcp(host:3306)/db?params or user:pass@unix(/path/mysqld.sock)/db"
    )]
    BadDsn,
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
    // Spring and Flyway write `jdbc:` before an otherwise ordinary URL.
    if let Some(rest) = strip_prefix_ignore_case(url, "jdbc:")
        && let Some((scheme, after)) = rest.split_once("://")
    {
        let scheme = scheme.to_ascii_lowercase();
        return match scheme.as_str() {
            "postgresql" => Ok(Target::Postgres(parse_server(after, Dialect::Postgres)?)),
            "mysql" | "mariadb" => Ok(Target::MySql(parse_server(after, Dialect::MySql)?)),
            _ if is_plain_scheme(&scheme) => Err(UrlError::UnknownScheme(format!("jdbc:{scheme}"))),
            _ => Err(UrlError::NoScheme),
        };
    }
    if let Some((scheme, rest)) = url.split_once("://")
        && is_plain_scheme(scheme)
    {
        let scheme = scheme.to_ascii_lowercase();
        // SQLAlchemy writes `dialect+driver://`; the driver does not matter to us.
        let dialect = scheme.split('+').next().unwrap_or_default();
        return match dialect {
            "postgres" | "postgresql" | "pgsql" | "postgis" => {
                Ok(Target::Postgres(parse_server(rest, Dialect::Postgres)?))
            }
            "mysql" | "mysql2" | "trilogy" | "mariadb" => Ok(Target::MySql(parse_server(rest, Dialect::MySql)?)),
            "sqlite" => parse_sqlite(rest),
            // No URL host holds `(`: with a Go DSN's address (`@tcp(`) this
            // is that driver's form, its password starting with `//`
            // (`app://pw@tcp(db)/app`: user `app`, password `//pw`).
            _ if GoDsn::has_address(url) => match GoDsn::split(url) {
                Some(dsn) => Ok(Target::MySql(dsn.server()?)),
                None => Err(UrlError::UnknownScheme(scheme)),
            },
            _ => Err(UrlError::UnknownScheme(scheme)),
        };
    }
    if starts_with_keyword(url) {
        return Ok(Target::Postgres(parse_keywords(url)?));
    }
    if let Some(dsn) = GoDsn::split(url) {
        return Ok(Target::MySql(dsn.server()?));
    }
    Err(UrlError::NoScheme)
}

/// A scheme as RFC 3986 writes it; anything else before `://` (a password
/// holding `://` in a DSN) is never quoted back.
fn is_plain_scheme(scheme: &str) -> bool {
    scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'))
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}

#[derive(Clone, Copy)]
enum Dialect {
    Postgres,
    MySql,
}

impl Dialect {
    fn example(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgresql://user:pass@db.example:5432/app",
            Dialect::MySql => "mysql://user:pass@db.example:3306/app",
        }
    }

    fn server(self) -> Server {
        Server {
            host: Host::Tcp(String::new()),
            port: None,
            user: None,
            password: None,
            database: None,
            tls: match self {
                Dialect::Postgres => TlsMode::Prefer,
                Dialect::MySql => TlsMode::Disable,
            },
            root_cert: None,
            ignored: Vec::new(),
            ignored_unnamed: 0,
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
    let mut server = dialect.server();
    if let Some(info) = userinfo {
        let (user, password) = match info.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (info, None),
        };
        server.user = non_empty(percent_decode_lenient(user));
        server.password = password.map(percent_decode_lenient);
    }
    if hostport.contains(',') {
        return Err(UrlError::SeveralHosts);
    }
    let (host, port) = split_host_port(hostport)?;
    server.host = authority_host(host, hostport.starts_with('['))?;
    server.port = port;
    server.database = path.map(|path| percent_decode(path, Part::Database)).transpose()?.and_then(non_empty);
    apply_query(&mut server, dialect, query.unwrap_or_default())?;
    if matches!(&server.host, Host::Tcp(host) if host.is_empty()) {
        return Err(UrlError::NoHost(dialect.example()));
    }
    Ok(server)
}

/// `name=value&...`. The `password` value is decoded leniently like the
/// userinfo's. A password holding an unescaped `&` leaks its tail into the
/// following parts, so after `password` a part without `=` is refused and
/// unknown names are counted, never named.
fn apply_query(server: &mut Server, dialect: Dialect, query: &str) -> Result<(), UrlError> {
    let mut after_password = false;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let Some((name, value)) = pair.split_once('=') else {
            if after_password {
                return Err(UrlError::PasswordTail);
            }
            if let Ok(name) = percent_decode(pair, Part::Query) {
                server.ignored.push(name);
            }
            continue;
        };
        let Ok(name) = percent_decode(name, Part::Query) else {
            if after_password {
                return Err(UrlError::PasswordTail);
            }
            return Err(UrlError::BadEscape(Part::Query));
        };
        if name == "password" {
            after_password = true;
            server.password = Some(percent_decode_lenient(value));
            continue;
        }
        let value = percent_decode(value, Part::Query)?;
        if !apply_parameter(server, dialect, &name, &value)? {
            if after_password {
                server.ignored_unnamed += 1;
            } else {
                server.ignored.push(name);
            }
        }
    }
    Ok(())
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
    check_host(host, bracketed)
}

fn check_host(host: String, bracketed: bool) -> Result<Host, UrlError> {
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
        && !has_password_parameter(userinfo)
    {
        return (Some(userinfo), after);
    }
    // `user@host/db?sslrootcert=/a@b`: no password, an `@` further on.
    match rest.split_once('@') {
        Some((userinfo, after)) if !userinfo.contains(['/', '?', '#']) => (Some(userinfo), after),
        _ => (None, rest),
    }
}

/// Whether `text` has a query with a `password` parameter: then the last
/// `@` is in that password (JDBC's `?user=app&password=p@ss`), not the end of
/// a userinfo that would make the host the password's tail.
fn has_password_parameter(text: &str) -> bool {
    text.split_once('?').is_some_and(|(_, query)| query.split('&').any(|pair| pair.starts_with("password=")))
}

fn truthy(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "on" | "yes" => Some(true),
        "false" | "0" | "off" | "no" => Some(false),
        _ => None,
    }
}

/// Applies one known parameter; `Ok(false)` when the name is not one we use.
/// MySQL's names are matched without regard to case (Connector/J writes
/// `sslMode`, `useSSL`), PostgreSQL's exactly, as libpq does.
fn apply_parameter(server: &mut Server, dialect: Dialect, name: &str, value: &str) -> Result<bool, UrlError> {
    let bad = |accepted| UrlError::BadParameter { name: name.to_string(), accepted };
    let flag = |accepted| truthy(value).ok_or_else(|| bad(accepted));
    let lower = name.to_ascii_lowercase();
    match dialect {
        Dialect::Postgres => match name {
            "sslmode" => {
                server.tls = match value {
                    "disable" | "allow" => TlsMode::Disable,
                    "prefer" => TlsMode::Prefer,
                    "require" => TlsMode::Require,
                    "verify-ca" => TlsMode::VerifyCa,
                    "verify-full" => TlsMode::VerifyFull,
                    _ => return Err(bad("disable, allow, prefer, require, verify-ca, verify-full")),
                }
            }
            // pgjdbc: `ssl=true` without an sslmode means verify-full.
            "ssl" => {
                server.tls = match flag("true, false")? {
                    true if server.tls == TlsMode::Prefer => TlsMode::VerifyFull,
                    true => server.tls,
                    false => TlsMode::Disable,
                }
            }
            "sslrootcert" => server.root_cert = Some(PathBuf::from(value)),
            "host" | "hostaddr" => server.host = host_or_socket(value)?,
            "port" => server.port = Some(parse_port(value)?),
            "user" => server.user = non_empty(value.to_string()),
            "password" => server.password = Some(value.to_string()),
            "dbname" => server.database = non_empty(value.to_string()),
            _ => return Ok(false),
        },
        Dialect::MySql => match lower.as_str() {
            "ssl-mode" | "ssl_mode" | "sslmode" => {
                server.tls = match value.to_ascii_uppercase().replace('-', "_").as_str() {
                    "DISABLED" | "DISABLE" => TlsMode::Disable,
                    "PREFERRED" | "PREFER" => TlsMode::Prefer,
                    // `trust` is MariaDB Connector/J's name for "encrypt, do not verify".
                    "REQUIRED" | "REQUIRE" | "TRUST" => TlsMode::Require,
                    "VERIFY_CA" => TlsMode::VerifyCa,
                    "VERIFY_IDENTITY" | "VERIFY_FULL" => TlsMode::VerifyFull,
                    _ => return Err(bad("DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY")),
                }
            }
            "ssl" | "require_secure_transport" => {
                server.tls = if flag("true, false")? { TlsMode::VerifyFull } else { TlsMode::Disable }
            }
            // Connector/J's older flags, each raising the level it names.
            "usessl" => {
                server.tls = if flag("true, false")? { server.tls.max(TlsMode::Prefer) } else { TlsMode::Disable }
            }
            "requiressl" if flag("true, false")? => server.tls = server.tls.max(TlsMode::Require),
            "verifyservercertificate" if flag("true, false")? => server.tls = server.tls.max(TlsMode::VerifyCa),
            "requiressl" | "verifyservercertificate" => {}
            // The Go driver's `tls`; a name registered in Go code means nothing here.
            "tls" => {
                server.tls = match value.to_ascii_lowercase().as_str() {
                    "true" => TlsMode::VerifyFull,
                    "skip-verify" => TlsMode::Require,
                    "preferred" => TlsMode::Prefer,
                    "false" => TlsMode::Disable,
                    _ => return Err(bad("true, false, skip-verify, preferred (with ssl-ca=/path/ca.pem for a CA)")),
                }
            }
            "ssl_ca" | "ssl-ca" | "sslca" | "serversslcert" => {
                server.root_cert = Some(PathBuf::from(value));
                // A CA given without a mode means "verify with it" (pymysql, mysqlclient).
                if server.tls == TlsMode::Disable {
                    server.tls = TlsMode::VerifyCa;
                }
            }
            "unix_socket" | "socket" => server.host = host_or_socket(value)?,
            "port" => server.port = Some(parse_port(value)?),
            "user" => server.user = non_empty(value.to_string()),
            "password" => server.password = Some(value.to_string()),
            "database" | "db" => server.database = non_empty(value.to_string()),
            _ => return Ok(false),
        },
    }
    Ok(true)
}

fn host_or_socket(value: &str) -> Result<Host, UrlError> {
    if value.contains(',') {
        return Err(UrlError::SeveralHosts);
    }
    if value.starts_with('/') {
        return Ok(Host::Socket(PathBuf::from(value)));
    }
    let bracketed = value.starts_with('[') && value.ends_with(']');
    let inner = if bracketed { &value[1..value.len() - 1] } else { value };
    check_host(inner.to_string(), bracketed || inner.contains(':'))
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

/// libpq's keyword/value form starts with a keyword and `=`.
fn starts_with_keyword(text: &str) -> bool {
    let keyword_end = text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(text.len());
    keyword_end > 0 && text[keyword_end..].trim_start().starts_with('=')
}

/// `host=db port=5432 user=app password='a b\'c' dbname=app sslmode=verify-full`:
/// values are bare words or single-quoted, and a backslash takes the next
/// character literally in both (libpq's `conninfo_parse`).
fn parse_keywords(text: &str) -> Result<Server, UrlError> {
    let mut server = Dialect::Postgres.server();
    let mut chars = text.chars().peekable();
    let mut after_password = false;
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut keyword = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=') {
            keyword.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next_if_eq(&'=').is_none() {
            return Err(UrlError::KeywordWithoutValue);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => return Err(UrlError::UnterminatedQuote),
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        if keyword == "password" {
            after_password = true;
        }
        if !apply_parameter(&mut server, Dialect::Postgres, &keyword, &value)? {
            if after_password || !keyword.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                server.ignored_unnamed += 1;
            } else {
                server.ignored.push(keyword);
            }
        }
    }
    if matches!(&server.host, Host::Tcp(host) if host.is_empty()) {
        return Err(UrlError::NoHost("host=db.example port=5432 user=app dbname=app"));
    }
    Ok(server)
}

/// The Go MySQL driver's `[user[:password]@][net[(addr)]]/dbname[?params]`.
/// Its passwords are taken as written (the driver unescapes nothing there),
/// so the userinfo ends at the `@` before the network.
struct GoDsn<'a> {
    userinfo: Option<&'a str>,
    net: &'a str,
    addr: &'a str,
    database: &'a str,
    query: &'a str,
}

impl<'a> GoDsn<'a> {
    const NETS: [&'static str; 4] = ["tcp", "tcp4", "tcp6", "unix"];

    /// Whether `text` has a DSN's `@net(` address.
    fn has_address(text: &str) -> bool {
        Self::NETS.iter().any(|net| text.contains(&format!("@{net}(")))
    }

    /// The DSN's parts, or `None` when `text` is not one.
    fn split(text: &'a str) -> Option<GoDsn<'a>> {
        // The address: the last `net(` ... `)/` in the text; a password may hold `(`.
        let (userinfo, rest) = match Self::NETS
            .iter()
            .filter_map(|net| text.rfind(&format!("@{net}(")))
            .max()
            .or_else(|| text.rfind("@/"))
        {
            Some(at) => (Some(&text[..at]), &text[at + 1..]),
            None if Self::NETS.iter().any(|net| text.starts_with(&format!("{net}("))) || text.starts_with('/') => {
                (None, text)
            }
            None => return None,
        };
        let (net, addr, after) = match rest.split_once('(') {
            Some((net, after)) if Self::NETS.contains(&net) => {
                let close = after.rfind(")/")?;
                (net, &after[..close], &after[close + 1..])
            }
            _ => ("tcp", "", rest),
        };
        let after = after.strip_prefix('/')?;
        let (database, query) = after.split_once('?').unwrap_or((after, ""));
        Some(GoDsn { userinfo, net, addr, database, query })
    }

    fn server(&self) -> Result<Server, UrlError> {
        let mut server = Dialect::MySql.server();
        if let Some(info) = self.userinfo {
            let (user, password) = match info.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (info, None),
            };
            server.user = non_empty(user.to_string());
            server.password = password.map(str::to_string);
        }
        match (self.net, self.addr) {
            ("unix", "") => return Err(UrlError::BadDsn),
            ("unix", path) => server.host = Host::Socket(PathBuf::from(path)),
            // The driver's default address.
            (_, "") => (server.host, server.port) = (Host::Tcp("127.0.0.1".into()), Some(3306)),
            (_, addr) => {
                let (host, port) = split_host_port(addr)?;
                server.host = check_host(host.to_string(), addr.starts_with('['))?;
                server.port = port;
            }
        }
        server.database = non_empty(percent_decode(self.database, Part::Database)?);
        apply_query(&mut server, Dialect::MySql, self.query)?;
        Ok(server)
    }
}

/// Database names and query parameters: every `%` must start an escape.
fn percent_decode(text: &str, part: Part) -> Result<String, UrlError> {
    let bytes = text.as_bytes();
    let well_formed = bytes
        .iter()
        .enumerate()
        .filter(|(_, byte)| **byte == b'%')
        .all(|(at, _)| bytes.get(at + 1..at + 3).is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)));
    if !well_formed {
        return Err(UrlError::BadEscape(part));
    }
    percent_decode_str(text).decode_utf8().map(|text| text.into_owned()).map_err(|_| UrlError::BadEscape(part))
}

/// User names and passwords: a `%` not followed by two hex digits is kept as
/// it is (what SQLAlchemy's `unquote` does, and the crate's own rule), and
/// text that does not decode to UTF-8 is kept escaped, so a password never
/// makes the URL an error.
fn percent_decode_lenient(text: &str) -> String {
    percent_decode_str(text).decode_utf8().map(|text| text.into_owned()).unwrap_or_else(|_| text.to_string())
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

    #[test]
    fn framework_schemes_map_to_their_backend() {
        for url in ["pgsql://app:pw@db:5432/shop", "postgis://app:pw@db:5432/shop", "PostGIS://app:pw@db:5432/shop"] {
            let Ok(Target::Postgres(s)) = parse(url) else { unreachable!("{url}") };
            assert_eq!((s.host, s.port, s.database.as_deref()), (Host::Tcp("db".into()), Some(5432), Some("shop")));
            assert_eq!(s.password.as_deref(), Some("pw"), "{url}");
        }
        for url in ["mysql2://app:pw@db:3306/shop?encoding=utf8mb4", "trilogy://app:pw@db:3306/shop?encoding=utf8mb4"] {
            let Ok(Target::MySql(s)) = parse(url) else { unreachable!("{url}") };
            assert_eq!((s.host, s.port, s.database.as_deref()), (Host::Tcp("db".into()), Some(3306), Some("shop")));
            assert_eq!((s.password.as_deref(), s.ignored), (Some("pw"), vec!["encoding".to_string()]), "{url}");
        }
    }

    #[test]
    fn jdbc_urls_with_user_and_password_as_parameters() {
        let Ok(Target::Postgres(s)) =
            parse("jdbc:postgresql://db.example:5433/shop?user=app&password=p%26w&ssl=true&sslrootcert=/ca.pem")
        else {
            unreachable!()
        };
        assert_eq!((s.host, s.port), (Host::Tcp("db.example".into()), Some(5433)));
        assert_eq!((s.user.as_deref(), s.password.as_deref()), (Some("app"), Some("p&w")));
        assert_eq!((s.tls, s.root_cert), (TlsMode::VerifyFull, Some(PathBuf::from("/ca.pem"))));
        let s = server("jdbc:postgresql://db/shop?sslmode=require&ssl=true");
        assert_eq!(s.tls, TlsMode::Require, "an explicit sslmode stands");
        let Ok(Target::MySql(s)) =
            parse("JDBC:mysql://[::1]:3307/shop?user=app&password=pw&sslMode=VERIFY_IDENTITY&serverTimezone=UTC")
        else {
            unreachable!()
        };
        assert_eq!((s.host, s.port, s.tls), (Host::Tcp("::1".into()), Some(3307), TlsMode::VerifyFull));
        assert_eq!((s.ignored.len(), s.ignored_unnamed), (0, 1), "after the password: counted, not named");
        assert_eq!(server("jdbc:mysql://db/shop?useSSL=true&requireSSL=true").tls, TlsMode::Require);
        assert_eq!(server("jdbc:mysql://db/shop?useSSL=false").tls, TlsMode::Disable);
        assert_eq!(server("jdbc:mariadb://db/shop?sslMode=trust").tls, TlsMode::Require);
        assert_eq!(parse("jdbc:sqlserver://db/shop"), Err(UrlError::UnknownScheme("jdbc:sqlserver".into())));
    }

    #[test]
    fn go_mysql_dsn() {
        let s = server("app:p@ss:w/rd(1)@tcp(db.example:3307)/shop?tls=skip-verify&parseTime=true");
        assert_eq!((s.user.as_deref(), s.password.as_deref()), (Some("app"), Some("p@ss:w/rd(1)")));
        assert_eq!((s.host, s.port, s.database.as_deref()), (Host::Tcp("db.example".into()), Some(3307), Some("shop")));
        assert_eq!((s.tls, s.ignored), (TlsMode::Require, vec!["parseTime".to_string()]));
        // Go does not unescape passwords: `%41` stays as written.
        assert_eq!(server("app:%41@tcp(db)/shop").password.as_deref(), Some("%41"));
        let s = server("app:pw@unix(/run/mysqld/mysqld.sock)/shop");
        assert_eq!(s.host, Host::Socket("/run/mysqld/mysqld.sock".into()));
        let s = server("root@tcp([fe80::1%25eth0]:3306)/shop?tls=true&ssl-ca=/ca.pem");
        assert_eq!((s.host, s.tls), (Host::Tcp("fe80::1%25eth0".into()), TlsMode::VerifyFull));
        let s = server("app:pw@/shop");
        assert_eq!((s.host, s.port), (Host::Tcp("127.0.0.1".into()), Some(3306)));
        assert_eq!(server("tcp(db:3306)/shop").user, None);
        assert!(matches!(parse("app:pw@tcp(db)/shop?tls=custom"), Err(UrlError::BadParameter { .. })));
        assert_eq!(parse("app:pw@unix()/shop"), Err(UrlError::BadDsn));
        assert_eq!(parse("app:pw@tcp(db:x)/shop"), Err(UrlError::BadPort));
    }

    #[test]
    fn libpq_keyword_value_strings() {
        let s = server(r"host=db.example port = 5433 user=app password='a b\'c\\d' dbname=shop sslmode=verify-full");
        assert_eq!((s.host, s.port, s.database.as_deref()), (Host::Tcp("db.example".into()), Some(5433), Some("shop")));
        assert_eq!((s.user.as_deref(), s.password.as_deref()), (Some("app"), Some(r"a b'c\d")));
        assert_eq!(s.tls, TlsMode::VerifyFull);
        assert_eq!(server(r"host=db password=x\ y\'z dbname=d").password.as_deref(), Some("x y'z"));
        assert_eq!(server("host=db password='' dbname=d").password.as_deref(), Some(""));
        assert_eq!(server("host=/var/run/postgresql dbname=d").host, Host::Socket("/var/run/postgresql".into()));
        assert_eq!(server("hostaddr=::1 dbname=d").host, Host::Tcp("::1".into()));
        let s = server("host=db dbname=d application_name=web connect_timeout=3 sslrootcert=/ca.pem");
        assert_eq!(s.ignored, vec!["application_name".to_string(), "connect_timeout".to_string()]);
        assert_eq!(s.root_cert, Some(PathBuf::from("/ca.pem")));
        assert_eq!(parse("host=db password=two words dbname=d"), Err(UrlError::KeywordWithoutValue));
        assert_eq!(parse("host=db password='open"), Err(UrlError::UnterminatedQuote));
        assert_eq!(parse("host=db1,db2 dbname=d"), Err(UrlError::SeveralHosts));
        assert_eq!(parse("jdbc:postgresql://db1:5432,db2:5432/d"), Err(UrlError::SeveralHosts));
        assert_eq!(parse("postgresql://u:p,w@db1,db2/d"), Err(UrlError::SeveralHosts));
        assert_eq!(server("postgresql://u:p,w@db/d").password.as_deref(), Some("p,w"));
        assert!(matches!(parse("dbname=d"), Err(UrlError::NoHost(_))));
        // A tail of an unquoted password that looks like a keyword is counted, not named.
        let s = server("host=db password=a tail=b dbname=d");
        assert_eq!((s.ignored.len(), s.ignored_unnamed), (0, 1));
    }

    #[test]
    fn an_unescaped_ampersand_in_a_password_parameter_is_never_named() {
        let s = server("postgresql://db/shop?user=app&password=pw&S3cretTail=x&sslmode=require");
        assert_eq!((s.password.as_deref(), s.tls), (Some("pw"), TlsMode::Require));
        assert!(s.ignored.is_empty(), "{:?}", s.ignored);
        assert_eq!(s.ignored_unnamed, 1);
        assert!(!format!("{s:?} {s}").contains("S3cretTail"));
        for url in ["postgresql://db/shop?password=pw&S3cretTail", "jdbc:mysql://db/shop?password=pw&S3cret&user=app"] {
            let error = parse(url).err();
            assert_eq!(error, Some(UrlError::PasswordTail), "{url}");
            let shown = error.map(|e| format!("{e} {e:?}")).unwrap_or_default();
            assert!(!shown.contains("S3cret"), "{url}: {shown}");
        }
        // An `@` in a password parameter does not end a userinfo.
        let s = server("jdbc:mysql://127.0.0.1:1/app?user=app&password=p@S3cret");
        assert_eq!((s.host, s.password.as_deref()), (Host::Tcp("127.0.0.1".into()), Some("p@S3cret")));
        // Before the password, unknown names are driver options and are named.
        let s = server("postgresql://db/shop?charset=utf8&password=pw");
        assert_eq!((s.ignored, s.ignored_unnamed), (vec!["charset".to_string()], 0));
    }

    #[test]
    fn percent_decoding_is_strict_where_it_must_be_and_lenient_for_passwords() {
        assert_eq!(server("postgresql://app:%E2%82%AC%zz%@db/sh%C3%B6p").password.as_deref(), Some("€%zz%"));
        assert_eq!(server("postgresql://app:%E2%82%AC%zz%@db/sh%C3%B6p").database.as_deref(), Some("shöp"));
        // Not UTF-8 once decoded: the password stays as written.
        assert_eq!(server("postgresql://app:%FF%41@db/d").password.as_deref(), Some("%FF%41"));
        assert_eq!(parse("postgresql://db/d%FF"), Err(UrlError::BadEscape(Part::Database)));
        assert_eq!(parse("postgresql://db/d%4"), Err(UrlError::BadEscape(Part::Database)));
        assert_eq!(server("postgresql://app:p%2B%26%3D@db/d?password=q%26r").password.as_deref(), Some("q&r"));
    }

    #[test]
    fn every_form_hides_the_password_from_debug_and_display() {
        for url in [
            "postgresql://app:S3cretPW@db/d",
            "jdbc:postgresql://db/d?password=S3cretPW",
            "jdbc:mysql://db/d?user=app&password=S3cretPW",
            "app:S3cretPW@tcp(db:3306)/d",
            "host=db password='S3cretPW' dbname=d",
            "mysql2://app:S3cretPW@[::1]/d",
        ] {
            let target = parse(url);
            let shown = format!("{target:?}");
            assert!(shown.contains("***") && !shown.contains("S3cretPW"), "{url}: {shown}");
            let (Ok(Target::Postgres(s)) | Ok(Target::MySql(s))) = target else { unreachable!("{url}") };
            assert!(!s.to_string().contains("S3cretPW"), "{url}");
        }
    }

    #[test]
    fn forms_that_are_none_of_ours_list_every_accepted_form() {
        for text in ["db.example:5432", "app:pw@db.example/app", "S3cret://app:pw@db/x"] {
            let error = parse(text).err().map(|e| e.to_string()).unwrap_or_default();
            for form in [
                "pgsql://",
                "postgis://",
                "jdbc:postgresql://",
                "mysql2://",
                "trilogy://",
                "jdbc:mysql://",
                "@tcp(",
                "host=…",
            ] {
                assert!(error.contains(form), "{text}: {error}");
            }
        }
    }
}
