//! A changed document as edits of its own text, not a rewrite: every byte
//! that need not change stays (comments, quoting, flow style, blank lines,
//! key order), and what is added takes the document's indentation and style.
//!
//! [`edit`] walks the document's `Layout` with its value before and after
//! the change:
//! - a key added to a block mapping is inserted after its last entry, at
//!   its indentation; an item added to a block list is appended to it;
//! - a key or item removed from a block collection loses its lines;
//! - a scalar that changes is written anew after its `key:` or `-`;
//! - in a flow collection (JSON included) an added key or item goes after
//!   the last one (on its own line when the collection has one entry a
//!   line, so only the line before gains its `,`); a flow collection that
//!   loses one is written anew, still in flow style; an empty one (`{}`,
//!   `[]`) in block context becomes block;
//! - anything else that changes (a scalar that becomes a mapping, ...) is
//!   written anew in place.
//!
//! The edited text is read back and must give exactly the new value; when
//! it does not (a changed node that an alias repeats elsewhere, ...), the
//! caller writes the document anew and says why ([`Rewrite`]).

use std::ops::Range;

use serde_json::{Map, Value};

use super::layout::{Entry, Layout, Shape, layout};
use super::write::{Indents, block_entries, block_items, block_scalar, flow};
use super::{Limits, read_stream};

/// Why a changed document is written anew rather than edited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rewrite {
    /// The text holds characters YAML 1.1 readers (kubectl's, PyYAML) take
    /// for line breaks and YAML 1.2 readers do not (U+0085, U+2028,
    /// U+2029), or a DEL: kept as they are they would read differently;
    /// written anew, they are escaped.
    #[error("the document holds U+0085, U+2028, U+2029 or DEL, which YAML readers disagree on")]
    Characters,
    /// What changes is written elsewhere: an alias, or a key a merge key
    /// brings.
    #[error("what changes is an alias or comes from a merge key (`<<`)")]
    Aliases,
    /// The text and the value do not match one to one (e.g. a key read as
    /// a number, `1.0:`).
    #[error("the document's keys are not written as they are read")]
    Unmatched,
    /// The edited text would not read back as the changed value.
    #[error("an edit in place would not read back exactly")]
    NotExact,
}

/// `part` (one document's text, as [`super::Document::span`] gives it)
/// edited from `before` (its value) to `after`.
pub fn edit(part: &str, before: &Value, after: &Value) -> Result<String, Rewrite> {
    if part.contains(['\u{85}', '\u{2028}', '\u{2029}', '\u{7f}']) {
        return Err(Rewrite::Characters);
    }
    let root = layout(part).ok_or(Rewrite::Unmatched)?;
    let mut editor = Editor {
        text: part,
        edits: Vec::new(),
        indents: indents(part, &root).unwrap_or(Indents::DEFAULT),
        quoted: root.flow,
    };
    editor.diff(&root, before, after, Slot::Root)?;
    let out = editor.apply()?;
    let read = read_stream(&out, &Limits::default()).map_err(|_| Rewrite::NotExact)?;
    let mut values = read.iter().filter(|document| document.node.is_some());
    match (values.next().map(super::Document::to_json), values.next()) {
        (Some(Ok(Some(value))), None) if value == *after => Ok(out),
        _ => Err(Rewrite::NotExact),
    }
}

/// Where a node is, as far as writing it anew goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Root,
    /// After `key:` (`colon_end` is just after the `:`), the key at `column`.
    Value {
        colon_end: usize,
        column: usize,
    },
    /// After the `-` at byte `dash` and `column`.
    Item {
        dash: usize,
        column: usize,
    },
    /// Inside a flow collection.
    Flow,
}

struct Editor<'t> {
    text: &'t str,
    /// Replacements of byte ranges (insertions are empty ranges).
    edits: Vec<(Range<usize>, String)>,
    indents: Indents,
    /// The document is JSON (kubectl then reads it as JSON): what is
    /// written in it is JSON too.
    quoted: bool,
}

impl Editor<'_> {
    fn diff(&mut self, node: &Layout, before: &Value, after: &Value, slot: Slot) -> Result<(), Rewrite> {
        if before == after {
            return Ok(());
        }
        match (&node.shape, before, after) {
            (Shape::Map { entries, merged }, Value::Object(b), Value::Object(a)) => {
                matches(entries, b, *merged)?;
                if *merged {
                    merged_unchanged(entries, b, a)?;
                }
                if entries.is_empty() && !*merged && slot != Slot::Flow {
                    self.rewrite(node, after, slot)
                } else if node.flow {
                    self.flow_map(node, entries, b, a)
                } else {
                    self.block_map(node, entries, b, a, slot)
                }
            }
            (Shape::Alias, ..) => Err(Rewrite::Aliases),
            (Shape::Seq(items), Value::Array(b), Value::Array(a)) => {
                if items.len() != b.len() {
                    return Err(Rewrite::Unmatched);
                }
                if items.is_empty() && slot != Slot::Flow {
                    self.rewrite(node, after, slot)
                } else if node.flow {
                    self.flow_seq(node, items, b, a)
                } else {
                    self.block_seq(node, items, b, a, slot)
                }
            }
            _ => self.rewrite(node, after, slot),
        }
    }

    fn block_map(
        &mut self,
        node: &Layout,
        entries: &[Entry],
        before: &Map<String, Value>,
        after: &Map<String, Value>,
        slot: Slot,
    ) -> Result<(), Rewrite> {
        let removed: Vec<&Entry> = entries.iter().filter(|entry| !after.contains_key(&entry.key)).collect();
        // A mapping that loses all its keys, or a key that shares its line
        // with a `- `, cannot just lose lines: the mapping is written anew.
        if removed.len() == entries.len() || removed.iter().any(|entry| !self.starts_line(entry.key_range.start)) {
            return self.rewrite(node, &Value::Object(after.clone()), slot);
        }
        for entry in &removed {
            self.delete_lines(entry.key_range.start, end_of(entry));
        }
        for entry in entries {
            if let (Some(b), Some(a)) = (before.get(&entry.key), after.get(&entry.key))
                && b != a
            {
                let colon_end = self.colon_after(entry.key_range.end)?;
                self.diff(&entry.value, b, a, Slot::Value { colon_end, column: entry.key_column })?;
            }
        }
        let added: Map<String, Value> =
            after.iter().filter(|(key, _)| !before.contains_key(*key)).map(|(k, v)| (k.clone(), v.clone())).collect();
        if let (false, Some(last)) = (added.is_empty(), entries.last()) {
            let text = block_entries(&added, node.column, false, self.indents);
            self.insert_line(end_of(last), text);
        }
        Ok(())
    }

    fn block_seq(
        &mut self,
        node: &Layout,
        items: &[Layout],
        before: &[Value],
        after: &[Value],
        slot: Slot,
    ) -> Result<(), Rewrite> {
        let dashes = items.iter().map(|item| self.dash_before(item.range.start)).collect::<Option<Vec<_>>>();
        let Some(dashes) = dashes else { return self.rewrite(node, &Value::Array(after.to_vec()), slot) };
        let kept = before.len().min(after.len());
        if after.is_empty() || dashes[kept..].iter().any(|&dash| !self.starts_line(dash)) {
            return self.rewrite(node, &Value::Array(after.to_vec()), slot);
        }
        let column = self.column(dashes[0]);
        // Item by item: kube-once appends to lists and takes its own items
        // off their end, so the items before stay where they are.
        for (index, (b, a)) in before.iter().zip(after).enumerate() {
            let dash = dashes[index];
            self.diff(&items[index], b, a, Slot::Item { dash, column: self.column(dash) })?;
        }
        for (item, &dash) in items[kept..].iter().zip(&dashes[kept..]) {
            self.delete_lines(dash, item.range.end);
        }
        if let (true, Some(last)) = (after.len() > before.len(), items.last()) {
            let text = block_items(&after[kept..], column, false, self.indents);
            self.insert_line(last.range.end, text);
        }
        Ok(())
    }

    fn flow_map(
        &mut self,
        node: &Layout,
        entries: &[Entry],
        before: &Map<String, Value>,
        after: &Map<String, Value>,
    ) -> Result<(), Rewrite> {
        let Some(last) = entries.last() else { return self.rewrite_flow(node, &Value::Object(after.clone())) };
        if entries.iter().any(|entry| !after.contains_key(&entry.key)) {
            return self.rewrite_flow(node, &Value::Object(after.clone()));
        }
        for entry in entries {
            if let (Some(b), Some(a)) = (before.get(&entry.key), after.get(&entry.key)) {
                self.diff(&entry.value, b, a, Slot::Flow)?;
            }
        }
        let multiline = self.line_start(last.key_range.start) > node.range.start;
        let mut text = String::new();
        for (key, value) in after.iter().filter(|(key, _)| !before.contains_key(*key)) {
            Self::separate(&mut text, multiline, last.key_column);
            text.push_str(&flow(&Value::String(key.clone()), self.quoted, None));
            text.push_str(": ");
            text.push_str(&flow(value, self.quoted, multiline.then_some((last.key_column, self.indents.map))));
        }
        self.insert(end_of(last), text);
        Ok(())
    }

    fn flow_seq(&mut self, node: &Layout, items: &[Layout], before: &[Value], after: &[Value]) -> Result<(), Rewrite> {
        let Some(last) = items.last() else { return self.rewrite_flow(node, &Value::Array(after.to_vec())) };
        if after.len() < before.len() {
            return self.rewrite_flow(node, &Value::Array(after.to_vec()));
        }
        for ((item, b), a) in items.iter().zip(before).zip(after) {
            self.diff(item, b, a, Slot::Flow)?;
        }
        let multiline = self.line_start(last.range.start) > node.range.start;
        let mut text = String::new();
        for value in &after[before.len()..] {
            Self::separate(&mut text, multiline, last.column);
            text.push_str(&flow(value, self.quoted, multiline.then_some((last.column, self.indents.map))));
        }
        self.insert(last.range.end, text);
        Ok(())
    }

    /// The `,` before an entry added to a flow collection, and its line
    /// break and indentation (`column`) when the collection has one entry a line.
    fn separate(text: &mut String, multiline: bool, column: usize) {
        text.push(',');
        if multiline {
            text.push('\n');
            text.extend(std::iter::repeat_n(' ', column));
        } else {
            text.push(' ');
        }
    }

    /// `node` written anew where it is, as `after`.
    fn rewrite(&mut self, node: &Layout, after: &Value, slot: Slot) -> Result<(), Rewrite> {
        let indents = self.indents;
        let block = |width_map: usize, width_seq: usize, inline: bool| match after {
            Value::Object(map) if !map.is_empty() => (true, chomp(block_entries(map, width_map, inline, indents))),
            Value::Array(items) if !items.is_empty() => (true, chomp(block_items(items, width_seq, inline, indents))),
            scalar => (false, block_scalar(scalar, width_map)),
        };
        match slot {
            Slot::Flow => return self.rewrite_flow(node, after),
            Slot::Root => {
                let (_, text) = block(0, 0, false);
                self.replace(node.range.clone(), text);
            }
            Slot::Value { colon_end, column } => {
                let (collection, text) = block(column + indents.map, column + indents.seq, false);
                let end = node.range.end.max(colon_end);
                let rest = self.text[end..self.line_end(end)].trim_start();
                if collection && (rest.is_empty() || rest.starts_with('#')) {
                    // The block goes on the lines after the key's, which keeps its comment.
                    self.replace(colon_end..end, String::new());
                    self.insert_line(end, text + "\n");
                } else if collection {
                    self.replace(colon_end..end, format!("\n{text}"));
                } else {
                    self.replace(colon_end..end, format!(" {text}"));
                }
            }
            Slot::Item { dash, column } => {
                let (_, text) = block(column + 2, column + 2, true);
                self.replace(dash + 1..node.range.end.max(dash + 1), format!(" {text}"));
            }
        }
        Ok(())
    }

    /// A flow collection written anew in flow style (one entry a line when
    /// it had its entries on lines of their own).
    fn rewrite_flow(&mut self, node: &Layout, after: &Value) -> Result<(), Rewrite> {
        let line_start = self.line_start(node.range.start);
        let multiline = self.text[node.range.clone()].contains('\n');
        let width = self.text[line_start..].len() - self.text[line_start..].trim_start_matches(' ').len();
        let text = flow(after, self.quoted, multiline.then_some((width, self.indents.map)));
        self.replace(node.range.clone(), text);
        Ok(())
    }

    fn replace(&mut self, range: Range<usize>, text: String) {
        self.edits.push((range, text));
    }

    fn insert(&mut self, at: usize, text: String) {
        self.edits.push((at..at, text));
    }

    /// `text` (whole lines) after the line that holds byte `at`.
    fn insert_line(&mut self, at: usize, text: String) {
        let end = self.line_end(at);
        if end == self.text.len() && !self.text.ends_with('\n') {
            self.insert(end, format!("\n{text}"));
        } else {
            self.insert(end, text);
        }
    }

    /// The lines from the one holding `start` to the one holding `end`.
    fn delete_lines(&mut self, start: usize, end: usize) {
        let range = self.line_start(start)..self.line_end(end);
        self.replace(range, String::new());
    }

    fn line_start(&self, at: usize) -> usize {
        self.text[..at].rfind('\n').map_or(0, |index| index + 1)
    }

    /// Just after the line break ending the line that holds `at` (the
    /// text's end on its last line).
    fn line_end(&self, at: usize) -> usize {
        let at = at.min(self.text.len());
        // A node ending just at its line break ends on that line.
        let from = if at > 0 && self.text.as_bytes()[at - 1] == b'\n' { at - 1 } else { at };
        self.text[from..].find('\n').map_or(self.text.len(), |index| from + index + 1)
    }

    fn starts_line(&self, at: usize) -> bool {
        self.text[self.line_start(at)..at].trim_start_matches([' ', '\t']).is_empty()
    }

    fn column(&self, at: usize) -> usize {
        self.text[self.line_start(at)..at].chars().count()
    }

    /// The `-` of the block list item starting at `at`.
    fn dash_before(&self, at: usize) -> Option<usize> {
        let before = self.text[..at].trim_end_matches([' ', '\t', '\r', '\n']);
        let dash = before.len().checked_sub(1)?;
        (before.ends_with('-') && dash < at && self.text[dash + 1..at].starts_with([' ', '\t', '\r', '\n']))
            .then_some(dash)
    }

    /// Just after the `:` that follows a key ending at `at`.
    fn colon_after(&self, at: usize) -> Result<usize, Rewrite> {
        let rest = &self.text[at..];
        let skipped = rest.len() - rest.trim_start_matches([' ', '\t']).len();
        match rest[skipped..].starts_with(':') {
            true => Ok(at + skipped + 1),
            false => Err(Rewrite::Unmatched),
        }
    }

    fn apply(mut self) -> Result<String, Rewrite> {
        // Insertions at a place go before what is replaced from there on
        // (lines added after a key, the next key's lines removed).
        self.edits.sort_by_key(|(range, _)| (range.start, !range.is_empty()));
        // What is added ends its lines as the document does.
        if self.text.contains("\r\n") {
            for (_, text) in &mut self.edits {
                *text = text.replace('\n', "\r\n");
            }
        }
        let mut out = String::with_capacity(self.text.len() + self.edits.iter().map(|(_, t)| t.len()).sum::<usize>());
        let mut at = 0;
        for (range, text) in &self.edits {
            if range.start < at {
                return Err(Rewrite::NotExact);
            }
            out.push_str(&self.text[at..range.start]);
            out.push_str(text);
            at = range.end;
        }
        out.push_str(&self.text[at..]);
        Ok(out)
    }
}

/// Where an entry's text ends.
fn end_of(entry: &Entry) -> usize {
    entry.value.range.end.max(entry.key_range.end)
}

/// Written text without the line break that ends it (the line it goes on
/// has its own).
fn chomp(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
    }
    text
}

/// Whether the layout's keys are the value's (some of them, when a merge
/// key brings the others).
fn matches(entries: &[Entry], value: &Map<String, Value>, merged: bool) -> Result<(), Rewrite> {
    let all = merged || entries.len() == value.len();
    match all && entries.iter().all(|entry| value.contains_key(&entry.key)) {
        true => Ok(()),
        false => Err(Rewrite::Unmatched),
    }
}

/// The keys a merge key brings are written where its alias points: they
/// cannot change here (a key added is written here, and wins over them).
fn merged_unchanged(entries: &[Entry], before: &Map<String, Value>, after: &Map<String, Value>) -> Result<(), Rewrite> {
    let merged = before.iter().filter(|(key, _)| !entries.iter().any(|entry| entry.key == **key));
    match merged.into_iter().all(|(key, value)| after.get(key) == Some(value)) {
        true => Ok(()),
        false => Err(Rewrite::Aliases),
    }
}

/// How the document indents: the first mapping under a key (on the lines
/// after it) gives the step of mappings, the first list under a key the
/// offset of its `- ` (`None` when the document shows neither).
fn indents(text: &str, root: &Layout) -> Option<Indents> {
    let (mut map, mut seq) = (None, None);
    visit(root, &mut |node| {
        match &node.shape {
            Shape::Map { entries, .. } => {
                for entry in entries {
                    let below = text[entry.key_range.end..entry.value.range.start].contains('\n');
                    match &entry.value.shape {
                        Shape::Map { entries: inner, .. } if below && !inner.is_empty() && map.is_none() => {
                            map = entry.value.column.checked_sub(entry.key_column).filter(|step| *step > 0);
                        }
                        Shape::Seq(items) if below && !entry.value.flow && !items.is_empty() && seq.is_none() => {
                            let line = text[..items[0].range.start].rfind('-').map(|dash| {
                                let start = text[..dash].rfind('\n').map_or(0, |index| index + 1);
                                text[start..dash].chars().count()
                            });
                            seq = line.and_then(|dash| dash.checked_sub(entry.key_column));
                        }
                        _ => {}
                    }
                }
            }
            Shape::Seq(_) | Shape::Scalar { .. } | Shape::Alias => {}
        }
        map.is_none() || seq.is_none()
    });
    let map = map?;
    Some(Indents { map, seq: seq.unwrap_or(map) })
}

/// `f` on `node` and its descendants in document order, while it returns true.
fn visit<'l>(node: &'l Layout, f: &mut impl FnMut(&'l Layout) -> bool) -> bool {
    if !f(node) {
        return false;
    }
    match &node.shape {
        Shape::Map { entries, .. } => entries.iter().all(|entry| visit(&entry.value, f)),
        Shape::Seq(items) => items.iter().all(|item| visit(item, f)),
        Shape::Scalar { .. } | Shape::Alias => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn value(text: &str) -> Value {
        read_stream(text, &Limits::default()).unwrap()[0].to_json().unwrap().unwrap()
    }

    /// `text` edited to `after`, which it must read back as.
    fn edited(text: &str, after: Value) -> String {
        edit(text, &value(text), &after).unwrap_or_else(|why| panic!("{why}"))
    }

    #[test]
    fn keys_and_items_are_inserted_in_the_documents_own_indentation() {
        let text = "# top\nspec:   # the spec\n    containers:\n    - name: app   # first\n      args: [a, 'b']\n\n    # end\n";
        let mut after = value(text);
        after["spec"]["containers"].as_array_mut().unwrap().push(json!({"name": "new", "args": ["x"]}));
        after["spec"]["volumes"] = json!([{"name": "v", "emptyDir": {}}]);
        assert_eq!(
            edited(text, after),
            "# top\nspec:   # the spec\n    containers:\n    - name: app   # first\n      args: [a, 'b']\n    - name: new\n      args:\n      - x\n    volumes:\n    - name: v\n      emptyDir: {}\n\n    # end\n"
        );
    }

    #[test]
    fn a_flow_collection_grows_in_place_and_is_written_anew_only_when_it_loses_an_item() {
        let text = "labels: {app: web}   # kept\nargs: [a, \"b c\", d]\n";
        let mut after = value(text);
        after["labels"]["x/y"] = json!("true");
        after["args"] = json!(["a", "d"]);
        assert_eq!(edited(text, after), "labels: {app: web, x/y: \"true\"}   # kept\nargs: [a, d]\n");
    }

    #[test]
    fn a_changed_scalar_is_replaced_and_nothing_else_moves() {
        let text = "a:\n  kube-once.io/status: '{\"key\":\"old\"}'  # why\n  b: \"yes\"\n";
        let mut after = value(text);
        after["a"]["kube-once.io/status"] = json!("{\"key\":\"new\"}");
        assert_eq!(
            edited(text, after),
            "a:\n  kube-once.io/status: \"{\\\"key\\\":\\\"new\\\"}\"  # why\n  b: \"yes\"\n"
        );
        // Keys are matched as Kubernetes reads them: `on` is the key "true".
        let text = "on: 1\n0x10: [a]\n";
        assert_eq!(edited(text, json!({"true": 2, "16": ["a", "b"]})), "on: 2\n0x10: [a, b]\n");
    }

    #[test]
    fn empty_and_null_values_that_get_content_become_blocks() {
        let text = "a: {}\nb:\nc: null\nd: []\n";
        let after = json!({"a": {"k": "v"}, "b": {"k": 1}, "c": ["x"], "d": [{"name": "app"}]});
        assert_eq!(edited(text, after), "a:\n  k: v\nb:\n  k: 1\nc:\n  - x\nd:\n  - name: app\n");
        let text = "a: {}   # none yet\nb:  # nor here\nc: 1\n";
        let after = json!({"a": {"k": "line 1\nline 2\n"}, "b": ["x"]});
        assert_eq!(edited(text, after), "a:   # none yet\n  k: |\n    line 1\n    line 2\nb:  # nor here\n  - x\n");
    }

    #[test]
    fn removed_keys_and_items_lose_their_lines() {
        let text = "a: 1 # one\nb:\n  - x\n  - y # why\n  - z\nc: |\n  text\n";
        let after = json!({"b": ["x"], "c": "text\n"});
        assert_eq!(edited(text, after), "b:\n  - x\nc: |\n  text\n");
    }

    #[test]
    fn json_documents_grow_as_pretty_json() {
        let text = "{\n  \"a\": {\n    \"b\": 1\n  },\n  \"c\": []\n}\n";
        let after = json!({"a": {"b": 1, "n": {"x": [true]}}, "c": [], "d": "yes"});
        assert_eq!(
            edited(text, after),
            "{\n  \"a\": {\n    \"b\": 1,\n    \"n\": {\n      \"x\": [\n        true\n      ]\n    }\n  },\n  \"c\": [],\n  \"d\": \"yes\"\n}\n"
        );
    }

    #[test]
    fn crlf_documents_get_crlf_lines() {
        let text = "a:\r\n  b: 1\r\nl:\r\n- x\r\n";
        let after = json!({"a": {"b": 1, "c": 2}, "l": ["x", "z"]});
        assert_eq!(edited(text, after), "a:\r\n  b: 1\r\n  c: 2\r\nl:\r\n- x\r\n- z\r\n");
    }

    #[test]
    fn json_stays_json_and_ambiguous_characters_are_not_kept() {
        let text = "{\"a\": [1]}\n";
        let after = json!({"a": [1], "b\u{7f}": "x\u{2028}\"\u{85}"});
        assert_eq!(edited(text, after), "{\"a\": [1], \"b\\u007F\": \"x\\u2028\\\"\\u0085\"}\n");
        let text = "{\"a\": \"x\u{2028}y\"}\n";
        assert_eq!(edit(text, &value(text), &json!({"a": "x\u{2028}y", "b": 1})), Err(Rewrite::Characters));
    }

    #[test]
    fn aliases_and_merged_keys_are_edited_around_and_never_through() {
        let text = "base: &b {x: 1}\nm:\n  <<: *b\n  own: 2\ncopy: *b\n";
        let mut after = value(text);
        after["m"]["z"] = json!(3);
        assert_eq!(edited(text, after), "base: &b {x: 1}\nm:\n  <<: *b\n  own: 2\n  z: 3\ncopy: *b\n");
        let mut merged = value(text);
        merged["m"]["x"] = json!(5);
        assert_eq!(edit(text, &value(text), &merged), Err(Rewrite::Aliases));
        let mut aliased = value(text);
        aliased["copy"]["x"] = json!(5);
        assert_eq!(edit(text, &value(text), &aliased), Err(Rewrite::Aliases));
        // An anchored node changed where its aliases read it too would not read back.
        let mut anchored = value(text);
        anchored["base"]["x"] = json!(5);
        assert_eq!(edit(text, &value(text), &anchored), Err(Rewrite::NotExact));
    }
}
