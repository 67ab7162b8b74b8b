//! A text compared with a value as the text is read, without building a
//! value of it: the init containers kube-once writes (values, their lists
//! kept aside) against those the request holds (text). An UPDATE compares
//! them whole to keep what did not change, and reading each into a value
//! first would cost more than it does.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};

use super::{Field, Key, Keys, LIST_FIELDS, List, Lists, parse_or_null};

/// Whether `text` (a container, read already as JSON) and `value` (its
/// lists kept in `lists`) are equal in meaning: [`super::same_container`]
/// of `text` read. A key `text` repeats (which the API server never sends)
/// tells them apart: a longer patch, never a wrong one.
pub(super) fn same_container(text: &RawValue, value: &Value, lists: &Lists) -> bool {
    if !value.is_object() || !text.get().starts_with('{') {
        return parse_or_null(text) == *value;
    }
    let mut deserializer = serde_json::Deserializer::from_str(text.get());
    deserializer.deserialize_map(Container { value, lists }).unwrap_or(false)
}

/// Whether `text` (read already as JSON) is `value`.
#[cfg(test)]
fn same_value(text: &str, value: &Value) -> bool {
    Matches(value).deserialize(&mut serde_json::Deserializer::from_str(text)).unwrap_or(false)
}

struct Container<'v, 'l, 'a> {
    value: &'v Value,
    lists: &'l Lists<'a>,
}

impl<'de> Visitor<'de> for Container<'_, '_, '_> {
    type Value = bool;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a container")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<bool, M::Error> {
        let Some(fields) = self.value.as_object() else { return Err(differs()) };
        let mut entries = Entries::new(fields);
        let mut lists_read = 0;
        while let Some(Key(key)) = map.next_key()? {
            let Some(field) = LIST_FIELDS.iter().find(|field| **field == key) else {
                entries.read(&mut map, key)?;
                continue;
            };
            if !entries.keys.insert(key) {
                return Err(differs());
            }
            // A list as soon as it is read: where it differs, the rest of
            // the container is not read.
            let text = List::Text(map.next_value()?);
            match Field::of(self.value, field, self.lists) {
                Some(ours) if Field::Aside(&text).same(ours) => lists_read += 1,
                _ => return Err(differs()),
            }
        }
        let others = fields.keys().filter(|key| !LIST_FIELDS.contains(&key.as_str())).count();
        let lists = LIST_FIELDS.iter().filter(|field| Field::of(self.value, field, self.lists).is_some()).count();
        Ok(entries.matched == others && lists_read == lists)
    }
}

/// Whether the value read is the one given.
#[derive(Clone, Copy)]
struct Matches<'v>(&'v Value);

impl<'de> DeserializeSeed<'de> for Matches<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Matches<'_> {
    type Value = bool;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<bool, E> {
        Ok(self.0.as_bool() == Some(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<bool, E> {
        Ok(self.0.as_number() == Some(&Number::from(value)))
    }

    fn visit_u64<E>(self, value: u64) -> Result<bool, E> {
        Ok(self.0.as_number() == Some(&Number::from(value)))
    }

    fn visit_f64<E>(self, value: f64) -> Result<bool, E> {
        Ok(Number::from_f64(value).is_some_and(|number| self.0.as_number() == Some(&number)))
    }

    fn visit_str<E>(self, value: &str) -> Result<bool, E> {
        Ok(self.0.as_str() == Some(value))
    }

    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(self.0.is_null())
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<bool, S::Error> {
        let Some(items) = self.0.as_array() else { return Err(differs()) };
        for expected in items {
            match seq.next_element_seed(Matches(expected))? {
                Some(true) => {}
                Some(false) => return Err(differs()),
                None => return Ok(false),
            }
        }
        // Any item past the value's is a difference.
        Ok(seq.next_element::<IgnoredAny>()?.is_none())
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<bool, M::Error> {
        let Some(fields) = self.0.as_object() else { return Err(differs()) };
        let mut entries = Entries::new(fields);
        while let Some(Key(key)) = map.next_key()? {
            entries.read(&mut map, key)?;
        }
        Ok(entries.matched == fields.len())
    }
}

/// Stops the reader at the first difference: the answer is known, and the
/// rest of the text (a container's env, say) need not be read. Every
/// caller takes an error for "not the same".
fn differs<E: serde::de::Error>() -> E {
    E::custom("the text differs from the value")
}

/// The entries of an object read against those of a value (`fields`): how
/// many of its keys the object had, all matched so far (the first that
/// does not stops the reader, see [`differs`]), and the keys read (a
/// repeated one is a difference: counted twice, it could stand for one
/// the object lacks).
struct Entries<'v, 't> {
    fields: &'v Map<String, Value>,
    matched: usize,
    keys: Keys<'t>,
}

impl<'v, 't> Entries<'v, 't> {
    fn new(fields: &'v Map<String, Value>) -> Self {
        Entries { fields, matched: 0, keys: Keys::new() }
    }

    /// The value of `key`, the next of `map`, read against the field of
    /// that name.
    fn read<'de, M: MapAccess<'de>>(&mut self, map: &mut M, key: std::borrow::Cow<'t, str>) -> Result<(), M::Error> {
        let Some(expected) = self.fields.get(key.as_ref()) else { return Err(differs()) };
        if !self.keys.insert(key) {
            return Err(differs());
        }
        if !map.next_value_seed(Matches(expected))? {
            return Err(differs());
        }
        self.matched += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_text_matches_the_value_it_reads_as() {
        let value = json!({"a": [1, -2, 2.5, "x", null, true, {"b": []}], "c": {}});
        for text in [r#"{"c": {}, "a": [1, -2, 2.5, "x", null, true, {"b": []}]}"#, &value.to_string()] {
            assert!(same_value(text, &value), "{text}");
        }
        for text in [
            r#"{"a": [1, -2, 2.5, "x", null, true, {"b": []}]}"#,
            r#"{"a": [1, -2, 2.5, "x", null, true, {"b": []}], "c": {}, "d": 1}"#,
            r#"{"a": [1.0, -2, 2.5, "x", null, true, {"b": []}], "c": {}}"#,
            r#"{"a": [1, -2, 2.5, "x", null, true, {"b": []}, 3], "c": {}}"#,
            r#"{"a": [1, -2, 2.5, "x", null, true], "c": {}}"#,
            r#"{"a": [1, -2, 2.5, "y", null, true, {"b": []}], "c": {}}"#,
            r#"{"a": [1, -2, 2.5, "x", null, false, {"b": {}}], "c": {}}"#,
            r#"{"a": 1, "a": [1, -2, 2.5, "x", null, true, {"b": []}], "c": {}}"#,
            r#"{"a": [1, -2, 2.5, "x", null, true, {"b": []}], "a": [1, -2, 2.5, "x", null, true, {"b": []}]}"#,
            r#"[]"#,
        ] {
            assert!(!same_value(text, &value), "{text}");
        }
        // Numbers are equal as serde_json reads them: an integer is not a float.
        assert!(!same_value("2", &json!(2.0)) && !same_value("2.0", &json!(2)) && !same_value("-2", &json!(-2.0)));
        assert!(same_value("-2", &json!(-2)) && same_value("2.50", &json!(2.5)));
    }

    #[test]
    fn a_container_matches_with_its_lists_kept_aside() {
        let app_env: &RawValue = serde_json::from_str(r#"[{"name": "A", "value": "1"}]"#).unwrap();
        let mut lists = Lists::default();
        lists.insert("run", "env", List::extended(app_env, vec![json!({"name": "B"})]));
        let value = json!({"name": "run", "image": "i", "resources": {"limits": {"cpu": "1"}}});
        let text = |text: &str| -> bool {
            let raw: &RawValue = serde_json::from_str(text).unwrap();
            same_container(raw, &value, &lists)
        };
        assert!(text(
            r#"{"env": [{"name": "A", "value": "1"}, {"name": "B"}], "image": "i", "name": "run", "resources": {"limits": {"cpu": "1"}}}"#
        ));
        assert!(!text(
            r#"{"env": [{"name": "A", "value": "1"}], "image": "i", "name": "run", "resources": {"limits": {"cpu": "1"}}}"#
        ));
        assert!(!text(
            r#"{"env": [{"name": "A", "value": "1"}, {"name": "B"}], "image": "j", "name": "run", "resources": {"limits": {"cpu": "1"}}}"#
        ));
        assert!(!text(
            r#"{"env": [{"name": "A", "value": "1"}, {"name": "B"}], "name": "run", "resources": {"limits": {"cpu": "1"}}}"#
        ));
        assert!(!text(
            r#"{"env": [{"name": "A", "value": "1"}, {"name": "B"}], "args": [], "image": "i", "name": "run", "resources": {"limits": {"cpu": "1"}}}"#
        ));
        assert!(!text(r#"{"image": "i", "name": "run", "resources": {"limits": {"cpu": "1"}}}"#));
        // A repeated key never stands for a missing one.
        assert!(!text(
            r#"{"env": [{"name": "A", "value": "1"}, {"name": "B"}], "image": "i", "name": "run", "name": "run"}"#
        ));
        let with_args = json!({"name": "run", "image": "i", "args": ["x"]});
        let raw: &RawValue =
            serde_json::from_str(r#"{"name": "run", "image": "i", "args": ["x"], "args": ["x"]}"#).unwrap();
        assert!(!same_container(raw, &with_args, &Lists::default()));
        let raw: &RawValue = serde_json::from_str(r#"{"name": "run", "image": "i", "args": ["x"]}"#).unwrap();
        assert!(same_container(raw, &with_args, &Lists::default()));
    }

    proptest::proptest! {
        #[test]
        fn a_text_matches_a_value_as_it_reads(
            a in super::super::arbitrary::json(),
            b in super::super::arbitrary::json(),
            edit in proptest::sample::select(vec!["", "r0", "1", "1.0", "x", "[]", "{}"]),
        ) {
            let a_text = a.to_string();
            for text in [a_text.clone(), a_text.replacen("a", edit, 1), a_text.replacen('1', edit, 1), b.to_string()] {
                let Ok(read) = serde_json::from_str::<Value>(&text) else { continue };
                proptest::prop_assert_eq!(same_value(&text, &a), read == a, "{} against {}", text, a);
            }
        }
    }
}
