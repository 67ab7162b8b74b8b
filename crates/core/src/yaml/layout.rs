//! Where each node of a document is in its text: what [`super::edit`]
//! needs to change a value without rewriting what is around it.
//!
//! An alias is a leaf ([`Shape::Alias`]): its value is written elsewhere,
//! so it cannot be edited where it is; a mapping with a merge key (`<<`)
//! says so, as its value has more keys than its text.

use std::ops::Range;

use granit_parser::{Event, Parser, ScalarStyle, StructureStyle};

/// A node and where it is: `range` runs from its first character (a
/// collection's first key, item or opening bracket; a block scalar's first
/// content line) to just after its last one, trailing white space excluded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Layout {
    pub range: Range<usize>,
    /// Column (in characters) of its first character.
    pub column: usize,
    pub flow: bool,
    pub shape: Shape,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Shape {
    /// `empty`: written as nothing at all (`key:` for null).
    Scalar {
        block: bool,
        empty: bool,
    },
    Seq(Vec<Layout>),
    /// `merged`: it has a merge key (`<<`), whose entry is left out.
    Map {
        entries: Vec<Entry>,
        merged: bool,
    },
    /// `*name`: the text is elsewhere.
    Alias,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub key: String,
    /// The key's text (quotes included).
    pub key_range: Range<usize>,
    pub key_column: usize,
    pub value: Layout,
}

enum Open {
    Seq {
        start: usize,
        column: usize,
        flow: bool,
        items: Vec<Layout>,
    },
    Map {
        start: usize,
        column: usize,
        flow: bool,
        entries: Vec<Entry>,
        merged: bool,
        key: Option<(String, Range<usize>, usize, bool)>,
    },
}

/// The layout of `part`'s one document (`None`: none, or one that aliases).
pub(crate) fn layout(part: &str) -> Option<Layout> {
    let mut stack: Vec<Open> = Vec::new();
    let mut root = None;
    let mut scalar_text = String::new();
    let mut merge_key = false;
    for event in Parser::new_from_str(part) {
        let (event, span) = event.ok()?;
        let start = span.start.byte_offset()?;
        let end = span.end.byte_offset()?;
        let column = span.start.col();
        let node = match event {
            Event::UnresolvedAlias(_) => return None,
            Event::Alias(_) => Layout { range: start..end, column, flow: false, shape: Shape::Alias },
            Event::Scalar(text, style, ..) => {
                merge_key = style == ScalarStyle::Plain && text == "<<";
                // As a key, what it reads as (`on` is "true", `0x10` is "16").
                scalar_text = super::scalar(&text, style, None)
                    .ok()
                    .and_then(|node| super::key_name(node).ok())
                    .unwrap_or_else(|| text.into_owned());
                let block = matches!(style, ScalarStyle::Literal | ScalarStyle::Folded);
                let empty = start == end;
                let end = if block { start + part[start..end].trim_end().len() } else { end };
                Layout { range: start..end, column, flow: false, shape: Shape::Scalar { block, empty } }
            }
            Event::SequenceStart(style, ..) => {
                stack.push(Open::Seq { start, column, flow: style == StructureStyle::Flow, items: Vec::new() });
                continue;
            }
            Event::MappingStart(style, ..) => {
                let flow = style == StructureStyle::Flow;
                stack.push(Open::Map { start, column, flow, entries: Vec::new(), merged: false, key: None });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (start, column, flow, shape, last) = match stack.pop()? {
                    Open::Seq { start, column, flow, items } => {
                        let last = items.last().map(|item| item.range.end);
                        (start, column, flow, Shape::Seq(items), last)
                    }
                    Open::Map { start, column, flow, entries, merged, .. } => {
                        let last = entries.last().map(|entry| entry.value.range.end.max(entry.key_range.end));
                        (start, column, flow, Shape::Map { entries, merged }, last)
                    }
                };
                let end = if flow { end } else { last.unwrap_or(start) };
                Layout { range: start..end, column, flow, shape }
            }
            _ => continue,
        };
        match stack.last_mut() {
            None => root = Some(node),
            Some(Open::Seq { items, .. }) => items.push(node),
            Some(Open::Map { entries, key, merged, .. }) => match key.take() {
                None => {
                    let Shape::Scalar { .. } = node.shape else { return None };
                    *merged |= merge_key;
                    *key = Some((std::mem::take(&mut scalar_text), node.range, node.column, merge_key));
                }
                Some((_, _, _, true)) => {}
                Some((name, key_range, key_column, false)) => {
                    let mut value = node;
                    // `key:` with nothing after it: the empty scalar sits right after the key.
                    if matches!(value.shape, Shape::Scalar { empty: true, .. }) {
                        value.range = key_range.end..key_range.end;
                    }
                    entries.push(Entry { key: name, key_range, key_column, value });
                }
            },
        }
    }
    root
}
