//! How Kubernetes reads a plain (unquoted) scalar: YAML 1.1 resolution as
//! sigs.k8s.io/yaml does it (go-yaml v2 `resolve`, then the JSON conversion),
//! and the opposite question for the writer: can this string be written
//! plain so that every reader (YAML 1.1 as kubectl and PyYAML, YAML 1.2 core
//! schema) reads it back as the same string?
//!
//! Quoted and block scalars are always strings; only plain ones resolve.

/// What a plain scalar means to Kubernetes.
#[derive(Debug, Clone, PartialEq)]
pub enum Plain {
    Null,
    Bool(bool),
    Int(i64),
    /// An integer above `i64::MAX` that fits 64 bits unsigned.
    UInt(u64),
    Float(f64),
    /// A string: the text itself (timestamps included: go-yaml v2 hands
    /// them to sigs.k8s.io/yaml as strings).
    Str,
}

/// Resolves a plain scalar the way go-yaml v2 does for an `interface{}`
/// target (what sigs.k8s.io/yaml decodes into): booleans
/// `y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF`,
/// null `~|null|Null|NULL|` (empty), `.inf`/`.nan` in their case variants,
/// integers as Go's `strconv.ParseInt(s, 0, 64)` reads them once every `_`
/// is removed (`0644` and `0o644` octal, `0x1A4` hex, `0b101` binary,
/// `1_000`), floats `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`.
/// `<<` (merge) is not handled here: it only means something as a key.
pub fn resolve(text: &str) -> Plain {
    match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => return Plain::Bool(true),
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Plain::Bool(false);
        }
        "" | "~" | "null" | "Null" | "NULL" => return Plain::Null,
        ".nan" | ".NaN" | ".NAN" => return Plain::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Plain::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Plain::Float(f64::NEG_INFINITY),
        _ => {}
    }
    match text.as_bytes()[0] {
        b'.' if is_float(text, false) => return finite(text),
        b'0'..=b'9' | b'+' | b'-' => {
            // `YYYY-...` is a timestamp candidate; go-yaml v2 gives those
            // (and any that fail to parse as one) back as strings.
            let bytes = text.as_bytes();
            if bytes.len() > 4 && bytes[..4].iter().all(u8::is_ascii_digit) && bytes[4] == b'-' {
                return Plain::Str;
            }
            let plain: String = text.chars().filter(|c| *c != '_').collect();
            if let Some(int) = go_parse_int(&plain) {
                return int;
            }
            if is_float(&plain, true) {
                return finite(&plain);
            }
        }
        _ => {}
    }
    Plain::Str
}

/// Go's `strconv.ParseFloat` fails on overflow (`1e400`), so go-yaml keeps
/// the text as a string.
fn finite(text: &str) -> Plain {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => Plain::Float(value),
        _ => Plain::Str,
    }
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?` (`signed`), or
/// `\.[0-9]+([eE][-+]?[0-9]+)?`.
fn is_float(text: &str, signed: bool) -> bool {
    let mut rest = text.as_bytes();
    if signed && let [b'+' | b'-', tail @ ..] = rest {
        rest = tail;
    }
    let digits = |s: &[u8]| s.iter().take_while(|b| b.is_ascii_digit()).count();
    let whole = digits(rest);
    rest = &rest[whole..];
    if let [b'.', tail @ ..] = rest {
        let fraction = digits(tail);
        rest = &tail[fraction..];
        if whole == 0 && fraction == 0 {
            return false;
        }
    } else if whole == 0 || !signed {
        return false;
    }
    if let [b'e' | b'E', tail @ ..] = rest {
        let tail = match tail {
            [b'+' | b'-', t @ ..] => t,
            t => t,
        };
        let exponent = digits(tail);
        return exponent > 0 && exponent == tail.len();
    }
    rest.is_empty()
}

/// `strconv.ParseInt(s, 0, 64)`, then `strconv.ParseUint(s, 0, 64)`.
fn go_parse_int(text: &str) -> Option<Plain> {
    let (negative, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = body.get(..2).map(str::to_ascii_lowercase);
    let (radix, digits) = match lower.as_deref() {
        Some("0x") => (16, &body[2..]),
        Some("0o") => (8, &body[2..]),
        Some("0b") => (2, &body[2..]),
        _ if body.len() > 1 && body.starts_with('0') => (8, &body[1..]),
        _ => (10, body),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u128::from_str_radix(digits, radix).ok()?;
    if negative {
        let value = i128::try_from(magnitude).ok().map(|m| -m)?;
        i64::try_from(value).ok().map(Plain::Int)
    } else if let Ok(value) = i64::try_from(magnitude) {
        Some(Plain::Int(value))
    } else if text.starts_with('+') {
        // ParseUint takes no sign.
        None
    } else {
        u64::try_from(magnitude).ok().map(Plain::UInt)
    }
}

/// Whether `text` may be written as a plain scalar (in block context, as a
/// key or a value, never at column 0 as a value) and read back as this very
/// string by go-yaml v2 / sigs.k8s.io/yaml, PyYAML (YAML 1.1) and a YAML 1.2
/// core-schema reader. Conservative: when in doubt, quote.
pub fn is_plain_safe(text: &str) -> bool {
    let Some(first) = text.chars().next() else { return false };
    if first == ' ' || text.ends_with(' ') || resolve(text) != Plain::Str {
        return false;
    }
    // Every spelling, in any case, that some reader takes for a bool or null.
    let lower = text.to_ascii_lowercase();
    let unsigned = lower.trim_start_matches(['+', '-']);
    if matches!(lower.as_str(), "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null" | "~" | "<<" | "=")
        || matches!(unsigned, ".inf" | ".nan")
    {
        return false;
    }
    // Number-like: ints and floats of any reader (hex, octal, binary,
    // exponents, `_` separators, PyYAML's base 60 `1:20`) and timestamps.
    let bytes = text.as_bytes();
    let digits = unsigned.as_bytes();
    if digits.first().is_some_and(|b| b.is_ascii_digit() || *b == b'.')
        && digits.iter().all(|b| b.is_ascii_hexdigit() || b"_.:+-xob".contains(b) || *b == b'e')
    {
        return false;
    }
    if bytes.len() >= 5 && bytes[..4].iter().all(u8::is_ascii_digit) && bytes[4] == b'-' {
        return false;
    }
    // Indicators: a plain scalar may start with `-`, `?` or `:` only when a
    // non-space follows; never with the others.
    let second = text.chars().nth(1);
    match first {
        '-' | '?' | ':' if second.is_none_or(|c| c == ' ') => return false,
        ',' | '[' | ']' | '{' | '}' | '#' | '&' | '*' | '!' | '|' | '>' | '\'' | '"' | '%' | '@' | '`' => return false,
        _ => {}
    }
    if text.starts_with("---")
        || text.starts_with("...")
        || text.contains(": ")
        || text.contains(" #")
        || text.ends_with(':')
    {
        return false;
    }
    text.chars().all(|c| matches!(c, ' '..='~') || (!c.is_ascii() && c.is_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_booleans_nulls_and_specials() {
        for text in ["y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE"] {
            assert_eq!(resolve(text), Plain::Bool(true), "{text}");
        }
        for text in ["n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE"] {
            assert_eq!(resolve(text), Plain::Bool(false), "{text}");
        }
        for text in ["", "~", "null", "Null", "NULL"] {
            assert_eq!(resolve(text), Plain::Null, "{text}");
        }
        for text in ["yES", "nO", "oN", "tRUE", "nULL", "NuLL", "yes!", "<<", "=", "-"] {
            assert_eq!(resolve(text), Plain::Str, "{text}");
        }
        assert_eq!(resolve(".inf"), Plain::Float(f64::INFINITY));
        assert_eq!(resolve("-.Inf"), Plain::Float(f64::NEG_INFINITY));
        assert!(matches!(resolve(".NaN"), Plain::Float(f) if f.is_nan()));
        assert_eq!(resolve(".iNf"), Plain::Str);
    }

    #[test]
    fn kubernetes_numbers() {
        let cases = [
            ("0644", Plain::Int(420)),
            ("0o644", Plain::Int(420)),
            ("0O644", Plain::Int(420)),
            ("0x1A4", Plain::Int(420)),
            ("0b110100100", Plain::Int(420)),
            ("-0x10", Plain::Int(-16)),
            ("+12", Plain::Int(12)),
            ("1_000", Plain::Int(1000)),
            ("0", Plain::Int(0)),
            ("-0", Plain::Int(0)),
            ("9223372036854775807", Plain::Int(i64::MAX)),
            ("18446744073709551615", Plain::UInt(u64::MAX)),
            ("18446744073709551616", Plain::Float(18446744073709551616.0)),
            ("09", Plain::Float(9.0)),
            ("1.5", Plain::Float(1.5)),
            ("1.", Plain::Float(1.0)),
            (".5", Plain::Float(0.5)),
            ("1e3", Plain::Float(1000.0)),
            ("-1.5E-2", Plain::Float(-0.015)),
            ("1.10", Plain::Float(1.1)),
            ("1e400", Plain::Str),
            ("0x", Plain::Str),
            ("0o8", Plain::Str),
            ("1:20", Plain::Str),
            ("2001-01-01", Plain::Str),
            ("2001-01-01T00:00:00Z", Plain::Str),
            ("100m", Plain::Str),
            ("1.2.3", Plain::Str),
            ("+", Plain::Str),
            ("._5", Plain::Str),
            ("0x1_A", Plain::Int(26)),
        ];
        for (text, expected) in cases {
            assert_eq!(resolve(text), expected, "{text}");
        }
    }

    #[test]
    fn plain_only_when_every_reader_agrees() {
        for text in
            ["nginx", "100m", "128Mi", "app.kubernetes.io/name", "-Xmx512m", "--port=8080", "a:b", "a#b", "café"]
        {
            assert!(is_plain_safe(text), "{text}");
        }
        for text in [
            "",
            "yes",
            "yES",
            "y",
            "on",
            "OFF",
            "true",
            "null",
            "NULL",
            "~",
            "0644",
            "0o644",
            "0x1A",
            "1_000",
            "1e3",
            "1.10",
            ".inf",
            "-.INF",
            ".nan",
            "2001-01-01",
            "2001-12-14t21:59:43.10-05:00",
            "1:20",
            "190:20:30.15",
            "<<",
            "=",
            "-",
            "- a",
            "? x",
            ": x",
            "a: b",
            "a #b",
            "a:",
            " a",
            "a ",
            "#a",
            "&a",
            "*a",
            "!a",
            "|",
            ">",
            "'a",
            "\"a",
            "%a",
            "@a",
            "`a",
            "[a",
            "{a",
            "---",
            "...",
            "a\tb",
            "a\nb",
            "\u{85}",
            "\u{feff}x",
        ] {
            assert!(!is_plain_safe(text), "{text:?}");
        }
    }
}
