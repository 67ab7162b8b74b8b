//! A JSON patch as JSON text: byte for byte what `serde_json::to_vec`
//! writes for it, with each string checked for what needs escaping eight
//! bytes at a time. serde_json checks strings byte by byte, and the
//! patch's strings (kube-once-run's command, environment and paths) made
//! escaping the largest single cost of answering a CREATE
//! (docs/dev/performance.md).

use json_patch::{Patch, PatchOperation};
use serde_json::Value;

use crate::word;

/// `patch` as JSON.
pub fn to_vec(patch: &Patch) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(1024);
    out.push(b'[');
    for (index, operation) in patch.0.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        // Fields in the order json_patch declares them, as serde writes them.
        let (op, from, path, value) = match operation {
            PatchOperation::Add(add) => ("add", None, &add.path, Some(&add.value)),
            PatchOperation::Remove(remove) => ("remove", None, &remove.path, None),
            PatchOperation::Replace(replace) => ("replace", None, &replace.path, Some(&replace.value)),
            PatchOperation::Move(from_to) => ("move", Some(&from_to.from), &from_to.path, None),
            PatchOperation::Copy(from_to) => ("copy", Some(&from_to.from), &from_to.path, None),
            PatchOperation::Test(test) => ("test", None, &test.path, Some(&test.value)),
        };
        out.extend_from_slice(b"{\"op\":\"");
        out.extend_from_slice(op.as_bytes());
        out.push(b'"');
        if let Some(from) = from {
            out.extend_from_slice(b",\"from\":");
            string(&mut out, from.as_str());
        }
        out.extend_from_slice(b",\"path\":");
        string(&mut out, path.as_str());
        if let Some(value) = value {
            out.extend_from_slice(b",\"value\":");
            write_value(&mut out, value)?;
        }
        out.push(b'}');
    }
    out.push(b']');
    Ok(out)
}

fn write_value(out: &mut Vec<u8>, value: &Value) -> serde_json::Result<()> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => serde_json::to_writer(&mut *out, number)?,
        Value::String(text) => string(out, text),
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_value(out, item)?;
            }
            out.push(b']');
        }
        Value::Object(entries) => {
            out.push(b'{');
            for (index, (key, item)) in entries.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                string(out, key);
                out.push(b':');
                write_value(out, item)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// `text` as a JSON string, escaped as serde_json escapes it: `"`, `\` and
/// the control characters, the common ones by name, the rest as `\u00XX`.
fn string(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let (mut start, mut at) = (0, 0);
    while at < bytes.len() {
        // Eight bytes at a time up to one that needs escaping.
        if let Some(eight) = word::at(bytes, at) {
            let found = word::equal(eight, b'"') | word::equal(eight, b'\\') | word::below(eight, 0x20);
            if found == 0 {
                at += 8;
                continue;
            }
            at += word::first(found);
        } else if !needs_escape(bytes[at]) {
            at += 1;
            continue;
        }
        out.extend_from_slice(&bytes[start..at]);
        escape(out, bytes[at]);
        at += 1;
        start = at;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

fn escape(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let named = match byte {
        b'"' => b'"',
        b'\\' => b'\\',
        0x08 => b'b',
        0x0C => b'f',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        _ => {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xF)],
            ]);
            return;
        }
    };
    out.extend_from_slice(&[b'\\', named]);
}

#[cfg(test)]
mod tests {
    use json_patch::{AddOperation, CopyOperation, MoveOperation, RemoveOperation, ReplaceOperation, TestOperation};
    use serde_json::json;

    use super::*;

    fn pointer(text: &str) -> json_patch::jsonptr::PointerBuf {
        json_patch::jsonptr::PointerBuf::parse(text).unwrap()
    }

    /// Strings of every byte that needs escaping, placed across the
    /// eight-byte words, beside multi-byte characters.
    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut rng = fastrand::Rng::with_seed(0x2545_F491_4F6C_DD1D);
        let mut random = move |below: u64| rng.u64(..below);
        let alphabet: Vec<char> =
            (0u8..0x20).map(char::from).chain(['"', '\\', '/', 'a', ' ', '\u{7f}', 'é', '€', '😀']).collect();
        for _ in 0..5000 {
            let length = random(40);
            let text: String = (0..length).map(|_| alphabet[random(alphabet.len() as u64) as usize]).collect();
            let mut out = Vec::new();
            string(&mut out, &text);
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&text).unwrap(), "{text:?}");
        }
    }

    #[test]
    fn every_operation_is_written_as_serde_json_writes_it() {
        let value = json!({
            "name": "kube-once-run", "command": ["sh", "-c", "echo \"$A\"\n\texit 3"],
            "n": [1, -2, 3.5, 1e300, u64::MAX], "flags": [true, false, null], "empty": {}, "none": [],
        });
        let patch = Patch(vec![
            PatchOperation::Add(AddOperation { path: pointer("/spec/template/metadata/annotations/a~1b"), value }),
            PatchOperation::Remove(RemoveOperation { path: pointer("/spec/x~0y") }),
            PatchOperation::Replace(ReplaceOperation { path: pointer("/a"), value: json!("\u{1}") }),
            PatchOperation::Move(MoveOperation { from: pointer("/b"), path: pointer("/c") }),
            PatchOperation::Copy(CopyOperation { from: pointer("/d"), path: pointer("/e") }),
            PatchOperation::Test(TestOperation { path: pointer(""), value: json!(0) }),
        ]);
        assert_eq!(to_vec(&patch).unwrap(), serde_json::to_vec(&patch).unwrap());
        assert_eq!(to_vec(&Patch(Vec::new())).unwrap(), b"[]");
    }
}
