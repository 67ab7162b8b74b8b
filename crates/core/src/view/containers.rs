//! The app containers of a pod template (`spec.containers`), kept as the
//! request's text, one text per container, and read on demand (see the
//! docs of [`super`]): found while the workload is read ([`AppItems`]),
//! then looked through, compared and read one at a time
//! ([`AppContainers`], [`AppContainer`]).

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use super::{
    At, Container, ContainerSeed, Field, Key, Keys, List, Strict, check_float, parse_or_null, without_position,
};

/// The text of each app container of a pod template, in order, in chunks:
/// a list grown by doubling holds up to twice its items and copies them as
/// it grows (~1.5× the list at once, for ~70,000 sidecars ~0.8× their
/// body); a chunk is filled, then the next one is allocated.
#[derive(Debug, Clone, Default)]
pub struct ContainerTexts<'a>(pub(super) Vec<Vec<&'a RawValue>>);

impl<'a> ContainerTexts<'a> {
    /// Items of a chunk: past the first (grown by doubling, what one or a
    /// few containers need), each chunk is allocated whole.
    const CHUNK: usize = 1024;

    fn push(&mut self, item: &'a RawValue) {
        match self.0.last_mut() {
            Some(chunk) if chunk.len() < Self::CHUNK => chunk.push(item),
            _ => {
                let mut chunk = if self.0.is_empty() { Vec::new() } else { Vec::with_capacity(Self::CHUNK) };
                chunk.push(item);
                self.0.push(chunk);
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a RawValue> + '_ {
        self.0.iter().flatten().copied()
    }

    /// How many items (what a list built from them can be allocated for at once).
    pub fn len(&self) -> usize {
        self.0.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `spec.containers`: when a list, the text of each item (what a later
/// read goes to directly, unchecked: see the module docs); else a value,
/// read strictly.
pub(super) struct AppItems<'p> {
    pub(super) at: At<'p>,
}

pub(super) enum Items<'a> {
    List(ContainerTexts<'a>),
    Other(Value),
}

impl<'de> DeserializeSeed<'de> for AppItems<'_> {
    type Value = Items<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AppItems<'_> {
    type Value = Items<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
        let mut items = ContainerTexts::default();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Items::List(items))
    }

    fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
        Strict { at: self.at }.visit_map(map).map(Items::Other)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Self::Value, E> {
        Ok(Items::Other(Value::Bool(value)))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Self::Value, E> {
        Ok(Items::Other(Value::from(value)))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Self::Value, E> {
        Ok(Items::Other(Value::from(value)))
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Self::Value, E> {
        check_float(value, self.at).map(|value| Items::Other(Value::from(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Items::Other(Value::String(value.to_owned())))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Items::Other(Value::Null))
    }
}

/// The app containers of a pod template (`spec.containers`, when a list).
/// The request's are kept as its text, one text per container, and read
/// on demand, one container at a time: a `Value` of a container is ~600
/// bytes a map node, what ~70,000 small sidecars would cost ~30× their
/// text. A workload built as a `Value` (not read by [`super::Workload::parse`])
/// has its containers inline.
#[derive(Debug, Clone, Copy)]
pub enum AppContainers<'o, 'a> {
    Text(&'o ContainerTexts<'a>),
    Inline(&'o [Value]),
}

/// The app container `kube-once.io/run` selects, read (see
/// [`AppContainer::read`]): read once per admission, for the plan, the
/// injection, the warnings and the patch's copy sources.
#[derive(Debug, Clone)]
pub struct App<'a> {
    /// Its index among the app containers.
    pub index: usize,
    pub container: Container<'a>,
}

/// One app container: its text, or its value (see [`AppContainers`]).
#[derive(Debug, Clone, Copy)]
pub enum AppContainer<'o, 'a> {
    Text(&'a RawValue),
    Value(&'o Value),
}

impl<'o, 'a: 'o> AppContainers<'o, 'a> {
    /// The app containers of `template` (the request's text of each in
    /// `items`, see [`super::Workload::containers`]); `None` when they are not a
    /// list (missing, `null`, ...: those stay in the template's value).
    pub fn of(template: &'o Value, items: Option<&'o ContainerTexts<'a>>) -> Option<Self> {
        match items {
            Some(items) => Some(AppContainers::Text(items)),
            None => template.get("spec")?.get("containers")?.as_array().map(|items| AppContainers::Inline(items)),
        }
    }

    /// Each container, in order (what one costs: its text, borrowed, or
    /// its value); read when used, not kept.
    pub fn iter(self) -> impl Iterator<Item = AppContainer<'o, 'a>> {
        let (inline, text) = match self {
            AppContainers::Inline(items) => (Some(items.iter().map(AppContainer::Value)), None),
            AppContainers::Text(items) => (None, Some(items.iter().map(AppContainer::Text))),
        };
        inline.into_iter().flatten().chain(text.into_iter().flatten())
    }

    /// The first container `wanted` picks, with its index.
    pub fn find(self, mut wanted: impl FnMut(AppContainer<'o, 'a>) -> bool) -> Option<(usize, AppContainer<'o, 'a>)> {
        self.iter().enumerate().find(|(_, container)| wanted(*container))
    }

    /// Every container's name (`""` for none), for messages.
    pub fn names(self) -> Vec<String> {
        self.iter().map(|container| container.name().unwrap_or_default().into_owned()).collect()
    }

    /// Equal in meaning to `other`, container by container. The API server
    /// writes what it stores the same way each time: unchanged containers
    /// are the same text, compared without reading them.
    pub fn same(self, other: AppContainers) -> bool {
        self.iter().count() == other.iter().count() && self.iter().zip(other.iter()).all(|(a, b)| a.same(b))
    }
}

impl<'o, 'a: 'o> AppContainer<'o, 'a> {
    /// Its `name`, when a string.
    pub fn name(self) -> Option<Cow<'o, str>> {
        self.string("name")
    }

    /// Its `field`, when a string (only that field is read).
    pub fn string(self, field: &str) -> Option<Cow<'o, str>> {
        let [text] = self.strings([field]);
        text
    }

    /// Its `fields`, each when a string, read in one pass.
    pub fn strings<const N: usize>(self, fields: [&str; N]) -> [Option<Cow<'o, str>>; N] {
        match self {
            AppContainer::Value(value) => {
                fields.map(|field| value.get(field).and_then(Value::as_str).map(Cow::Borrowed))
            }
            AppContainer::Text(raw) => fields_text(raw, fields, Repeats::First)
                .map(|text| serde_json::from_str::<Key>(text?.get()).ok().map(|Key(text)| text)),
        }
    }

    /// `f` of its `fields` (each when it has it: read as text, or as a
    /// value for an inline container), all read in one pass. A container
    /// whose keys repeat has none of them: which one counts is not told
    /// (the API server never sends it), so nothing is taken from it.
    pub fn with_fields<const N: usize, R>(self, fields: [&str; N], f: impl FnOnce(&[Option<Field>; N]) -> R) -> R {
        match self {
            AppContainer::Value(value) => f(&fields.map(|field| value.get(field).map(Field::Inline))),
            AppContainer::Text(raw) => {
                let lists = fields_text(raw, fields, Repeats::Nothing).map(|raw| raw.map(List::Text));
                f(&lists.each_ref().map(|list| list.as_ref().map(Field::Aside)))
            }
        }
    }

    /// The container read strictly (see the module docs): its fields as
    /// values, its lists as text (see [`Container`]). A container that is
    /// not an object has no field. The error says what, and where from
    /// `at`, the container's JSON pointer in the object.
    pub fn read(self, at: &str) -> Result<Container<'a>, String> {
        match self {
            AppContainer::Value(value) => {
                Ok(Container { fields: value.as_object().cloned().unwrap_or_default(), lists: Vec::new() })
            }
            AppContainer::Text(raw) => {
                let seed = ContainerSeed { at: At::Pointer(at) };
                match seed.deserialize(&mut serde_json::Deserializer::from_str(raw.get())) {
                    Ok(Ok(container)) => Ok(container),
                    Ok(Err(_)) => Ok(Container::default()),
                    Err(error) => Err(without_position(&error)),
                }
            }
        }
    }

    /// Equal in meaning: the same text, else the same value.
    pub fn same(self, other: AppContainer) -> bool {
        match (self, other) {
            (AppContainer::Text(a), AppContainer::Text(b)) if a.get() == b.get() => true,
            (AppContainer::Value(a), AppContainer::Value(b)) => a == b,
            (a, b) => a.to_value() == b.to_value(),
        }
    }

    fn to_value(self) -> Value {
        match self {
            AppContainer::Text(raw) => parse_or_null(raw),
            AppContainer::Value(value) => value.clone(),
        }
    }
}

/// What [`fields_text`] makes of an object whose keys repeat.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Repeats {
    /// The first of each field counts (a lookup whose result is read
    /// strictly later, which then refuses the repeat).
    First,
    /// No field is found (what is copied must be read unambiguously).
    Nothing,
}

/// `fields` of `raw` (an object as text), as text, in one pass; the other
/// fields are scanned, not read.
fn fields_text<'a, const N: usize>(
    raw: &'a RawValue,
    fields: [&str; N],
    repeats: Repeats,
) -> [Option<&'a RawValue>; N] {
    struct Find<'f, const N: usize>([&'f str; N], Repeats);
    impl<'de, const N: usize> Visitor<'de> for Find<'_, N> {
        type Value = [Option<&'de RawValue>; N];

        fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
            formatter.write_str("an object")
        }

        fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
            let mut found = [None; N];
            let mut keys = (self.1 == Repeats::Nothing).then(Keys::new);
            while let Some(Key(key)) = map.next_key()? {
                if let Some(keys) = &mut keys
                    && !keys.insert(key.clone())
                {
                    map.next_value::<IgnoredAny>()?;
                    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                    return Ok([None; N]);
                }
                match self.0.iter().position(|field| *field == key) {
                    Some(index) if found[index].is_none() => found[index] = Some(map.next_value()?),
                    _ => drop(map.next_value::<IgnoredAny>()?),
                }
            }
            Ok(found)
        }
    }
    if !raw.get().starts_with('{') {
        return [None; N];
    }
    serde_json::Deserializer::from_str(raw.get()).deserialize_map(Find(fields, repeats)).unwrap_or([None; N])
}
