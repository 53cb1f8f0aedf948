//! A YAML tree that remembers where every node came from.
//!
//! serde_yaml resolves a document into values but forgets positions, and the
//! diagnostics of `validate` must point at file:line:col. This module builds
//! a spanned tree from the parser's events once, reports duplicate keys (a
//! plain YAML load silently keeps one of them), and converts the tree into
//! `serde_yaml::Value` for typed deserialization.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
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

/// Why a document could not be read as YAML.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
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

/// The parsed document and the duplicate keys found while building it.
#[derive(Debug)]
pub struct Document {
    pub root: Node,
    pub duplicates: Vec<DuplicateKey>,
}

/// Parses one YAML document. An empty document is a null node.
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
    };
    let mut parser = Parser::new_from_str(src);
    parser.load(&mut builder, false).map_err(|e| SyntaxError {
        message: e.info().to_owned(),
        span: Span::locate(src, builder.byte_offset(e.marker()), 1),
    })?;
    let root = builder.root.unwrap_or(Node {
        kind: NodeKind::Null,
        span: Span::locate(src, 0, 0),
    });
    Ok(Document {
        root,
        duplicates: builder.duplicates,
    })
}

enum Frame {
    Seq {
        start: Marker,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        start: Marker,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        pending_key: Option<Node>,
        /// Position in `entries` of each key seen so far, for finding duplicates in constant time.
        seen: HashMap<KeyId, usize>,
    },
}

struct Builder<'a> {
    src: &'a str,
    lines: LineIndex,
    /// Byte offset of each character, for non-ASCII sources (the parser counts characters).
    char_offsets: Vec<usize>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    duplicates: Vec<DuplicateKey>,
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, style, anchor, tag) => {
                let start = self.byte_offset(&mark);
                let len = scalar_len(self.src, start, &value, style);
                let span = self.lines.span(self.src, start, len);
                let plain = style == TScalarStyle::Plain && tag.is_none();
                let node = Node {
                    kind: resolve_scalar(value, plain),
                    span,
                };
                self.finish(node, anchor);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq {
                start: mark,
                anchor,
                items: Vec::new(),
            }),
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map {
                start: mark,
                anchor,
                entries: Vec::new(),
                pending_key: None,
                seen: HashMap::new(),
            }),
            Event::SequenceEnd | Event::MappingEnd => self.close(mark),
            Event::Alias(id) => {
                let at = self.byte_offset(&mark);
                let node = self.anchors.get(&id).cloned().unwrap_or(Node {
                    kind: NodeKind::Null,
                    span: self.lines.span(self.src, at, 1),
                });
                self.finish(node, 0);
            }
            _ => {}
        }
    }
}

impl Builder<'_> {
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
        let (start, anchor, kind) = match frame {
            Frame::Seq {
                start,
                anchor,
                items,
            } => (start, anchor, NodeKind::Seq(items)),
            Frame::Map {
                start,
                anchor,
                entries,
                ..
            } => (start, anchor, NodeKind::Map(entries)),
        };
        let (start, end) = (self.byte_offset(&start), self.byte_offset(&end));
        let node = Node {
            kind,
            span: self
                .lines
                .span(self.src, start, end.saturating_sub(start).max(1)),
        };
        self.finish(node, anchor);
    }

    fn finish(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        let mut duplicate = None;
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                pending_key,
                seen,
                ..
            }) => match pending_key.take() {
                None => *pending_key = Some(node),
                Some(key) => {
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
    fn utf8_columns_count_characters() {
        let src = "t: \"ça va\"\nu: é\n";
        let doc = parse(src).unwrap();
        let u = doc.root.get("u").unwrap();
        assert_eq!((u.span.line, u.span.col), (2, 4));
    }
}
