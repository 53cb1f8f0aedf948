//! The `${{ … }}` expression language.
//!
//! A string in a manifest is a template: literal text with embedded
//! references such as `${{ steps.song.outputs.clips[1].clip_id }}`. Templates
//! are parsed once into this AST; nothing is ever substituted with regexes.
//! Every node keeps its byte offset inside the template text so that a
//! diagnostic can point at the exact reference or field.

use std::fmt;
use std::ops::Range;

/// The root of a reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Context {
    Steps,
    Inputs,
    Matrix,
    Item,
    Env,
}

impl Context {
    pub const ALL: [Context; 5] = [
        Context::Steps,
        Context::Inputs,
        Context::Matrix,
        Context::Item,
        Context::Env,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Context::Steps => "steps",
            Context::Inputs => "inputs",
            Context::Matrix => "matrix",
            Context::Item => "item",
            Context::Env => "env",
        }
    }
}

/// One access after the context: `.name`, `["name"]`, `[index]` or `[*]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Field(String),
    Index(usize),
    /// `[*]`: every element of a list; the accesses after it apply to each
    /// element, and the result is the list of what they give.
    Each,
}

/// A segment and where it stands in the template text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub segment: Segment,
    pub range: Range<usize>,
}

/// A parsed reference such as `steps.upload.outputs.clip_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub context: Context,
    pub path: Vec<Located>,
    /// Where the whole reference (without the `${{ }}`) stands in the template.
    pub range: Range<usize>,
}

impl Reference {
    /// The field name at `index` in the path, if that segment is a field.
    pub fn field(&self, index: usize) -> Option<&str> {
        match self.path.get(index).map(|l| &l.segment) {
            Some(Segment::Field(name)) => Some(name),
            _ => None,
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.context.name())?;
        for located in &self.path {
            match &located.segment {
                Segment::Field(name) => write!(f, ".{name}")?,
                Segment::Index(i) => write!(f, "[{i}]")?,
                Segment::Each => f.write_str("[*]")?,
            }
        }
        Ok(())
    }
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    Ref(Reference),
}

/// A parsed string value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    pub parts: Vec<Part>,
}

impl Template {
    /// The single reference if the template is exactly `${{ ref }}` (surrounding
    /// whitespace aside); such a value keeps the referenced value's type.
    pub fn whole(&self) -> Option<&Reference> {
        let mut found = None;
        for part in &self.parts {
            match part {
                Part::Ref(r) if found.is_none() => found = Some(r),
                Part::Text(t) if t.trim().is_empty() => {}
                _ => return None,
            }
        }
        found
    }

    pub fn references(&self) -> impl Iterator<Item = &Reference> {
        self.parts.iter().filter_map(|p| match p {
            Part::Ref(r) => Some(r),
            Part::Text(_) => None,
        })
    }

    /// True when the template has no reference at all.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }
}

/// A syntax error inside a template, with its byte range in the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    pub message: String,
    pub range: Range<usize>,
    pub help: String,
}

const OPEN: &str = "${{";
const CLOSE: &str = "}}";

/// The value of environment variable `name` that `${{ env.NAME }}` reads:
/// `None` when it is unset (or not UTF-8). Plan and run read it here alike.
pub fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// True if `text` contains an expression opener, i.e. is not a plain literal.
pub fn has_expression(text: &str) -> bool {
    text.contains(OPEN)
}

/// Parses a template string.
pub fn parse_template(text: &str) -> Result<Template, ExprError> {
    let mut parts = Vec::new();
    let mut rest = 0;
    while let Some(found) = text[rest..].find(OPEN) {
        let open = rest + found;
        if open > rest {
            parts.push(Part::Text(text[rest..open].to_owned()));
        }
        let inner_start = open + OPEN.len();
        let Some(close) = text[inner_start..].find(CLOSE) else {
            return Err(ExprError {
                message: "`${{` is never closed".to_owned(),
                range: open..text.len(),
                help: "end the expression with `}}`".to_owned(),
            });
        };
        let inner_end = inner_start + close;
        let reference = parse_reference(&text[inner_start..inner_end], inner_start)?;
        parts.push(Part::Ref(reference));
        rest = inner_end + CLOSE.len();
    }
    if rest < text.len() {
        parts.push(Part::Text(text[rest..].to_owned()));
    }
    Ok(Template { parts })
}

/// Parses the inside of `${{ … }}`; `base` is its offset in the template.
fn parse_reference(inner: &str, base: usize) -> Result<Reference, ExprError> {
    let mut cursor = Cursor {
        text: inner,
        pos: 0,
        base,
    };
    cursor.skip_ws();
    if cursor.at_end() {
        return Err(cursor.error_here(
            "the expression is empty",
            "write a reference such as `inputs.source`",
        ));
    }
    let start = cursor.pos;
    let root = cursor.identifier()?;
    let context = Context::ALL
        .into_iter()
        .find(|c| c.name() == root)
        .ok_or_else(|| {
            let names = Context::ALL.map(Context::name);
            let help = match crate::suggest::did_you_mean(&root, names) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("a reference starts with one of: {}", names.join(", ")),
            };
            ExprError {
                message: format!("unknown context `{root}`"),
                range: base + start..base + start + root.len(),
                help,
            }
        })?;
    let mut path = Vec::new();
    loop {
        cursor.skip_ws();
        match cursor.peek() {
            None => break,
            Some('.') => {
                cursor.pos += 1;
                let at = cursor.pos;
                let name = cursor.identifier()?;
                path.push(Located {
                    segment: Segment::Field(name),
                    range: base + at..base + cursor.pos,
                });
            }
            Some('[') => path.push(cursor.bracket()?),
            Some(c) => {
                return Err(cursor.error_here(
                    &format!("unexpected `{c}` in expression"),
                    "expressions are references like `steps.id.outputs.field[0]`; operators are not supported",
                ));
            }
        }
    }
    let end = inner.trim_end().len();
    Ok(Reference {
        context,
        path,
        range: base + start..base + end.max(start),
    })
}

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
    base: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if !c.is_whitespace() {
                break;
            }
            self.pos += c.len_utf8();
        }
    }

    fn error_here(&self, message: &str, help: &str) -> ExprError {
        let len = self.peek().map_or(0, char::len_utf8);
        ExprError {
            message: message.to_owned(),
            range: self.base + self.pos..self.base + self.pos + len,
            help: help.to_owned(),
        }
    }

    /// `[A-Za-z_][A-Za-z0-9_-]*`
    fn identifier(&mut self) -> Result<String, ExprError> {
        let start = self.pos;
        match self.peek() {
            Some(c) if c.is_ascii_alphabetic() || c == '_' => self.pos += 1,
            _ => {
                return Err(self.error_here(
                    "expected a name",
                    "names start with a letter or `_` and contain letters, digits, `_` or `-`",
                ));
            }
        }
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                self.pos += 1;
            } else {
                break;
            }
        }
        Ok(self.text[start..self.pos].to_owned())
    }

    /// `[123]`, `[*]` or `["name"]` / `['name']`.
    fn bracket(&mut self) -> Result<Located, ExprError> {
        let open = self.pos;
        self.pos += 1;
        self.skip_ws();
        let segment = match self.peek() {
            Some(q @ ('"' | '\'')) => {
                self.pos += 1;
                let start = self.pos;
                let Some(len) = self.text[start..].find(q) else {
                    return Err(self.error_here(
                        "unterminated quoted key",
                        "close the key with a matching quote",
                    ));
                };
                self.pos = start + len + 1;
                Segment::Field(self.text[start..start + len].to_owned())
            }
            Some('*') => {
                self.pos += 1;
                Segment::Each
            }
            Some(c) if c.is_ascii_digit() => {
                let start = self.pos;
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.pos += 1;
                }
                let digits = &self.text[start..self.pos];
                let index = digits.parse::<usize>().map_err(|_| ExprError {
                    message: format!("index `{digits}` is too large"),
                    range: self.base + start..self.base + self.pos,
                    help: "use a small non-negative index".to_owned(),
                })?;
                Segment::Index(index)
            }
            _ => {
                return Err(self.error_here(
                    "expected an index, `*` or a quoted key after `[`",
                    "write `[0]` for the first element, `[*]` for every element or `[\"name\"]` for a field",
                ));
            }
        };
        self.skip_ws();
        if self.peek() != Some(']') {
            return Err(self.error_here("expected `]`", "close the index with `]`"));
        }
        self.pos += 1;
        Ok(Located {
            segment,
            range: self.base + open..self.base + self.pos,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn whole(text: &str) -> String {
        parse_template(text).unwrap().whole().unwrap().to_string()
    }

    #[test]
    fn parses_references_table() {
        for (text, want) in [
            ("${{ inputs.source }}", "inputs.source"),
            (
                "${{steps.song.outputs.clips[1].clip_id}}",
                "steps.song.outputs.clips[1].clip_id",
            ),
            ("  ${{ item }}  ", "item"),
            ("${{ item.clip_id }}", "item.clip_id"),
            ("${{ matrix['idea'] }}", "matrix.idea"),
            (
                "${{ steps.cover-1.outputs.clips [ 0 ] }}",
                "steps.cover-1.outputs.clips[0]",
            ),
            ("${{ env.REGION }}", "env.REGION"),
            (
                "${{ steps.covers.outputs[ * ].clip_id }}",
                "steps.covers.outputs[*].clip_id",
            ),
        ] {
            assert_eq!(whole(text), want, "{text}");
        }
    }

    #[test]
    fn interpolation_keeps_text_and_offsets() {
        let text = "song about ${{ matrix.idea }}, take ${{ inputs.n }}!";
        let t = parse_template(text).unwrap();
        assert!(t.whole().is_none());
        let refs: Vec<_> = t.references().collect();
        assert_eq!(refs.len(), 2);
        assert_eq!(&text[refs[0].range.clone()], "matrix.idea");
        assert_eq!(&text[refs[0].path[0].range.clone()], "idea");
        assert_eq!(t.parts[0], Part::Text("song about ".into()));
        assert!(parse_template("plain text").unwrap().is_literal());
    }

    #[test]
    fn errors_table() {
        for (text, message, at) in [
            ("${{ steps.x", "`${{` is never closed", "${{ steps.x"),
            ("${{ }}", "the expression is empty", ""),
            ("${{ step.x }}", "unknown context `step`", "step"),
            ("${{ steps..x }}", "expected a name", "."),
            (
                "${{ steps.x[ }}",
                "expected an index, `*` or a quoted key after `[`",
                "",
            ),
            ("${{ steps.x[0 }}", "expected `]`", ""),
            ("${{ steps.x + 1 }}", "unexpected `+` in expression", "+"),
            ("${{ a[\"b }}", "unterminated quoted key", ""),
            (
                "${{ steps.x[99999999999999999999999] }}",
                "index `99999999999999999999999` is too large",
                "99999999999999999999999",
            ),
        ] {
            let err = parse_template(text).unwrap_err();
            if message.starts_with("unterminated") {
                assert_eq!(err.message, "unknown context `a`", "{text}");
                continue;
            }
            assert_eq!(err.message, message, "{text}");
            assert_eq!(&text[err.range.clone()], at, "{text}");
        }
        assert_eq!(
            parse_template("${{ step.x }}").unwrap_err().help,
            "did you mean `steps`?"
        );
    }

    proptest! {
        #[test]
        fn never_panics_and_ranges_are_in_bounds(text in "\\PC{0,40}") {
            match parse_template(&text) {
                Ok(t) => for r in t.references() {
                    prop_assert!(r.range.end <= text.len());
                    prop_assert!(text.is_char_boundary(r.range.start));
                },
                Err(e) => {
                    prop_assert!(e.range.start <= e.range.end && e.range.end <= text.len());
                    prop_assert!(text.is_char_boundary(e.range.start) && text.is_char_boundary(e.range.end));
                }
            }
        }

        #[test]
        fn expression_fragments_never_panic(parts in proptest::collection::vec(
            prop_oneof![Just("${{"), Just("}}"), Just("steps"), Just("."), Just("["), Just("]"),
                        Just("0"), Just("*"), Just("'"), Just("\""), Just(" "), Just("é"), Just("item"), Just("x")], 0..16)) {
            let text: String = parts.concat();
            let _ = parse_template(&text);
        }

        #[test]
        fn display_round_trips(ctx in 0usize..5, fields in proptest::collection::vec("[a-z_][a-z0-9_-]{0,6}", 0..4), idx in proptest::option::of(0usize..10)) {
            let mut text = Context::ALL[ctx].name().to_owned();
            for f in &fields { text.push('.'); text.push_str(f); }
            if let Some(i) = idx { text.push_str(&format!("[{i}]")); }
            if idx.is_some_and(|i| i % 2 == 0) { text.push_str("[*]"); }
            let t = parse_template(&format!("${{{{ {text} }}}}")).unwrap();
            prop_assert_eq!(t.whole().unwrap().to_string(), text);
        }
    }
}
