//! The annotation contract: every `kube-once.io/` annotation of a Deployment,
//! parsed and validated into a typed plan. A malformed annotation is a
//! [`Refusal`] whose message names the Deployment, the annotation, its value,
//! what is wrong and how to fix it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::config::Config;
use super::kind::Kind;
use super::manifest::subject;
use super::manifest::value_at;
use super::presets::Preset;
use super::settings::{Record, check_lock_name, parse_timeout};
use super::view::{App, AppContainer, AppContainers};
use super::{PREFIX, Reason, Refusal, STATUS_ANNOTATION};

pub(crate) const RUN: &str = "run";
pub(crate) const CONTAINER: &str = "container";
pub(crate) const DATABASE_URL_ENV: &str = "database-url-env";
pub(crate) const DATABASE_URL: &str = "database-url";
pub(crate) const LOCK_URL_ENV: &str = "lock-url-env";
pub(crate) const LOCK_NAME: &str = "lock-name";
pub(crate) const KEY: &str = "key";
pub(crate) const RECORD: &str = "record";
pub(crate) const TIMEOUT: &str = "timeout";
pub(crate) const PREEMPTIBLE: &str = "preemptible";

/// Every annotation of the contract (without the prefix).
pub(crate) const KNOWN: [&str; 10] =
    [RUN, CONTAINER, DATABASE_URL_ENV, DATABASE_URL, LOCK_URL_ENV, LOCK_NAME, KEY, RECORD, TIMEOUT, PREEMPTIBLE];

/// Annotations that only mean something together with `run`.
const RUN_OPTIONS: [&str; 8] =
    [CONTAINER, DATABASE_URL_ENV, DATABASE_URL, LOCK_URL_ENV, LOCK_NAME, KEY, RECORD, TIMEOUT];

/// The env var holding the database URL when no annotation says otherwise.
pub const DEFAULT_DATABASE_URL_ENV: &str = "DATABASE_URL";

/// Longest `key`, in characters (Unicode scalar values, not bytes): it is
/// stored in the done-record table, whose column holds 255 characters.
pub const MAX_KEY: usize = 255;
/// Longest unknown annotation name a "did you mean" is computed for: the
/// edit distance costs length × length, and a name this long is no typo of a
/// known one (the longest is 16 characters).
const MAX_SUGGESTED_NAME: usize = 64;
/// Longest unknown annotation name quoted whole in a refusal.
const MAX_QUOTED_NAME: usize = 128;
/// Hex digits of the default key kept (128 bits: collisions are not a concern).
const DEFAULT_KEY_HEX_DIGITS: usize = 32;

/// What a Deployment asks for. `None` from [`plan`] means nothing at all.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InjectionPlan {
    pub run: Option<RunPlan>,
    pub preemptible: Option<Preemptible>,
}

/// The lock-guarded one-time command and everything `kube-once lock` needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunPlan {
    /// argv of the command, run without a shell.
    pub command: Vec<String>,
    /// Name of the app container the command runs as.
    pub container: String,
    /// That container's image.
    pub image: String,
    pub database: DatabaseUrl,
    /// Env var with a direct URL used only for the lock (PgBouncer).
    pub lock_url_env: Option<String>,
    pub lock_name: String,
    pub key: String,
    pub record: Record,
    pub timeout: Duration,
}

/// Where `kube-once lock` finds the database URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DatabaseUrl {
    /// An env var of the app container (`database-url-env`, default `DATABASE_URL`).
    Env(String),
    /// A template with `$(VAR)` references, expanded by the kubelet (`database-url`).
    Template(String),
}

/// A named preset, resolved from the config.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Preemptible {
    pub name: String,
    pub preset: Preset,
}

/// The default `key`: what makes a run "already done". The sha256 of the
/// image followed by each command word, each terminated by a NUL byte (argv
/// words cannot contain NUL, so the encoding is unambiguous), as lowercase
/// hex truncated to 32 digits.
pub fn default_key(image: &str, command: &[String]) -> String {
    let mut hasher = Sha256::new();
    for part in std::iter::once(image).chain(command.iter().map(String::as_str)) {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let mut key = hex::encode(hasher.finalize());
    key.truncate(DEFAULT_KEY_HEX_DIGITS);
    key
}

/// Parse every `kube-once.io/` annotation of `deployment`, whose pod
/// template's app containers are `containers`. `None` when it asks for
/// nothing (no annotation, or only `preemptible: "false"`); with the plan,
/// the app container `kube-once.io/run` selects, read (the one read of it).
pub(crate) fn plan<'a>(
    deployment: &Value,
    containers: Option<AppContainers<'_, 'a>>,
    config: &Config,
) -> Result<Option<(InjectionPlan, Option<App<'a>>)>, Refusal> {
    let annotations = Annotations::of(deployment)?;
    check_template_annotations(deployment)?;

    let preemptible = match annotations.get(PREEMPTIBLE) {
        Some(value) => annotations.preemptible(value, config)?,
        None => None,
    };
    let (run, app) = match annotations.get(RUN) {
        Some(value) => {
            let (run, app) = annotations.run_plan(value, containers, config)?;
            (Some(run), Some(app))
        }
        None => {
            if let Some(option) = RUN_OPTIONS.iter().find(|name| annotations.get(name).is_some()) {
                return Err(annotations.refuse(
                    option,
                    Reason::NeedsRun,
                    "has no effect without kube-once.io/run; add kube-once.io/run with the command to run once, or remove it",
                ));
            }
            (None, None)
        }
    };
    Ok((run.is_some() || preemptible.is_some()).then_some((InjectionPlan { run, preemptible }, app)))
}

/// The `kube-once.io/` annotations of a Deployment's metadata, without prefix.
struct Annotations<'a> {
    deployment: &'a Value,
    values: BTreeMap<&'a str, &'a str>,
}

impl<'a> Annotations<'a> {
    fn of(deployment: &'a Value) -> Result<Self, Refusal> {
        let mut values = BTreeMap::new();
        let Some(annotations) = value_at(deployment, &["metadata", "annotations"]).and_then(Value::as_object) else {
            return Ok(Self { deployment, values });
        };
        for (key, value) in annotations {
            let Some(name) = key.strip_prefix(PREFIX) else { continue };
            let Some(known) = KNOWN.iter().copied().find(|known| *known == name) else {
                let refusal = if key == STATUS_ANNOTATION {
                    Refusal::new(
                        Reason::MisplacedAnnotation,
                        format!(
                            "{}: annotation {key} is written by kube-once on the pod template only; remove it from the {}'s metadata",
                            subject(deployment),
                            Kind::read_as(deployment)
                        ),
                    )
                } else {
                    Refusal::new(
                        Reason::UnknownAnnotation,
                        format!(
                            "{}: annotation {} is not a kube-once annotation{}; the known ones are {}",
                            subject(deployment),
                            shortened(key),
                            suggestion(name),
                            known_list()
                        ),
                    )
                };
                return Err(refusal);
            };
            let Some(text) = value.as_str() else {
                return Err(Refusal::new(
                    Reason::BadValue,
                    format!(
                        "{}: annotation {key} must be a string; quote the value in the manifest",
                        subject(deployment)
                    ),
                )
                .about(known));
            };
            values.insert(name, text.trim());
        }
        Ok(Self { deployment, values })
    }

    fn get(&self, name: &str) -> Option<&'a str> {
        self.values.get(name).copied()
    }

    /// A refusal about annotation `name` with its current value.
    fn refuse(&self, name: &'static str, reason: Reason, problem: &str) -> Refusal {
        let value = self.get(name).unwrap_or_default();
        let shown = if name == DATABASE_URL {
            // Refusals reach kubectl, CI logs and the audit log: never a password.
            match redact_database_url(value) {
                Some(redacted) => format!("{redacted:?}"),
                None => "(value not shown: it may hold a password)".to_owned(),
            }
        } else {
            format!("{value:?}")
        };
        Refusal::new(reason, format!("{}: annotation {PREFIX}{name}: {shown} {problem}", subject(self.deployment)))
            .about(name)
    }

    /// A refusal about annotation `name` whose value is malformed.
    fn bad_value(&self, name: &'static str) -> impl Fn(String) -> Refusal + '_ {
        move |problem| self.refuse(name, Reason::BadValue, &problem)
    }

    fn preemptible(&self, value: &str, config: &Config) -> Result<Option<Preemptible>, Refusal> {
        let presets = || config.presets.keys().cloned().collect::<Vec<_>>().join(", ");
        let name = match value {
            "false" => return Ok(None),
            "true" => match &config.default_preset {
                Some(name) => name.clone(),
                None => {
                    return Err(self.refuse(
                        PREEMPTIBLE,
                        Reason::NoDefaultPreset,
                        &format!(
                            "asks for the cluster's default preset, but this webhook has no defaultPreset configured; name a preset ({}) or ask the cluster admin to set defaultPreset",
                            presets()
                        ),
                    ));
                }
            },
            name => name.to_owned(),
        };
        match config.preset(&name) {
            Some(preset) => Ok(Some(Preemptible { name, preset: preset.clone() })),
            None => Err(self.refuse(
                PREEMPTIBLE,
                Reason::UnknownPreset,
                &format!("is not a known preset; use one of {}, or `true` for the cluster's default", presets()),
            )),
        }
    }

    fn run_plan<'t>(
        &self,
        value: &str,
        containers: Option<AppContainers<'_, 't>>,
        config: &Config,
    ) -> Result<(RunPlan, App<'t>), Refusal> {
        let command = parse_command(value).map_err(self.bad_value(RUN))?;
        let (container, image, app) = self.container(containers)?;

        let database = match (self.get(DATABASE_URL), self.get(DATABASE_URL_ENV)) {
            (Some(_), Some(_)) => {
                return Err(self.refuse(
                    DATABASE_URL,
                    Reason::ConflictingAnnotations,
                    "conflicts with kube-once.io/database-url-env; keep only one of the two",
                ));
            }
            (Some(template), None) => {
                check_database_url(template)
                    .map_err(|problem| self.refuse(DATABASE_URL, problem.reason(), &problem.to_string()))?;
                DatabaseUrl::Template(template.to_owned())
            }
            (None, Some(name)) => {
                check_env_name(name).map_err(self.bad_value(DATABASE_URL_ENV))?;
                DatabaseUrl::Env(name.to_owned())
            }
            (None, None) => DatabaseUrl::Env(DEFAULT_DATABASE_URL_ENV.to_owned()),
        };
        let lock_url_env = match self.get(LOCK_URL_ENV) {
            Some(name) => {
                check_env_name(name).map_err(self.bad_value(LOCK_URL_ENV))?;
                Some(name.to_owned())
            }
            None => None,
        };
        let lock_name = match self.get(LOCK_NAME) {
            Some(name) => {
                check_lock_name(name).map_err(self.bad_value(LOCK_NAME))?;
                name.to_owned()
            }
            None => config.defaults.lock_name.clone(),
        };
        let key = match self.get(KEY) {
            Some(key) => {
                check_key(key).map_err(self.bad_value(KEY))?;
                key.to_owned()
            }
            None => default_key(&image, &command),
        };
        let record = match self.get(RECORD) {
            Some(text) => Record::parse(text).map_err(self.bad_value(RECORD))?,
            None => config.defaults.record,
        };
        let timeout = match self.get(TIMEOUT) {
            Some(text) => parse_timeout(text).map_err(self.bad_value(TIMEOUT))?,
            None => config.defaults.timeout,
        };
        Ok((RunPlan { command, container, image, database, lock_url_env, lock_name, key, record, timeout }, app))
    }

    /// The app container (named by `container`, else the first), its name
    /// and image, read strictly. Only that container is read: a pod of
    /// many sidecars is not (their names are looked up, nothing more).
    fn container<'t>(&self, containers: Option<AppContainers<'_, 't>>) -> Result<(String, String, App<'t>), Refusal> {
        let found = match self.get(CONTAINER) {
            Some(wanted) => {
                let named = |container: AppContainer| container.name().unwrap_or_default() == wanted;
                let found = containers.and_then(|containers| containers.find(named));
                Some(found.ok_or_else(|| {
                    let names = containers.map(AppContainers::names).unwrap_or_default();
                    self.refuse(
                        CONTAINER,
                        Reason::UnknownContainer,
                        &format!("names no container of the pod template; use one of: {}", names.join(", ")),
                    )
                })?)
            }
            None => containers.and_then(|containers| containers.find(|_| true)),
        };
        let Some((index, container)) = found else {
            return Err(Refusal::new(
                Reason::IncompleteTemplate,
                format!(
                    "{}: kube-once.io/run needs an app container, but {}.spec.containers is empty; add the app container",
                    subject(self.deployment),
                    Kind::read_as(self.deployment).template_field()
                ),
            ));
        };
        let kind = Kind::read_as(self.deployment);
        let at = format!("/{}/spec/containers/{index}", kind.template_path().join("/"));
        let container = container.read(&at).map_err(|error| {
            Refusal::new(
                Reason::BadValue,
                format!("{}: kube-once cannot read it ({error}); simplify the manifest", subject(self.deployment)),
            )
        })?;
        let string = |field| container.get(field).and_then(Value::as_str).unwrap_or_default().to_owned();
        let (name, image) = (string("name"), string("image"));
        if image.is_empty() {
            return Err(Refusal::new(
                Reason::IncompleteTemplate,
                format!(
                    "{}: container {:?} has no image, so kube-once.io/run has nothing to run the command with; set its image",
                    subject(self.deployment),
                    name
                ),
            ));
        }
        Ok((name, image, App { index, container }))
    }
}

/// Only `kube-once.io/status` (written by kube-once) belongs on the pod
/// template; a contract annotation there would be silently ignored, as would
/// one written as the workload's label. Nor does any belong on a CronJob's
/// Job template: each Job would carry it and be injected on its own, apart
/// from the CronJob that `preview`, the patch and the migration Events are
/// about.
fn check_template_annotations(deployment: &Value) -> Result<(), Refusal> {
    let kind = Kind::read_as(deployment);
    let misplaced = |annotations: Option<&Value>, except: &[&str]| {
        annotations
            .and_then(Value::as_object)
            .and_then(|annotations| {
                annotations.keys().find(|key| key.starts_with(PREFIX) && !except.contains(&key.as_str()))
            })
            .map(|key| shortened(key))
    };
    let on_pod_template = || {
        let annotations =
            kind.template(deployment).and_then(|template| value_at(template, &["metadata", "annotations"]));
        misplaced(annotations, &[STATUS_ANNOTATION]).map(|key| {
            format!(
                "annotation {key} is on the pod template ({}.metadata.annotations), where kube-once does not read it",
                kind.template_field()
            )
        })
    };
    let as_label = || {
        let labels = value_at(deployment, &["metadata", "labels"]).and_then(Value::as_object)?;
        let key = labels.keys().find(|key| key.strip_prefix(PREFIX).is_some_and(|name| KNOWN.contains(&name)))?;
        Some(format!("{key} is a label (metadata.labels), and kube-once reads only annotations"))
    };
    let on_job_template = || {
        let annotations = value_at(deployment, &["spec", "jobTemplate", "metadata", "annotations"]);
        misplaced(annotations.filter(|_| kind == Kind::CronJob), &[]).map(|key| {
            format!(
                "annotation {key} is on the Job template (spec.jobTemplate.metadata.annotations), where kube-once does not read it for the CronJob (each Job would carry it and be injected on its own)"
            )
        })
    };
    match on_pod_template().or_else(as_label).or_else(on_job_template) {
        Some(what) => Err(Refusal::new(
            Reason::MisplacedAnnotation,
            format!("{}: {what}; move it to the {kind}'s metadata.annotations", subject(deployment)),
        )),
        None => Ok(()),
    }
}

/// `run`: a JSON array of strings, or words split like a POSIX shell does
/// (on one line: a line break would split words without a word of warning,
/// so a command over several lines must be a JSON array).
pub(crate) fn parse_command(text: &str) -> Result<Vec<String>, String> {
    let words: Vec<String> = if text.starts_with('[') {
        serde_json::from_str(text).map_err(|e| {
            format!("looks like a JSON array but is not an array of strings ({e}); write e.g. [\"flask\", \"db\", \"upgrade\"]")
        })?
    } else if text.contains(['\n', '\r']) {
        return Err("holds a line break, which would split the command into words silently; write it on one line, or as a JSON array of strings, e.g. [\"sh\", \"-c\", \"flask db upgrade && flask seed\"]".to_owned());
    } else {
        shell_words::split(text).map_err(|e| {
            format!("cannot be split into words ({e}); close the quote, or write a JSON array of strings")
        })?
    };
    match words.first() {
        None => Err("is empty; write the command to run once, e.g. \"flask db upgrade\"".to_owned()),
        Some(program) if program.is_empty() => {
            Err("starts with an empty program name; write the command to run once, e.g. \"flask db upgrade\""
                .to_owned())
        }
        Some(_) if words.iter().any(|word| word.contains('\0')) => {
            Err("holds a NUL character, which no program can receive in its arguments; remove it".to_owned())
        }
        Some(_) => Ok(words),
    }
}

/// Env var names as Kubernetes accepts them in `$(VAR)` references and `env`.
pub(crate) fn check_env_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid_start = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '-' || c == '.');
    if valid_start && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.') {
        Ok(())
    } else {
        Err("is not an env var name; write the name of a variable of the container, e.g. DATABASE_URL".to_owned())
    }
}

/// `key`: 1 to [`MAX_KEY`] characters (not bytes), on one line.
pub(crate) fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.chars().count() > MAX_KEY {
        return Err(format!(
            "must be 1 to {MAX_KEY} characters; shorten it, or remove it to use the image and command"
        ));
    }
    if key.chars().any(char::is_control) {
        return Err("must not contain control characters (newlines, tabs); write it on one line".to_owned());
    }
    Ok(())
}

/// The database URL schemes `kube-once lock` speaks (before any `+driver`;
/// after `jdbc:` only `postgresql`, `mysql` and `mariadb`).
const SCHEMES: [&str; 9] =
    ["postgres", "postgresql", "pgsql", "postgis", "mysql", "mysql2", "trilogy", "mariadb", "sqlite"];
/// Query parameters that carry a password in database URLs.
const PASSWORD_PARAMETERS: [&str; 3] = ["password", "pass", "pwd"];
/// What a refusal shows in place of a literal password.
const REDACTED: &str = "***";

/// Why a `database-url` is refused. No message repeats the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatabaseUrlError {
    /// A password written out instead of a `$(VAR)` reference.
    #[error(
        "holds a literal password; put the password in a Secret, expose it as an env var of the container, and write $(DB_PASSWORD) in its place"
    )]
    LiteralPassword,
    /// Not a URL kube-once can lock with; the text says why and how to fix it.
    #[error("{0}")]
    Malformed(String),
}

impl DatabaseUrlError {
    pub fn reason(&self) -> Reason {
        match self {
            DatabaseUrlError::LiteralPassword => Reason::LiteralPassword,
            DatabaseUrlError::Malformed(_) => Reason::BadValue,
        }
    }
}

/// `database-url`: secrets only through `$(VAR)` references, which the kubelet
/// expands from the container's env; a literal password would be readable by
/// anyone who can read the Deployment.
pub fn check_database_url(template: &str) -> Result<(), DatabaseUrlError> {
    let malformed = DatabaseUrlError::Malformed;
    let Some(shape) = Shape::of(template) else {
        return Err(malformed(
            "is not a database URL kube-once can lock with; write e.g. postgresql://$(DB_USER):$(DB_PASSWORD)@$(DB_HOST)/app, \
             a JDBC URL, a Go MySQL DSN ($(DB_USER):$(DB_PASSWORD)@tcp($(DB_HOST):3306)/app) or a libpq keyword/value string \
             (host=$(DB_HOST) user=$(DB_USER) password=$(DB_PASSWORD) dbname=app)"
                .to_owned(),
        ));
    };
    // Before the references are checked: their errors quote text, and a
    // literal password may hold a `$(`.
    if shape.passwords.iter().any(|password| !only_references(&template[password.value.clone()])) {
        return Err(DatabaseUrlError::LiteralPassword);
    }
    env_references(template).map_err(malformed)?;
    if let Some(scheme) = shape.scheme
        && !scheme.starts_with("$(")
        && !known_scheme(scheme)
    {
        return Err(malformed(format!(
            "has scheme `{scheme}`, which kube-once cannot lock; use postgres(ql), pgsql, postgis, mysql, mysql2, trilogy, \
             mariadb or sqlite (with an optional +driver), jdbc:postgresql or jdbc:mysql"
        )));
    }
    Ok(())
}

/// The template with every literal password replaced by `***` (and, in a
/// query, everything after it: an unescaped `&` in the password would leave
/// its tail in sight); `$(VAR)` references stay. `None` when the text is in
/// no form kube-once knows, so where a password starts cannot be told.
pub fn redact_database_url(template: &str) -> Option<String> {
    let shape = Shape::of(template)?;
    let mut out = String::with_capacity(template.len());
    let mut at = 0;
    for password in &shape.passwords {
        // An empty value still hides what follows it: `password=&secret`
        // is a password starting with an unescaped `&`.
        let value = &template[password.value.clone()];
        if !value.is_empty() && only_references(value) {
            continue;
        }
        // Spans that overlap (a password parameter inside a userinfo that an
        // unescaped `@` made too long) are hidden as one.
        if password.hidden.start >= at {
            out.push_str(&template[at..password.hidden.start]);
            out.push_str(REDACTED);
        }
        at = at.max(password.hidden.end);
    }
    out.push_str(&template[at..]);
    Some(out)
}

/// Where the passwords of a database URL template are, in each of the forms
/// `kube-once lock` reads (its parser splits them the same way).
struct Shape<'a> {
    /// `None` for the forms without one (Go DSN, libpq keyword/value).
    scheme: Option<&'a str>,
    passwords: Vec<Password>,
}

struct Password {
    /// The password itself.
    value: std::ops::Range<usize>,
    /// What a redaction hides: the value, or to the end of a query.
    hidden: std::ops::Range<usize>,
}

impl<'a> Shape<'a> {
    fn of(text: &'a str) -> Option<Shape<'a>> {
        if let Some((scheme, rest)) = text.split_once("://")
            && (is_scheme(scheme) || scheme.starts_with("$("))
        {
            // No URL host holds `(`: an unknown scheme with a Go DSN's
            // address is that driver's form, its password starting with
            // `//` (`app://pw@tcp(db)/app`), as `kube-once lock` reads it.
            if !known_scheme(scheme)
                && !scheme.starts_with("$(")
                && GO_DSN_NETS.iter().any(|net| text.contains(net))
                && let Some(passwords) = go_dsn_password(text)
            {
                return Some(Shape { scheme: None, passwords });
            }
            return Some(Shape { scheme: Some(scheme), passwords: url_passwords(text, text.len() - rest.len()) });
        }
        if starts_with_keyword(text) {
            return keyword_passwords(text).map(|passwords| Shape { scheme: None, passwords });
        }
        go_dsn_password(text).map(|passwords| Shape { scheme: None, passwords })
    }
}

/// A scheme `kube-once lock` reads (any case, with an optional `+driver`).
fn known_scheme(scheme: &str) -> bool {
    let lower = scheme.to_ascii_lowercase();
    match lower.strip_prefix("jdbc:") {
        Some(jdbc) => ["postgresql", "mysql", "mariadb"].contains(&jdbc),
        None => SCHEMES.contains(&lower.split('+').next().unwrap_or_default()),
    }
}

/// `jdbc:postgresql`, `mysql+pymysql`: RFC 3986's letters, digits, `+ . -`, and one `jdbc:`.
fn is_scheme(scheme: &str) -> bool {
    let bare = match scheme.get(..5) {
        Some(head) if head.eq_ignore_ascii_case("jdbc:") => &scheme[5..],
        _ => scheme,
    };
    bare.starts_with(|c: char| c.is_ascii_alphabetic())
        && bare.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'))
}

/// The userinfo's password and the query's password parameters of
/// `scheme://[userinfo@]host/db?query`, `rest` starting at byte `start`.
/// The userinfo ends at the last `@` when the user name (before the first
/// `:`) is plain, so passwords with unescaped `/ ? # @ :` are found whole.
/// Password parameters are looked for in all of the text: an unescaped `@`
/// in one makes everything before it look like a userinfo.
fn url_passwords(text: &str, start: usize) -> Vec<Password> {
    let rest = &text[start..];
    let mut passwords = Vec::new();
    // As the lock splits it, an `@` in a query's password parameter does not end a userinfo.
    let in_query_password = |before: &str| {
        before.split_once('?').is_some_and(|(_, query)| query.split('&').any(|pair| pair.starts_with("password=")))
    };
    let userinfo = match rest.rfind('@') {
        Some(at)
            if !rest[..at].split(':').next().unwrap_or_default().contains(['/', '?', '#', '@'])
                && !in_query_password(&rest[..at]) =>
        {
            Some(at)
        }
        _ => rest.find('@').filter(|at| !rest[..*at].contains(['/', '?', '#'])),
    };
    if let Some(at) = userinfo
        && let Some(colon) = rest[..at].find(':')
    {
        let value = start + colon + 1..start + at;
        passwords.push(Password { hidden: value.clone(), value });
    }
    for (separator, _) in rest.match_indices(['?', '&']) {
        let pair = &rest[separator + 1..];
        let pair = &pair[..pair.find('&').unwrap_or(pair.len())];
        if let Some((name, value)) = pair.split_once('=')
            && PASSWORD_PARAMETERS.contains(&name.to_ascii_lowercase().as_str())
        {
            let value_start = start + separator + 1 + name.len() + 1;
            passwords.push(Password { value: value_start..value_start + value.len(), hidden: value_start..text.len() });
        }
    }
    passwords.sort_by_key(|password| password.hidden.start);
    passwords
}

/// libpq's keyword/value form starts with a keyword and `=`.
fn starts_with_keyword(text: &str) -> bool {
    let end = text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(text.len());
    end > 0 && text[end..].trim_start().starts_with('=')
}

/// `password=...` values of a libpq keyword/value string, as libpq splits
/// it: bare words or single-quoted, a backslash escaping the next character.
/// The range of a quoted value is what is inside the quotes; a redaction
/// hides from the value to the end, since a space or quote left unescaped in
/// the password makes its tail look like more keywords. `None` when it is not
/// well formed (a word without `=`, an open quote): where the password ends
/// cannot be told then.
fn keyword_passwords(text: &str) -> Option<Vec<Password>> {
    let bytes = text.as_bytes();
    let mut at = 0;
    let mut passwords = Vec::new();
    let skip_space = |mut at: usize| {
        while bytes.get(at).is_some_and(u8::is_ascii_whitespace) {
            at += 1;
        }
        at
    };
    loop {
        at = skip_space(at);
        if at == bytes.len() {
            return Some(passwords);
        }
        let keyword_start = at;
        while bytes.get(at).is_some_and(|b| !b.is_ascii_whitespace() && *b != b'=') {
            at += 1;
        }
        let keyword = &text[keyword_start..at];
        at = skip_space(at);
        if bytes.get(at) != Some(&b'=') {
            return None;
        }
        at = skip_space(at + 1);
        let (value, hidden) = if bytes.get(at) == Some(&b'\'') {
            let open = at;
            at += 1;
            loop {
                match bytes.get(at)? {
                    b'\\' => at += 2,
                    b'\'' => break,
                    _ => at += 1,
                }
            }
            at = at.min(bytes.len());
            at += 1;
            (open + 1..at - 1, open..text.len())
        } else {
            let start = at;
            while bytes.get(at).is_some_and(|b| !b.is_ascii_whitespace()) {
                at += if bytes[at] == b'\\' { 2 } else { 1 };
            }
            at = at.min(bytes.len());
            (start..at, start..text.len())
        };
        if keyword == "password" {
            passwords.push(Password { value, hidden });
        }
    }
}

/// The password of a Go MySQL driver DSN, `user:password@tcp(host:3306)/db`
/// (also `tcp4`, `tcp6`, `unix(/path)`, or none: `user:password@/db`),
/// written as it is: the driver unescapes nothing there. `None` when the text
/// is not such a DSN.
/// A Go DSN's address starts with one of these (`user:pw@tcp(host:3306)/db`).
const GO_DSN_NETS: [&str; 4] = ["@tcp(", "@tcp4(", "@tcp6(", "@unix("];

fn go_dsn_password(text: &str) -> Option<Vec<Password>> {
    let at = GO_DSN_NETS.iter().filter_map(|net| text.rfind(net)).max().or_else(|| text.rfind("@/"))?;
    let userinfo = &text[..at];
    Some(match userinfo.find(':') {
        Some(colon) => vec![Password { value: colon + 1..at, hidden: colon + 1..at }],
        None => Vec::new(),
    })
}

/// Names of the `$(VAR)` references in a template (`$$(` is Kubernetes' escape for a literal `$(`).
pub(crate) fn env_references(template: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('$') {
        let after = &rest[start + 1..];
        if let Some(escaped) = after.strip_prefix('$') {
            rest = escaped;
        } else if let Some(open) = after.strip_prefix('(') {
            let Some(end) = open.find(')') else {
                return Err("has a `$(` without its closing `)`; write references as $(VAR)".to_owned());
            };
            let name = &open[..end];
            check_env_name(name).map_err(|_| format!("references `$({name})`, which is not an env var name"))?;
            names.push(name.to_owned());
            rest = &open[end + 1..];
        } else {
            rest = after;
        }
    }
    Ok(names)
}

/// Whether `text` is nothing but `$(VAR)` references (the kubelet fills them in).
fn only_references(text: &str) -> bool {
    let mut rest = text;
    while let Some(open) = rest.strip_prefix("$(") {
        match open.find(')') {
            Some(end) => rest = &open[end + 1..],
            None => return false,
        }
    }
    rest.is_empty()
}

fn known_list() -> String {
    KNOWN.iter().map(|name| format!("{PREFIX}{name}")).collect::<Vec<_>>().join(", ")
}

/// `name` for a message, cut at [`MAX_QUOTED_NAME`] characters.
fn shortened(name: &str) -> String {
    match name.char_indices().nth(MAX_QUOTED_NAME) {
        Some((cut, _)) => format!("{}… ({} bytes)", &name[..cut], name.len()),
        None => name.to_owned(),
    }
}

/// ` (did you mean kube-once.io/run?)` for a near-miss, so typos are obvious.
/// Names over [`MAX_SUGGESTED_NAME`] bytes get none, so the cost stays bounded.
fn suggestion(name: &str) -> String {
    if name.len() > MAX_SUGGESTED_NAME {
        return String::new();
    }
    KNOWN
        .iter()
        .map(|known| (edit_distance(name, known), known))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, known)| format!(" (did you mean {PREFIX}{known}?)"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Passwords as secret generators write them: unescaped URL delimiters,
    /// quotes, backslashes, stray `%`, `$(`; each holds the marker.
    const MARKER: &str = "ZqMarker9";
    fn passwords() -> Vec<String> {
        ["", "a/", "?x=1&", "#", "p@", "%zz", ":/?#@%4", "'", "\\'", "\\", "$(", "a b", "x&c=d", "=", "))", "@tcp("]
            .iter()
            .map(|noise| format!("{noise}{MARKER}{noise}"))
            .collect()
    }

    /// Every form `lock` reads, with `password` in the place a password goes.
    fn forms(password: &str) -> Vec<String> {
        let quoted = password.replace('\\', "\\\\").replace('\'', "\\'");
        vec![
            format!("postgresql://app:{password}@db:5432/app"),
            format!("postgres://$(DB_USER):{password}@$(DB_HOST)/app?sslmode=require"),
            format!("pgsql://app:{password}@[::1]:5432/app"),
            format!("postgis://app:{password}@db/app"),
            format!("mysql2://app:{password}@db/app?encoding=utf8mb4"),
            format!("trilogy://app:{password}@db/app"),
            format!("mysql+pymysql://app:{password}@db/app"),
            format!("postgresql://$(DB_USER)@db/app?sslmode=require&password={password}"),
            format!("jdbc:postgresql://db:5432/app?user=app&password={password}&ssl=true"),
            format!("jdbc:mysql://db:3306/app?user=app&password={password}"),
            format!("app:{password}@tcp(db:3306)/app?tls=true"),
            format!("app:{password}@unix(/run/mysqld/mysqld.sock)/app"),
            format!("host=db port=5432 user=app password='{quoted}' dbname=app sslmode=verify-full"),
            format!("redis://app:{password}@db/0"),
        ]
    }

    fn refusal_message(url: &str) -> String {
        let deployment = json!({
            "metadata": {"name": "shop", "namespace": "store", "annotations": {
                "kube-once.io/run": "rake db:migrate",
                "kube-once.io/database-url": url,
            }},
            "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "shop:1"}]}}}
        });
        let containers = AppContainers::of(&deployment["spec"]["template"], None);
        match plan(&deployment, containers, &Config::default()) {
            Err(refusal) => refusal.to_string(),
            Ok(plan) => panic!("{url}: admitted as {plan:?}"),
        }
    }

    #[test]
    fn a_literal_password_is_refused_in_every_form_and_never_repeated() {
        for password in passwords() {
            for url in forms(&password) {
                let checked = check_database_url(&url);
                if !url.starts_with("redis") {
                    assert_eq!(checked, Err(DatabaseUrlError::LiteralPassword), "{url}");
                }
                let message = refusal_message(&url);
                assert!(!message.contains(MARKER), "{url}: {message}");
                assert!(message.contains("kube-once.io/database-url"), "{message}");
                let redacted = redact_database_url(&url);
                assert!(
                    redacted.as_ref().is_some_and(|r| r.contains("***") && !r.contains(MARKER)),
                    "{url}: {redacted:?}"
                );
            }
        }
    }

    #[test]
    fn redaction_keeps_everything_but_the_password() {
        let cases = [
            ("postgres://app:hunter2@db/app", "postgres://app:***@db/app"),
            ("postgres://app:a/b?c#d@e@db/app?sslmode=require", "postgres://app:***@db/app?sslmode=require"),
            ("postgres://$(U):$(P)@db/app?password=pw&tail", "postgres://$(U):$(P)@db/app?password=***"),
            ("postgres://$(U):$(P)@db/app?password=$(P)&pass=x", "postgres://$(U):$(P)@db/app?password=$(P)&pass=***"),
            ("u:p(a)ss@tcp($(H):3306)/app", "u:***@tcp($(H):3306)/app"),
            ("jdbc:mysql://db:3306/app?user=u&password=x@y&ssl=true", "jdbc:mysql://db:3306/app?user=u&password=***"),
            (r"host=db password='it\'s a b' dbname=app", "host=db password=***"),
            (r"host=db password=x\ y dbname=app", "host=db password=***"),
            // An unescaped space: libpq reads `S3cret=` as a keyword and `dbname=app` as its value.
            ("host=db password=! S3cret= dbname=app", "host=db password=***"),
            ("host=$(H) password=$(P) dbname=app", "host=$(H) password=$(P) dbname=app"),
            // A password that starts with an unescaped `&` looks empty.
            ("jdbc:postgresql://db/app?user=u&password=&x$(y&ssl=true", "jdbc:postgresql://db/app?user=u&password=***"),
        ];
        for (url, expected) in cases {
            assert_eq!(redact_database_url(url).as_deref(), Some(expected), "{url}");
        }
        // Where a password would start cannot be told: nothing is shown.
        for url in ["app:hunter2@db/app", "host=db password=two words", "host=db password='open"] {
            assert_eq!(redact_database_url(url), None, "{url}");
            let message = refusal_message(url);
            assert!(
                !message.contains("hunter2") && !message.contains("two words") && message.contains("not shown"),
                "{message}"
            );
        }
    }

    #[test]
    fn references_in_every_form_are_accepted() {
        for url in [
            "postgresql://$(DB_USER):$(DB_PASSWORD)@$(DB_HOST)/app",
            "pgsql://$(DB_USER):$(DB_PASSWORD)@$(DB_HOST)/app",
            "postgis://$(DB_USER):$(DB_PASSWORD)@$(DB_HOST)/app",
            "mysql2://$(DB_USER):$(DB_PASSWORD)@$(DB_HOST)/app",
            "trilogy://$(DB_USER):$(DB_PASSWORD)@$(DB_HOST)/app",
            "jdbc:postgresql://$(DB_HOST):5432/app?user=$(DB_USER)&password=$(DB_PASSWORD)",
            "jdbc:mysql://$(DB_HOST):3306/app?user=$(DB_USER)&password=$(DB_PASSWORD)&useSSL=true",
            "$(DB_USER):$(DB_PASSWORD)@tcp($(DB_HOST):3306)/app?tls=true",
            "host=$(DB_HOST) port=5432 user=$(DB_USER) password='$(DB_PASSWORD)' dbname=app",
            "$(SCHEME)://$(DB_USER):$(DB_PASSWORD)@$(DB_HOST)/app",
            "sqlite:////data/app.db",
        ] {
            assert_eq!(check_database_url(url), Ok(()), "{url}");
        }
        assert!(matches!(check_database_url("jdbc:sqlserver://$(H)/app"), Err(DatabaseUrlError::Malformed(_))));
        assert!(matches!(check_database_url("db.internal"), Err(DatabaseUrlError::Malformed(_))));
    }
}
