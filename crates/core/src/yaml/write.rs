//! Block YAML from a JSON value, readable the same by a YAML 1.1 reader
//! (kubectl, PyYAML) and a YAML 1.2 reader: every string that either would
//! take for something else (`yes`, `on`, `0644`, `1_000`, `2001-01-01`,
//! `~`, ...) is double-quoted, multi-line strings are literal blocks when
//! that is exact, and numbers are written in the form all of them read.
//!
//! Keys follow an optional [`Node`] hint (the document as read), so a
//! mutated Deployment keeps its input's key order; keys the hint does not
//! have follow in sorted order.

use std::collections::HashSet;
use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

use super::Node;
use super::resolve::is_plain_safe;

/// `value` as a YAML document (no `---`), keys sorted.
pub fn to_yaml(value: &Value) -> String {
    write_value(value, None)
}

/// `value` as a YAML document (no `---`), keys in `hint`'s order first.
pub fn write_value(value: &Value, hint: Option<&Node>) -> String {
    write_indented(value, hint, Indents::DEFAULT)
}

/// [`write_value`] with `indents` rather than two columns for both.
pub fn write_indented(value: &Value, hint: Option<&Node>, indents: Indents) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => entries(&mut out, map, hint, 0, false, indents),
        Value::Array(items) if !items.is_empty() => sequence(&mut out, items, hint, 0, false, indents),
        scalar => {
            scalar_value(&mut out, scalar, 2);
            out.push('\n');
        }
    }
    out
}

/// How far a document indents what a key holds: a nested mapping by
/// `map` columns, a block list by `seq` (`0` writes its `- ` under the key,
/// as kubectl and many charts do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Indents {
    pub map: usize,
    pub seq: usize,
}

impl Indents {
    pub const DEFAULT: Indents = Indents { map: 2, seq: 2 };
}

/// The entries of a non-empty `map` as block YAML at `width`, the first one
/// right where the output is when `inline` (after a `- `); keys sorted,
/// `name` first. Ends with a line break.
pub(crate) fn block_entries(map: &Map<String, Value>, width: usize, inline: bool, indents: Indents) -> String {
    let mut out = String::new();
    entries(&mut out, map, None, width, inline, indents);
    out
}

/// The non-empty `items` as a block list at `width` (see [`block_entries`]).
pub(crate) fn block_items(items: &[Value], width: usize, inline: bool, indents: Indents) -> String {
    let mut out = String::new();
    sequence(&mut out, items, None, width, inline, indents);
    out
}

/// A scalar (or an empty collection) in block context, without a line
/// break; a multi-line string's literal block lines are indented by `width`.
pub(crate) fn block_scalar(value: &Value, width: usize) -> String {
    let mut out = String::new();
    scalar_value(&mut out, value, width);
    out
}

/// `value` in flow style: as JSON when `quoted` (the document is JSON),
/// otherwise with strings double-quoted only when a reader could take them
/// for something else; one line,
/// or, with `pretty: Some(width)`, one entry a line as JSON is pretty-printed
/// (closing bracket at `width`, entries `step` further).
pub(crate) fn flow(value: &Value, quoted: bool, pretty: Option<(usize, usize)>) -> String {
    let mut out = String::new();
    flow_value(&mut out, value, quoted, pretty);
    out
}

fn flow_value(out: &mut String, value: &Value, quoted: bool, pretty: Option<(usize, usize)>) {
    let (open, close, len) = match value {
        Value::Object(map) if !map.is_empty() => ('{', '}', map.len()),
        Value::Array(items) if !items.is_empty() => ('[', ']', items.len()),
        Value::String(text) => return flow_string(out, text, quoted),
        scalar => return scalar_value(out, scalar, 0),
    };
    out.push(open);
    let inner = pretty.map(|(width, step)| (width + step, step));
    for index in 0..len {
        if index > 0 {
            out.push(',');
            if pretty.is_none() {
                out.push(' ');
            }
        }
        if let Some((width, _)) = inner {
            out.push('\n');
            indent(out, width);
        }
        match value {
            Value::Object(map) => {
                if let Some((key, item)) = map.iter().nth(index) {
                    flow_string(out, key, quoted);
                    out.push_str(": ");
                    flow_value(out, item, quoted, inner);
                }
            }
            Value::Array(items) => flow_value(out, &items[index], quoted, inner),
            _ => {}
        }
    }
    if let Some((width, _)) = pretty {
        out.push('\n');
        indent(out, width);
    }
    out.push(close);
}

/// Plain only when it is safe in block context and has none of the
/// characters that end a plain scalar in flow context (PyYAML also refuses
/// a `:` inside one there).
fn flow_string(out: &mut String, text: &str, quoted: bool) {
    if quoted {
        json_string(out, text);
    } else if is_plain_safe(text) && !text.contains([',', '[', ']', '{', '}', ':', '#']) {
        out.push_str(text);
    } else {
        double_quoted(out, text);
    }
}

/// A JSON string that every YAML reader also reads as this string: JSON's
/// escapes only, and `\uXXXX` for the characters some YAML reader takes for
/// a line break or refuses unescaped (DEL, U+0085, U+2028, ...).
fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || special(c) || matches!(c, '\u{2028}' | '\u{2029}') => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// YAML caps an implicit (`key: value`) key at 1024 characters.
const MAX_IMPLICIT_KEY: usize = 1000;

fn indent(out: &mut String, width: usize) {
    out.extend(std::iter::repeat_n(' ', width));
}

/// The entries of a non-empty mapping at `width`; the first one right where
/// the output is when `inline` (after a `- `).
fn entries(
    out: &mut String,
    map: &Map<String, Value>,
    hint: Option<&Node>,
    width: usize,
    inline: bool,
    indents: Indents,
) {
    for (index, (key, value, hint)) in ordered(map, hint).into_iter().enumerate() {
        if index > 0 || !inline {
            indent(out, width);
        }
        let mut written = String::new();
        string(&mut written, key, None);
        if written.len() > MAX_IMPLICIT_KEY {
            // Too long for an implicit key: `? key` then `: value`.
            out.push_str("? ");
            out.push_str(&written);
            out.push('\n');
            indent(out, width);
        } else {
            out.push_str(&written);
        }
        out.push(':');
        match value {
            Value::Object(map) if !map.is_empty() => {
                out.push('\n');
                entries(out, map, hint, width + indents.map, false, indents);
            }
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                sequence(out, items, hint, width + indents.seq, false, indents);
            }
            scalar => {
                out.push(' ');
                scalar_value(out, scalar, width + indents.map);
                out.push('\n');
            }
        }
    }
}

fn sequence(out: &mut String, items: &[Value], hint: Option<&Node>, width: usize, inline: bool, indents: Indents) {
    for (index, value) in items.iter().enumerate() {
        if index > 0 || !inline {
            indent(out, width);
        }
        out.push_str("- ");
        let hint = hint.and_then(|hint| hint.item(index));
        match value {
            Value::Object(map) if !map.is_empty() => entries(out, map, hint, width + 2, true, indents),
            Value::Array(items) if !items.is_empty() => sequence(out, items, hint, width + 2, true, indents),
            scalar => {
                scalar_value(out, scalar, width + 2);
                out.push('\n');
            }
        }
    }
}

/// Entries in the hint's order, then the others (sorted, as serde_json keeps them).
fn ordered<'a>(map: &'a Map<String, Value>, hint: Option<&'a Node>) -> Vec<(&'a String, &'a Value, Option<&'a Node>)> {
    let mut out = Vec::with_capacity(map.len());
    let mut seen = HashSet::new();
    if let Some(Node::Map(hinted)) = hint {
        for (key, hint) in hinted {
            if let Some((key, value)) = map.get_key_value(key)
                && seen.insert(key.as_str())
            {
                out.push((key, value, Some(hint)));
            }
        }
    }
    // New keys sorted, `name` first (how Kubernetes objects are read and written by hand).
    let rest = map.iter().filter(|(key, _)| !seen.contains(key.as_str()));
    let (name, others): (Vec<_>, Vec<_>) = rest.partition(|(key, _)| *key == "name");
    out.extend(name.into_iter().chain(others).map(|(k, v)| (k, v, None)));
    out
}

/// A scalar, or an empty collection, without its line break; block
/// scalars' lines are indented by `width`.
fn scalar_value(out: &mut String, value: &Value, width: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => number(out, n),
        Value::String(s) => string(out, s, Some(width)),
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
    }
}

/// Integers as they are; floats always with a `.` and a signed exponent
/// (`1.0e+20`), the one spelling YAML 1.1 (PyYAML) and 1.2 both read as a float.
fn number(out: &mut String, n: &Number) {
    if n.is_i64() || n.is_u64() {
        let _ = write!(out, "{n}");
        return;
    }
    let f = n.as_f64().unwrap_or_default();
    let text = format!("{f:?}");
    let (mantissa, exponent) = match text.split_once('e') {
        Some((m, e)) => (m.to_owned(), Some(e.to_owned())),
        None => (text, None),
    };
    out.push_str(&mantissa);
    if !mantissa.contains('.') {
        out.push_str(".0");
    }
    if let Some(exponent) = exponent {
        out.push('e');
        if !exponent.starts_with('-') {
            out.push('+');
        }
        out.push_str(&exponent);
    }
}

/// Plain when every reader agrees it is this string; a literal block for
/// multi-line text that has an exact one (when `block` gives its indent);
/// double-quoted otherwise.
fn string(out: &mut String, text: &str, block: Option<usize>) {
    if is_plain_safe(text) {
        out.push_str(text);
    } else if let Some(width) = block
        && literal_is_exact(text)
    {
        literal(out, text, width);
    } else {
        double_quoted(out, text);
    }
}

/// A literal block reads back exactly when the text has a line break, its
/// first line does not start with white space (indentation is detected from
/// it), no line ends in white space or starts with a tab, and every
/// character may appear unescaped.
fn literal_is_exact(text: &str) -> bool {
    text.contains('\n')
        && !text.starts_with([' ', '\t', '\n'])
        && text.split('\n').all(|line| !line.ends_with([' ', '\t']) && !line.starts_with('\t'))
        && text.chars().all(|c| c == '\n' || c == '\t' || (!c.is_control() && !special(c)))
}

/// Characters that are line breaks or invisible to some YAML reader.
fn special(c: char) -> bool {
    matches!(c, '\u{85}' | '\u{a0}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}')
}

fn literal(out: &mut String, text: &str, width: usize) {
    let body = text.trim_end_matches('\n');
    let trailing = text.len() - body.len();
    out.push_str(match trailing {
        0 => "|-",
        1 => "|",
        _ => "|+",
    });
    out.push('\n');
    for (index, line) in body.split('\n').enumerate() {
        if index > 0 {
            out.push('\n');
        }
        if !line.is_empty() {
            indent(out, width);
            out.push_str(line);
        }
    }
    // The line break that ends the last line is the caller's; the kept ones are here.
    for _ in 1..trailing {
        out.push('\n');
    }
}

fn double_quoted(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            '\u{85}' => out.push_str("\\N"),
            '\u{a0}' => out.push_str("\\_"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02X}", u32::from(c));
            }
            c if special(c) => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quotes_what_any_reader_would_resolve() {
        let value = json!({"a": "yes", "b": "0644", "c": "plain", "d": "", "e": "a: b", "f": 420, "g": 1.5, "h": null, "i": true, "on": "x"});
        assert_eq!(
            to_yaml(&value),
            "a: \"yes\"\nb: \"0644\"\nc: plain\nd: \"\"\ne: \"a: b\"\nf: 420\ng: 1.5\nh: null\ni: true\n\"on\": x\n"
        );
    }

    #[test]
    fn nested_collections_and_blocks() {
        let value = json!({"list": [{"name": "a", "args": ["x", "z"]}, [1, 2], {}], "empty": [], "text": "line 1\nline 2\n", "kept": "a\n\n", "stripped": "a\nb"});
        assert_eq!(
            to_yaml(&value),
            "empty: []\nkept: |+\n  a\n\nlist:\n  - name: a\n    args:\n      - x\n      - z\n  - - 1\n    - 2\n  - {}\nstripped: |-\n  a\n  b\ntext: |\n  line 1\n  line 2\n"
        );
    }

    #[test]
    fn floats_are_floats_to_every_reader() {
        for (value, text) in [(1e20, "1.0e+20"), (1e-7, "1.0e-7"), (0.5, "0.5"), (-2.5e300, "-2.5e+300")] {
            assert_eq!(to_yaml(&json!(value)), format!("{text}\n"));
        }
    }

    #[test]
    fn long_keys_are_explicit() {
        let key = "k".repeat(2000);
        let text = to_yaml(&json!({key.clone(): {"a": 1}, "b": [1]}));
        assert!(text.contains(&format!("\n? {key}\n:\n  a: 1\n")), "{text}");
        let read = crate::yaml::read_stream(&text, &crate::yaml::Limits::default()).unwrap();
        assert_eq!(read[0].node.as_ref().unwrap().to_json().unwrap(), json!({key: {"a": 1}, "b": [1]}));
    }

    #[test]
    fn hint_orders_keys() {
        let hint = Node::Map(vec![("b".into(), Node::Null), ("a".into(), Node::Null)]);
        assert_eq!(write_value(&json!({"a": 1, "b": 2, "c": 3}), Some(&hint)), "b: 2\na: 1\nc: 3\n");
    }
}
