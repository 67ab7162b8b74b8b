//! A workload (a Deployment, a CronJob, ... see [`crate::Kind`]) as the
//! core reads it, parsed from JSON text. Only what kube-once reads or writes
//! becomes a [`Value`]: the metadata's names and `kube-once.io/`
//! annotations, and the pod template wherever a supported kind keeps it.
//! What it only reads, copies or sends back untouched stays JSON text
//! borrowed from the request, so the cost of an admission follows the pod
//! template's shape, not its size (a `Value` of one `{"name","value"}` entry
//! is many times its text, a map node ~600 bytes):
//!
//! - the app containers (`spec.containers`, when a list, see
//!   [`AppContainers`]): kube-once reads one of them (the one its
//!   annotations select), their names, and what `kube-once-run` copies; it
//!   keeps each container's text (16 bytes a container, found in the one
//!   pass that reads the workload) and reads them on demand, one at a
//!   time, so ~70,000 small sidecars cost their text, not ~30× it;
//! - the pod template's init containers, volumes and annotations
//!   ([`TemplateText`]): kube-once edits the lists item by item and by name
//!   (it removes and appends its own items, [`Entry`]), so an item it did
//!   not write is sent back, or compared, as the request wrote it. An init
//!   container of a chart (a few KB of `args`, `resources`,
//!   `securityContext`) is then its text, in both copies of an UPDATE.
//!
//! What is read (everything but the skipped fields and what stays text)
//! is read strictly: a repeated key or a number no 64-bit integer holds is
//! refused, with where it is. The API server never sends either, and both
//! leave the copy source ambiguous (which `containers` counts, whose `env`
//! goes with which container, which number to write back), so kube-once
//! refuses rather than guess. What is skipped is not checked: an app
//! container is checked when it is read (the selected one, by
//! [`AppContainer::read`], which reads only its name and what
//! `kube-once-run` copies), not when the workload is; one the copy sources
//! are looked for in is read only if unambiguous (a container whose keys
//! repeat is never a copy source, the field is then written literally), so
//! the copy stays exact. An item kept as text is named and compared
//! without reading it where its text settles it (`scan`, `matches`): a key
//! it repeats can then only make it differ from an equal one.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry as MapEntry;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

#[cfg(test)]
mod arbitrary;
mod containers;
mod matches;
mod scan;

pub use containers::{App, AppContainer, AppContainers, ContainerTexts};
use containers::{AppItems, Items};

/// The fields of an app container kept as text: the lists kube-once copies
/// into `kube-once-run`, then `args` and `command`, which it never reads.
pub const LIST_FIELDS: [&str; 5] = ["env", "envFrom", "volumeMounts", "args", "command"];

/// Fields of the app container `kube-once-run` copies verbatim: the command
/// must run exactly as the app does (same image, config, user, limits).
/// With its name, all of the app container that is read as values; its
/// lists (`envFrom`; `env` and `volumeMounts`, with kube-once's own items
/// after the app's) stay text ([`LIST_FIELDS`]).
pub const COPIED_VALUES: [&str; 5] = ["imagePullPolicy", "workingDir", "securityContext", "resources", "image"];

/// Metadata kube-once reads (names for messages and the lock, the contract).
const METADATA_FIELDS: [&str; 4] = ["name", "generateName", "namespace", "annotations"];

/// A workload: [`Value`] of what the core reads, with what it only reads,
/// copies or sends back kept as text.
#[derive(Debug, Clone)]
pub struct Workload<'a> {
    pub value: Value,
    /// The parts of each pod template kept as text, by where the template
    /// is (see `TemplateText`).
    pub texts: [TemplateText<'a>; 2],
    /// Each pod template's app containers (`spec.containers`, when a list:
    /// absent from the [`Value`]), one text per container, by where the
    /// template is; read through [`Workload::app_containers`]. Found while
    /// the workload is read, so no later read scans the list again.
    pub containers: [Option<ContainerTexts<'a>>; 2],
}

/// What of a pod template stays JSON text borrowed from the request:
/// kube-once edits these by name (its status annotation, its volume, its
/// init containers), and the rest of them is sent back untouched. A `Value`
/// of a volume or an annotation is many times its text; a pod template of
/// 90,000 volumes would cost ~50× its body.
#[derive(Debug, Clone, Default)]
pub struct TemplateText<'a> {
    /// `metadata.annotations`, when an object: its `kube-once.io/` entries
    /// are also in the template's [`Value`] (and only they are: the others
    /// are these).
    pub annotations: Option<&'a RawValue>,
    /// `spec.volumes`, when a list (absent from the [`Value`]).
    pub volumes: Option<&'a RawValue>,
    /// `spec.initContainers`, when a list (absent from the [`Value`]):
    /// the text of each, found in the one pass that reads the workload.
    pub init_containers: Option<ContainerTexts<'a>>,
}

impl<'a> Workload<'a> {
    /// `text` (a workload as JSON) read as described in the module docs,
    /// in one pass: what the core does not read is skipped, not built.
    pub fn parse(text: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The text kept of the pod template of `kind` (see `TemplateText`).
    pub fn text(&self, kind: crate::Kind) -> &TemplateText<'a> {
        &self.texts[Self::template_index(kind)]
    }

    /// The app containers of the pod template of `kind` (see
    /// `AppContainers::of`).
    pub fn app_containers(&self, kind: crate::Kind) -> Option<AppContainers<'_, 'a>> {
        let template = kind.template(&self.value)?;
        AppContainers::of(template, self.containers[Self::template_index(kind)].as_ref())
    }

    fn template_index(kind: crate::Kind) -> usize {
        usize::from(kind.template_path().len() > 2)
    }
}

/// As [`Workload::parse`], for a workload inside a larger document (the
/// `object` of an AdmissionReview), borrowing from it.
impl<'de: 'a, 'a> Deserialize<'de> for Workload<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut texts = [TemplateText::default(), TemplateText::default()];
        let mut containers = [None, None];
        let reader = Reader { shape: Shape::Object, texts: &mut texts, containers: &mut containers, at: At::Root };
        let value = deserializer.deserialize_any(reader)?;
        Ok(Self { value, texts, containers })
    }
}

/// Where the reader is in a workload: which fields it keeps, which it
/// skips and which it keeps aside. The reader does not know the kind (JSON
/// does not say `kind` first): it keeps every place a supported kind keeps
/// its pod template, and [`crate::Kind`] picks the one that counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Object,
    Metadata,
    /// The workload's own `metadata.annotations` and `metadata.labels` (and
    /// a CronJob's Job template's annotations): only `kube-once.io/` keys
    /// are read.
    Annotations,
    Spec,
    /// A CronJob's `spec.jobTemplate`.
    JobTemplate,
    /// A CronJob's `spec.jobTemplate.metadata`: only its `kube-once.io/`
    /// annotations are read (misplaced there, they are refused).
    JobMetadata,
    /// A CronJob's `spec.jobTemplate.spec`.
    JobSpec,
    /// A pod template, its metadata and its spec; which one (index into
    /// `Workload::texts`: 0 for `spec.template`, 1 for a CronJob's).
    PodTemplate(usize),
    PodMetadata(usize),
    PodSpec(usize),
}

/// What becomes of one field of an object of a [`Shape`].
enum Keep {
    Value,
    Skip,
    Nested(Shape),
    /// Kept as text in [`TemplateText`] (when of the JSON type it names).
    Annotations(usize),
    Volumes(usize),
    /// One text per item (see [`ContainerTexts`]).
    Items(usize, Containers),
}

/// The two lists of containers of a pod spec, each kept one text per item.
#[derive(Debug, Clone, Copy)]
enum Containers {
    /// `containers`: [`Workload::containers`].
    App,
    /// `initContainers`: [`TemplateText::init_containers`].
    Init,
}

impl Shape {
    fn keep(self, key: &str) -> Keep {
        match (self, key) {
            (Shape::Object, "apiVersion" | "kind") => Keep::Value,
            (Shape::Object, "metadata") => Keep::Nested(Shape::Metadata),
            (Shape::Object, "spec") => Keep::Nested(Shape::Spec),
            (Shape::Metadata, "annotations") => Keep::Nested(Shape::Annotations),
            // A contract annotation written as a label is refused, not passed over.
            (Shape::Metadata, "labels") => Keep::Nested(Shape::Annotations),
            (Shape::Metadata, key) if METADATA_FIELDS.contains(&key) => Keep::Value,
            // The rest (kubectl's last-applied-configuration: a copy of the
            // whole object; charts' checksums; other tools') is scanned,
            // not built: nothing reads it.
            (Shape::Annotations, key) if key.starts_with(crate::PREFIX) => Keep::Value,
            (Shape::Annotations, _) => Keep::Skip,
            (Shape::Spec, "template") => Keep::Nested(Shape::PodTemplate(0)),
            (Shape::JobSpec, "template") => Keep::Nested(Shape::PodTemplate(1)),
            (Shape::Spec, "jobTemplate") => Keep::Nested(Shape::JobTemplate),
            // A Rollout's reference to the Deployment whose template it uses.
            (Shape::Spec, "workloadRef") => Keep::Value,
            // Compared with kube-once.io/timeout (a warning).
            (Shape::Spec, "progressDeadlineSeconds") => Keep::Value,
            (Shape::JobTemplate, "spec") => Keep::Nested(Shape::JobSpec),
            (Shape::JobTemplate, "metadata") => Keep::Nested(Shape::JobMetadata),
            (Shape::JobMetadata, "annotations") => Keep::Nested(Shape::Annotations),
            (
                Shape::Object
                | Shape::Metadata
                | Shape::Spec
                | Shape::JobTemplate
                | Shape::JobMetadata
                | Shape::JobSpec,
                _,
            ) => Keep::Skip,
            (Shape::PodTemplate(at), "metadata") => Keep::Nested(Shape::PodMetadata(at)),
            (Shape::PodTemplate(at), "spec") => Keep::Nested(Shape::PodSpec(at)),
            (Shape::PodMetadata(at), "annotations") => Keep::Annotations(at),
            (Shape::PodSpec(at), "volumes") => Keep::Volumes(at),
            (Shape::PodSpec(at), "initContainers") => Keep::Items(at, Containers::Init),
            (Shape::PodSpec(at), "containers") => Keep::Items(at, Containers::App),
            _ => Keep::Value,
        }
    }
}

/// Where a reader is in the object, as a JSON pointer (`/spec/template`)
/// for messages; built from the stack, written out only on error.
#[derive(Clone, Copy)]
enum At<'p> {
    Root,
    /// A JSON pointer written already (where a container read on its own is).
    Pointer(&'p str),
    Key(&'p At<'p>, &'p str),
    Index(&'p At<'p>, usize),
}

impl fmt::Display for At<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        match self {
            At::Root => Ok(()),
            At::Pointer(pointer) => formatter.write_str(pointer),
            At::Key(parent, key) => write!(formatter, "{parent}/{}", key.replace('~', "~0").replace('/', "~1")),
            At::Index(parent, index) => write!(formatter, "{parent}/{index}"),
        }
    }
}

/// The refusal of a repeated key in the mapping at `at`.
fn duplicate<E: serde::de::Error>(key: &str, at: At) -> E {
    let at = if matches!(at, At::Root) { "the top of the Deployment".to_owned() } else { at.to_string() };
    E::custom(format_args!(
        "duplicate key `{key}` at {at}: the API server never sends a repeated key, and kube-once will not guess \
         which one counts; send the object as the API server writes it"
    ))
}

/// A number from the JSON reader as a float that is integral and outside
/// every 64-bit integer: an integer literal too long for `i64`/`u64` reads
/// as such a float (and loses digits), and no float field of a pod template
/// is that large.
fn check_float<E: serde::de::Error>(value: f64, at: At) -> Result<f64, E> {
    // 2^63: below it every integral float is an `i64`, above it the reader
    // would have handed a `u64` literal over as one, not as a float.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if value.abs() < LIMIT {
        return Ok(value);
    }
    Err(E::custom(format_args!(
        "the number at {at} ({value:e}) is outside the 64-bit integers kube-once reads without losing digits; \
         the API server never sends it, write it as a string or a smaller number"
    )))
}

struct Reader<'l, 'a, 'p> {
    shape: Shape,
    texts: &'l mut [TemplateText<'a>; 2],
    containers: &'l mut [Option<ContainerTexts<'a>>; 2],
    at: At<'p>,
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for Reader<'_, 'a, '_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// A JSON object key, borrowed from the text when it has no escapes.
#[derive(serde::Deserialize)]
struct Key<'t>(#[serde(borrow)] Cow<'t, str>);

/// Any value in a part the core reads, as a [`Value`], read strictly
/// (see the module documentation).
#[derive(Clone, Copy)]
struct Strict<'p> {
    at: At<'p>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Value, M::Error> {
        let mut fields = Map::new();
        while let Some(Key(key)) = map.next_key()? {
            // One search of the map for both the check and the insertion.
            match fields.entry(key.into_owned()) {
                MapEntry::Occupied(repeated) => return Err(duplicate(repeated.key(), self.at)),
                MapEntry::Vacant(entry) => {
                    let value = map.next_value_seed(Strict { at: At::Key(&self.at, entry.key()) })?;
                    entry.insert(value);
                }
            }
        }
        Ok(Value::Object(fields))
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Value, S::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Strict { at: At::Index(&self.at, items.len()) })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Value, E> {
        check_float(value, self.at).map(Value::from)
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// An error of reading text kept aside, for the reader of the whole
/// object (which says where it is: the position within the part is not).
fn inner_error<E: serde::de::Error>(error: serde_json::Error) -> E {
    E::custom(without_position(&error))
}

/// The message of `error` without its position (within a part read on its own).
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    text.strip_suffix(&position).unwrap_or(&text).to_owned()
}

/// `raw` (read already) as a [`Value`], strictly.
fn strict_text(raw: &RawValue, at: At) -> Result<Value, serde_json::Error> {
    Strict { at }.deserialize(&mut serde_json::Deserializer::from_str(raw.get()))
}

/// The `kube-once.io/` entries of `raw` (an object, read already), read
/// strictly; the others are only scanned.
fn kube_once_entries(raw: &RawValue, at: At) -> Result<Value, serde_json::Error> {
    struct Entries<'p>(At<'p>);
    impl<'de> Visitor<'de> for Entries<'_> {
        type Value = Value;

        fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
            formatter.write_str("an object")
        }

        fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Value, M::Error> {
            let mut fields = Map::new();
            while let Some(Key(key)) = map.next_key()? {
                if !key.starts_with(crate::PREFIX) {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
                if fields.contains_key(key.as_ref()) {
                    return Err(duplicate(&key, self.0));
                }
                let value = map.next_value_seed(Strict { at: At::Key(&self.0, &key) })?;
                fields.insert(key.into_owned(), value);
            }
            Ok(Value::Object(fields))
        }
    }
    serde_json::Deserializer::from_str(raw.get()).deserialize_map(Entries(at))
}

impl<'de: 'a, 'a> Visitor<'de> for Reader<'_, 'a, '_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Value, M::Error> {
        let mut fields = Map::new();
        while let Some(Key(key)) = map.next_key()? {
            let at = At::Key(&self.at, &key);
            let value = match self.shape.keep(&key) {
                Keep::Value => map.next_value_seed(Strict { at })?,
                Keep::Skip => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
                Keep::Nested(shape) => {
                    map.next_value_seed(Reader { shape, texts: self.texts, containers: self.containers, at })?
                }
                Keep::Annotations(template) => {
                    let raw: &'de RawValue = map.next_value()?;
                    if raw.get().starts_with('{') {
                        self.texts[template].annotations = Some(raw);
                        kube_once_entries(raw, at).map_err(inner_error)?
                    } else {
                        strict_text(raw, at).map_err(inner_error)?
                    }
                }
                Keep::Volumes(template) => {
                    if self.texts[template].volumes.is_some() {
                        return Err(duplicate(&key, self.at));
                    }
                    let raw: &'de RawValue = map.next_value()?;
                    if raw.get().starts_with('[') {
                        if fields.contains_key(key.as_ref()) {
                            return Err(duplicate(&key, self.at));
                        }
                        self.texts[template].volumes = Some(raw);
                        continue;
                    }
                    strict_text(raw, at).map_err(inner_error)?
                }
                Keep::Items(template, containers) => {
                    let kept = match containers {
                        Containers::App => &mut self.containers[template],
                        Containers::Init => &mut self.texts[template].init_containers,
                    };
                    // Kept once, and not also as a value.
                    if kept.is_some() {
                        return Err(duplicate(&key, self.at));
                    }
                    match map.next_value_seed(AppItems { at })? {
                        Items::List(_) if fields.contains_key(key.as_ref()) => {
                            return Err(duplicate(&key, self.at));
                        }
                        Items::List(items) => {
                            *kept = Some(items);
                            continue;
                        }
                        Items::Other(value) => value,
                    }
                }
            };
            // A skipped field is read by nobody, so only kept ones are
            // checked (after the value: `Key` borrows it for `at`).
            if fields.contains_key(key.as_ref()) {
                return Err(duplicate(&key, self.at));
            }
            fields.insert(key.into_owned(), value);
        }
        Ok(Value::Object(fields))
    }

    fn visit_seq<S: SeqAccess<'de>>(self, seq: S) -> Result<Value, S::Error> {
        Strict { at: self.at }.visit_seq(seq)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Value, E> {
        check_float(value, self.at).map(Value::from)
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// One app container: a [`Container`] when it is an object, else the item
/// as a value.
struct ContainerSeed<'p> {
    at: At<'p>,
}

impl<'de> DeserializeSeed<'de> for ContainerSeed<'_> {
    type Value = Result<Container<'de>, Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ContainerSeed<'_> {
    type Value = Result<Container<'de>, Value>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a container")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut container = Container::default();
        let mut keys = Keys::new();
        while let Some(Key(key)) = map.next_key()? {
            if !keys.insert(key.clone()) {
                return Err(duplicate(&key, self.at));
            }
            let at = At::Key(&self.at, &key);
            if let Some(field) = LIST_FIELDS.iter().find(|field| **field == key) {
                // Copied as written or not at all, never read item by
                // item: its text is the copy source whatever it repeats,
                // so it is not checked (an env-heavy review would pay a
                // second pass).
                let raw: &'de RawValue = map.next_value()?;
                container.lists.push((field, List::Text(raw)));
            } else if key == "name" || COPIED_VALUES.contains(&key.as_ref()) {
                let value = map.next_value_seed(Strict { at })?;
                container.fields.insert(key.into_owned(), value);
            } else {
                // Probes, ports, lifecycle: nothing reads or copies
                // them, so they are neither built nor checked.
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Ok(container))
    }

    fn visit_seq<S: SeqAccess<'de>>(self, seq: S) -> Result<Self::Value, S::Error> {
        Strict { at: self.at }.visit_seq(seq).map(Err)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Self::Value, E> {
        Ok(Err(Value::Bool(value)))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Self::Value, E> {
        Ok(Err(Value::from(value)))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Self::Value, E> {
        Ok(Err(Value::from(value)))
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Self::Value, E> {
        check_float(value, self.at).map(|value| Err(Value::from(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Err(Value::String(value.to_owned())))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Err(Value::Null))
    }
}

/// The keys of one JSON object seen so far, to refuse a repeated one
/// without building the object: the first few on the stack (most objects
/// of a pod spec have few keys, and this runs for each of them), the rest
/// in a set (a hostile object of many keys must not cost the square of
/// their number).
struct Keys<'t> {
    few: [Cow<'t, str>; Keys::FEW],
    len: usize,
    many: std::collections::HashSet<Cow<'t, str>>,
}

impl<'t> Keys<'t> {
    const FEW: usize = 16;

    fn new() -> Self {
        Keys { few: std::array::from_fn(|_| Cow::Borrowed("")), len: 0, many: Default::default() }
    }

    /// Whether `key` is new (it is then remembered).
    fn insert(&mut self, key: Cow<'t, str>) -> bool {
        let (seen, free) = self.few.split_at_mut(self.len);
        if seen.contains(&key) {
            return false;
        }
        match free.first_mut() {
            Some(slot) => {
                *slot = key;
                self.len += 1;
                true
            }
            None => self.many.insert(key),
        }
    }
}

/// One app container as read: its name and the fields `kube-once-run`
/// copies as values, the list fields ([`LIST_FIELDS`]) as text; the rest
/// (probes, ports, lifecycle) is not read.
#[derive(Debug, Clone, Default)]
pub struct Container<'a> {
    fields: Map<String, Value>,
    lists: Vec<(&'static str, List<'a>)>,
}

impl<'a> Container<'a> {
    /// A field read as a value (not one of the list fields).
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.fields.get(field)
    }

    /// Any field, wherever it is kept.
    pub fn field(&self, field: &str) -> Option<Field<'_, 'a>> {
        if let Some(value) = self.fields.get(field) {
            return Some(Field::Inline(value));
        }
        self.lists.iter().find(|(name, _)| *name == field).map(|(_, list)| Field::Aside(list))
    }
}

/// The lists of the init containers kube-once writes kept aside, by field,
/// then container name: `kube-once-run`'s, which extend the app's (see
/// [`List::Extended`]).
#[derive(Debug, Clone, Default)]
pub struct Lists<'a>(BTreeMap<&'static str, BTreeMap<String, List<'a>>>);

impl<'a> Lists<'a> {
    pub fn get(&self, container: &str, field: &str) -> Option<&List<'a>> {
        self.0.get(field)?.get(container)
    }

    pub fn insert(&mut self, container: &str, field: &'static str, list: List<'a>) {
        self.0.entry(field).or_default().insert(container.to_owned(), list);
    }

    /// The extra items of `container`'s extended `field`, moved out (none
    /// when it is not an extended list).
    pub fn take_extra(&mut self, container: &str, field: &str) -> Vec<Value> {
        match self.0.get_mut(field).and_then(|lists| lists.get_mut(container)) {
            Some(List::Extended { extra, .. }) => std::mem::take(extra),
            _ => Vec::new(),
        }
    }
}

/// One kept-aside field.
#[derive(Debug, Clone)]
pub enum List<'a> {
    /// As the request wrote it (a list, or `null`).
    Text(&'a RawValue),
    /// The items of another container's list (`from`, a list as text), then
    /// `extra`: what `kube-once-run` gets (the app's env, then the
    /// `KUBE_ONCE_*` variables). `from` is read again only when needed.
    Extended { from: &'a RawValue, from_len: usize, extra: Vec<Value> },
}

impl<'a> List<'a> {
    /// The items of `from` (a list), then `extra`.
    pub fn extended(from: &'a RawValue, extra: Vec<Value>) -> Self {
        List::Extended { from, from_len: count_items(from), extra }
    }
}

/// One item of a list: as the request wrote it, or a value.
#[derive(Debug, Clone, Copy)]
pub enum Item<'x> {
    Text(&'x RawValue),
    Value(&'x Value),
}

impl<'x> Item<'x> {
    /// The item as a value, read when it is text.
    pub fn as_value(self) -> Cow<'x, Value> {
        match self {
            Item::Text(raw) => Cow::Owned(parse_or_null(raw)),
            Item::Value(value) => Cow::Borrowed(value),
        }
    }

    /// The item's `name`, when it is an object with a string `name`.
    pub fn name(self) -> Option<Cow<'x, str>> {
        #[derive(serde::Deserialize)]
        struct Named<'t> {
            #[serde(borrow)]
            name: Option<Cow<'t, str>>,
        }
        match self {
            Item::Text(raw) => match scan::plain_name(raw.get()) {
                Some(name) => name.map(Cow::Borrowed),
                None => serde_json::from_str::<Named>(raw.get()).ok()?.name,
            },
            Item::Value(value) => value.get("name").and_then(Value::as_str).map(Cow::Borrowed),
        }
    }
}

impl Item<'_> {
    pub fn to_value(self) -> Value {
        self.as_value().into_owned()
    }

    /// Whether the item is an object with this `name` (an env var, a mount).
    pub fn is_named(self, wanted: &str) -> bool {
        self.name().as_deref() == Some(wanted)
    }

    /// Equal in meaning: the same text (what the API server writes for
    /// equal objects), else as far as the texts tell, else the same parsed value.
    pub fn same(self, other: Item) -> bool {
        match (self, other) {
            (Item::Value(a), Item::Value(b)) => a == b,
            (Item::Text(a), Item::Text(b)) => same_texts(a, b).unwrap_or_else(|| self.as_value() == other.as_value()),
            (a, b) => a.as_value() == b.as_value(),
        }
    }
}

/// One item of a list kube-once edits by name (the volumes): as the
/// request wrote it, or a value kube-once wrote.
#[derive(Debug, Clone)]
pub enum Entry<'a> {
    Text(&'a RawValue),
    /// Boxed: an entry is then the size of a borrowed text (16 bytes), what
    /// a list of 90,000 volumes costs per item.
    Value(Box<Value>),
}

impl Default for Entry<'_> {
    fn default() -> Self {
        Entry::Value(Box::default())
    }
}

impl<'a> Entry<'a> {
    /// The items of `raw`, a list as text (none when it is not a list),
    /// allocated once with room for `room` more.
    pub fn all(raw: &'a RawValue, room: usize) -> Vec<Self> {
        struct Entries<'a>(Vec<Entry<'a>>);
        impl<'de> Visitor<'de> for Entries<'de> {
            type Value = Vec<Entry<'de>>;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a list")
            }

            fn visit_seq<S: SeqAccess<'de>>(mut self, mut seq: S) -> Result<Self::Value, S::Error> {
                while let Some(item) = seq.next_element()? {
                    self.0.push(Entry::Text(item));
                }
                Ok(self.0)
            }
        }
        // Counted first: a list grown by doubling would hold up to twice its items.
        let entries = Entries(Vec::with_capacity(count_items(raw) + room));
        serde_json::Deserializer::from_str(raw.get()).deserialize_seq(entries).unwrap_or_default()
    }

    pub fn value(value: Value) -> Self {
        Entry::Value(Box::new(value))
    }

    /// Whether this is `text`, as the request wrote it.
    pub fn is_text(&self, text: &RawValue) -> bool {
        matches!(self, Entry::Text(raw) if raw.get() == text.get())
    }

    pub fn item(&self) -> Item<'_> {
        match self {
            Entry::Text(raw) => Item::Text(raw),
            Entry::Value(value) => Item::Value(value),
        }
    }

    pub fn into_value(self) -> Value {
        match self {
            Entry::Text(raw) => parse_or_null(raw),
            Entry::Value(value) => *value,
        }
    }
}

/// How many items `raw` (a list as text) and `entries` have in common at
/// their start, and the items of `raw` after them, read one at a time: a
/// list compared with itself plus an item keeps none of its items.
pub fn common_start<'a>(raw: &'a RawValue, entries: &[Entry]) -> (usize, Vec<&'a RawValue>) {
    struct Start<'e, 'x>(&'e [Entry<'x>]);
    impl<'de> Visitor<'de> for Start<'_, '_> {
        type Value = (usize, Vec<&'de RawValue>);

        fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
            formatter.write_str("a list")
        }

        fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
            let (mut common, mut rest) = (0, Vec::new());
            while let Some(item) = seq.next_element::<&RawValue>()? {
                match self.0.get(common) {
                    Some(entry) if rest.is_empty() && Item::Text(item).same(entry.item()) => common += 1,
                    _ => rest.push(item),
                }
            }
            Ok((common, rest))
        }
    }
    serde_json::Deserializer::from_str(raw.get()).deserialize_seq(Start(entries)).unwrap_or_default()
}

/// Two lists of entries equal in meaning.
pub fn same_entries(a: &[Entry], b: &[Entry]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.item().same(b.item()))
}

/// The entries of annotations (an object as text) not under `kube-once.io/`.
fn other_annotations(raw: &RawValue) -> BTreeMap<Cow<'_, str>, &RawValue> {
    let entries: BTreeMap<Cow<str>, &RawValue> = serde_json::from_str(raw.get()).unwrap_or_default();
    entries.into_iter().filter(|(key, _)| !key.starts_with(crate::PREFIX)).collect()
}

/// Whether annotations (an object as text) have an entry not under `kube-once.io/`.
pub fn has_other_annotations(raw: Option<&RawValue>) -> bool {
    struct Others;
    impl<'de> Visitor<'de> for Others {
        type Value = bool;

        fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
            formatter.write_str("an object")
        }

        fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<bool, M::Error> {
            let mut found = false;
            while let Some(Key(key)) = map.next_key()? {
                map.next_value::<IgnoredAny>()?;
                found = found || !key.starts_with(crate::PREFIX);
            }
            Ok(found)
        }
    }
    raw.is_some_and(|raw| serde_json::Deserializer::from_str(raw.get()).deserialize_map(Others).unwrap_or(false))
}

/// Whether two templates' annotations (as text, when objects) have the
/// same entries outside `kube-once.io/` (those are compared as values).
pub fn same_other_annotations(a: Option<&RawValue>, b: Option<&RawValue>) -> bool {
    if let (Some(a), Some(b)) = (a, b)
        && a.get() == b.get()
    {
        return true;
    }
    let (a, b) = (a.map(other_annotations).unwrap_or_default(), b.map(other_annotations).unwrap_or_default());
    a.len() == b.len()
        && a.iter().zip(&b).all(|((a_key, a), (b_key, b))| a_key == b_key && Item::Text(a).same(Item::Text(b)))
}

/// Whether two texts are equal in meaning, when the texts settle it (see
/// [`scan::same_values`]); the same text first (what the API server writes
/// for equal objects).
fn same_texts(a: &RawValue, b: &RawValue) -> Option<bool> {
    if std::ptr::eq(a, b) || a.get() == b.get() {
        return Some(true);
    }
    scan::same_values(a.get(), b.get())
}

/// Text that [`Workload::parse`] already read as JSON.
fn parse_or_null(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}

/// The items of a JSON list as text; `None` when `raw` is not a list.
fn raw_list(raw: &RawValue) -> Option<Vec<&RawValue>> {
    if !raw.get().starts_with('[') {
        return None;
    }
    serde_json::from_str(raw.get()).ok()
}

fn raw_items(raw: &RawValue) -> Option<Vec<Item<'_>>> {
    raw_list(raw).map(|items| items.into_iter().map(Item::Text).collect())
}

/// How many items the JSON list `raw` has, without keeping them (0 for a non-list).
fn count_items(raw: &RawValue) -> usize {
    scan::count_items(raw.get()).unwrap_or(0)
}

/// Whether the JSON list `raw` has an item named `wanted`, read one item at a time.
fn has_item_named(raw: &RawValue, wanted: &str) -> bool {
    struct Named<'w>(&'w str);
    impl<'de> Visitor<'de> for Named<'_> {
        type Value = bool;

        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("a list")
        }

        fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<bool, S::Error> {
            let mut found = false;
            while let Some(item) = seq.next_element::<&RawValue>()? {
                found = found || Item::Text(item).is_named(self.0);
            }
            Ok(found)
        }
    }
    let mut deserializer = serde_json::Deserializer::from_str(raw.get());
    deserializer.deserialize_seq(Named(wanted)).unwrap_or(false)
}

/// A container field wherever it is: inline in the container's [`Value`],
/// or kept aside in [`Lists`].
#[derive(Debug, Clone, Copy)]
pub enum Field<'x, 'a> {
    Inline(&'x Value),
    Aside(&'x List<'a>),
}

impl<'x, 'a> Field<'x, 'a> {
    /// `container[field]` of an init container (absent: `None`).
    pub fn of(container: &'x Value, field: &str, lists: &'x Lists<'a>) -> Option<Self> {
        if let Some(value) = container.get(field) {
            return Some(Field::Inline(value));
        }
        let name = container.get("name")?.as_str()?;
        lists.get(name, field).map(Field::Aside)
    }

    /// Whether the field is a list.
    pub fn is_list(self) -> bool {
        match self {
            Field::Inline(value) => value.is_array(),
            Field::Aside(List::Text(raw)) => raw.get().starts_with('['),
            Field::Aside(List::Extended { .. }) => true,
        }
    }

    /// The items, when the field is a list.
    pub fn items(self) -> Option<Vec<Item<'x>>> {
        match self {
            Field::Inline(value) => value.as_array().map(|items| items.iter().map(Item::Value).collect()),
            Field::Aside(List::Text(raw)) => raw_items(raw),
            Field::Aside(List::Extended { from, extra, .. }) => {
                let base = raw_list(from).unwrap_or_default();
                Some(base.into_iter().map(Item::Text).chain(extra.iter().map(Item::Value)).collect())
            }
        }
    }

    /// The field as a [`Value`] (materialised: for what is sent whole).
    pub fn to_value(self) -> Value {
        match self {
            Field::Inline(value) => value.clone(),
            Field::Aside(List::Text(raw)) => parse_or_null(raw),
            Field::Aside(List::Extended { .. }) => {
                Value::Array(self.items().into_iter().flatten().map(Item::to_value).collect())
            }
        }
    }

    /// How many items the field has, when it is a list.
    pub fn item_count(self) -> Option<usize> {
        match self {
            Field::Inline(value) => value.as_array().map(Vec::len),
            Field::Aside(List::Text(raw)) => raw.get().starts_with('[').then(|| count_items(raw)),
            Field::Aside(List::Extended { from_len, extra, .. }) => Some(from_len + extra.len()),
        }
    }

    /// Whether the field is a list with an item named `wanted` (an env var, a mount).
    pub fn has_item_named(self, wanted: &str) -> bool {
        match self {
            Field::Inline(value) => {
                value.as_array().is_some_and(|items| items.iter().any(|item| Item::Value(item).is_named(wanted)))
            }
            Field::Aside(List::Text(raw)) => has_item_named(raw, wanted),
            Field::Aside(List::Extended { from, extra, .. }) => {
                has_item_named(from, wanted) || extra.iter().any(|item| Item::Value(item).is_named(wanted))
            }
        }
    }

    /// The items after the first `skip`, as values (what a patch adds after
    /// a `copy`; the extra items of an extended list are moved out by
    /// [`Lists::take_extra`] instead).
    pub fn items_after(self, skip: usize) -> Vec<Value> {
        self.items().into_iter().flatten().skip(skip).map(Item::to_value).collect()
    }

    /// Whether the items after the first `skip` are all the extra items of
    /// an extended list ([`Lists::take_extra`] moves them out).
    pub fn is_extra_after(self, skip: usize) -> bool {
        matches!(self, Field::Aside(List::Extended { from_len, .. }) if skip == *from_len)
    }

    /// How many items of `self` are, in order, all the items of `prefix`
    /// (`None` when `prefix` is not a list of at least one item that
    /// starts `self`).
    pub fn starts_with(self, prefix: Field) -> Option<usize> {
        // kube-once-run's list is (or extends) the app's: no need to read it again.
        match (self, prefix) {
            (Field::Aside(List::Extended { from, from_len, .. }), Field::Aside(List::Text(text)))
                if std::ptr::eq(*from, *text) =>
            {
                return (*from_len > 0).then_some(*from_len);
            }
            (Field::Aside(List::Text(ours)), Field::Aside(List::Text(text))) if std::ptr::eq(*ours, *text) => {
                let len = count_items(text);
                return (len > 0).then_some(len);
            }
            _ => {}
        }
        let (ours, theirs) = (self.items()?, prefix.items()?);
        let starts =
            !theirs.is_empty() && theirs.len() <= ours.len() && ours.iter().zip(&theirs).all(|(a, b)| a.same(*b));
        starts.then_some(theirs.len())
    }

    /// Equal in meaning.
    pub fn same(self, other: Field) -> bool {
        match (self, other) {
            (Field::Inline(a), Field::Inline(b)) => return a == b,
            // The API server writes what it stores the same way each time:
            // an unchanged list is the same text, compared without its items.
            (Field::Aside(List::Text(a)), Field::Aside(List::Text(b))) if a.get() == b.get() => return true,
            _ => {}
        }
        match (self.items(), other.items()) {
            (Some(a), Some(b)) => a.len() == b.len() && a.into_iter().zip(b).all(|(a, b)| a.same(b)),
            (None, None) => match (self, other) {
                (Field::Aside(List::Text(a)), Field::Aside(List::Text(b))) if a.get() == b.get() => true,
                _ => self.to_value() == other.to_value(),
            },
            _ => false,
        }
    }
}

/// Two init containers equal in meaning, as the request wrote them or as
/// values (the lists of those kube-once writes in `a_lists`, `b_lists`).
pub fn same_init_container(a: Item, a_lists: &Lists, b: Item, b_lists: &Lists) -> bool {
    match (a, b) {
        // A text holds all its fields: nothing of it is kept aside.
        (Item::Text(_), Item::Text(_)) => a.same(b),
        (Item::Text(text), Item::Value(value)) => matches::same_container(text, value, b_lists),
        (Item::Value(value), Item::Text(text)) => matches::same_container(text, value, a_lists),
        (Item::Value(a), Item::Value(b)) => same_container(a, a_lists, b, b_lists),
    }
}

/// Two init containers equal in meaning, wherever their lists are kept.
pub fn same_container(a: &Value, a_lists: &Lists, b: &Value, b_lists: &Lists) -> bool {
    let (Some(a_fields), Some(b_fields)) = (a.as_object(), b.as_object()) else { return a == b };
    let is_list = |key: &str| LIST_FIELDS.contains(&key);
    fields_except(a_fields, is_list) == fields_except(b_fields, is_list)
        && LIST_FIELDS.iter().all(|field| match (Field::of(a, field, a_lists), Field::of(b, field, b_lists)) {
            (None, None) => true,
            (Some(a), Some(b)) => a.same(b),
            _ => false,
        })
}

fn fields_except(fields: &Map<String, Value>, skip: impl Fn(&str) -> bool) -> Vec<(&String, &Value)> {
    fields.iter().filter(|(key, _)| !skip(key)).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The app container named `name`, read.
    fn named<'a>(containers: AppContainers<'_, 'a>, name: &str) -> Option<Container<'a>> {
        let (index, container) = containers.find(|container| container.name().as_deref() == Some(name))?;
        Some(container.read(&format!("/spec/template/spec/containers/{index}")).unwrap())
    }

    #[test]
    fn init_containers_stay_text_and_the_rest_is_skipped() {
        let init = r#"[{"name":"app","image":"a:1","env":[{"name":"A","value":"1"}],"resources":{"x":1,"x":2}}]"#;
        let text = format!(
            r#"{{"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {{"name": "web", "labels": {{"a": "b"}}, "managedFields": [{{"manager": "kubectl"}}]}},
                "spec": {{"replicas": 3, "template": {{"spec": {{
                    "containers": [{{"name": "app", "image": "a:1", "env": [{{"name": "A", "value": "1"}}]}}],
                    "initContainers": {init}
                }}}}}},
                "status": {{"replicas": 3}}}}"#
        );
        let deployment = Workload::parse(&text).unwrap();
        // Of the labels only kube-once.io/ ones are read (an annotation written as a label is refused).
        assert_eq!(deployment.value["metadata"], json!({"name": "web", "labels": {}}));
        assert_eq!(deployment.value.get("status"), None);
        assert_eq!(deployment.value["spec"].get("replicas"), None);
        assert_eq!(deployment.value["spec"]["template"]["spec"], json!({}));
        // Kept as written, borrowed, and not read: sent back or compared as it is.
        let kept = deployment.text(crate::Kind::Deployment).init_containers.as_ref().unwrap();
        let [item]: [&RawValue; 1] = kept.iter().collect::<Vec<_>>().try_into().unwrap();
        assert_eq!(format!("[{}]", item.get()), init);
        assert!(std::ptr::eq(item.get().as_ptr(), text[text.find(init).unwrap() + 1..].as_ptr()));
        // The app container of the same name is apart: its env is in its text.
        let app = named(deployment.app_containers(crate::Kind::Deployment).unwrap(), "app").unwrap();
        assert_eq!(app.field("env").unwrap().to_value(), json!([{"name": "A", "value": "1"}]));
        // Not a list: a value, read strictly; a list once.
        let null = r#"{"spec": {"template": {"spec": {"initContainers": null}}}}"#;
        let deployment = Workload::parse(null).unwrap();
        assert_eq!(deployment.value["spec"]["template"]["spec"]["initContainers"], Value::Null);
        assert!(deployment.text(crate::Kind::Deployment).init_containers.is_none());
        let twice = r#"{"spec": {"template": {"spec": {"initContainers": [], "initContainers": null}}}}"#;
        let error = Workload::parse(twice).unwrap_err().to_string();
        assert!(error.starts_with("duplicate key `initContainers` at /spec/template/spec:"), "{error}");
    }

    #[test]
    fn init_containers_are_equal_in_meaning_as_text_or_as_values() {
        let text: &RawValue = serde_json::from_str(r#"{"name": "a", "env": [{"name": "A"}], "image": "i"}"#).unwrap();
        let reordered: &RawValue =
            serde_json::from_str(r#"{"image": "i", "name": "a", "env": [{"name": "A"}]}"#).unwrap();
        let none = Lists::default();
        assert!(same_init_container(Item::Text(text), &none, Item::Text(reordered), &none));
        // kube-once-run's env is kept aside, extending the app's.
        let env: &RawValue = serde_json::from_str(r#"[]"#).unwrap();
        let mut lists = Lists::default();
        lists.insert("a", "env", List::extended(env, vec![json!({"name": "A"})]));
        let value = json!({"name": "a", "image": "i"});
        assert!(same_init_container(Item::Text(text), &none, Item::Value(&value), &lists));
        assert!(!same_init_container(Item::Text(text), &none, Item::Value(&value), &none));
        let other = json!({"name": "a", "image": "j"});
        assert!(!same_init_container(Item::Text(text), &none, Item::Value(&other), &lists));
    }

    #[test]
    fn app_containers_stay_text_read_one_at_a_time() {
        let deployment = |args: &str, sidecar: &str| {
            format!(
                r#"{{"spec": {{"template": {{"spec": {{
                    "containers": [{{"name": "app", "image": "a:1", "command": ["serve"], "args": ["--port", {args}]}}, {sidecar}],
                    "initContainers": [{{"name": "prep", "command": ["prep"], "args": ["--all"]}}]
                }}}}}}}}"#
            )
        };
        let sidecar = r#"{"name": "side", "image": "s:1", "resources": {"limits": {"cpu": "1"}}}"#;
        let reordered = r#"{ "resources": {"limits": {"cpu": "1"}}, "image": "s:1", "name": "side" }"#;
        let texts = [
            deployment("\"80\"", sidecar),
            deployment("\"80\"", sidecar),
            deployment("\"81\"", sidecar),
            deployment("\"80\"", reordered),
        ];
        let [before, after, changed, reformatted] = [0, 1, 2, 3].map(|i| Workload::parse(&texts[i]).unwrap());
        let template = |w: &Workload| w.value["spec"]["template"].clone();
        assert_eq!(template(&before)["spec"].get("containers"), None);
        let containers = before.app_containers(crate::Kind::Deployment).unwrap();
        assert_eq!(containers.names(), ["app", "side"]);
        let app = named(containers, "app").unwrap();
        assert_eq!(app.get("image"), Some(&json!("a:1")));
        assert_eq!(app.field("args").unwrap().to_value(), json!(["--port", "80"]));
        assert_eq!(app.get("args"), None, "a list stays text");
        assert!(named(containers, "none").is_none());
        let (index, side) = containers.find(|c| c.name().as_deref() == Some("side")).unwrap();
        assert_eq!(index, 1);
        let [resources, env] = side.with_fields(["resources", "env"], |[r, e]| [r, e].map(|f| f.map(Field::to_value)));
        assert_eq!((resources, env), (Some(json!({"limits": {"cpu": "1"}})), None));
        // The stability rule sees a change of the app's args, not a change of format.
        let same = |other: &Workload| containers.same(other.app_containers(crate::Kind::Deployment).unwrap());
        assert!(same(&after) && same(&reformatted));
        assert!(!same(&changed));
        let inline = json!([app.get("name"), {"name": "side"}]);
        assert!(!containers.same(AppContainers::Inline(inline.as_array().unwrap())));
    }

    #[test]
    fn an_app_container_costs_what_its_borrowed_text_does() {
        // A container read as a `Value` is a map of ~600-byte nodes: ~70,000
        // sidecars would cost ~30× their text. Kept, a template's app
        // containers are their borrowed texts, one per container, found
        // while the workload is read.
        assert_eq!(std::mem::size_of::<AppContainer>(), 16);
        assert_eq!(std::mem::size_of::<&RawValue>(), 16);
        let containers = r#"[{"name":"a","image":"i"}, {"name":"b","image":"i"}]"#;
        let text = format!(r#"{{"spec":{{"template":{{"spec":{{"containers":{containers}}}}}}}}}"#);
        let deployment = Workload::parse(&text).unwrap();
        assert_eq!(deployment.value, json!({"spec": {"template": {"spec": {}}}}));
        let kept: Vec<&RawValue> = deployment.containers[0].as_ref().unwrap().iter().collect();
        assert_eq!(
            kept.iter().map(|item| item.get()).collect::<Vec<_>>(),
            [r#"{"name":"a","image":"i"}"#, r#"{"name":"b","image":"i"}"#]
        );
        assert!(std::ptr::eq(kept[1].get().as_ptr(), text[text.find(r#"{"name":"b""#).unwrap()..].as_ptr()));
        // Many containers are kept in chunks, in order.
        let many: Vec<String> = (0..2500).map(|i| format!(r#"{{"name":"s{i}"}}"#)).collect();
        let text = format!(r#"{{"spec":{{"template":{{"spec":{{"containers":[{}]}}}}}}}}"#, many.join(","));
        let deployment = Workload::parse(&text).unwrap();
        let kept = deployment.containers[0].as_ref().unwrap();
        assert_eq!(kept.0.iter().map(Vec::len).collect::<Vec<_>>(), [1024, 1024, 452]);
        assert!(kept.iter().map(RawValue::get).eq(many.iter().map(String::as_str)));
        // Not a list: a value, read strictly, as before.
        for (containers, expected) in [("null", Value::Null), ("{}", json!({}))] {
            let text = format!(r#"{{"spec":{{"template":{{"spec":{{"containers":{containers}}}}}}}}}"#);
            let deployment = Workload::parse(&text).unwrap();
            assert_eq!(deployment.value["spec"]["template"]["spec"]["containers"], expected);
            assert!(deployment.containers[0].is_none());
        }
        let twice = r#"{"spec": {"template": {"spec": {"containers": [], "containers": null}}}}"#;
        let error = Workload::parse(twice).unwrap_err().to_string();
        assert!(error.starts_with("duplicate key `containers` at /spec/template/spec:"), "{error}");
        // A container is checked when it is read, not before: an unread one is not looked at.
        let twice = r#"{"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "b", "resources": {"x": 1, "x": 2}}]}}}}"#;
        let deployment = Workload::parse(twice).unwrap();
        let containers = deployment.app_containers(crate::Kind::Deployment).unwrap();
        assert!(named(containers, "a").is_some());
        let (_, b) = containers.find(|container| container.name().as_deref() == Some("b")).unwrap();
        let error = b.read("/spec/template/spec/containers/1").unwrap_err();
        assert!(error.starts_with("duplicate key `x` at /spec/template/spec/containers/1/resources:"), "{error}");
        assert!(!error.contains(" at line "), "{error}");
    }

    #[test]
    fn a_container_whose_keys_repeat_is_never_a_copy_source() {
        let fields = |container: &str| {
            let raw: &RawValue = serde_json::from_str(container).unwrap();
            AppContainer::Text(raw).with_fields(["env", "resources"], |found| found.map(|f| f.map(Field::to_value)))
        };
        assert_eq!(fields(r#"{"name": "a", "env": [], "resources": {}}"#), [Some(json!([])), Some(json!({}))]);
        assert_eq!(fields(r#"{"name": "a", "env": [], "env": []}"#), [None, None]);
        assert_eq!(fields(r#"{"name": "a", "name": "b", "resources": {}}"#), [None, None]);
        // Past the few keys kept on the stack, a repeat is still seen, whichever key it repeats.
        for repeated in ["k3", "k18"] {
            let keys: String = (0..20).map(|i| format!(r#""k{i}": 1, "#)).collect();
            assert_eq!(fields(&format!(r#"{{{keys}"env": [], "{repeated}": 2}}"#)), [None, None], "{repeated}");
        }
        let keys: String = (0..20).map(|i| format!(r#""k{i}": 1, "#)).collect();
        assert_eq!(fields(&format!(r#"{{{keys}"env": []}}"#)), [Some(json!([])), None]);
        // A lookup by name takes the first (the read that follows refuses the repeat).
        let raw: &RawValue = serde_json::from_str(r#"{"name": "a", "name": "b"}"#).unwrap();
        assert_eq!(AppContainer::Text(raw).name().as_deref(), Some("a"));
        assert!(AppContainer::Text(raw).read("/spec/template/spec/containers/0").is_err());
    }

    #[test]
    fn only_kube_once_annotations_of_the_workload_are_read() {
        let last_applied = json!({"metadata": {"annotations": {"kube-once.io/run": "stale"}}}).to_string();
        let text = json!({
            "kind": "Deployment",
            "metadata": {"name": "web", "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": last_applied,
                "kube-once.io/run": "migrate",
                "checksum/config": {"not": "a string"},
            }},
        })
        .to_string();
        let deployment = Workload::parse(&text).unwrap();
        assert_eq!(deployment.value["metadata"]["annotations"], json!({"kube-once.io/run": "migrate"}));

        // A repeated kube-once.io/ key is still refused; others are not read.
        let twice =
            r#"{"metadata": {"annotations": {"a": "1", "a": "2", "kube-once.io/run": "x", "kube-once.io/run": "y"}}}"#;
        let error = Workload::parse(twice).unwrap_err().to_string();
        assert!(error.starts_with("duplicate key `kube-once.io/run` at /metadata/annotations:"), "{error}");
    }

    #[test]
    fn template_volumes_and_annotations_stay_text_but_kube_once_ones() {
        let text = json!({
            "kind": "CronJob",
            "spec": {"jobTemplate": {"spec": {"template": {
                "metadata": {"labels": {"a": "b"}, "annotations": {"checksum/config": "x", "kube-once.io/status": "{}"}},
                "spec": {"volumes": [{"name": "data", "emptyDir": {}}], "containers": []},
            }}}},
        })
        .to_string();
        let cron_job = Workload::parse(&text).unwrap();
        let template = &cron_job.value["spec"]["jobTemplate"]["spec"]["template"];
        assert_eq!(template["metadata"], json!({"labels": {"a": "b"}, "annotations": {"kube-once.io/status": "{}"}}));
        assert_eq!(template["spec"], json!({}));
        let kept = cron_job.text(crate::Kind::CronJob);
        assert_eq!(kept.volumes.unwrap().get(), r#"[{"emptyDir":{},"name":"data"}]"#);
        assert!(has_other_annotations(kept.annotations));
        assert!(cron_job.text(crate::Kind::Deployment).volumes.is_none());

        // Where kube-once reads them, they are read strictly, and the
        // message says where in the object.
        let twice = r#"{"spec": {"template": {"metadata": {"annotations":
            {"a": "1", "a": "2", "kube-once.io/status": "x", "kube-once.io/status": "y"}}}}}"#;
        let error = Workload::parse(twice).unwrap_err().to_string();
        assert!(
            error.starts_with("duplicate key `kube-once.io/status` at /spec/template/metadata/annotations: ")
                && error.matches(" at line ").count() == 1,
            "{error}"
        );
        let twice = r#"{"spec": {"template": {"spec": {"volumes": [], "volumes": null}}}}"#;
        let error = Workload::parse(twice).unwrap_err().to_string();
        assert!(error.starts_with("duplicate key `volumes` at /spec/template/spec:"), "{error}");
        // Not a list or an object: read as a value, strictly.
        let odd = r#"{"spec": {"template": {"metadata": {"annotations": null}, "spec": {"volumes": 1e300}}}}"#;
        let error = Workload::parse(odd).unwrap_err().to_string();
        assert!(error.starts_with("the number at /spec/template/spec/volumes (1e300)"), "{error}");
    }

    #[test]
    fn an_entry_costs_what_its_borrowed_text_does_and_a_common_start_is_not_kept() {
        assert_eq!(std::mem::size_of::<Entry>(), 16);
        let raw: &RawValue = serde_json::from_str(r#"[{"name": "a"}, {"name": "b"}, {"name": "c"}]"#).unwrap();
        let mut entries = Entry::all(raw, 0);
        assert_eq!(entries.len(), 3);
        entries.remove(1);
        entries.push(Entry::value(json!({"name": "d"})));
        let (common, rest) = common_start(raw, &entries);
        assert_eq!(common, 1);
        assert_eq!(rest.iter().map(|item| item.get()).collect::<Vec<_>>(), [r#"{"name": "b"}"#, r#"{"name": "c"}"#]);
    }

    #[test]
    fn lists_are_equal_in_meaning_wherever_they_are() {
        let text = r#"[{"name": "A", "value": "1"}, {"value": "2", "name": "B"}]"#;
        let raw: &RawValue = serde_json::from_str(text).unwrap();
        let first_raw: &RawValue = serde_json::from_str(r#"[{"name": "A", "value": "1"}]"#).unwrap();
        let inline = json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]);
        let aside = List::Text(raw);
        assert!(Field::Aside(&aside).same(Field::Inline(&inline)));
        let first = json!([{"name": "A", "value": "1"}]);
        let extended = List::extended(first_raw, vec![inline[1].clone()]);
        assert!(Field::Aside(&extended).same(Field::Aside(&aside)));
        assert!(!Field::Aside(&extended).same(Field::Inline(&first)));
        assert_eq!(Field::Aside(&extended).starts_with(Field::Inline(&first)), Some(1));
        assert_eq!(Field::Aside(&aside).starts_with(Field::Inline(&first)), Some(1));
        assert_eq!(Field::Inline(&first).starts_with(Field::Aside(&aside)), None);
        assert_eq!(Field::Inline(&first).starts_with(Field::Inline(&json!([]))), None);
        assert_eq!(Field::Aside(&extended).starts_with(Field::Aside(&List::Text(first_raw))), Some(1));
        assert_eq!(Field::Aside(&extended).items_after(1), vec![inline[1].clone()]);
        assert_eq!(Field::Aside(&aside).items_after(1), vec![inline[1].clone()]);
        assert_eq!(Field::Aside(&extended).item_count(), Some(2));
        assert!(Field::Aside(&extended).has_item_named("B") && Field::Aside(&aside).has_item_named("A"));
        assert!(!Field::Aside(&aside).has_item_named("C") && !Field::Inline(&first).has_item_named("B"));
    }
}
