//! The `${{ … }}` expression language.
//!
//! A string in a manifest is a template: literal text with embedded
//! expressions such as `${{ steps.song.outputs.clips[1].clip_id }}` or
//! `${{ max_by(steps.song.outputs.clips, c => c.duration).clip_id }}`.
//! Templates are parsed once into this AST; nothing is ever substituted with
//! regexes. Every node keeps its byte range inside the template text so that
//! a diagnostic can point at the exact sub-expression.
//!
//! Grammar (lowest precedence first; all binary operators are left-associative):
//!
//! ```text
//! expr    = or
//! or      = and { "||" and }
//! and     = eq { "&&" eq }
//! eq      = cmp { ("==" | "!=") cmp }
//! cmp     = add { ("<" | "<=" | ">" | ">=") add }
//! add     = mul { ("+" | "-") mul }
//! mul     = unary { ("*" | "/" | "%") unary }
//! unary   = ("!" | "-") unary | postfix
//! postfix = primary { "." name | "[" (index | "*" | string) "]" }
//! primary = number | string | "true" | "false" | "null" | "(" expr ")"
//!         | context | parameter | name "(" [ arg { "," arg } ] ")"
//! arg     = expr | name "=>" expr        (a lambda, where the function takes one)
//! ```

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

/// One access after a value: `.name`, `["name"]`, `[index]` or `[*]`.
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

/// Writes a path of accesses as it would be written in a template.
pub fn write_path(f: &mut fmt::Formatter<'_>, path: &[Located]) -> fmt::Result {
    for located in path {
        match &located.segment {
            Segment::Field(name) if is_field_name(name) => write!(f, ".{name}")?,
            Segment::Field(name) => {
                f.write_str("[")?;
                write_string(f, name)?;
                f.write_str("]")?;
            }
            Segment::Index(i) => write!(f, "[{i}]")?,
            Segment::Each => f.write_str("[*]")?,
        }
    }
    Ok(())
}

/// True if `name` can be written after a `.` (else it is written `['name']`).
fn is_field_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn write_string(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    write!(f, "'{}'", text.replace('\'', "''"))
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
        write_path(f, &self.path)
    }
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
}

impl Lit {
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Lit::Null => serde_json::Value::Null,
            Lit::Bool(b) => serde_json::Value::Bool(*b),
            Lit::Num(n) => number(*n).unwrap_or(serde_json::Value::Null),
            Lit::Str(s) => serde_json::Value::String(s.clone()),
        }
    }
}

/// A number as JSON: whole numbers as integers (`3`, not `3.0`), `None`
/// for what JSON cannot hold (infinities, NaN).
pub fn number(n: f64) -> Option<serde_json::Value> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if n.fract() == 0.0 && n.abs() < EXACT {
        Some(serde_json::Value::from(n as i64))
    } else {
        serde_json::Number::from_f64(n).map(serde_json::Value::Number)
    }
}

/// A unary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnOp {
    Not,
    Neg,
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "||",
            BinOp::And => "&&",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
        }
    }

    /// Binding strength: higher binds tighter.
    fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And => 2,
            BinOp::Eq | BinOp::Ne => 3,
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => 4,
            BinOp::Add | BinOp::Sub => 5,
            BinOp::Mul | BinOp::Div | BinOp::Rem => 6,
        }
    }

    /// The operators of one precedence level, as written.
    fn level(precedence: u8) -> &'static [BinOp] {
        match precedence {
            1 => &[BinOp::Or],
            2 => &[BinOp::And],
            3 => &[BinOp::Eq, BinOp::Ne],
            4 => &[BinOp::Lt, BinOp::Le, BinOp::Gt, BinOp::Ge],
            5 => &[BinOp::Add, BinOp::Sub],
            _ => &[BinOp::Mul, BinOp::Div, BinOp::Rem],
        }
    }
}

/// Precedence of unary operators and of everything tighter.
const UNARY: u8 = 7;
/// Precedence of postfix accesses and primaries.
const POSTFIX: u8 = 8;

/// The functions of the language. [`FUNCTIONS`] is the one table of their
/// names and signatures: the parser, the type checker, the evaluator and the
/// documentation all read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Func {
    Contains,
    StartsWith,
    EndsWith,
    Format,
    Join,
    Length,
    Filter,
    Find,
    SortBy,
    MaxBy,
    MinBy,
    First,
    Last,
    Pluck,
    Flatten,
    Abs,
}

/// What a function takes in one argument position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    Text,
    Num,
    List,
    ListOrText,
    Any,
    /// `x => …` giving `true` or `false` for each element of the list argument.
    Condition,
    /// `x => …` giving a number or a string to order the elements by.
    Key,
}

impl Param {
    pub fn is_lambda(self) -> bool {
        matches!(self, Param::Condition | Param::Key)
    }
}

/// One function: its name, parameters and what it gives.
#[derive(Debug, Clone, Copy)]
pub struct Signature {
    pub func: Func,
    pub name: &'static str,
    pub params: &'static [Param],
    /// How many of `params` must be given (the rest are optional).
    pub required: usize,
    /// Whether the last parameter repeats (`format`).
    pub variadic: bool,
    /// How it is written in the documentation.
    pub usage: &'static str,
    pub does: &'static str,
    /// What it gives, in words.
    pub gives: &'static str,
}

use Param as P;

pub const FUNCTIONS: &[Signature] = &[
    Signature {
        func: Func::Contains,
        name: "contains",
        params: &[P::ListOrText, P::Any],
        required: 2,
        variadic: false,
        usage: "contains(s, part)` / `contains(list, x)",
        does: "substring (case-sensitive) / an element equal to `x`",
        gives: "boolean",
    },
    Signature {
        func: Func::StartsWith,
        name: "startsWith",
        params: &[P::Text, P::Text],
        required: 2,
        variadic: false,
        usage: "startsWith(s, prefix)",
        does: "`s` begins with `prefix` (case-sensitive)",
        gives: "boolean",
    },
    Signature {
        func: Func::EndsWith,
        name: "endsWith",
        params: &[P::Text, P::Text],
        required: 2,
        variadic: false,
        usage: "endsWith(s, suffix)",
        does: "`s` ends with `suffix` (case-sensitive)",
        gives: "boolean",
    },
    Signature {
        func: Func::Format,
        name: "format",
        params: &[P::Text, P::Any],
        required: 1,
        variadic: true,
        usage: "format('{0} in {1}', a, b)",
        does: "`{N}` replaced by argument N as text; `{{` and `}}` are literal braces",
        gives: "string",
    },
    Signature {
        func: Func::Join,
        name: "join",
        params: &[P::List, P::Text],
        required: 1,
        variadic: false,
        usage: "join(list, sep)",
        does: "the elements as text, separated by `sep` (default `, `)",
        gives: "string",
    },
    Signature {
        func: Func::Length,
        name: "length",
        params: &[P::ListOrText],
        required: 1,
        variadic: false,
        usage: "length(x)",
        does: "elements of a list / characters of a string",
        gives: "number",
    },
    Signature {
        func: Func::Filter,
        name: "filter",
        params: &[P::List, P::Condition],
        required: 2,
        variadic: false,
        usage: "filter(list, x => cond)",
        does: "the elements for which `cond` is true, in order",
        gives: "a list of the same elements, at most as many",
    },
    Signature {
        func: Func::Find,
        name: "find",
        params: &[P::List, P::Condition],
        required: 2,
        variadic: false,
        usage: "find(list, x => cond)",
        does: "the first element for which `cond` is true (no value if none)",
        gives: "an element",
    },
    Signature {
        func: Func::SortBy,
        name: "sort_by",
        params: &[P::List, P::Key],
        required: 2,
        variadic: false,
        usage: "sort_by(list, x => key)",
        does: "the elements in ascending order of `key` (numbers or strings; stable)",
        gives: "the same list",
    },
    Signature {
        func: Func::MaxBy,
        name: "max_by",
        params: &[P::List, P::Key],
        required: 2,
        variadic: false,
        usage: "max_by(list, x => key)",
        does: "the element with the largest `key` (the first on ties; no value if empty)",
        gives: "an element",
    },
    Signature {
        func: Func::MinBy,
        name: "min_by",
        params: &[P::List, P::Key],
        required: 2,
        variadic: false,
        usage: "min_by(list, x => key)",
        does: "the element with the smallest `key` (the first on ties; no value if empty)",
        gives: "an element",
    },
    Signature {
        func: Func::First,
        name: "first",
        params: &[P::List],
        required: 1,
        variadic: false,
        usage: "first(list)",
        does: "the first element (no value if empty)",
        gives: "an element",
    },
    Signature {
        func: Func::Last,
        name: "last",
        params: &[P::List],
        required: 1,
        variadic: false,
        usage: "last(list)",
        does: "the last element (no value if empty)",
        gives: "an element",
    },
    Signature {
        func: Func::Pluck,
        name: "pluck",
        params: &[P::List, P::Text],
        required: 2,
        variadic: false,
        usage: "pluck(list, 'field')",
        does: "the field of every element, like `list[*].field`",
        gives: "a list of the field's type",
    },
    Signature {
        func: Func::Flatten,
        name: "flatten",
        params: &[P::List],
        required: 1,
        variadic: false,
        usage: "flatten(list)",
        does: "a list of lists made one list",
        gives: "a list of the inner elements",
    },
    Signature {
        func: Func::Abs,
        name: "abs",
        params: &[P::Num],
        required: 1,
        variadic: false,
        usage: "abs(n)",
        does: "the absolute value",
        gives: "number",
    },
];

/// The functions as a Markdown table, as the README lists them.
pub fn function_table() -> String {
    let mut out = String::from("| function | gives | does |\n|---|---|---|\n");
    for s in FUNCTIONS {
        out.push_str(&format!("| `{}` | {} | {} |\n", s.usage, s.gives, s.does));
    }
    out
}

impl Func {
    pub fn signature(self) -> &'static Signature {
        FUNCTIONS
            .iter()
            .find(|s| s.func == self)
            .unwrap_or(&FUNCTIONS[0])
    }

    pub fn name(self) -> &'static str {
        self.signature().name
    }

    /// What argument `index` must be, if the function takes that many.
    pub fn param(self, index: usize) -> Option<Param> {
        let s = self.signature();
        match s.params.get(index) {
            Some(p) => Some(*p),
            None if s.variadic => s.params.last().copied(),
            None => None,
        }
    }

    fn by_name(name: &str) -> Option<Func> {
        FUNCTIONS.iter().find(|s| s.name == name).map(|s| s.func)
    }

    /// The names of the functions that take a lambda.
    fn lambda_takers() -> Vec<&'static str> {
        FUNCTIONS
            .iter()
            .filter(|s| s.params.iter().any(|p| p.is_lambda()))
            .map(|s| s.name)
            .collect()
    }
}

/// One node of an expression, with where it stands in the template text.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub range: Range<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// A context reference with its accesses: `steps.x.outputs.clips[0]`.
    Ref(Reference),
    /// The parameter of an enclosing lambda.
    Param(String),
    Lit(Lit),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Call {
        func: Func,
        /// Where the function's name stands.
        name: Range<usize>,
        args: Vec<Expr>,
    },
    /// `x => body`, only as an argument of a function that takes one.
    Lambda {
        param: String,
        body: Box<Expr>,
    },
    /// Accesses after anything that is not a context reference:
    /// `max_by(…).clip_id`, `c.duration`, `(…)[0]`.
    Access(Box<Expr>, Vec<Located>),
}

impl Expr {
    /// Every context reference in the expression, in reading order (never
    /// lambda parameters).
    pub fn references(&self) -> Vec<&Reference> {
        let mut out = Vec::new();
        self.collect_references(&mut out);
        out
    }

    fn collect_references<'a>(&'a self, out: &mut Vec<&'a Reference>) {
        match &self.kind {
            ExprKind::Ref(r) => out.push(r),
            ExprKind::Param(_) | ExprKind::Lit(_) => {}
            ExprKind::Unary(_, e) | ExprKind::Access(e, _) => e.collect_references(out),
            ExprKind::Lambda { body, .. } => body.collect_references(out),
            ExprKind::Binary(_, l, r) => {
                l.collect_references(out);
                r.collect_references(out);
            }
            ExprKind::Call { args, .. } => {
                for a in args {
                    a.collect_references(out);
                }
            }
        }
    }

    /// The reference, if the expression is exactly one.
    pub fn as_reference(&self) -> Option<&Reference> {
        match &self.kind {
            ExprKind::Ref(r) => Some(r),
            _ => None,
        }
    }

    fn precedence(&self) -> u8 {
        match &self.kind {
            ExprKind::Lambda { .. } => 0,
            ExprKind::Binary(op, ..) => op.precedence(),
            ExprKind::Unary(..) => UNARY,
            _ => POSTFIX,
        }
    }

    fn write_operand(&self, f: &mut fmt::Formatter<'_>, parens: bool) -> fmt::Result {
        if parens {
            write!(f, "({self})")
        } else {
            write!(f, "{self}")
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Ref(r) => write!(f, "{r}"),
            ExprKind::Param(name) => f.write_str(name),
            ExprKind::Lit(Lit::Null) => f.write_str("null"),
            ExprKind::Lit(Lit::Bool(b)) => write!(f, "{b}"),
            ExprKind::Lit(Lit::Num(n)) => write!(f, "{n}"),
            ExprKind::Lit(Lit::Str(s)) => write_string(f, s),
            ExprKind::Unary(op, e) => {
                f.write_str(match op {
                    UnOp::Not => "!",
                    UnOp::Neg => "-",
                })?;
                e.write_operand(f, e.precedence() < UNARY)
            }
            ExprKind::Binary(op, l, r) => {
                l.write_operand(f, l.precedence() < op.precedence())?;
                write!(f, " {} ", op.symbol())?;
                r.write_operand(f, r.precedence() <= op.precedence())
            }
            ExprKind::Call { func, args, .. } => {
                write!(f, "{}(", func.name())?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
            ExprKind::Lambda { param, body } => write!(f, "{param} => {body}"),
            ExprKind::Access(base, path) => {
                base.write_operand(f, base.precedence() < POSTFIX)?;
                write_path(f, path)
            }
        }
    }
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Expr(Expr),
}

/// A parsed string value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Template {
    pub parts: Vec<Part>,
}

impl Template {
    /// The single expression if the template is exactly `${{ expr }}`
    /// (surrounding whitespace aside); such a value keeps the expression's type.
    pub fn whole(&self) -> Option<&Expr> {
        let mut found = None;
        for part in &self.parts {
            match part {
                Part::Expr(e) if found.is_none() => found = Some(e),
                Part::Text(t) if t.trim().is_empty() => {}
                _ => return None,
            }
        }
        found
    }

    /// The reference if the template is exactly `${{ reference }}`.
    pub fn whole_reference(&self) -> Option<&Reference> {
        self.whole()?.as_reference()
    }

    /// Every context reference anywhere in the template.
    pub fn references(&self) -> impl Iterator<Item = &Reference> {
        self.expressions().flat_map(Expr::references)
    }

    pub fn expressions(&self) -> impl Iterator<Item = &Expr> {
        self.parts.iter().filter_map(|p| match p {
            Part::Expr(e) => Some(e),
            Part::Text(_) => None,
        })
    }

    /// True when the template has no expression at all.
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

/// How deeply parentheses, unary operators, calls and lambdas may nest in
/// one expression.
pub const MAX_DEPTH: usize = 48;
/// How many nodes one expression may have.
pub const MAX_NODES: usize = 400;

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
        if !text[inner_start..].contains("}}") {
            return Err(ExprError {
                message: "`${{` is never closed".to_owned(),
                range: open..text.len(),
                help: "end the expression with `}}`".to_owned(),
            });
        }
        let tokens = lex(text, inner_start)?;
        let mut parser = Parser {
            tokens: &tokens,
            pos: 0,
            depth: 0,
            nodes: 0,
            params: Vec::new(),
            text,
        };
        let (expr, end) = parser.template_expression()?;
        parts.push(Part::Expr(expr));
        rest = end;
    }
    if rest < text.len() {
        parts.push(Part::Text(text[rest..].to_owned()));
    }
    Ok(Template { parts })
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    /// A number, with its text (an index is read from the text).
    Num(f64),
    Str(String),
    Punct(&'static str),
    /// `}}`, the end of the expression.
    Close,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    range: Range<usize>,
}

const PUNCTS: [&str; 21] = [
    "=>", "==", "!=", "<=", ">=", "&&", "||", "(", ")", "[", "]", ",", ".", "*", "/", "%", "+",
    "-", "!", "<", ">",
];

/// The tokens of one expression starting at `start`, up to and including `}}`.
fn lex(text: &str, start: usize) -> Result<Vec<Token>, ExprError> {
    let err = |range: Range<usize>, message: String, help: &str| ExprError {
        message,
        range,
        help: help.to_owned(),
    };
    let mut tokens: Vec<Token> = Vec::new();
    let mut pos = start;
    loop {
        let rest = &text[pos..];
        let Some(c) = rest.chars().next() else {
            return Err(err(
                start - OPEN.len()..text.len(),
                "`${{` is never closed".to_owned(),
                "end the expression with `}}`",
            ));
        };
        if c.is_whitespace() {
            pos += c.len_utf8();
            continue;
        }
        let at = pos;
        if rest.starts_with("}}") {
            tokens.push(Token {
                tok: Tok::Close,
                range: at..at + 2,
            });
            return Ok(tokens);
        }
        let after_dot = matches!(
            tokens.last(),
            Some(Token {
                tok: Tok::Punct("."),
                ..
            })
        );
        let tok = if c.is_ascii_alphabetic() || c == '_' {
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || (after_dot && c == '-')))
                .unwrap_or(rest.len());
            pos += len;
            Tok::Name(rest[..len].to_owned())
        } else if c.is_ascii_digit() {
            let mut len = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if rest[len..].starts_with('.')
                && rest[len + 1..].starts_with(|c: char| c.is_ascii_digit())
            {
                len += 1 + rest[len + 1..]
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(rest.len() - len - 1);
            }
            pos += len;
            let digits = &rest[..len];
            match digits.parse::<f64>() {
                Ok(n) if n.is_finite() => Tok::Num(n),
                _ => {
                    return Err(err(
                        at..pos,
                        format!("the number `{digits}` is too large"),
                        "use a smaller number",
                    ));
                }
            }
        } else if c == '\'' || c == '"' {
            let mut value = String::new();
            let mut i = 1;
            loop {
                let Some(next) = rest[i..].find(c) else {
                    return Err(err(
                        at..text.len(),
                        "a string is never closed".to_owned(),
                        &format!(
                            "end the string with `{c}` (write `{c}{c}` for a `{c}` inside it)"
                        ),
                    ));
                };
                value.push_str(&rest[i..i + next]);
                i += next + 1;
                if rest[i..].starts_with(c) {
                    value.push(c);
                    i += 1;
                } else {
                    break;
                }
            }
            pos += i;
            Tok::Str(value)
        } else if let Some(p) = PUNCTS.iter().find(|p| rest.starts_with(**p)) {
            pos += p.len();
            Tok::Punct(p)
        } else {
            let (message, help) = match c {
                '=' => (
                    "`=` is not an operator".to_owned(),
                    "compare with `==`".to_owned(),
                ),
                '&' => ("`&` is not an operator".to_owned(), "write `&&`".to_owned()),
                '|' => ("`|` is not an operator".to_owned(), "write `||`".to_owned()),
                other => (
                    format!("unexpected `{other}` in expression"),
                    "expressions use references, literals, operators (`== != < <= > >= && || ! + - * / %`) and functions".to_owned(),
                ),
            };
            return Err(err(at..at + c.len_utf8(), message, &help));
        };
        tokens.push(Token {
            tok,
            range: at..pos,
        });
    }
}

struct Parser<'t> {
    tokens: &'t [Token],
    pos: usize,
    depth: usize,
    nodes: usize,
    /// Lambda parameters in scope, innermost last.
    params: Vec<String>,
    text: &'t str,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        // `lex` always ends with `Close`, which is never consumed.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn peek_at(&self, ahead: usize) -> &Token {
        &self.tokens[(self.pos + ahead).min(self.tokens.len() - 1)]
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if t.tok != Tok::Close {
            self.pos += 1;
        }
        t
    }

    fn eat(&mut self, punct: &str) -> bool {
        if self.peek().tok == Tok::Punct(punct_static(punct)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn error(
        &self,
        range: Range<usize>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> ExprError {
        ExprError {
            message: message.into(),
            range,
            help: help.into(),
        }
    }

    /// An error at the next token, saying what was expected.
    fn unexpected(&self, expected: &str, help: &str) -> ExprError {
        let t = self.peek();
        let found = match &t.tok {
            Tok::Close => "the end of the expression".to_owned(),
            _ => format!("`{}`", &self.text[t.range.clone()]),
        };
        let range = match t.tok {
            Tok::Close => t.range.start..t.range.start,
            _ => t.range.clone(),
        };
        self.error(range, format!("expected {expected}, found {found}"), help)
    }

    fn node(&mut self, kind: ExprKind, range: Range<usize>) -> Result<Expr, ExprError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(self.error(
                range,
                format!("the expression is too long (more than {MAX_NODES} parts)"),
                "split the work over several steps or simplify the expression",
            ));
        }
        Ok(Expr { kind, range })
    }

    fn enter(&mut self, range: Range<usize>) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(
                range,
                format!("the expression nests too deeply (more than {MAX_DEPTH} levels)"),
                "simplify the expression",
            ));
        }
        Ok(())
    }

    /// The expression of one `${{ … }}` and the offset just after its `}}`.
    fn template_expression(&mut self) -> Result<(Expr, usize), ExprError> {
        if self.peek().tok == Tok::Close {
            let at = self.peek().range.start;
            return Err(self.error(
                at..at,
                "the expression is empty",
                "write a reference such as `inputs.source`",
            ));
        }
        let expr = self.expr(false)?;
        let t = self.peek();
        if t.tok != Tok::Close {
            let text = &self.text[t.range.clone()];
            let help = match &t.tok {
                Tok::Punct(")") => "remove this `)` or add the `(` it closes".to_owned(),
                Tok::Name(n) if n == "and" || n == "or" => {
                    "combine conditions with `&&` and `||`".to_owned()
                }
                _ => "combine values with an operator, e.g. `a == b`, or end the expression with `}}`"
                    .to_owned(),
            };
            return Err(self.error(
                t.range.clone(),
                format!("unexpected `{text}` in expression"),
                help,
            ));
        }
        Ok((expr, t.range.end))
    }

    /// `expr`; `lambda` says whether a lambda may stand here.
    fn expr(&mut self, lambda: bool) -> Result<Expr, ExprError> {
        if let (Tok::Name(_), Tok::Punct("=>")) = (&self.peek().tok, &self.peek_at(1).tok) {
            return self.lambda(lambda);
        }
        self.binary(1)
    }

    fn binary(&mut self, precedence: u8) -> Result<Expr, ExprError> {
        if precedence >= UNARY {
            return self.unary();
        }
        let mut lhs = self.binary(precedence + 1)?;
        loop {
            let op = match &self.peek().tok {
                Tok::Punct(p) => BinOp::level(precedence)
                    .iter()
                    .find(|o| o.symbol() == *p)
                    .copied(),
                _ => None,
            };
            let Some(op) = op else { break };
            self.bump();
            let rhs = self.binary(precedence + 1)?;
            let range = lhs.range.start..rhs.range.end;
            lhs = self.node(ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)), range)?;
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        let op = match self.peek().tok {
            Tok::Punct("!") => UnOp::Not,
            Tok::Punct("-") => UnOp::Neg,
            _ => return self.postfix(),
        };
        let t = self.bump();
        self.enter(t.range.clone())?;
        let operand = self.unary()?;
        self.depth -= 1;
        let range = t.range.start..operand.range.end;
        self.node(ExprKind::Unary(op, Box::new(operand)), range)
    }

    fn postfix(&mut self) -> Result<Expr, ExprError> {
        let mut expr = self.primary()?;
        loop {
            let located = match self.peek().tok {
                Tok::Punct(".") => {
                    self.bump();
                    let t = self.bump();
                    match t.tok {
                        Tok::Name(name) => Located {
                            segment: Segment::Field(name),
                            range: t.range,
                        },
                        _ => {
                            self.pos -= usize::from(t.tok != Tok::Close);
                            return Err(self.unexpected(
                                "a name after `.`",
                                "names start with a letter or `_` and contain letters, digits, `_` or `-`",
                            ));
                        }
                    }
                }
                Tok::Punct("[") => self.bracket()?,
                _ => break,
            };
            let end = located.range.end;
            expr = match expr.kind {
                ExprKind::Ref(mut r) => {
                    r.path.push(located);
                    r.range.end = end;
                    Expr {
                        range: expr.range.start..end,
                        kind: ExprKind::Ref(r),
                    }
                }
                ExprKind::Access(base, mut path) => {
                    path.push(located);
                    Expr {
                        range: expr.range.start..end,
                        kind: ExprKind::Access(base, path),
                    }
                }
                _ => {
                    let range = expr.range.start..end;
                    self.node(ExprKind::Access(Box::new(expr), vec![located]), range)?
                }
            };
        }
        Ok(expr)
    }

    /// `[123]`, `[*]` or `["name"]` / `['name']`.
    fn bracket(&mut self) -> Result<Located, ExprError> {
        let open = self.bump().range.start;
        let t = self.bump();
        let segment = match &t.tok {
            Tok::Str(s) => Segment::Field(s.clone()),
            Tok::Punct("*") => Segment::Each,
            Tok::Num(_) => {
                let digits = &self.text[t.range.clone()];
                match digits.parse::<usize>() {
                    Ok(i) => Segment::Index(i),
                    Err(_) if digits.contains('.') => {
                        return Err(self.error(
                            t.range.clone(),
                            format!("index `{digits}` is not a whole number"),
                            "write `[0]` for the first element",
                        ));
                    }
                    Err(_) => {
                        return Err(self.error(
                            t.range.clone(),
                            format!("index `{digits}` is too large"),
                            "use a small non-negative index",
                        ));
                    }
                }
            }
            _ => {
                self.pos -= usize::from(t.tok != Tok::Close);
                return Err(self.unexpected(
                    "an index, `*` or a quoted key after `[`",
                    "write `[0]` for the first element, `[*]` for every element or `['name']` for a field",
                ));
            }
        };
        if !self.eat("]") {
            return Err(self.unexpected("`]`", "close the index with `]`"));
        }
        let end = self.tokens[self.pos - 1].range.end;
        Ok(Located {
            segment,
            range: open..end,
        })
    }

    fn primary(&mut self) -> Result<Expr, ExprError> {
        let t = self.peek().clone();
        match &t.tok {
            Tok::Num(n) => {
                self.bump();
                self.node(ExprKind::Lit(Lit::Num(*n)), t.range)
            }
            Tok::Str(s) => {
                self.bump();
                self.node(ExprKind::Lit(Lit::Str(s.clone())), t.range)
            }
            Tok::Punct("(") => {
                self.bump();
                self.enter(t.range.clone())?;
                let inner = self.expr(false)?;
                if !self.eat(")") {
                    if self.peek().tok != Tok::Close {
                        return Err(self.unexpected(
                            "`)`",
                            "close the `(` with `)`, or join the values with an operator",
                        ));
                    }
                    return Err(self.error(
                        t.range.clone(),
                        "`(` is never closed",
                        "add the `)` that closes it",
                    ));
                }
                self.depth -= 1;
                Ok(inner)
            }
            Tok::Name(name) => {
                self.bump();
                match name.as_str() {
                    "true" => return self.node(ExprKind::Lit(Lit::Bool(true)), t.range),
                    "false" => return self.node(ExprKind::Lit(Lit::Bool(false)), t.range),
                    "null" => return self.node(ExprKind::Lit(Lit::Null), t.range),
                    _ => {}
                }
                if self.peek().tok == Tok::Punct("(") {
                    return self.call(name, t.range);
                }
                if self.params.iter().any(|p| p == name) {
                    return self.node(ExprKind::Param(name.clone()), t.range);
                }
                if let Some(context) = Context::ALL.into_iter().find(|c| c.name() == name) {
                    let r = Reference {
                        context,
                        path: Vec::new(),
                        range: t.range.clone(),
                    };
                    return self.node(ExprKind::Ref(r), t.range);
                }
                let mut names: Vec<&str> = Context::ALL.map(Context::name).to_vec();
                names.extend(self.params.iter().map(String::as_str));
                let help = match crate::suggest::did_you_mean(name, names.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None if Func::by_name(name).is_some() => format!("call it: `{name}(…)`"),
                    None => format!("a reference starts with one of: {}", names.join(", ")),
                };
                let what = if self.params.is_empty() {
                    "context"
                } else {
                    "name"
                };
                Err(self.error(t.range, format!("unknown {what} `{name}`"), help))
            }
            Tok::Close => {
                Err(self.unexpected("a value", "finish the expression, e.g. `a == 1`"))
            }
            _ => Err(self.unexpected(
                "a value",
                "a value is a reference, a number, a 'string', true, false, null, `( … )` or a function call",
            )),
        }
    }

    fn call(&mut self, name: &str, name_range: Range<usize>) -> Result<Expr, ExprError> {
        let Some(func) = Func::by_name(name) else {
            let help = match crate::suggest::did_you_mean(name, FUNCTIONS.iter().map(|s| s.name)) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!(
                    "the functions are: {}",
                    FUNCTIONS
                        .iter()
                        .map(|s| s.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            return Err(self.error(name_range, format!("unknown function `{name}`"), help));
        };
        let open = self.bump().range;
        self.enter(open.clone())?;
        let mut args = Vec::new();
        if !self.eat(")") {
            loop {
                let lambda = func.param(args.len()).is_some_and(Param::is_lambda);
                args.push(self.expr(lambda)?);
                if self.eat(")") {
                    break;
                }
                if !self.eat(",") {
                    if self.peek().tok == Tok::Close {
                        return Err(self.error(
                            open,
                            format!("the `(` of `{name}(` is never closed"),
                            "close the arguments with `)`",
                        ));
                    }
                    return Err(self.unexpected(
                        "`,` or `)`",
                        "separate arguments with `,` and close them with `)`",
                    ));
                }
            }
        }
        self.depth -= 1;
        let end = self.tokens[self.pos - 1].range.end;
        let range = name_range.start..end;
        let s = func.signature();
        let count_ok = args.len() >= s.required && (s.variadic || args.len() <= s.params.len());
        if !count_ok {
            let wanted = if s.variadic {
                format!("at least {}", s.required)
            } else if s.required == s.params.len() {
                s.required.to_string()
            } else {
                format!("{} or {}", s.required, s.params.len())
            };
            let plural = if wanted == "1" { "" } else { "s" };
            return Err(self.error(
                range,
                format!(
                    "`{name}` takes {wanted} argument{plural}, but is given {}",
                    args.len()
                ),
                format!("write `{}`", s.usage.replace("` / `", "` or `")),
            ));
        }
        for (i, a) in args.iter().enumerate() {
            let wants_lambda = func.param(i).is_some_and(Param::is_lambda);
            let is_lambda = matches!(a.kind, ExprKind::Lambda { .. });
            if wants_lambda && !is_lambda {
                return Err(self.error(
                    a.range.clone(),
                    format!("`{name}` needs a lambda as argument {}", i + 1),
                    format!("write `{}`", s.usage),
                ));
            }
        }
        self.node(
            ExprKind::Call {
                func,
                name: name_range,
                args,
            },
            range,
        )
    }

    fn lambda(&mut self, allowed: bool) -> Result<Expr, ExprError> {
        let t = self.bump();
        let Tok::Name(param) = t.tok else {
            return Err(self.unexpected("a name", "write `x => …`"));
        };
        if !allowed {
            return Err(self.error(
                t.range.start..self.peek().range.end,
                format!(
                    "a lambda `{param} => …` is only allowed as an argument of {}",
                    Func::lambda_takers().join("/")
                ),
                "write e.g. `filter(steps.song.outputs.clips, c => c.duration > 90)`",
            ));
        }
        if matches!(param.as_str(), "true" | "false" | "null") || Func::by_name(&param).is_some() {
            return Err(self.error(
                t.range,
                format!("`{param}` cannot name a lambda parameter"),
                "use a short name such as `x` or `c`",
            ));
        }
        self.bump();
        self.enter(t.range.clone())?;
        self.params.push(param.clone());
        let body = self.expr(false);
        self.params.pop();
        let body = body?;
        self.depth -= 1;
        let range = t.range.start..body.range.end;
        self.node(
            ExprKind::Lambda {
                param,
                body: Box::new(body),
            },
            range,
        )
    }
}

/// The `&'static str` of a punctuation token as written.
fn punct_static(p: &str) -> &'static str {
    PUNCTS.iter().find(|q| **q == p).copied().unwrap_or("")
}

#[cfg(test)]
mod tests;
