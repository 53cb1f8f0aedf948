//! Diagnostics: what is wrong, where, and how to fix it.
//!
//! Every problem found before a run (YAML syntax, unknown keys, bad
//! references, cycles, model limits, malformed matrix files, …) becomes one
//! `Diagnostic` with a stable code, a position in a named source, a message
//! and a `help:` line. They are collected, sorted by position and rendered by
//! one of three renderers: human (source line with a caret), JSON, or GitHub
//! workflow annotations.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use serde::Serialize;

use crate::span::Span;

/// A named text that diagnostics point into: a manifest or a matrix file.
#[derive(Debug, PartialEq, Eq)]
pub struct Source {
    pub name: String,
    pub text: Arc<String>,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Arc<Source> {
        Arc::new(Source {
            name: name.into(),
            text: Arc::new(text.into()),
        })
    }
}

macro_rules! codes {
    ($($variant:ident = $name:literal: $doc:literal),* $(,)?) => {
        /// The stable identity of a kind of problem.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        pub enum Code { $( #[doc = $doc] #[serde(rename = $name)] $variant, )* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $name,)* }
            }
            pub fn describe(self) -> &'static str {
                match self { $(Code::$variant => $doc,)* }
            }
        }
    };
}

codes! {
    Io = "io": "a file could not be read",
    YamlSyntax = "yaml-syntax": "the file is not valid YAML",
    YamlLimit = "yaml-limit": "YAML nested too deeply, or aliases that expand too far",
    MultipleDocuments = "multiple-documents": "a file with more than one YAML document",
    DuplicateKey = "duplicate-key": "a key appears twice in one mapping",
    DuplicateStep = "duplicate-step": "two steps have the same id",
    UnknownKey = "unknown-key": "a key that this place does not accept",
    MissingField = "missing-field": "a required field is absent",
    InvalidType = "invalid-type": "a value of the wrong type",
    UnsupportedVersion = "unsupported-version": "a manifest version this sonicflow does not read",
    InvalidStepId = "invalid-step-id": "a step id that cannot be referenced",
    UnknownAction = "unknown-action": "an action that does not exist",
    ExpressionSyntax = "expression-syntax": "a malformed `${{ … }}` expression",
    UnknownStep = "unknown-step": "a reference or `needs` entry naming no step",
    UnknownOutput = "unknown-output": "a reference to an output field the step does not have",
    InvalidReference = "invalid-reference": "a reference that does not fit the value it points at",
    UnknownInput = "unknown-input": "a reference to an input that is not declared",
    MissingInput = "missing-input": "an input without a default and without a value",
    UnknownMatrixColumn = "unknown-matrix-column": "a reference to a column the matrix does not have",
    MatrixFile = "matrix-file": "a matrix file that cannot be read or is malformed",
    MatrixKey = "matrix-key": "a matrix key column that is missing or not unique",
    NoMatrix = "no-matrix": "a `matrix` reference in a pipeline without a matrix",
    SecretEnv = "secret-env": "an `env` reference to what looks like a secret",
    Cycle = "cycle": "steps that depend on each other in a loop",
    ForEachNotList = "for-each-not-list": "`for_each` over something that is not a list",
    KeyField = "key-field": "a `key:` that names no field of the `for_each` elements",
    ItemOutsideForEach = "item-outside-for-each": "`item` used in a step without `for_each`",
    AmbiguousFanOut = "ambiguous-fan-out": "a step that references two unrelated fanned-out steps",
    PerPipeline = "per-pipeline": "a `per: pipeline` step reading `matrix`, or a per-row step without `[*]`",
    NothingToCollect = "nothing-to-collect": "a fan-in (`steps.<id>.outputs[*]`) over a step that does not fan out",
    TypeMismatch = "type-mismatch": "a value whose type does not fit the field",
    RequiredField = "required-field": "a field this task type needs",
    ConflictingFields = "conflicting-fields": "fields that cannot be used together",
    TooLong = "too-long": "a text longer than the model allows",
    OutOfRange = "out-of-range": "a number outside its allowed range",
    InvalidValue = "invalid-value": "a value that is not one of the allowed ones",
    UnknownModel = "unknown-model": "an `mv` model that is not known",
    UnsupportedByModel = "unsupported-by-model": "a field the chosen model does not support",
    ClipProvenance = "clip-provenance": "a clip from the wrong kind of source for this action",
    MashupClips = "mashup-clips": "a mashup that does not take exactly two clips",
    Prices = "prices": "a price table or override that cannot be used",
    UnsetEnv = "unset-env": "an `env` reference to a variable that is not set",
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A secondary place worth showing, e.g. the first of two duplicate keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub span: Span,
    pub label: String,
}

/// Whether a problem stops the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Severity {
    #[default]
    Error,
    /// Said, but not a reason to fail: e.g. a value that `validate` cannot
    /// know but a run will be given.
    Warning,
}

/// One problem, with where it is and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    pub source: Arc<Source>,
    pub span: Span,
    pub label: Option<String>,
    pub help: Option<String>,
    pub notes: Vec<Note>,
}

impl Diagnostic {
    pub fn new(code: Code, source: &Arc<Source>, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: bounded(message.into()),
            source: Arc::clone(source),
            span,
            label: None,
            help: None,
            notes: Vec::new(),
        }
    }

    /// The same problem as a warning.
    #[must_use]
    pub fn warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    #[must_use]
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(bounded(label.into()));
        self
    }

    #[must_use]
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(bounded(help.into()));
        self
    }

    #[must_use]
    pub fn help_opt(mut self, help: Option<String>) -> Self {
        self.help = help.map(bounded);
        self
    }

    #[must_use]
    pub fn note(mut self, span: Span, label: impl Into<String>) -> Self {
        self.notes.push(Note {
            span,
            label: bounded(label.into()),
        });
        self
    }

    /// `file:line:col`
    pub fn location(&self) -> String {
        format!("{}:{}:{}", self.source.name, self.span.line, self.span.col)
    }
}

/// Characters of a message, label or help line kept at most: they may
/// quote what the manifest says, and a manifest may say a lot.
pub const MESSAGE_MAX: usize = 400;

/// `text` cut to `MESSAGE_MAX` characters, with an ellipsis when cut.
fn bounded(text: String) -> String {
    match text.char_indices().nth(MESSAGE_MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// A `help:` line suggesting `candidate` for a misspelled name, if one is close.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    crate::suggest::did_you_mean(name, candidates).map(|s| format!("did you mean `{s}`?"))
}

/// Sorts by file, then position, then code, and drops exact repeats.
pub fn sort(diagnostics: &mut Vec<Diagnostic>) {
    diagnostics.sort_by(|a, b| {
        (&a.source.name, a.span.start, a.code, &a.message).cmp(&(
            &b.source.name,
            b.span.start,
            b.code,
            &b.message,
        ))
    });
    diagnostics.dedup_by(|a, b| {
        a.code == b.code
            && a.span == b.span
            && a.message == b.message
            && a.source.name == b.source.name
    });
}

/// How diagnostics are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The source line with a caret under the problem, and a `help:` line.
    Human,
    /// One JSON document with every diagnostic.
    Json,
    /// GitHub Actions workflow commands (`::error file=…`), one per line.
    Github,
}

impl Format {
    /// How a command printing its result in `output` prints its problems:
    /// Markdown goes with the human rendering.
    pub fn for_output(output: crate::format::OutputFormat) -> Format {
        use crate::format::OutputFormat;
        match output {
            OutputFormat::Human | OutputFormat::Markdown => Format::Human,
            OutputFormat::Json => Format::Json,
            OutputFormat::Github => Format::Github,
        }
    }
}

/// Renders every diagnostic in the chosen format.
pub fn render(diagnostics: &[Diagnostic], format: Format, color: bool) -> String {
    match format {
        Format::Human => render_human(diagnostics, color),
        Format::Json => render_json(diagnostics),
        Format::Github => render_github(diagnostics),
    }
}

fn render_human(diagnostics: &[Diagnostic], color: bool) -> String {
    use miette::{GraphicalReportHandler, GraphicalTheme};
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_links(false);
    let mut out = String::new();
    for d in diagnostics {
        let view = View::of(d);
        let report = Rendered {
            diagnostic: d,
            shown: Shown {
                name: d.source.name.clone(),
                text: Arc::clone(&view.text),
                primary: view.primary,
                position: view.windowed.then_some((d.span.line, d.span.col)),
            },
            view,
        };
        if handler.render_report(&mut out, &report).is_err() {
            let _ = writeln!(out, "  × {}", d.message);
        }
        out.push('\n');
    }
    let _ = writeln!(out, "{}", count(diagnostics));
    out
}

/// `2 problems found`, `1 warning`, or `2 problems found and 1 warning`.
fn count(diagnostics: &[Diagnostic]) -> String {
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    match (errors, warnings) {
        (e, 0) => format!("{e} problem{} found", plural(e)),
        (0, w) => format!("{w} warning{}", plural(w)),
        (e, w) => format!(
            "{e} problem{} found and {w} warning{}",
            plural(e),
            plural(w)
        ),
    }
}

/// Adapts a `Diagnostic` to miette's renderer.
struct Rendered<'a> {
    diagnostic: &'a Diagnostic,
    shown: Shown,
    view: View,
}

/// The text a snippet is cut from, named; when it is a window of the
/// source, the header still gives the problem's own line and column.
struct Shown {
    name: String,
    text: Arc<String>,
    primary: (usize, usize),
    /// The primary span's 1-based line and column in the real source.
    position: Option<(u32, u32)>,
}

impl miette::SourceCode for Shown {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let inner = self.text.as_str().read_span(span, before, after)?;
        let (line, column) = match self.position {
            Some((line, col))
                if before == 0 && after == 0 && (span.offset(), span.len()) == self.primary =>
            {
                (
                    line.saturating_sub(1) as usize,
                    col.saturating_sub(1) as usize,
                )
            }
            _ => (inner.line(), inner.column()),
        };
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            *inner.span(),
            line,
            column,
            inner.line_count(),
        )))
    }
}

/// Characters of one source line a snippet shows at most, and how many of
/// them come before the problem: a manifest with one enormous line must not
/// print it whole.
pub const SNIPPET_WIDTH: usize = 160;
const SNIPPET_BEFORE: usize = 60;

/// What a snippet shows of a diagnostic's source: the text itself, or, when
/// a line to show is longer than `SNIPPET_WIDTH`, a copy holding only the
/// lines shown, each cut to a window around the problem, with the same line
/// numbers; and the spans (start, length) in that text.
struct View {
    text: Arc<String>,
    /// Whether `text` is a cut-down copy.
    windowed: bool,
    primary: (usize, usize),
    notes: Vec<(usize, usize)>,
}

/// One line a snippet shows: its bounds in the source and the byte the window keeps in sight.
struct Line {
    start: usize,
    end: usize,
    anchor: usize,
}

impl View {
    fn of(d: &Diagnostic) -> View {
        let text = &d.source.text;
        let clamp = |s: &Span| {
            let start = floor_boundary(text, s.start.min(text.len()));
            let end = floor_boundary(text, s.end.clamp(start, text.len()));
            (start, end)
        };
        let spans: Vec<(usize, usize)> = std::iter::once(&d.span)
            .chain(d.notes.iter().map(|n| &n.span))
            .map(clamp)
            .collect();
        let mut lines: Vec<Line> = Vec::new();
        for &(start, _) in &spans {
            let (ls, le) = line_bounds(text, start);
            let column = start - ls;
            lines.push(Line {
                start: ls,
                end: le,
                anchor: start,
            });
            if ls > 0 {
                let (ps, pe) = line_bounds(text, ls - 1);
                lines.push(Line {
                    start: ps,
                    end: pe,
                    anchor: floor_boundary(text, (ps + column).min(pe)),
                });
            }
            if le < text.len() {
                let (ns, ne) = line_bounds(text, le + 1);
                lines.push(Line {
                    start: ns,
                    end: ne,
                    anchor: floor_boundary(text, (ns + column).min(ne)),
                });
            }
        }
        let unchanged = View {
            text: Arc::clone(text),
            windowed: false,
            primary: (spans[0].0, spans[0].1 - spans[0].0),
            notes: spans[1..].iter().map(|&(s, e)| (s, e - s)).collect(),
        };
        if lines.iter().all(|l| l.end - l.start <= SNIPPET_WIDTH) {
            return unchanged;
        }
        // Lines of a span come first, so they keep their own anchor.
        let mut seen = std::collections::HashSet::new();
        lines.retain(|l| seen.insert(l.start));
        lines.sort_by_key(|l| l.start);
        let mut out = String::new();
        let mut line_no = 1;
        let mut windows: Vec<(usize, usize, usize, usize)> = Vec::new();
        let mut counted = 0;
        for l in &lines {
            line_no += text[counted..l.start].matches('\n').count();
            counted = l.start;
            let have = out.matches('\n').count() + 1;
            out.extend(std::iter::repeat_n('\n', line_no.saturating_sub(have)));
            let (ws, we) = window(text, l);
            if ws > l.start {
                out.push('…');
            }
            windows.push((ws, we, out.len(), l.start));
            out.push_str(&text[ws..we]);
            if we < l.end {
                out.push('…');
            }
        }
        let map = |offset: usize, line_start: usize| -> Option<usize> {
            let &(ws, we, at, _) = windows.iter().find(|w| w.3 == line_start)?;
            Some(at + offset.clamp(ws, we) - ws)
        };
        let mapped = |&(s, e): &(usize, usize)| {
            let (ls, le) = line_bounds(text, s);
            let start = map(s, ls).unwrap_or(0);
            let end = map(e.min(le), ls).unwrap_or(start).max(start);
            (start, end - start)
        };
        View {
            primary: mapped(&spans[0]),
            notes: spans[1..].iter().map(mapped).collect(),
            text: Arc::new(out),
            windowed: true,
        }
    }
}

/// The byte range of `line` a snippet keeps: `SNIPPET_WIDTH` characters,
/// `SNIPPET_BEFORE` of them before the anchor where the line allows.
fn window(text: &str, line: &Line) -> (usize, usize) {
    let before = &text[line.start..line.anchor];
    let start = before
        .char_indices()
        .rev()
        .nth(SNIPPET_BEFORE.saturating_sub(1))
        .map_or(line.start, |(i, _)| line.start + i);
    let rest = &text[start..line.end];
    let end = rest
        .char_indices()
        .nth(SNIPPET_WIDTH)
        .map_or(line.end, |(i, _)| start + i);
    (start, end)
}

/// The start and end (before its newline) of the line holding byte `offset`.
fn line_bounds(text: &str, offset: usize) -> (usize, usize) {
    let offset = floor_boundary(text, offset.min(text.len()));
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    (start, end)
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl fmt::Debug for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diagnostic.message)
    }
}

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.diagnostic;
        if d.source.text.is_empty() {
            write!(f, "{}: {}", d.source.name, d.message)
        } else {
            f.write_str(&d.message)
        }
    }
}

impl std::error::Error for Rendered<'_> {}

impl miette::Diagnostic for Rendered<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.diagnostic.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diagnostic.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.diagnostic
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        if self.diagnostic.source.text.is_empty() {
            None
        } else {
            Some(&self.shown)
        }
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let d = self.diagnostic;
        if d.source.text.is_empty() {
            return None;
        }
        let primary =
            miette::LabeledSpan::new_primary_with_span(d.label.clone(), self.view.primary);
        let notes = d
            .notes
            .iter()
            .zip(&self.view.notes)
            .map(|(n, &at)| miette::LabeledSpan::new_with_span(Some(n.label.clone()), at));
        Some(Box::new(std::iter::once(primary).chain(notes)))
    }
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    code: &'static str,
    severity: &'static str,
    message: &'a str,
    file: &'a str,
    line: u32,
    column: u32,
    end_line: u32,
    end_column: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    help: Option<&'a str>,
}

fn end_position(d: &Diagnostic) -> (u32, u32) {
    let end = Span::locate(&d.source.text, d.span.end, 0);
    if d.source.text.is_empty() {
        (d.span.line, d.span.col)
    } else {
        (end.line, end.col)
    }
}

fn render_json(diagnostics: &[Diagnostic]) -> String {
    let items: Vec<_> = diagnostics
        .iter()
        .map(|d| {
            let (end_line, end_column) = end_position(d);
            JsonDiagnostic {
                code: d.code.as_str(),
                severity: match d.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                },
                message: &d.message,
                file: &d.source.name,
                line: d.span.line,
                column: d.span.col,
                end_line,
                end_column,
                label: d.label.as_deref(),
                help: d.help.as_deref(),
            }
        })
        .collect();
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    let doc = serde_json::json!({ "errors": errors, "warnings": warnings, "diagnostics": items });
    let mut out = serde_json::to_string_pretty(&doc).unwrap_or_default();
    out.push('\n');
    out
}

fn render_github(diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        let (end_line, end_column) = end_position(d);
        let mut message = d.message.clone();
        if let Some(help) = &d.help {
            message.push_str("\nhelp: ");
            message.push_str(help);
        }
        let _ = writeln!(
            out,
            "::{} file={},line={},col={},endLine={},endColumn={},title={}::{}",
            match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            },
            escape_property(&d.source.name),
            d.span.line,
            d.span.col,
            end_line,
            end_column,
            escape_property(d.code.as_str()),
            escape_data(&message)
        );
    }
    out
}

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Diagnostic> {
        let src = Source::new("p.yaml", "steps:\n  a:\n    action: uplod\n");
        let span = Span::locate(&src.text, 24, 5);
        vec![
            Diagnostic::new(Code::UnknownAction, &src, span, "unknown action `uplod`")
                .label("not an action")
                .help("did you mean `upload`?"),
        ]
    }

    #[test]
    fn human_rendering_points_at_the_token() {
        let out = render(&sample(), Format::Human, false);
        assert!(out.contains("unknown-action"), "{out}");
        assert!(out.contains("[p.yaml:3:13]"), "{out}");
        assert!(out.contains("action: uplod"), "{out}");
        assert!(out.contains("help: did you mean `upload`?"), "{out}");
        assert!(out.ends_with("1 problem found\n"), "{out}");
    }

    #[test]
    fn github_and_json_rendering() {
        let gh = render(&sample(), Format::Github, false);
        assert_eq!(
            gh,
            "::error file=p.yaml,line=3,col=13,endLine=3,endColumn=18,title=unknown-action::unknown action `uplod`%0Ahelp: did you mean `upload`?\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(&sample(), Format::Json, false)).unwrap_or_default();
        assert_eq!(json["errors"], 1);
        assert_eq!(json["diagnostics"][0]["code"], "unknown-action");
        assert_eq!(json["diagnostics"][0]["column"], 13);
    }

    #[test]
    fn a_long_line_is_shown_as_a_window_around_the_problem() {
        let long = "x".repeat(1_000_000);
        let text = format!("a: 1\nb: \"{long}\", bad: 2\nc: 3\n");
        let src = Source::new("p.yaml", text.clone());
        let at = text.find("bad").unwrap();
        let d = Diagnostic::new(
            Code::UnknownKey,
            &src,
            Span::locate(&text, at, 3),
            "unknown key `bad`",
        )
        .label("not allowed here")
        .note(Span::locate(&text, 6, 1), "this opens it");
        let out = render(&[d], Format::Human, false);
        assert!(out.len() < 2_000, "{} bytes", out.len());
        assert!(out.contains(&format!("[p.yaml:2:{}]", at - 4)), "{out}");
        assert!(out.contains("…xxx"), "{out}");
        assert!(out.contains("\", bad: 2"), "{out}");
        assert!(out.contains("not allowed here"), "{out}");
        assert!(out.contains(" 3 │ c: 3"), "{out}");
    }

    #[test]
    fn messages_quoting_the_manifest_are_bounded() {
        let src = Source::new("p.yaml", "a: 1\n");
        let d = Diagnostic::new(
            Code::UnknownKey,
            &src,
            Span::locate("a: 1\n", 0, 1),
            "k".repeat(10_000),
        )
        .help("h".repeat(10_000));
        assert_eq!(d.message.chars().count(), MESSAGE_MAX + 1);
        assert!(d.help.unwrap().ends_with('…'));
    }

    #[test]
    fn codes_are_unique() {
        let mut names: Vec<_> = Code::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Code::ALL.len());
    }
}
