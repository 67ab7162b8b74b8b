//! Items kept as text (an init container, a volume), looked through
//! without reading them into values: their `name` (kube-once strips and
//! refuses items by name), and whether two differ. Reading a container of a
//! few KB of `args` to learn it is called `prepare-config`, or that its
//! image changed, would cost more than keeping it as text saves. Both
//! answer only what the text settles, and leave the rest to serde_json.

/// The `name` of `text`, a JSON object already read as valid JSON:
/// `Some(Some(name))`, `Some(None)` when it has no `name`, `None` when it
/// takes a JSON reader to tell (not an object, a key before the name or
/// the name written with escapes, a `name` that is not a string). The API
/// server writes a container's name first, so the scan stops there: of a
/// `name` repeated (which it never sends) the first counts, as in a lookup
/// of an app container by name.
pub(super) fn plain_name(text: &str) -> Option<Option<&str>> {
    let bytes = text.as_bytes();
    let mut at = skip_space(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    at = skip_space(bytes, at + 1);
    if bytes.get(at) == Some(&b'}') {
        return Some(None);
    }
    loop {
        let key = plain_string(bytes, at)?;
        at = skip_space(bytes, key.end + 1);
        if bytes.get(at) != Some(&b':') {
            return None;
        }
        at = skip_space(bytes, at + 1);
        if &text[key.start..key.end] == "name" {
            let value = plain_string(bytes, at)?;
            return Some(Some(&text[value.start..value.end]));
        }
        at = skip_space(bytes, skip_value(bytes, at)?);
        match bytes.get(at) {
            Some(b',') => at = skip_space(bytes, at + 1),
            Some(b'}') => return Some(None),
            _ => return None,
        }
    }
}

/// Whether two JSON texts (already read as valid JSON) are equal as
/// values, when the texts settle it: `Some(true)` when they are the same
/// tokens (whatever the spaces between them), `Some(false)` when at the
/// first token that differs both are values of different types, or
/// strings without escapes; `None` otherwise (a key, a number, an escape:
/// a reader tells). An object that repeats a key (which the API server
/// never sends) can be answered `false` where its values are equal: then
/// equal items are told apart, which costs a longer patch, never a wrong one.
pub(super) fn same_values(a: &str, b: &str) -> Option<bool> {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    loop {
        let (x, y) = (token(a, i)?, token(b, j)?);
        let (x_text, y_text) = (&a[x.clone()], &b[y.clone()]);
        if x_text != y_text {
            let is_key = |text: &[u8], end: usize| text.get(skip_space(text, end)) == Some(&b':');
            return match (x_text[0], y_text[0]) {
                (b'"', b'"') if is_key(a, x.end) || is_key(b, y.end) => None,
                (b'"', b'"') if x_text.contains(&b'\\') || y_text.contains(&b'\\') => None,
                (b'"', b'"') => Some(false),
                (first, other) if scalar(first) && scalar(other) => None,
                _ => Some(false),
            };
        }
        if x.end >= a.len() && y.end >= b.len() {
            return Some(true);
        }
        (i, j) = (x.end, y.end);
    }
}

/// How many items the JSON list `text` (already read as valid JSON) has;
/// `None` when it is not a list. Each item is stepped over, not read.
pub(super) fn count_items(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut at = skip_space(bytes, 0);
    if bytes.get(at) != Some(&b'[') {
        return None;
    }
    at = skip_space(bytes, at + 1);
    if bytes.get(at) == Some(&b']') {
        return Some(0);
    }
    let mut count = 0;
    loop {
        at = skip_space(bytes, skip_value(bytes, at)?);
        count += 1;
        match bytes.get(at) {
            Some(b',') => at = skip_space(bytes, at + 1),
            Some(b']') => return Some(count),
            _ => return None,
        }
    }
}

/// The next token at or after `at`: a string (with its quotes), one of
/// `{}[]:,`, or a scalar; `None` at the end.
fn token(bytes: &[u8], at: usize) -> Option<std::ops::Range<usize>> {
    let at = skip_space(bytes, at);
    let end = match *bytes.get(at)? {
        b'"' => skip_string(bytes, at)?,
        b'{' | b'}' | b'[' | b']' | b':' | b',' => at + 1,
        _ => scalar_end(bytes, at),
    };
    Some(at..end)
}

/// Whether a token starting with `first` is a number, `true`, `false` or `null`.
fn scalar(first: u8) -> bool {
    !matches!(first, b'"' | b'{' | b'}' | b'[' | b']' | b':' | b',')
}

fn scalar_end(bytes: &[u8], at: usize) -> usize {
    let length = bytes[at..].iter().position(|&byte| matches!(byte, b',' | b'}' | b']') || byte.is_ascii_whitespace());
    at + length.unwrap_or(bytes.len() - at)
}

/// The bytes of a string starting at `at` (its opening quote), without the
/// quotes; `None` when it has an escape (or is not a string).
fn plain_string(bytes: &[u8], at: usize) -> Option<std::ops::Range<usize>> {
    if bytes.get(at) != Some(&b'"') {
        return None;
    }
    let end = at + 1 + memchr::memchr2(b'"', b'\\', &bytes[at + 1..])?;
    (bytes[end] == b'"').then_some(at + 1..end)
}

/// Just past the value starting at `at`.
fn skip_value(bytes: &[u8], at: usize) -> Option<usize> {
    match *bytes.get(at)? {
        b'"' => skip_string(bytes, at),
        b'{' | b'[' => {
            let (mut depth, mut at) = (0usize, at);
            loop {
                match *bytes.get(at)? {
                    b'"' => {
                        at = skip_string(bytes, at)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(at + 1);
                        }
                    }
                    _ => {}
                }
                at += 1;
            }
        }
        // A number, `true`, `false` or `null`.
        _ => Some(scalar_end(bytes, at)),
    }
}

/// Just past the string starting at `at` (its opening quote).
fn skip_string(bytes: &[u8], mut at: usize) -> Option<usize> {
    at += 1;
    loop {
        at += memchr::memchr2(b'"', b'\\', &bytes[at..])?;
        if bytes[at] == b'"' {
            return Some(at + 1);
        }
        at += 2;
    }
}

fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_is_found_past_any_value_or_left_to_the_json_reader() {
        let cases = [
            (r#"{"name": "a"}"#, Some(Some("a"))),
            (r#" { "args": ["x\"}]", {"name": "no"}], "n": 1.5e3, "t": true, "name" : "b" } "#, Some(Some("b"))),
            (r#"{"env": [{"name": "A"}], "resources": {"name": {}}}"#, Some(None)),
            (r#"{}"#, Some(None)),
            (r#"{"name": "a\"b"}"#, None),
            (r#"{"na\u006de": "a"}"#, None),
            (r#"{"name": null}"#, None),
            (r#"{"name": "a", "name": "b"}"#, Some(Some("a"))),
            (r#"["name"]"#, None),
            (r#""name""#, None),
            (r#"{"a": "\\", "name": "c", "b": [[], {}, "]"]}"#, Some(Some("c"))),
            (r#"{"a": 1, "b": -2, "c": null, "name": "d"}"#, Some(Some("d"))),
        ];
        for (text, expected) in cases {
            assert_eq!(plain_name(text), expected, "{text}");
        }
    }

    /// What serde_json reads as the name (`None`: not an object with a string or no name).
    fn read(text: &str) -> Option<Option<String>> {
        #[derive(serde::Deserialize)]
        struct Named {
            name: Option<String>,
        }
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        value.is_object().then_some(())?;
        serde_json::from_str::<Named>(text).ok().map(|named| named.name)
    }

    proptest::proptest! {
        #[test]
        fn a_name_found_without_reading_is_the_one_read(value in super::super::arbitrary::json(), pretty in proptest::bool::ANY) {
            let text = if pretty { serde_json::to_string_pretty(&value).unwrap() } else { value.to_string() };
            if let Some(found) = plain_name(&text) {
                proptest::prop_assert_eq!(Some(found.map(str::to_owned)), read(&text), "{}", text);
            }
        }

        #[test]
        fn a_list_counts_the_items_read(value in super::super::arbitrary::json(), pretty in proptest::bool::ANY) {
            let text = if pretty { serde_json::to_string_pretty(&value).unwrap() } else { value.to_string() };
            proptest::prop_assert_eq!(count_items(&text), value.as_array().map(Vec::len), "{}", text);
            let list = serde_json::Value::Array(vec![value.clone(), value]);
            let text = if pretty { serde_json::to_string_pretty(&list).unwrap() } else { list.to_string() };
            proptest::prop_assert_eq!(count_items(&text), Some(2), "{}", text);
        }

        #[test]
        fn two_texts_are_told_apart_as_their_values_are(
            a in super::super::arbitrary::json(),
            b in super::super::arbitrary::json(),
            pretty in proptest::bool::ANY,
            edit in proptest::sample::select(vec!["", "r0", "1", "x"]),
        ) {
            // Pairs alike but for a little, or written differently.
            let a_text = a.to_string();
            let b_text = if pretty { serde_json::to_string_pretty(&a).unwrap() } else { a_text.replacen("a", edit, 1) };
            for (a_text, b_text) in [(&a_text, &b_text), (&a_text, &b.to_string())] {
                let values: (serde_json::Value, serde_json::Value) =
                    (serde_json::from_str(a_text).unwrap(), serde_json::from_str(b_text).unwrap_or_default());
                if serde_json::from_str::<serde_json::Value>(b_text).is_err() {
                    continue;
                }
                if let Some(same) = same_values(a_text, b_text) {
                    proptest::prop_assert_eq!(same, values.0 == values.1, "{} vs {}", a_text, b_text);
                }
            }
        }
    }

    #[test]
    fn items_are_counted_past_strings_that_look_like_json() {
        let cases = [
            ("[]", Some(0)),
            (" [ ] ", Some(0)),
            (r#"[{"name": "a,b]"}, "x\"],", [1, [2, 3]], {}, null]"#, Some(5)),
            ("[1]", Some(1)),
            (r#"[-1.5e3 , true,false]"#, Some(3)),
            (r#"{"a": [1, 2]}"#, None),
            (r#""[1, 2]""#, None),
            ("null", None),
        ];
        for (text, expected) in cases {
            assert_eq!(count_items(text), expected, "{text}");
        }
    }

    #[test]
    fn texts_settle_what_they_can() {
        let cases = [
            (r#"{"a": "x", "b": [1, {"c": null}]}"#, r#"{"a":"x","b":[1,{"c":null}]}"#, Some(true)),
            (r#"{"image": "i:r0", "n": 1}"#, r#"{"image": "i:r1", "n": 1}"#, Some(false)),
            (r#"{"a": "x"}"#, r#"{"a": {"x": 1}}"#, Some(false)),
            (r#"{"a": [1]}"#, r#"{"a": [1, 2]}"#, Some(false)),
            (r#"{"a": 1, "b": 2}"#, r#"{"b": 2, "a": 1}"#, None),
            (r#"{"a": 1}"#, r#"{"a": 1.0}"#, None),
            (r#"{"a": "\u0078"}"#, r#"{"a": "x"}"#, None),
        ];
        for (a, b, expected) in cases {
            assert_eq!(same_values(a, b), expected, "{a} vs {b}");
        }
    }
}
