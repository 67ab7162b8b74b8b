//! YAML as Kubernetes reads it, and written so that every reader agrees.
//!
//! - [`read_stream`]: a multi-document stream → one [`Document`] per
//!   `---`-separated part, each with its exact byte span (so what kube-once
//!   does not change can be printed back byte for byte) and its value as an
//!   ordered [`Node`]. Plain scalars resolve as sigs.k8s.io/yaml resolves
//!   them (YAML 1.1, [`resolve`]); anchors, aliases and merge keys (`<<`)
//!   are expanded; duplicate keys are refused ([`read_stream_lenient`]
//!   reads them as Kubernetes does, the last value winning, and says so).
//! - Bounded before any superlinear step: input size, nesting depth (the
//!   parser refuses deeper flow or block nesting as it meets it) and the
//!   nodes aliases may add (a "billion laughs" document is refused after
//!   [`Limits::alias_nodes`] nodes, in bounded memory), and the nodes of the
//!   whole stream ([`Limits::max_nodes`]: memory follows the node count, not
//!   the byte count, so a stream of tiny nodes is refused as it grows).
//! - [`write`](mod@write): a JSON value as block YAML, keys in the order of an optional
//!   [`Node`] hint, strings quoted whenever any reader would take them for
//!   something else.
//! - [`edit`](mod@edit): a changed document as edits of its own text (what
//!   need not change stays byte for byte), from where each node is in it.
//!
//! The parser is granit-parser (pure Rust, YAML 1.2 syntax); this module
//! owns what it does not: YAML 1.1 resolution, limits, document spans.

pub mod edit;
mod layout;
pub mod resolve;
pub mod write;

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use granit_parser::{Event, Parser, ScalarStyle};
use serde_json::{Map, Number, Value};

pub use write::{to_yaml, write_value};

/// Bounds on what one stream may cost to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of input.
    pub max_bytes: usize,
    /// Nested collections (flow and block together).
    pub max_depth: usize,
    /// Nodes that aliases may add to a document by expansion.
    pub alias_nodes: usize,
    /// Nodes of the whole stream, all documents together: every scalar
    /// (keys included), every sequence and mapping, every node an alias
    /// expands to, and one per document. Checked as the parser goes, before
    /// anything more is built: a parsed node costs 60-130 bytes of memory
    /// whatever its size in the input (`[[]]` is 2 nodes in 4 bytes), so
    /// this, not [`Limits::max_bytes`], is what bounds the memory of a read.
    pub max_nodes: usize,
}

impl Limits {
    /// The default [`Limits::max_nodes`]: 4,000,000 nodes, about 520 MB at
    /// worst (130 bytes a node). Real manifests take far more text per node,
    /// so this reads about as much average YAML as [`Limits::max_bytes`]
    /// allows, and CRD bundles many times over (the figures: docs/preview.md).
    /// The server reads `/preview` bodies with a smaller budget.
    pub const MAX_NODES: usize = 4_000_000;
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_bytes: 64 * 1024 * 1024, max_depth: 200, alias_nodes: 100_000, max_nodes: Self::MAX_NODES }
    }
}

/// A YAML value with its mappings in source order.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Node {
    /// Nodes in this tree (itself included).
    fn size(&self) -> usize {
        match self {
            Node::Seq(items) => 1 + items.iter().map(Node::size).sum::<usize>(),
            Node::Map(entries) => 1 + entries.iter().map(|(_, v)| 1 + v.size()).sum::<usize>(),
            _ => 1,
        }
    }

    /// `self[key]` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// `self[index]` of a sequence.
    pub fn item(&self, index: usize) -> Option<&Node> {
        match self {
            Node::Seq(items) => items.get(index),
            _ => None,
        }
    }

    /// The value as JSON, as sigs.k8s.io/yaml converts it: integral floats
    /// become integers; `.inf` and `.nan` have no JSON form and are refused
    /// (the error names where, as `spec.replicas` or `args[2]`).
    pub fn to_json(&self) -> Result<Value, String> {
        self.json_at(&mut String::new())
    }

    fn json_at(&self, path: &mut String) -> Result<Value, String> {
        Ok(match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Int(i) => Value::from(*i),
            Node::UInt(u) => Value::from(*u),
            Node::Float(f) => float_to_json(*f).ok_or_else(|| {
                let at = if path.is_empty() { "the document" } else { path.as_str() };
                format!("{at} is {f}, which has no JSON form, so Kubernetes refuses it; quote it if it is a string")
            })?,
            Node::Str(s) => Value::String(s.clone()),
            Node::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{index}]"));
                    out.push(item.json_at(path)?);
                    path.truncate(len);
                }
                Value::Array(out)
            }
            Node::Map(entries) => {
                let mut map = Map::new();
                for (key, value) in entries {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                    map.insert(key.clone(), value.json_at(path)?);
                    path.truncate(len);
                }
                Value::Object(map)
            }
        })
    }
}

/// Go's `json.Marshal` of a float64 prints an integral one as an integer.
fn float_to_json(f: f64) -> Option<Value> {
    if !f.is_finite() {
        return None;
    }
    // Exactly representable integers (|f| < 2^53) become JSON integers.
    if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
        #[allow(clippy::cast_possible_truncation)]
        return Some(Value::from(f as i64));
    }
    Number::from_f64(f).map(Value::Number)
}

/// One `---`-separated part of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// 1-based position among the documents that hold a value.
    pub number: usize,
    /// 1-based line where the part starts.
    pub line: usize,
    /// Byte range of the part in the stream: its `---` line (if any), the
    /// comments before the value, the value, up to the next `---`.
    pub span: Range<usize>,
    /// `None` for a part with only comments or blank lines.
    pub node: Option<Node>,
    /// What the part counted against [`Limits::max_nodes`] (its nodes,
    /// aliases expanded, and one for the part itself).
    pub nodes: usize,
    /// The first duplicate mapping key of the part, as [`read_stream`]
    /// refuses it; only [`read_stream_lenient`] reads such a part, into
    /// `node` with the last value of each key.
    pub duplicate_key: Option<YamlError>,
}

impl Document {
    /// The part's value as JSON (`None` for a part without one).
    pub fn to_json(&self) -> Result<Option<Value>, YamlError> {
        self.node
            .as_ref()
            .map(|node| {
                node.to_json().map_err(|message| YamlError {
                    document: self.number,
                    line: self.line,
                    kind: ErrorKind::Unsupported,
                    message,
                })
            })
            .transpose()
    }
}

/// Why a stream cannot be read; says which document, where, and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("document {document} (line {line}): {message}")]
pub struct YamlError {
    pub document: usize,
    pub line: usize,
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not YAML (the parser's message).
    Syntax,
    /// Over [`Limits::max_bytes`].
    TooLarge,
    /// Over [`Limits::max_depth`].
    TooDeep,
    /// Over [`Limits::alias_nodes`].
    TooManyAliases,
    /// Over [`Limits::max_nodes`].
    TooManyNodes,
    DuplicateKey,
    /// Valid YAML with no JSON form (complex or null keys, `.inf`, tags).
    Unsupported,
}

/// Reads every document of `text`. See the module documentation.
pub fn read_stream(text: &str, limits: &Limits) -> Result<Vec<Document>, YamlError> {
    let documents = read_stream_lenient(text, limits)?;
    match documents.iter().find_map(|document| document.duplicate_key.clone()) {
        Some(error) => Err(error),
        None => Ok(documents),
    }
}

/// [`read_stream`], except that a document with a duplicate mapping key is
/// read as kubectl and the API server read it (the last value of the key
/// wins, in the place of the first) and carries the error in
/// [`Document::duplicate_key`], for the caller to decide: a document
/// passed through untouched is what the user wrote, one rewritten would
/// silently drop a value.
pub fn read_stream_lenient(text: &str, limits: &Limits) -> Result<Vec<Document>, YamlError> {
    if text.len() > limits.max_bytes {
        return Err(YamlError {
            document: 1,
            line: 1,
            kind: ErrorKind::TooLarge,
            message: format!(
                "the input is {} bytes, over the limit of {} bytes; split it into smaller files",
                text.len(),
                limits.max_bytes
            ),
        });
    }
    let mut documents = Vec::new();
    let mut number = 0;
    let mut nodes = 0;
    for (span, line) in split(text) {
        let part = &text[span.clone()];
        let document_number = number + 1;
        let error = |(kind, at, message): PartError| YamlError {
            document: document_number,
            line: line + at.saturating_sub(1),
            kind,
            message,
        };
        let before = nodes;
        // The part itself counts: a stream of empty parts costs memory too.
        count_nodes(&mut nodes, 1, limits).map_err(|(kind, message)| error((kind, 1, message)))?;
        let (node, duplicate_key) = read_part(part, limits, &mut nodes).map_err(error)?;
        if node.is_some() {
            number += 1;
        }
        let duplicate_key = duplicate_key.map(error);
        documents.push(Document { number: document_number, line, span, node, nodes: nodes - before, duplicate_key });
    }
    Ok(documents)
}

/// Adds `more` nodes to the stream's count, or says the stream is over
/// [`Limits::max_nodes`] (what `read_stream`'s callers report as is).
fn count_nodes(nodes: &mut usize, more: usize, limits: &Limits) -> Result<(), BuildError> {
    *nodes = nodes.saturating_add(more);
    if *nodes > limits.max_nodes {
        return Err((
            ErrorKind::TooManyNodes,
            format!(
                "the input has more than {} YAML nodes (keys, values, lists and mappings, aliases expanded, \
                 all documents together), the limit of one stream; split it into smaller files",
                limits.max_nodes
            ),
        ));
    }
    Ok(())
}

/// Byte ranges of the `---`-separated parts, with their first line. A
/// document marker (`---` or `...` at column 0, then a blank or the end of
/// the line) ends a document wherever it appears, block scalars included,
/// so this split is the parser's.
fn split(text: &str) -> Vec<(Range<usize>, usize)> {
    let is_marker = |line: &str, marker: &str| {
        line.strip_prefix(marker).is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
    };
    let mut parts = Vec::new();
    let (mut start, mut start_line, mut offset) = (0, 1, 0);
    let mut end_after = false;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let starts = is_marker(line, "---") || end_after;
        if starts && offset > start {
            parts.push((start..offset, start_line));
            start = offset;
            start_line = index + 1;
        } else if starts {
            start_line = index + 1;
        }
        end_after = is_marker(line, "...");
        offset += line.len();
    }
    if offset > start || parts.is_empty() {
        parts.push((start..offset, start_line));
    }
    parts
}

type PartError = (ErrorKind, usize, String);

/// The one document of a part (`None` when it holds none), and its first
/// duplicate key.
fn read_part(part: &str, limits: &Limits, nodes: &mut usize) -> Result<(Option<Node>, Option<PartError>), PartError> {
    // Directives (`%YAML 1.1`) come before the `---` that starts their
    // document, so they form a part of their own: nothing to read there
    // (scalars resolve as YAML 1.1 whatever the directive says).
    if part.lines().map(str::trim_start).all(|line| line.is_empty() || line.starts_with('#') || line.starts_with('%')) {
        return Ok((None, None));
    }
    let options = granit_parser::options! {
        flow_nesting_limit: limits.max_depth,
        block_nesting_limit: limits.max_depth,
    };
    let mut builder = Builder::new(limits, nodes);
    let mut documents = 0;
    let del = Del::find(part);
    let stood_in;
    let source = match &del {
        Some(del) => {
            stood_in = part.replace('\u{7f}', del.stand_in.encode_utf8(&mut [0; 4]));
            stood_in.as_str()
        }
        None => part,
    };
    let mut quoted = Vec::new();
    let mut duplicate = None;
    for event in Parser::new_from_str_with_options(source, options) {
        let (event, span) = event.map_err(|error| {
            let info = error.info();
            let kind = if matches!(error.kind(), granit_parser::ErrorKind::RecursionLimitExceeded) {
                ErrorKind::TooDeep
            } else {
                ErrorKind::Syntax
            };
            let message = if kind == ErrorKind::TooDeep {
                format!("nested deeper than {} levels ({info}); flatten the document", limits.max_depth)
            } else {
                format!("not valid YAML: {info} (column {})", error.marker().col() + 1)
            };
            (kind, error.marker().line(), message)
        })?;
        let line = span.start.line();
        match event {
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    return Err((ErrorKind::Syntax, line, "two documents without `---` between them".to_owned()));
                }
            }
            Event::Scalar(mut text, style, anchor, tag) => {
                builder.count(1).map_err(|(kind, message)| (kind, line, message))?;
                if let Some(del) = &del {
                    if matches!(style, ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted) {
                        quoted.push(span.start.index()..span.end.index());
                    }
                    if text.contains(del.stand_in) {
                        text = text.replace(del.stand_in, "\u{7f}").into();
                    }
                }
                let tag = tag.map(|t| t.suffix_in_namespace("tag:yaml.org,2002:").map(|s| s.into_owned()).ok_or(()));
                let node = scalar(&text, style, tag).map_err(|message| (ErrorKind::Unsupported, line, message))?;
                let merge = style == ScalarStyle::Plain && text == "<<";
                builder.node(node, anchor, merge).map_err(|(kind, message)| (kind, line, message))?;
                if let (Some(message), None) = (builder.duplicate.take(), &duplicate) {
                    duplicate = Some((ErrorKind::DuplicateKey, line, message));
                }
            }
            Event::SequenceStart(_, anchor, _) => {
                builder.open(Frame::Seq { items: Vec::new(), anchor }).map_err(|(k, m)| (k, line, m))?;
            }
            Event::MappingStart(_, anchor, _) => {
                builder.open(Frame::Map(MapFrame::new(anchor))).map_err(|(k, m)| (k, line, m))?;
            }
            Event::SequenceEnd | Event::MappingEnd => builder.close().map_err(|(k, m)| (k, line, m))?,
            Event::Alias(id) => builder.alias(id).map_err(|(k, m)| (k, line, m))?,
            Event::UnresolvedAlias(name) => {
                return Err((ErrorKind::Syntax, line, format!("alias *{name} names no anchor defined before it")));
            }
            _ => {}
        }
    }
    if let Some(del) = &del {
        del.check(part, &quoted)?;
    }
    // `---` with nothing after it is an empty (null) document: no value.
    Ok((builder.root.filter(|node| *node != Node::Null), duplicate))
}

/// DEL (U+007F) where YAML 1.2 allows it: inside quoted scalars (their
/// characters are `nb-json`), so in every JSON string, as kubectl and the
/// API server read JSON. granit-parser refuses it everywhere, so a part
/// holding one is parsed with a stand-in character in its place (one
/// character for one, so the parser's character positions stay those of
/// the part), the scalars get DEL back, and a DEL outside every quoted
/// scalar (a plain or block scalar, a comment) is refused as before.
struct Del {
    stand_in: char,
    /// Character indices of the DELs in the part.
    at: Vec<usize>,
}

impl Del {
    /// `None` when the part has no DEL, or when no stand-in is safe: one
    /// that neither occurs in the part nor can be written as an escape in
    /// it (`\uE000`), so every stand-in in a parsed scalar was a DEL.
    fn find(part: &str) -> Option<Del> {
        if !part.contains('\u{7f}') {
            return None;
        }
        let lower = part.to_ascii_lowercase();
        let stand_in = ('\u{e000}'..='\u{f8ff}')
            .take(64)
            .find(|&c| !part.contains(c) && !lower.contains(&format!("{:04x}", u32::from(c))))?;
        let at = part.chars().enumerate().filter(|&(_, c)| c == '\u{7f}').map(|(index, _)| index).collect();
        Some(Del { stand_in, at })
    }

    /// Refuses a DEL outside the quoted scalars' spans (in source order).
    fn check(&self, part: &str, quoted: &[Range<usize>]) -> Result<(), PartError> {
        let mut spans = quoted.iter().peekable();
        for &index in &self.at {
            while spans.next_if(|span| span.end <= index).is_some() {}
            if spans.peek().is_some_and(|span| span.contains(&index)) {
                continue;
            }
            let before: String = part.chars().take(index).collect();
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |text| text.chars().count()) + 1;
            return Err((
                ErrorKind::Syntax,
                line,
                format!(
                    "not valid YAML: the control character U+007F (DEL) at column {column} is outside a quoted \
                     string, the only place YAML allows it; quote the value (\"...\") or write it as \"\\x7F\""
                ),
            ));
        }
        Ok(())
    }
}

/// A scalar as Kubernetes reads it: plain ones resolve (YAML 1.1), quoted
/// and block ones are strings, core tags are honoured.
fn scalar(text: &str, style: ScalarStyle, tag: Option<Result<String, ()>>) -> Result<Node, String> {
    let resolved = || match resolve::resolve(text) {
        resolve::Plain::Null => Node::Null,
        resolve::Plain::Bool(b) => Node::Bool(b),
        resolve::Plain::Int(i) => Node::Int(i),
        resolve::Plain::UInt(u) => Node::UInt(u),
        resolve::Plain::Float(f) => Node::Float(f),
        resolve::Plain::Str => Node::Str(text.to_owned()),
    };
    match tag {
        None if style == ScalarStyle::Plain => Ok(resolved()),
        None => Ok(Node::Str(text.to_owned())),
        Some(Ok(tag)) => match tag.as_str() {
            "str" | "binary" | "timestamp" => Ok(Node::Str(text.to_owned())),
            "null" | "bool" | "int" | "float" => {
                let node = resolved();
                let fits = matches!(
                    (&node, tag.as_str()),
                    (Node::Null, "null")
                        | (Node::Bool(_), "bool")
                        | (Node::Int(_) | Node::UInt(_), "int")
                        | (Node::Float(_) | Node::Int(_) | Node::UInt(_), "float")
                );
                if fits { Ok(node) } else { Err(format!("`{text}` is not a !!{tag}")) }
            }
            other => Err(format!("tag !!{other} is not supported on a scalar; remove it")),
        },
        // `!` (non-specific) or a local tag: a string, as go-yaml v2 reads it.
        Some(Err(())) => Ok(Node::Str(text.to_owned())),
    }
}

enum Frame {
    Seq { items: Vec<Node>, anchor: usize },
    Map(MapFrame),
}

struct MapFrame {
    anchor: usize,
    entries: Vec<(String, Node)>,
    keys: HashSet<String>,
    /// The key read, waiting for its value.
    pending: Option<Key>,
    /// Entries from `<<`, and where they go: explicit keys win over them.
    merged: Option<(usize, Vec<(String, Node)>)>,
}

enum Key {
    Name(String),
    Merge,
}

impl MapFrame {
    fn new(anchor: usize) -> Self {
        Self { anchor, entries: Vec::new(), keys: HashSet::new(), pending: None, merged: None }
    }

    fn finish(self) -> Node {
        let MapFrame { mut entries, keys, merged, .. } = self;
        if let Some((at, merged)) = merged {
            let mut seen = HashSet::new();
            let extra: Vec<_> =
                merged.into_iter().filter(|(k, _)| !keys.contains(k) && seen.insert(k.clone())).collect();
            entries.splice(at..at, extra);
        }
        Node::Map(entries)
    }
}

type BuildError = (ErrorKind, String);

struct Builder<'n> {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    alias_nodes: usize,
    /// Nodes of the stream so far (shared by the parts' builders).
    nodes: &'n mut usize,
    limits: Limits,
    root: Option<Node>,
    /// A duplicate key just read (its message), for `read_part` to place.
    duplicate: Option<String>,
}

impl<'n> Builder<'n> {
    fn new(limits: &Limits, nodes: &'n mut usize) -> Self {
        Self {
            stack: Vec::new(),
            anchors: HashMap::new(),
            alias_nodes: 0,
            nodes,
            limits: *limits,
            root: None,
            duplicate: None,
        }
    }

    /// Counts `more` nodes about to be built against [`Limits::max_nodes`].
    fn count(&mut self, more: usize) -> Result<(), BuildError> {
        count_nodes(self.nodes, more, &self.limits)
    }

    fn open(&mut self, frame: Frame) -> Result<(), BuildError> {
        if self.stack.len() >= self.limits.max_depth {
            return Err((
                ErrorKind::TooDeep,
                format!("nested deeper than {} levels; flatten the document", self.limits.max_depth),
            ));
        }
        self.count(1)?;
        self.stack.push(frame);
        Ok(())
    }

    fn close(&mut self) -> Result<(), BuildError> {
        let (node, anchor) = match self.stack.pop() {
            Some(Frame::Seq { items, anchor }) => (Node::Seq(items), anchor),
            Some(Frame::Map(map)) => {
                let anchor = map.anchor;
                (map.finish(), anchor)
            }
            None => return Ok(()),
        };
        self.node(node, anchor, false)
    }

    fn alias(&mut self, id: usize) -> Result<(), BuildError> {
        let Some(size) = self.anchors.get(&id).map(Node::size) else {
            return Err((ErrorKind::Unsupported, "an alias refers to a collection that contains it".to_owned()));
        };
        self.alias_nodes += size;
        if self.alias_nodes > self.limits.alias_nodes {
            return Err((
                ErrorKind::TooManyAliases,
                format!(
                    "aliases expand to more than {} nodes (a \"billion laughs\" document?); write the values out or use fewer aliases",
                    self.limits.alias_nodes
                ),
            ));
        }
        self.count(size)?;
        let node = self.anchors[&id].clone();
        self.node(node, 0, false)
    }

    /// A complete node: the root, an item, a key or a value.
    fn node(&mut self, node: Node, anchor: usize, merge_key: bool) -> Result<(), BuildError> {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map(map)) => {
                match map.pending.take() {
                    None if merge_key => map.pending = Some(Key::Merge),
                    None => map.pending = Some(Key::Name(key_name(node)?)),
                    Some(Key::Name(key)) => {
                        if map.keys.insert(key.clone()) {
                            map.entries.push((key, node));
                        } else {
                            // The last value wins, as in Kubernetes; the
                            // caller decides whether that may stand.
                            self.duplicate = Some(format!(
                                "duplicate key {key:?} in a mapping; keep one (Kubernetes would silently use the last)"
                            ));
                            if let Some(entry) = map.entries.iter_mut().find(|(name, _)| *name == key) {
                                entry.1 = node;
                            }
                        }
                    }
                    Some(Key::Merge) => {
                        if map.merged.is_some() {
                            return Err((ErrorKind::DuplicateKey, "duplicate merge key `<<` in a mapping; merge a list of mappings instead: `<<: [*a, *b]`".to_owned()));
                        }
                        let mut merged = Vec::new();
                        let sources = match node {
                            Node::Map(entries) => vec![entries],
                            Node::Seq(items) => items
                                .into_iter()
                                .map(|item| match item {
                                    Node::Map(entries) => Ok(entries),
                                    _ => Err((
                                        ErrorKind::Unsupported,
                                        "`<<` takes a mapping or a list of mappings".to_owned(),
                                    )),
                                })
                                .collect::<Result<_, _>>()?,
                            _ => {
                                return Err((
                                    ErrorKind::Unsupported,
                                    "`<<` takes a mapping or a list of mappings".to_owned(),
                                ));
                            }
                        };
                        for entries in sources {
                            merged.extend(entries);
                        }
                        map.merged = Some((map.entries.len(), merged));
                    }
                }
            }
        }
        Ok(())
    }
}

/// A mapping key as sigs.k8s.io/yaml turns it into a JSON key.
fn key_name(node: Node) -> Result<String, BuildError> {
    match node {
        Node::Str(s) => Ok(s),
        Node::Bool(b) => Ok(b.to_string()),
        Node::Int(i) => Ok(i.to_string()),
        Node::UInt(u) => Ok(u.to_string()),
        #[allow(clippy::cast_possible_truncation)]
        Node::Float(f) => Ok((f as f32).to_string()),
        Node::Null => {
            Err((ErrorKind::Unsupported, "a null mapping key (`~:` or `null:`) has no JSON form; quote it".to_owned()))
        }
        Node::Seq(_) | Node::Map(_) => {
            Err((ErrorKind::Unsupported, "a mapping key that is itself a list or mapping has no JSON form".to_owned()))
        }
    }
}

#[cfg(test)]
mod tests;
