//! A YAML tree that remembers where every node came from.
//!
//! serde_yaml resolves a document into values but forgets positions, and the
//! diagnostics of `validate` must point at file:line:col. This module builds
//! a spanned tree from the parser's events once, reports duplicate keys (a
//! plain YAML load silently keeps one of them), and converts the tree into
//! `serde_yaml::Value` for typed deserialization.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::span::{LineIndex, Span};

/// One node of the document.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The value under `key` if this is a mapping with that (string) key.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// The key node of `key` in this mapping, for pointing at the key itself.
    pub fn key_node(&self, key: &str) -> Option<&Node> {
        self.entries()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(k, _)| k)
    }

    /// Follows a path of mapping keys.
    pub fn at(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |node, key| node.get(key))
    }

    pub fn entries(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            NodeKind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A short name of the node's type for messages (`a string`, `a list`, …).
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "a boolean",
            NodeKind::Int(_) | NodeKind::Float(_) => "a number",
            NodeKind::Str(_) => "a string",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }

    /// The node as a `serde_yaml::Value`, for typed deserialization.
    pub fn to_value(&self) -> serde_yaml::Value {
        use serde_yaml::Value;
        match &self.kind {
            NodeKind::Null => Value::Null,
            NodeKind::Bool(b) => Value::Bool(*b),
            NodeKind::Int(i) => Value::Number((*i).into()),
            NodeKind::Float(f) => Value::Number((*f).into()),
            NodeKind::Str(s) => Value::String(s.clone()),
            NodeKind::Seq(items) => Value::Sequence(items.iter().map(Node::to_value).collect()),
            NodeKind::Map(entries) => Value::Mapping(
                entries
                    .iter()
                    .map(|(k, v)| (k.to_value(), v.to_value()))
                    .collect(),
            ),
        }
    }
}

/// How deep collections may nest. Manifests need a handful of levels; the
/// bound keeps every recursive walk of the tree (conversion, typing, drop)
/// far from the end of the stack.
pub const MAX_DEPTH: usize = 64;

/// How many nodes aliases (`*name`) may copy into one document in all. A
/// few kilobytes of nested aliases ("billion laughs") would otherwise
/// expand to gigabytes before anything is checked.
pub const MAX_ALIAS_NODES: usize = 100_000;

/// Why a document could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not YAML.
    Syntax,
    /// Nested deeper than `MAX_DEPTH`.
    TooDeep,
    /// Aliases copy more than `MAX_ALIAS_NODES` nodes.
    AliasExpansion,
    /// A second document (`---`) after the first.
    SecondDocument,
}

/// Why a document could not be read as YAML, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub refusal: Refusal,
    pub message: String,
    pub span: Span,
}

/// A key that appears twice in one mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct DuplicateKey {
    pub key: String,
    pub first: Span,
    pub again: Span,
    /// The keys of the enclosing mappings, outermost first (`["steps"]` for a step id).
    pub parents: Vec<String>,
}

/// Where an alias (`*name`) copies an anchored node: every node of the copy
/// carries the span of `at`, so a diagnostic points at the alias use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AliasUse {
    pub at: Span,
    /// The anchored node the alias copies.
    pub anchor: Span,
}

/// The parsed document and the duplicate keys found while building it.
#[derive(Debug)]
pub struct Document {
    pub root: Node,
    pub duplicates: Vec<DuplicateKey>,
    pub aliases: Vec<AliasUse>,
}

/// Parses one YAML document. Merge keys (`<<: *common`, `<<: [*a, *b]`)
/// are applied as YAML 1.1 does: keys written in the mapping win over
/// merged ones, and among several merged mappings the first wins. An empty
/// document is a null node; a second
/// document, nesting deeper than `MAX_DEPTH` and aliases that copy more than
/// `MAX_ALIAS_NODES` nodes are refused where they start.
///
/// The parser's events are consumed one at a time with an explicit stack
/// (its own `load` recurses once per level), so no input can exhaust the
/// call stack or, through aliases, the memory.
pub fn parse(src: &str) -> Result<Document, SyntaxError> {
    let mut builder = Builder {
        src,
        lines: LineIndex::new(src),
        char_offsets: if src.is_ascii() {
            Vec::new()
        } else {
            src.char_indices()
                .map(|(i, _)| i)
                .chain([src.len()])
                .collect()
        },
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        duplicates: Vec::new(),
        alias_nodes: 0,
        aliases: Vec::new(),
    };
    let mut parser = Parser::new_from_str(src);
    let mut documents = 0;
    loop {
        let (event, mark) = parser.next_token().map_err(|e| SyntaxError {
            refusal: Refusal::Syntax,
            message: e.info().to_owned(),
            span: Span::locate(src, builder.byte_offset(e.marker()), 1),
        })?;
        match event {
            Event::StreamEnd => break,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    let at = builder.byte_offset(&mark);
                    return Err(SyntaxError {
                        refusal: Refusal::SecondDocument,
                        message: "a second YAML document starts here; a manifest is one document"
                            .to_owned(),
                        span: builder.lines.span(src, at, 3),
                    });
                }
            }
            event => builder.event(event, &mark)?,
        }
    }
    let root = builder.root.unwrap_or(Node {
        kind: NodeKind::Null,
        span: Span::locate(src, 0, 0),
    });
    Ok(Document {
        root,
        duplicates: builder.duplicates,
        aliases: builder.aliases,
    })
}

/// The size of a subtree, for bounding what aliases copy.
#[derive(Debug, Clone, Copy, Default)]
struct Extent {
    /// Nodes in it, itself included.
    nodes: usize,
    /// Levels of collections in it (0 for a scalar).
    height: usize,
}

impl Extent {
    fn add_child(&mut self, child: Extent) {
        self.nodes += child.nodes;
        self.height = self.height.max(child.height + 1);
    }
}

enum Frame {
    Seq {
        start: Marker,
        anchor: usize,
        items: Vec<Node>,
        extent: Extent,
    },
    Map {
        start: Marker,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        pending_key: Option<Node>,
        /// The pending key is a plain `<<`: its value is merged, not stored.
        pending_merge: bool,
        /// The values of the mapping's merge keys, in the order written.
        merges: Vec<Node>,
        /// Position in `entries` of each key seen so far, for finding duplicates in constant time.
        seen: HashMap<KeyId, usize>,
        extent: Extent,
    },
}

struct Builder<'a> {
    src: &'a str,
    lines: LineIndex,
    /// Byte offset of each character, for non-ASCII sources (the parser counts characters).
    char_offsets: Vec<usize>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, (Node, Extent)>,
    root: Option<Node>,
    duplicates: Vec<DuplicateKey>,
    /// Nodes copied by aliases so far.
    alias_nodes: usize,
    aliases: Vec<AliasUse>,
}

impl Builder<'_> {
    fn event(&mut self, ev: Event, mark: &Marker) -> Result<(), SyntaxError> {
        match ev {
            Event::Scalar(value, style, anchor, tag) => {
                let start = self.byte_offset(mark);
                let len = scalar_len(self.src, start, &value, style);
                let span = self.lines.span(self.src, start, len);
                let plain = style == TScalarStyle::Plain && tag.is_none();
                if plain
                    && value == "<<"
                    && let Some(Frame::Map {
                        pending_key: None,
                        pending_merge,
                        ..
                    }) = self.stack.last_mut()
                {
                    *pending_merge = true;
                }
                let node = Node {
                    kind: resolve_scalar(value, plain),
                    span,
                };
                self.finish(
                    node,
                    anchor,
                    Extent {
                        nodes: 1,
                        height: 0,
                    },
                );
            }
            Event::SequenceStart(anchor, _) => {
                self.check_depth(mark, 1)?;
                self.stack.push(Frame::Seq {
                    start: *mark,
                    anchor,
                    items: Vec::new(),
                    extent: Extent {
                        nodes: 1,
                        height: 0,
                    },
                });
            }
            Event::MappingStart(anchor, _) => {
                self.check_depth(mark, 1)?;
                self.stack.push(Frame::Map {
                    start: *mark,
                    anchor,
                    entries: Vec::new(),
                    pending_key: None,
                    pending_merge: false,
                    merges: Vec::new(),
                    seen: HashMap::new(),
                    extent: Extent {
                        nodes: 1,
                        height: 0,
                    },
                });
            }
            Event::SequenceEnd | Event::MappingEnd => self.close(*mark),
            Event::Alias(id) => {
                let at = self.byte_offset(mark);
                let (node, extent) = match self.anchors.get(&id) {
                    Some((node, extent)) => {
                        self.check_depth(mark, extent.height)?;
                        self.alias_nodes = self.alias_nodes.saturating_add(extent.nodes);
                        if self.alias_nodes > MAX_ALIAS_NODES {
                            return Err(SyntaxError {
                                refusal: Refusal::AliasExpansion,
                                message: format!(
                                    "aliases copy more than {MAX_ALIAS_NODES} values into this document"
                                ),
                                span: self.lines.span(self.src, at, 1),
                            });
                        }
                        let span = self.lines.span(self.src, at, alias_len(self.src, at));
                        let mut copy = node.clone();
                        respan(&mut copy, span);
                        self.aliases.push(AliasUse {
                            at: span,
                            anchor: node.span,
                        });
                        (copy, *extent)
                    }
                    None => (
                        Node {
                            kind: NodeKind::Null,
                            span: self.lines.span(self.src, at, 1),
                        },
                        Extent {
                            nodes: 1,
                            height: 0,
                        },
                    ),
                };
                self.finish(node, 0, extent);
            }
            _ => {}
        }
        Ok(())
    }

    /// Refuses `levels` more collections at `mark` past `MAX_DEPTH`.
    fn check_depth(&self, mark: &Marker, levels: usize) -> Result<(), SyntaxError> {
        if self.stack.len() + levels <= MAX_DEPTH {
            return Ok(());
        }
        let at = self.byte_offset(mark);
        Err(SyntaxError {
            refusal: Refusal::TooDeep,
            message: format!("lists and mappings nest more than {MAX_DEPTH} levels deep here"),
            span: self.lines.span(self.src, at, 1),
        })
    }

    fn byte_offset(&self, mark: &Marker) -> usize {
        if self.char_offsets.is_empty() {
            mark.index()
        } else {
            self.char_offsets
                .get(mark.index())
                .copied()
                .unwrap_or(self.src.len())
        }
    }

    fn close(&mut self, end: Marker) {
        let Some(frame) = self.stack.pop() else {
            return;
        };
        let (start, anchor, kind, extent) = match frame {
            Frame::Seq {
                start,
                anchor,
                items,
                extent,
            } => (start, anchor, NodeKind::Seq(items), extent),
            Frame::Map {
                start,
                anchor,
                mut entries,
                merges,
                seen,
                extent,
                ..
            } => {
                merge_into(&mut entries, seen, merges);
                (start, anchor, NodeKind::Map(entries), extent)
            }
        };
        let (start, end) = (self.byte_offset(&start), self.byte_offset(&end));
        let node = Node {
            kind,
            span: self
                .lines
                .span(self.src, start, end.saturating_sub(start).max(1)),
        };
        self.finish(node, anchor, extent);
    }

    fn finish(&mut self, node: Node, anchor: usize, extent: Extent) {
        if anchor > 0 {
            self.anchors.insert(anchor, (node.clone(), extent));
        }
        let mut duplicate = None;
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq {
                items,
                extent: parent,
                ..
            }) => {
                parent.add_child(extent);
                items.push(node);
            }
            Some(Frame::Map {
                entries,
                pending_key,
                pending_merge,
                merges,
                seen,
                extent: parent,
                ..
            }) => match pending_key.take() {
                None => {
                    parent.add_child(extent);
                    *pending_key = Some(node);
                }
                Some(_) if std::mem::take(pending_merge) && is_mergeable(&node) => {
                    parent.add_child(extent);
                    merges.push(node);
                }
                Some(key) => {
                    parent.add_child(extent);
                    let id = KeyId::of(&key.kind);
                    let earlier = id
                        .as_ref()
                        .and_then(|id| seen.get(id))
                        .and_then(|&i| entries.get(i));
                    if let Some((first, _)) = earlier {
                        duplicate = Some((key, first.span));
                    } else {
                        if let Some(id) = id {
                            seen.insert(id, entries.len());
                        }
                        entries.push((key, node));
                    }
                }
            },
        }
        if let Some((key, first)) = duplicate {
            let parents = self.parent_keys();
            self.duplicates.push(DuplicateKey {
                key: key
                    .as_str()
                    .map_or_else(|| format!("{:?}", key.kind), str::to_owned),
                first,
                again: key.span,
                parents,
            });
        }
    }

    /// The string keys leading to the mapping now being built.
    fn parent_keys(&self) -> Vec<String> {
        let n = self.stack.len();
        self.stack
            .iter()
            .take(n.saturating_sub(1))
            .filter_map(|frame| match frame {
                Frame::Map {
                    pending_key: Some(k),
                    ..
                } => k.as_str().map(str::to_owned),
                _ => None,
            })
            .collect()
    }
}

/// Whether `node` can be the value of a merge key: a mapping, or a list of
/// mappings. Anything else stays an ordinary `<<` key (and is refused as
/// unknown where keys are typed).
fn is_mergeable(node: &Node) -> bool {
    match &node.kind {
        NodeKind::Map(_) => true,
        NodeKind::Seq(items) => items.iter().all(|i| matches!(i.kind, NodeKind::Map(_))),
        _ => false,
    }
}

/// Adds the entries of the merged mappings that the mapping does not have
/// yet: written keys win, then the first merged mapping that has the key.
fn merge_into(entries: &mut Vec<(Node, Node)>, mut seen: HashMap<KeyId, usize>, merges: Vec<Node>) {
    let maps = merges.into_iter().flat_map(|m| match m.kind {
        NodeKind::Seq(items) => items,
        _ => vec![m],
    });
    for map in maps {
        let NodeKind::Map(merged) = map.kind else {
            continue;
        };
        for (key, value) in merged {
            match KeyId::of(&key.kind) {
                Some(id) if seen.contains_key(&id) => {}
                Some(id) => {
                    seen.insert(id, entries.len());
                    entries.push((key, value));
                }
                None => entries.push((key, value)),
            }
        }
    }
}

/// How many source bytes the alias starting at `at` (`*name`) occupies.
fn alias_len(src: &str, at: usize) -> usize {
    let rest = src.get(at..).unwrap_or("");
    rest.char_indices()
        .skip(1)
        .find(|(_, c)| c.is_whitespace() || matches!(c, ',' | '[' | ']' | '{' | '}'))
        .map_or(rest.len(), |(i, _)| i)
        .max(1)
}

/// Gives every node of `node` the span `span` (the alias use it was copied to).
fn respan(node: &mut Node, span: Span) {
    let mut stack = vec![node];
    while let Some(n) = stack.pop() {
        n.span = span;
        match &mut n.kind {
            NodeKind::Seq(items) => stack.extend(items.iter_mut()),
            NodeKind::Map(entries) => {
                for (k, v) in entries.iter_mut() {
                    stack.push(k);
                    stack.push(v);
                }
            }
            _ => {}
        }
    }
}

/// The identity of a scalar mapping key; collection keys are not compared.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum KeyId {
    Null,
    Bool(bool),
    Int(i64),
    Float(u64),
    Str(String),
}

impl KeyId {
    fn of(kind: &NodeKind) -> Option<KeyId> {
        Some(match kind {
            NodeKind::Null => KeyId::Null,
            NodeKind::Bool(b) => KeyId::Bool(*b),
            NodeKind::Int(i) => KeyId::Int(*i),
            NodeKind::Float(f) => KeyId::Float(f.to_bits()),
            NodeKind::Str(s) => KeyId::Str(s.clone()),
            NodeKind::Seq(_) | NodeKind::Map(_) => return None,
        })
    }
}

/// How many source bytes a scalar occupies, so a caret can underline all of it.
/// Block scalars are underlined on their indicator only.
fn scalar_len(src: &str, start: usize, value: &str, style: TScalarStyle) -> usize {
    let rest = src.get(start..).unwrap_or("");
    match style {
        TScalarStyle::Plain => value.len().max(1),
        TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => {
            let quote = if style == TScalarStyle::SingleQuoted {
                '\''
            } else {
                '"'
            };
            let mut escaped = false;
            for (i, c) in rest.char_indices().skip(1) {
                if quote == '"' && c == '\\' && !escaped {
                    escaped = true;
                    continue;
                }
                if c == quote && !escaped {
                    return i + 1;
                }
                escaped = false;
            }
            rest.len().max(1)
        }
        _ => 1,
    }
}

/// Resolves a scalar by the YAML 1.2 core schema; quoted and tagged scalars stay strings.
fn resolve_scalar(value: String, plain: bool) -> NodeKind {
    if !plain {
        return NodeKind::Str(value);
    }
    match value.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return NodeKind::Null,
        "true" | "True" | "TRUE" => return NodeKind::Bool(true),
        "false" | "False" | "FALSE" => return NodeKind::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" => return NodeKind::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return NodeKind::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return NodeKind::Float(f64::NAN),
        _ => {}
    }
    if let Some(i) = parse_int(&value) {
        return NodeKind::Int(i);
    }
    let looks_numeric = value
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
        && value.chars().any(|c| c.is_ascii_digit());
    if looks_numeric && let Ok(f) = value.parse::<f64>() {
        return NodeKind::Float(f);
    }
    NodeKind::Str(value)
}

fn parse_int(s: &str) -> Option<i64> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let parsed = if let Some(hex) = digits.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = digits.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()?
    } else if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
        digits.parse::<i64>().ok()?
    } else {
        return None;
    };
    Some(if neg { -parsed } else { parsed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_point_at_keys_and_values() {
        let src = "version: 1\nsteps:\n  up:\n    action: upload\n    with: { url: \"x\" }\n";
        let doc = parse(src).unwrap();
        let action = doc.root.at(&["steps", "up", "action"]).unwrap();
        assert_eq!((action.span.line, action.span.col), (4, 13));
        assert_eq!(&src[action.span.start..action.span.end], "upload");
        let url = doc.root.at(&["steps", "up", "with", "url"]).unwrap();
        assert_eq!(&src[url.span.start..url.span.end], "\"x\"");
        let key = doc.root.get("steps").unwrap().key_node("up").unwrap();
        assert_eq!((key.span.line, key.span.col), (3, 3));
    }

    #[test]
    fn scalars_resolve_by_the_core_schema() {
        let doc = parse("a: 1\nb: 1.5\nc: true\nd: yes\ne: '1'\nf: ~\ng: -0x10\n").unwrap();
        let kinds: Vec<_> = ["a", "b", "c", "d", "e", "f", "g"]
            .iter()
            .map(|k| doc.root.get(k).unwrap().kind.clone())
            .collect();
        assert_eq!(
            kinds,
            vec![
                NodeKind::Int(1),
                NodeKind::Float(1.5),
                NodeKind::Bool(true),
                NodeKind::Str("yes".into()),
                NodeKind::Str("1".into()),
                NodeKind::Null,
                NodeKind::Int(-16),
            ]
        );
    }

    #[test]
    fn duplicate_keys_are_reported_with_both_places() {
        let doc = parse("steps:\n  a: 1\n  a: 2\n").unwrap();
        assert_eq!(doc.duplicates.len(), 1);
        let d = &doc.duplicates[0];
        assert_eq!((d.key.as_str(), d.first.line, d.again.line), ("a", 2, 3));
        assert_eq!(d.parents, vec!["steps".to_owned()]);
    }

    #[test]
    fn syntax_errors_have_a_position_and_aliases_resolve() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.span.line >= 1, "{err:?}");
        let doc = parse("x: &v {k: 1}\ny: *v\n").unwrap();
        assert_eq!(
            doc.root.get("y").unwrap().get("k").unwrap().kind,
            NodeKind::Int(1)
        );
    }

    #[test]
    fn a_second_document_is_refused_at_its_marker() {
        let err = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(err.refusal, Refusal::SecondDocument);
        assert_eq!((err.span.line, err.span.col), (2, 1));
        assert!(parse("---\na: 1\n...\n").is_ok());
    }

    #[test]
    fn nesting_is_bounded_in_block_and_flow_style() {
        let mut block = String::new();
        for level in 0..MAX_DEPTH + 1 {
            block.push_str(&"  ".repeat(level));
            block.push_str("k:\n");
        }
        let err = parse(&block).unwrap_err();
        assert_eq!(err.refusal, Refusal::TooDeep);
        assert_eq!(err.span.line as usize, MAX_DEPTH + 1);
        let flow = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse(&flow).is_err());
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn aliases_are_bounded_by_what_they_copy() {
        let mut src = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n".to_owned();
        for i in 1..9 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            src.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let err = parse(&src).unwrap_err();
        assert_eq!(err.refusal, Refusal::AliasExpansion);
        assert_eq!(err.span.line, 5);
        // An alias that nests an anchor past the depth bound is refused too.
        let deep = format!(
            "a: &a {}{}\nb: {}*a{}\n",
            "[".repeat(40),
            "]".repeat(40),
            "[".repeat(30),
            "]".repeat(30)
        );
        assert_eq!(parse(&deep).unwrap_err().refusal, Refusal::TooDeep);
    }

    /// The keys and integer values of the mapping at `path`, in order.
    fn pairs(doc: &Document, path: &[&str]) -> Vec<(String, i64)> {
        doc.root
            .at(path)
            .unwrap()
            .entries()
            .unwrap()
            .iter()
            .map(|(k, v)| match v.kind {
                NodeKind::Int(i) => (k.as_str().unwrap().to_owned(), i),
                ref other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn merge_keys_fill_in_what_the_mapping_does_not_write() {
        let cases: &[(&str, &[(&str, i64)])] = &[
            // Written keys win, wherever they stand beside the merge.
            (
                "a: &a {x: 1, y: 2}\nm: {<<: *a, y: 3}\n",
                &[("y", 3), ("x", 1)],
            ),
            (
                "a: &a {x: 1, y: 2}\nm: {y: 3, <<: *a}\n",
                &[("y", 3), ("x", 1)],
            ),
            // Among several merged mappings the first wins.
            (
                "a: &a {x: 1}\nb: &b {x: 2, z: 4}\nm: {<<: [*a, *b], w: 0}\n",
                &[("w", 0), ("x", 1), ("z", 4)],
            ),
            // Merges nest: a merged mapping may itself merge another.
            (
                "a: &a {x: 1}\nb: &b {<<: *a, y: 2}\nm:\n  <<: *b\n  z: 3\n",
                &[("z", 3), ("y", 2), ("x", 1)],
            ),
            // An inline mapping merges too.
            ("m: {<<: {x: 1}, y: 2}\n", &[("y", 2), ("x", 1)]),
        ];
        for (src, want) in cases {
            let doc = parse(src).unwrap();
            let want: Vec<(String, i64)> =
                want.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
            assert_eq!(pairs(&doc, &["m"]), want, "{src}");
            assert!(doc.duplicates.is_empty(), "{src}: {:?}", doc.duplicates);
        }
    }

    #[test]
    fn a_quoted_or_scalar_merge_key_is_an_ordinary_key() {
        let doc = parse("m: {'<<': {x: 1}}\n").unwrap();
        assert!(doc.root.at(&["m", "<<", "x"]).is_some());
        let doc = parse("m: {<<: 3}\n").unwrap();
        assert_eq!(doc.root.at(&["m", "<<"]).unwrap().kind, NodeKind::Int(3));
    }

    #[test]
    fn a_key_written_twice_beside_a_merge_is_still_a_duplicate() {
        let doc = parse("a: &a {x: 1}\nm:\n  <<: *a\n  x: 2\n  x: 3\n").unwrap();
        assert_eq!(doc.duplicates.len(), 1, "{:?}", doc.duplicates);
        assert_eq!(doc.duplicates[0].again.line, 5);
        assert_eq!(pairs(&doc, &["m"]), vec![("x".to_owned(), 2)]);
    }

    #[test]
    fn merged_values_point_at_the_alias_use() {
        let src = "common: &common\n  x: 1\nm:\n  y: 2\n  <<: *common\n";
        let doc = parse(src).unwrap();
        let x = doc.root.at(&["m", "x"]).unwrap();
        assert_eq!((x.span.line, x.span.col), (5, 7));
        assert_eq!(&src[x.span.start..x.span.end], "*common");
        assert_eq!(doc.aliases.len(), 1);
        assert_eq!(doc.aliases[0].at, x.span);
        assert_eq!(doc.aliases[0].anchor.line, 2);
        // The anchored original keeps its own place.
        assert_eq!(doc.root.at(&["common", "x"]).unwrap().span.line, 2);
    }

    #[test]
    fn alias_bounds_hold_through_merges() {
        let mut src =
            "a0: &a0 {k0: 0, k1: 1, k2: 2, k3: 3, k4: 4, k5: 5, k6: 6, k7: 7, k8: 8, k9: 9}\n"
                .to_owned();
        for i in 1..9 {
            let refs = (0..10)
                .map(|j| format!("m{j}: {{<<: *a{}}}", i - 1))
                .collect::<Vec<_>>()
                .join(", ");
            src.push_str(&format!("a{i}: &a{i} {{{refs}}}\n"));
        }
        let err = parse(&src).unwrap_err();
        assert_eq!(err.refusal, Refusal::AliasExpansion);
        let lists = format!(
            "a: &a {{x: 1}}\nb: &b {{<<: [{}]}}\nc: {{<<: [{}]}}\n",
            vec!["*a"; 400].join(", "),
            vec!["*b"; 400].join(", ")
        );
        assert_eq!(parse(&lists).unwrap_err().refusal, Refusal::AliasExpansion);
    }

    #[test]
    fn utf8_columns_count_characters() {
        let src = "t: \"ça va\"\nu: é\n";
        let doc = parse(src).unwrap();
        let u = doc.root.get("u").unwrap();
        assert_eq!((u.span.line, u.span.col), (2, 4));
    }
}
