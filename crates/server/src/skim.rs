//! The review without what nothing reads, before serde_json reads it.
//!
//! An UPDATE carries the object twice, and about half of each copy is what
//! the core skips anyway: `metadata.managedFields`, the annotations of other
//! tools (kubectl's last-applied copy of the whole object), `status`, and
//! the request's `userInfo`. serde_json checks every token of a value it
//! skips; this scanner only finds where such a value ends (objects and
//! lists 64 bytes at a time, strings eight), and the text serde_json then
//! reads has `null` in its place.
//!
//! What is dropped is what `kube_once_core::view` skips (its `Shape::keep`:
//! of a workload's metadata it reads the name, namespace and `kube-once.io/`
//! annotations) and what [`crate::admission`] does not read of the request,
//! so the answer is the same. Two things differ, deliberately: a dropped
//! value is not checked as JSON (the API server sends what it serialised,
//! and nobody reads it), and the position in a refusal of malformed JSON
//! after a dropped value is one in the skimmed text. A key written with
//! escapes is never dropped (the core reads it unescaped); anything the
//! scanner does not expect leaves the review as sent.
//!
//! A CREATE has one copy, and what is worth dropping of it is in its
//! metadata: the scan stops there (the API server writes `operation` before
//! `object`), so a large CREATE with little to drop is not scanned to its
//! end only to be read as sent.

use std::borrow::Cow;
use std::ops::Range;

use wide::u8x64;

use crate::word;

/// Below this size a review is read as sent: skimming would cost about
/// what it saves (a CREATE has no second copy and little to drop).
const WORTH_SKIMMING: usize = 16 * 1024;

/// A dropped value shorter than this is kept: each drop splits the copy.
const WORTH_DROPPING: usize = 64;

/// The skimmed copy lives beside the body while the review is read, so it
/// is made only when at least this share of the body goes: a 2 MB review
/// with a few hundred bytes of `managedFields` is read as sent, not copied.
const WORTH_COPYING: (usize, usize) = (1, 4);

/// `body` (an AdmissionReview as JSON) with the values nothing reads
/// replaced by `null`; as sent when it is small, has none, or is not
/// shaped as the scanner expects (serde_json then says what is wrong).
pub fn skim(body: &str) -> Cow<'_, str> {
    if body.len() < WORTH_SKIMMING {
        return Cow::Borrowed(body);
    }
    let mut scanner = Scanner::new(body);
    if (scanner.review().is_none() && !scanner.enough) || scanner.drops.is_empty() {
        return Cow::Borrowed(body);
    }
    let dropped: usize = scanner.drops.iter().map(|drop| drop.len()).sum();
    let (share, of) = WORTH_COPYING;
    if dropped * of < body.len() * share {
        return Cow::Borrowed(body);
    }
    let mut skimmed = String::with_capacity(body.len() - dropped + 4 * scanner.drops.len());
    let mut from = 0;
    for drop in &scanner.drops {
        // Drops start and end at ASCII bytes the scanner matched, so these
        // are character boundaries; `get` keeps that from being a panic.
        let Some(kept) = body.get(from..drop.start) else { return Cow::Borrowed(body) };
        skimmed.push_str(kept);
        skimmed.push_str("null");
        from = drop.end;
    }
    let Some(rest) = body.get(from..) else { return Cow::Borrowed(body) };
    skimmed.push_str(rest);
    Cow::Owned(skimmed)
}

/// A forward scan of JSON text: `None` from any step means "not as
/// expected" (malformed, cut short), and then nothing is dropped, unless
/// `enough` says the scan stopped because nothing more is worth dropping
/// (the drops found so far are whole values).
struct Scanner<'t> {
    text: &'t [u8],
    at: usize,
    drops: Vec<Range<usize>>,
    creating: bool,
    enough: bool,
}

impl<'t> Scanner<'t> {
    fn new(text: &'t str) -> Self {
        Scanner { text: text.as_bytes(), at: 0, drops: Vec::new(), creating: false, enough: false }
    }

    fn review(&mut self) -> Option<()> {
        self.entries(|scanner, key| match key {
            b"request" => scanner.request(),
            _ => scanner.skip(),
        })
    }

    fn request(&mut self) -> Option<()> {
        self.entries(|scanner, key| match key {
            b"operation" => {
                let start = scanner.at;
                scanner.skip()?;
                scanner.creating = &scanner.text[start..scanner.at] == b"\"CREATE\"";
                Some(())
            }
            b"object" | b"oldObject" => scanner.workload(),
            b"userInfo" => scanner.drop(),
            _ => scanner.skip(),
        })
    }

    fn workload(&mut self) -> Option<()> {
        self.entries(|scanner, key| match key {
            b"metadata" if scanner.creating => {
                scanner.metadata()?;
                scanner.enough = true;
                None
            }
            b"metadata" => scanner.metadata(),
            b"status" => scanner.drop(),
            _ => scanner.skip(),
        })
    }

    fn metadata(&mut self) -> Option<()> {
        self.entries(|scanner, key| match key {
            b"managedFields" => scanner.drop(),
            b"annotations" => scanner.annotations(),
            _ => scanner.skip(),
        })
    }

    fn annotations(&mut self) -> Option<()> {
        self.entries(|scanner, key| {
            if key.starts_with(kube_once_core::PREFIX.as_bytes()) || key.contains(&b'\\') {
                scanner.skip()
            } else {
                scanner.drop()
            }
        })
    }

    /// The entries of the object here, each value passed on with its key
    /// (as written, escapes and all); a value of another type is skipped.
    fn entries(&mut self, mut each: impl FnMut(&mut Self, &[u8]) -> Option<()>) -> Option<()> {
        self.whitespace();
        if self.peek()? != b'{' {
            return self.skip();
        }
        self.at += 1;
        self.whitespace();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            self.whitespace();
            self.expect(b'"')?;
            let start = self.at;
            self.string()?;
            let text = self.text;
            let key = &text[start..self.at - 1];
            self.whitespace();
            self.expect(b':')?;
            self.whitespace();
            each(self, key)?;
            self.whitespace();
            match self.next()? {
                b',' => continue,
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// Skip the value here, remembering it to be dropped when it is long.
    fn drop(&mut self) -> Option<()> {
        let start = self.at;
        self.skip()?;
        if self.at - start >= WORTH_DROPPING {
            self.drops.push(start..self.at);
        }
        Some(())
    }

    /// Past the value here.
    fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.at += 1;
                self.string()
            }
            b'{' | b'[' => self.nested(),
            _ => {
                // A number or a literal: up to what ends it.
                while !matches!(self.peek()?, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    self.at += 1;
                }
                Some(())
            }
        }
    }

    /// Past the object or list here, strings and all: 64 bytes at a time,
    /// counting brackets only in blocks where the depth may reach zero.
    fn nested(&mut self) -> Option<()> {
        let mut blocks = Blocks { text: self.text, at: self.at, escaped: false, in_string: 0 };
        let mut depth = 0u32;
        loop {
            let (start, Structure { opens, closes }) = blocks.next()?;
            if closes.count_ones() < depth {
                depth = depth + opens.count_ones() - closes.count_ones();
                continue;
            }
            let mut brackets = opens | closes;
            while brackets != 0 {
                let bit = brackets.trailing_zeros();
                brackets &= brackets - 1;
                if opens & (1 << bit) != 0 {
                    depth += 1;
                    continue;
                }
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    self.at = start + bit as usize + 1;
                    return Some(());
                }
            }
        }
    }

    /// Past the closing quote of the string whose opening quote is behind.
    /// Eight bytes at a time while there is no backslash (most strings
    /// read here are short keys); from the first backslash on, 64 at a
    /// time: kubectl's last-applied copy escapes a quote every few bytes.
    fn string(&mut self) -> Option<()> {
        while let Some(eight) = word::at(self.text, self.at) {
            let found = word::equal(eight, b'"') | word::equal(eight, b'\\');
            if found != 0 {
                self.at += word::first(found);
                if self.text[self.at] == b'"' {
                    self.at += 1;
                    return Some(());
                }
                break;
            }
            self.at += 8;
        }
        let mut blocks = Blocks { text: self.text, at: self.at, escaped: false, in_string: u64::MAX };
        loop {
            let (start, quotes) = blocks.quotes()?;
            if quotes != 0 {
                self.at = start + quotes.trailing_zeros() as usize + 1;
                return Some(());
            }
        }
    }

    fn whitespace(&mut self) {
        while matches!(self.text.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn expect(&mut self, wanted: u8) -> Option<()> {
        (self.next()? == wanted).then_some(())
    }
}

/// The brackets of a 64-byte block that are outside strings, as bit masks
/// (bit `i`: byte `i` of the block).
struct Structure {
    opens: u64,
    closes: u64,
}

/// JSON text 64 bytes at a time from a position outside any string,
/// carrying across blocks whether the next byte is escaped and whether it
/// is inside a string.
struct Blocks<'t> {
    text: &'t [u8],
    at: usize,
    escaped: bool,
    /// All ones inside a string at the end of the last block, else zero.
    in_string: u64,
}

impl Blocks<'_> {
    /// Where the next block starts, and its bytes; `None` past the end.
    fn block(&mut self) -> Option<(usize, u8x64)> {
        let start = self.at;
        let rest = self.text.get(start..).filter(|rest| !rest.is_empty())?;
        let bytes = match rest.first_chunk::<64>() {
            Some(block) => u8x64::new(*block),
            None => {
                // The last bytes, padded with spaces (no structure).
                let mut block = [b' '; 64];
                block[..rest.len()].copy_from_slice(rest);
                u8x64::new(block)
            }
        };
        self.at += 64;
        Some((start, bytes))
    }

    /// Where the next block starts, and its quotes that are not escaped.
    fn quotes(&mut self) -> Option<(usize, u64)> {
        let (start, bytes) = self.block()?;
        let quotes = mask(bytes, b'"') & !self.escapes(mask(bytes, b'\\'));
        Some((start, quotes))
    }

    /// Where the next block starts, and its structure; `None` past the end.
    fn next(&mut self) -> Option<(usize, Structure)> {
        let (start, bytes) = self.block()?;
        // `{` and `[`, `}` and `]` differ only in the 0x20 bit.
        let folded = bytes | u8x64::splat(0x20);
        let (quotes, backslashes) = (mask(bytes, b'"'), mask(bytes, b'\\'));
        let (opens, closes) = (mask(folded, b'{'), mask(folded, b'}'));

        let quotes = quotes & !self.escapes(backslashes);
        // Inside a string from an opening quote up to (not including) its
        // closing one: the running parity of the quotes before each byte.
        let mut inside = quotes;
        for shift in [1, 2, 4, 8, 16, 32] {
            inside ^= inside << shift;
        }
        inside ^= self.in_string;
        self.in_string = ((inside as i64) >> 63) as u64;
        Some((start, Structure { opens: opens & !inside, closes: closes & !inside }))
    }

    /// The bytes a backslash escapes: in a run of backslashes, every other
    /// one escapes the byte after it (a run may go on from the last block).
    /// All runs at once, as simdjson computes them: subtracting the
    /// backslashes from alternating bits borrows through each run, so a
    /// run's length decides whether the byte after it is escaped.
    fn escapes(&mut self, backslashes: u64) -> u64 {
        const ODD: u64 = 0xAAAA_AAAA_AAAA_AAAA;
        let carried = u64::from(self.escaped);
        let unescaped = backslashes & !carried;
        let escape_and_terminal = ((unescaped << 1) | ODD).wrapping_sub(unescaped) ^ ODD;
        let escaped = escape_and_terminal ^ (backslashes | carried);
        self.escaped = (escape_and_terminal & backslashes) >> 63 != 0;
        escaped
    }
}

/// The bytes of `bytes` equal to `wanted`, as a bit mask.
fn mask(bytes: u8x64, wanted: u8) -> u64 {
    bytes.simd_eq(u8x64::splat(wanted)).to_bitmask()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// A review of `object` and `old` padded past [`WORTH_SKIMMING`] with
    /// what gets dropped.
    fn review(object: Value, old: Value) -> String {
        serde_json::to_string(&json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "u", "userInfo": {"username": "x".repeat(80)}, "object": object, "oldObject": old},
        }))
        .unwrap()
    }

    fn workload() -> Value {
        let managed: Vec<Value> =
            (0..200).map(|i| json!({"manager": format!("m{i}"), "fieldsV1": {"f:spec": {"f:x": {}}}})).collect();
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "web", "managedFields": managed,
                "annotations": {
                    "kube-once.io/run": "migrate ".repeat(20),
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"a\":\"\\\"}]\"}".repeat(40),
                    "short": "kept",
                },
            },
            "spec": {"template": {"metadata": {"managedFields": "x".repeat(100)}, "spec": {"containers": [{"name": "app", "image": "a:1"}]}}},
            "status": {"conditions": [{"message": "y".repeat(100)}]},
        })
    }

    #[test]
    fn what_nothing_reads_becomes_null_and_the_rest_is_the_same() {
        let text = review(workload(), workload());
        let skimmed: Value = serde_json::from_str(&skim(&text)).unwrap();
        let mut expected: Value = serde_json::from_str(&text).unwrap();
        expected["request"]["userInfo"] = Value::Null;
        for copy in ["object", "oldObject"] {
            let workload = &mut expected["request"][copy];
            workload["metadata"]["managedFields"] = Value::Null;
            workload["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = Value::Null;
            workload["status"] = Value::Null;
        }
        assert_eq!(skimmed, expected, "the pod template's metadata and kube-once.io/ annotations are kept");
    }

    /// The realistic UPDATE (object and oldObject, managedFields, kubectl's
    /// last-applied copy, status), as sent and with the changes users make:
    /// the same answer read as sent and skimmed.
    #[test]
    fn the_answer_to_a_real_update_is_the_same_skimmed() {
        #[derive(serde::Deserialize)]
        struct Review<'a> {
            #[serde(borrow)]
            request: Request<'a>,
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Request<'a> {
            #[serde(borrow)]
            object: kube_once_core::Workload<'a>,
            #[serde(borrow)]
            old_object: Option<kube_once_core::Workload<'a>>,
        }
        let changes = |text: &str| {
            let review: Review = serde_json::from_str(text).unwrap();
            let request = review.request;
            let changes = kube_once_core::changes(
                &request.object,
                request.old_object.as_ref(),
                &kube_once_core::Config::default(),
            );
            format!("{changes:?}")
        };
        let sent: Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/perf/update-review.json")).unwrap();
        type Edit = (&'static str, fn(&mut Value));
        let edits: [Edit; 4] = [
            ("as sent", |_| {}),
            ("a new image", |review| {
                review["request"]["object"]["spec"]["template"]["spec"]["containers"][0]["image"] = json!("app:2");
            }),
            ("a new command", |review| {
                review["request"]["object"]["metadata"]["annotations"]["kube-once.io/run"] =
                    json!("airflow db migrate -v");
            }),
            ("first enabled", |review| {
                review["request"]["oldObject"]["metadata"]["annotations"] =
                    json!({"kubectl.kubernetes.io/last-applied-configuration": "{}".repeat(100)});
            }),
        ];
        let mut answers = std::collections::BTreeSet::new();
        for (edit, apply) in edits {
            let mut review = sent.clone();
            apply(&mut review);
            let text = serde_json::to_string(&review).unwrap();
            let skimmed = skim(&text);
            assert!(skimmed.len() < text.len() / 2, "{edit}: managedFields, last-applied, status dropped");
            assert_eq!(changes(&skimmed), changes(&text), "{edit}");
            answers.insert(changes(&text));
        }
        assert!(answers.len() > 1, "the edits change the answer: {answers:#?}");
    }

    #[test]
    fn a_small_review_or_one_not_as_expected_is_read_as_sent() {
        let small = review(json!({"metadata": {"managedFields": [1, 2, 3]}}), Value::Null);
        assert!(matches!(skim(&small), Cow::Borrowed(_)));
        // Large, but with little to drop: not worth a copy of the body.
        let mut large = workload();
        large["spec"]["template"]["spec"]["containers"][0]["args"] = json!(vec!["x".repeat(100); 1000]);
        assert!(matches!(skim(&review(large, Value::Null)), Cow::Borrowed(_)));
        assert!(matches!(skim(&review(workload(), workload())), Cow::Owned(_)), "the same, mostly what is dropped");
        let text = review(workload(), workload());
        for cut in [text.len() / 3, text.len() / 2, text.len() - 1] {
            assert!(matches!(skim(&text[..cut]), Cow::Borrowed(_)), "cut at {cut}");
        }
        let not_a_review = format!("[{text}]");
        assert!(matches!(skim(&not_a_review), Cow::Borrowed(_)));
    }

    /// A CREATE is read up to the end of its object's metadata, where the
    /// API server puts what is worth dropping: its spec and status are not
    /// scanned (text cut after the metadata is still skimmed) and kept.
    #[test]
    fn a_create_is_scanned_to_the_end_of_its_metadata() {
        let mut object = workload();
        let managed = object["metadata"]["managedFields"].as_array().unwrap();
        let managed: Vec<Value> = managed.iter().chain(managed).cloned().collect();
        object["metadata"]["managedFields"] = Value::from(managed);
        let (metadata, rest) = (&object["metadata"], json!({"spec": object["spec"], "status": object["status"]}));
        let create = |operation: &str| {
            format!(
                r#"{{"request":{{"uid":"u","operation":"{operation}","object":{{"kind":"Deployment","metadata":{metadata},{}"#,
                &rest.to_string()[1..]
            )
        };
        let text = format!("{}}}}}", create("CREATE"));
        assert!(text.len() > WORTH_SKIMMING);
        let skimmed: Value = serde_json::from_str(&skim(&text)).unwrap();
        let mut expected: Value = serde_json::from_str(&text).unwrap();
        let sent_metadata = &mut expected["request"]["object"]["metadata"];
        sent_metadata["managedFields"] = Value::Null;
        sent_metadata["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = Value::Null;
        assert_eq!(skimmed, expected, "the status of a CREATE is kept");

        let cut = &text[..text.len() - rest.to_string().len() / 2];
        assert!(matches!(skim(cut), Cow::Owned(_)), "what follows the metadata is not read");
        let update = create("UPDATE");
        let cut = &update[..update.len() - rest.to_string().len() / 2];
        assert!(matches!(skim(cut), Cow::Borrowed(_)), "an UPDATE is read to its end");
    }

    #[test]
    fn an_annotation_key_written_with_escapes_is_kept() {
        let mut object = workload();
        let escaped = "kube-once.io\\/run";
        let text = review(object.take(), Value::Null).replace("kube-once.io/run", escaped);
        assert!(text.contains(escaped));
        let skimmed: Value = serde_json::from_str(&skim(&text)).unwrap();
        assert_eq!(
            skimmed["request"]["object"]["metadata"]["annotations"]["kube-once.io/run"],
            json!("migrate ".repeat(20))
        );
    }

    /// Strings full of quotes, backslashes and brackets, nested values across
    /// 64-byte blocks: each is skipped to exactly its end.
    #[test]
    fn random_values_are_skipped_to_their_end() {
        let mut rng = fastrand::Rng::with_seed(0x9E37_79B9_7F4A_7C15);
        let mut random = move |below: u64| rng.u64(..below);
        fn value(random: &mut impl FnMut(u64) -> u64, depth: u32) -> Value {
            const ALPHABET: &[char] = &['"', '\\', '{', '}', '[', ']', 'a', ' ', ',', ':', '\n', 'é'];
            match random(if depth > 4 { 2 } else { 4 }) {
                0 => Value::from((0..random(90)).map(|_| ALPHABET[random(12) as usize]).collect::<String>()),
                1 => Value::from(random(1000)),
                2 => Value::Array((0..random(6)).map(|_| value(random, depth + 1)).collect()),
                _ => Value::Object((0..random(6)).map(|i| (format!("k{i}\\"), value(random, depth + 1))).collect()),
            }
        }
        for _ in 0..3000 {
            let value = json!([value(&mut random, 0)]);
            for text in [serde_json::to_string(&value).unwrap(), serde_json::to_string_pretty(&value).unwrap()] {
                let padded = format!("{text}{}", "]".repeat(random(80) as usize));
                let mut scanner = Scanner::new(&padded);
                assert_eq!(scanner.skip(), Some(()), "{text}");
                assert_eq!(scanner.at, text.len(), "{text}");
            }
        }
    }

    /// The escapes of a block, all at once, are those found one backslash
    /// at a time, carried from block to block.
    #[test]
    fn the_escapes_of_a_block_are_those_found_one_by_one() {
        fn one_by_one(backslashes: u64, carried: bool) -> (u64, bool) {
            let (mut escaped, mut carry) = (u64::from(carried), false);
            for bit in (0..64).filter(|bit| backslashes & (1 << bit) != 0) {
                if escaped & (1 << bit) != 0 {
                    continue;
                }
                match bit {
                    63 => carry = true,
                    _ => escaped |= 1 << (bit + 1),
                }
            }
            (escaped, carry)
        }
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..200_000 {
            // Dense and sparse runs of backslashes.
            let backslashes = match rng.u8(..3) {
                0 => rng.u64(..),
                1 => rng.u64(..) | rng.u64(..),
                _ => rng.u64(..) & rng.u64(..),
            };
            let carried = rng.bool();
            let mut blocks = Blocks { text: b"", at: 0, escaped: carried, in_string: 0 };
            let escaped = blocks.escapes(backslashes);
            assert_eq!((escaped, blocks.escaped), one_by_one(backslashes, carried), "{backslashes:064b} {carried}");
        }
    }

    /// Long strings full of escapes, across blocks, end where serde_json
    /// says they do.
    #[test]
    fn strings_with_escapes_are_skipped_to_their_end() {
        let mut rng = fastrand::Rng::with_seed(3);
        let pieces = ["\\\"", "\\\\", "a", "\\n", "é", "\\u00e9", "{", "]", " "];
        for _ in 0..5000 {
            let text: String = (0..rng.usize(..300)).map(|_| pieces[rng.usize(..pieces.len())]).collect();
            let quoted = format!("\"{text}\",\"next\"");
            let end = quoted.len() - ",\"next\"".len();
            assert!(serde_json::from_str::<String>(&quoted[..end]).is_ok(), "{quoted}");
            let mut scanner = Scanner::new(&quoted);
            assert_eq!(scanner.skip(), Some(()), "{quoted}");
            assert_eq!(scanner.at, end, "{quoted}");
            assert_eq!(Scanner::new(&quoted[..end - 1]).skip(), None, "unterminated: {quoted}");
        }
    }

    #[test]
    fn values_of_every_shape_are_skipped_to_their_end() {
        for value in [
            json!(null),
            json!(-1.5e10),
            json!("a \"quoted\" \\ \u{1F600} string"),
            json!([[], {}, [[{"]": "}"}]], "\\"]),
            json!({"a": {"b": [1, true, false, null, "x\\\"y"]}}),
        ] {
            for text in [serde_json::to_string(&value).unwrap(), serde_json::to_string_pretty(&value).unwrap()] {
                let mut scanner = Scanner::new(&text);
                let end = text.len();
                // A scalar ends where what follows it begins.
                let padded = format!("{text},");
                let mut padded_scanner = Scanner::new(&padded);
                assert_eq!(padded_scanner.skip(), Some(()), "{text}");
                assert_eq!(padded_scanner.at, end, "{text}");
                if text.starts_with(['{', '[', '"']) {
                    assert_eq!(scanner.skip(), Some(()), "{text}");
                    assert_eq!(scanner.at, end, "{text}");
                }
            }
        }
    }
}
