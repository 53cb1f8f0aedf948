//! Matrix rows: written inline in the manifest, or read from a CSV file
//! (header row first) or a JSONL file (one object per line) beside it.
//!
//! Problems in a matrix file are reported against that file, with its own
//! line numbers, so `validate` points at the offending row.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;

use super::spec::MatrixSpec;
use super::yaml::Node;
use crate::diag::{Code, Diagnostic, Source};
use crate::span::{LineIndex, Span};

/// The rows of a matrix and where they were read from.
#[derive(Debug, Clone)]
pub struct MatrixRows {
    pub key: String,
    /// Column names, in first-seen order.
    pub columns: Vec<String>,
    pub rows: Vec<MatrixRow>,
    /// The manifest (inline rows) or the matrix file.
    pub source: Arc<Source>,
    /// The matrix file read, if the rows came from one.
    pub file: Option<PathBuf>,
}

/// What decides where a matrix's rows come from besides the manifest.
#[derive(Debug, Clone, Copy, Default)]
pub struct Origin<'a> {
    /// Input values (defaults, then `--input`) that `file: ${{ inputs.x }}` reads;
    /// `None` for an input that has no value.
    pub inputs: Option<&'a IndexMap<String, Option<serde_json::Value>>>,
    /// `--matrix FILE`, which wins over `file` and `rows`.
    pub file: Option<&'a Path>,
    /// Reads the manifest's own `file` instead of the disk.
    pub files: Option<&'a FileReader>,
}

/// A function from a file's path to its text.
pub type ReadText = dyn Fn(&Path) -> std::io::Result<String> + Send + Sync;

/// Reads a matrix file named by a manifest that is not (only) on disk.
#[derive(Clone)]
pub struct FileReader(pub Arc<ReadText>);

impl std::fmt::Debug for FileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileReader")
    }
}

#[derive(Debug, Clone)]
pub struct MatrixRow {
    /// The value of the key column, naming this instance.
    pub key: String,
    pub values: IndexMap<String, serde_json::Value>,
    /// Where the row stands in `MatrixRows::source`.
    pub span: Span,
    /// Where each cell's value stands, by column (where it could be found).
    pub cells: IndexMap<String, Span>,
}

/// Reads the rows of `spec`; problems go to `out`. `None` if no row could
/// be read (or, for a `file` from an input without a value, not yet).
pub fn read(
    spec: &MatrixSpec,
    node: Option<&Node>,
    manifest: &Arc<Source>,
    base: &Path,
    origin: Origin<'_>,
    out: &mut Vec<Diagnostic>,
) -> Option<MatrixRows> {
    let at = |key: &str| {
        node.and_then(|n| n.get(key))
            .or(node)
            .map_or(Span::default(), |n| n.span)
    };
    let (source, rows) = match (&spec.rows, &spec.file, origin.file) {
        (_, _, Some(given)) => {
            let text = given.display().to_string();
            let flag = Source::new("--matrix", text.clone());
            let span = Span::locate(&text, 0, text.len());
            read_file(given, &span, &flag, None, out)?
        }
        (Some(_), Some(_), None) => {
            out.push(
                Diagnostic::new(
                    Code::ConflictingFields,
                    manifest,
                    at("file"),
                    "`matrix` has both `rows` and `file`",
                )
                .help("keep one: inline `rows`, or a `file` beside the manifest"),
            );
            return None;
        }
        (None, None, None) => {
            out.push(
                Diagnostic::new(
                    Code::MissingField,
                    manifest,
                    at("key"),
                    "`matrix` needs `rows` or `file`",
                )
                .help("add `rows:` with a list of mappings, or `file: prompts.csv`"),
            );
            return None;
        }
        (Some(rows), None, None) => (Arc::clone(manifest), inline_rows(rows, node)),
        (None, Some(file), None) => {
            let span = at("file");
            let file = file_name(file, span, manifest, origin.inputs, out)?;
            read_file(&base.join(file), &span, manifest, origin.files, out)?
        }
    };
    let mut columns: Vec<String> = Vec::new();
    for row in &rows {
        for name in row.values.keys() {
            if !columns.contains(name) {
                columns.push(name.clone());
            }
        }
    }
    let rows = keyed_rows(spec, rows, &source, manifest, at("key"), out)?;
    let file = (!Arc::ptr_eq(&source, manifest)).then(|| PathBuf::from(&source.name));
    Some(MatrixRows {
        key: spec.key.clone(),
        columns,
        rows,
        source,
        file,
    })
}

/// The diagnostic for `--matrix FILE` given to a manifest without `matrix:`.
pub fn no_matrix_block(given: &Path) -> Diagnostic {
    let text = given.display().to_string();
    let flag = Source::new("--matrix", text.clone());
    Diagnostic::new(
        Code::NoMatrix,
        &flag,
        Span::locate(&text, 0, text.len()),
        "`--matrix` is given, but the pipeline has no `matrix:`",
    )
    .label("these rows")
    .help("add `matrix: { key: <column> }` to the manifest, naming the column whose value names each row")
}

/// The matrix file `file` names: itself, or the input value its
/// `${{ inputs.<name> }}` expressions give. Rows are needed before anything
/// runs, so nothing else may be read; `None` when the file cannot be named
/// (yet: an input without a value is reported by the plan).
fn file_name(
    file: &str,
    at: Span,
    manifest: &Arc<Source>,
    inputs: Option<&IndexMap<String, Option<serde_json::Value>>>,
    out: &mut Vec<Diagnostic>,
) -> Option<String> {
    if !crate::expr::has_expression(file) {
        return Some(file.to_owned());
    }
    let template = match crate::expr::parse_template(file) {
        Ok(t) => t,
        Err(e) => {
            out.push(
                Diagnostic::new(Code::ExpressionSyntax, manifest, at, e.message)
                    .label("in this file name")
                    .help(e.help),
            );
            return None;
        }
    };
    let mut ok = true;
    for r in template.references() {
        if r.context != crate::expr::Context::Inputs {
            ok = false;
            out.push(
                Diagnostic::new(
                    Code::MatrixFile,
                    manifest,
                    at,
                    format!("`matrix.file` can read inputs only, not `{r}`"),
                )
                .label("read before anything runs")
                .help("declare an input (`inputs: { prompts: { default: prompts.csv } }`) and write `file: ${{ inputs.prompts }}`, or pass `--matrix FILE`"),
            );
            continue;
        }
        let Some(inputs) = inputs else { continue };
        let name = r.field(0).unwrap_or_default();
        if !inputs.contains_key(name) {
            ok = false;
            let help = crate::diag::did_you_mean(name, inputs.keys().map(String::as_str))
                .unwrap_or_else(|| format!("declare it under `inputs:`, e.g. `inputs: {{ {name}: {{ default: rows.csv }} }}`"));
            out.push(
                Diagnostic::new(
                    Code::UnknownInput,
                    manifest,
                    at,
                    format!("unknown input `{name}` in `matrix.file`"),
                )
                .help(help),
            );
        }
    }
    let inputs = inputs.filter(|_| ok)?;
    let scope = InputScope(inputs);
    let value =
        crate::plan::resolve::resolve(&crate::plan::resolve::FieldValue::Tpl(template), &scope)?;
    match value {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s),
        other => {
            out.push(
                Diagnostic::new(
                    Code::MatrixFile,
                    manifest,
                    at,
                    format!("`matrix.file` gives {other}, not a file name"),
                )
                .help("give the input a file name, e.g. `--input prompts=rows.csv`"),
            );
            None
        }
    }
}

/// Inputs alone, for naming the matrix file.
struct InputScope<'a>(&'a IndexMap<String, Option<serde_json::Value>>);

impl crate::plan::resolve::Scope for InputScope<'_> {
    fn root(&self, r: &crate::expr::Reference) -> Option<(serde_json::Value, usize)> {
        match r.context {
            crate::expr::Context::Inputs => Some((self.0.get(r.field(0)?)?.clone()?, 1)),
            _ => None,
        }
    }
}

struct RawRow {
    values: IndexMap<String, serde_json::Value>,
    span: Span,
    cells: IndexMap<String, Span>,
}

fn inline_rows(rows: &[IndexMap<String, serde_json::Value>], node: Option<&Node>) -> Vec<RawRow> {
    let nodes = node.and_then(|n| n.get("rows"));
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            let node = nodes.and_then(|n| match &n.kind {
                super::yaml::NodeKind::Seq(items) => items.get(i),
                _ => None,
            });
            let cells = node
                .and_then(Node::entries)
                .map(|entries| {
                    entries
                        .iter()
                        .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.span)))
                        .collect()
                })
                .unwrap_or_default();
            RawRow {
                values: row.clone(),
                span: node.map(|n| n.span).unwrap_or_default(),
                cells,
            }
        })
        .collect()
}

/// Reads the matrix file `path`; `at` in `named_in` is where it is named
/// (the manifest's `file`, or `--matrix`).
fn read_file(
    path: &Path,
    at: &Span,
    named_in: &Arc<Source>,
    reader: Option<&FileReader>,
    out: &mut Vec<Diagnostic>,
) -> Option<(Arc<Source>, Vec<RawRow>)> {
    let manifest = named_in;
    let file = path.display().to_string();
    let read = match reader {
        Some(reader) => (reader.0)(path),
        None => std::fs::read_to_string(path),
    };
    let text = match read {
        Ok(t) => t,
        Err(e) => {
            out.push(
                Diagnostic::new(
                    Code::MatrixFile,
                    manifest,
                    *at,
                    format!("cannot read matrix file `{}`: {e}", path.display()),
                )
                .label("this file")
                .help(if manifest.name == "--matrix" {
                    "the path is relative to the current folder"
                } else {
                    "the path is relative to the manifest's folder"
                }),
            );
            return None;
        }
    };
    let name = display_path(path);
    let source = Source::new(name, text);
    let before = out.len();
    let rows = if file.ends_with(".jsonl") || file.ends_with(".ndjson") {
        jsonl_rows(&source, out)
    } else if file.ends_with(".csv") {
        csv_rows(&source, out)
    } else {
        out.push(
            Diagnostic::new(
                Code::MatrixFile,
                manifest,
                *at,
                format!("matrix file `{file}` is neither `.csv` nor `.jsonl`"),
            )
            .help("use a CSV file with a header row, or JSON Lines with one object per line"),
        );
        return None;
    };
    if rows.is_empty() && out.len() == before {
        out.push(
            Diagnostic::new(
                Code::MatrixFile,
                &source,
                Span::locate(&source.text, 0, 0),
                "the matrix file has no rows",
            )
            .help("add at least one row below the header"),
        );
    }
    (out.len() == before).then_some((source, rows))
}

fn display_path(path: &Path) -> String {
    let s = path.display().to_string();
    s.strip_prefix("./").unwrap_or(&s).to_owned()
}

fn csv_rows(source: &Arc<Source>, out: &mut Vec<Diagnostic>) -> Vec<RawRow> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::Headers)
        .from_reader(source.text.as_bytes());
    let headers = match reader.headers() {
        Ok(h) => h.iter().map(str::to_owned).collect::<Vec<_>>(),
        Err(e) => {
            out.push(csv_error(source, &e));
            return Vec::new();
        }
    };
    if headers.iter().all(String::is_empty) {
        out.push(
            Diagnostic::new(
                Code::MatrixFile,
                source,
                Span::locate(&source.text, 0, 1),
                "the CSV file has no header row",
            )
            .help("start the file with a line of column names, e.g. `id,idea`"),
        );
        return Vec::new();
    }
    let lines = LineIndex::new(&source.text);
    let mut rows = Vec::new();
    for record in reader.records() {
        match record {
            Ok(record) => {
                let offset = record.position().map_or(0, |p| p.byte() as usize);
                let len = source.text[offset.min(source.text.len())..]
                    .find('\n')
                    .unwrap_or(source.text.len() - offset.min(source.text.len()));
                let values = headers
                    .iter()
                    .cloned()
                    .zip(record.iter().map(cell))
                    .collect();
                let cells = headers
                    .iter()
                    .cloned()
                    .zip(
                        csv_cells(&source.text, offset)
                            .into_iter()
                            .map(|(start, end)| lines.span(&source.text, start, end - start)),
                    )
                    .collect();
                rows.push(RawRow {
                    values,
                    span: lines.span(&source.text, offset, len),
                    cells,
                });
            }
            Err(e) => out.push(csv_error(source, &e)),
        }
    }
    rows
}

fn csv_error(source: &Arc<Source>, e: &csv::Error) -> Diagnostic {
    let offset = e.position().map_or(0, |p| p.byte() as usize);
    let len = source.text[offset.min(source.text.len())..]
        .find('\n')
        .unwrap_or(1);
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len,
            len: found,
            ..
        } => {
            format!("this row has {found} fields, but the header has {expected_len}")
        }
        _ => format!("malformed CSV: {e}"),
    };
    Diagnostic::new(
        Code::MatrixFile,
        source,
        Span::locate(&source.text, offset, len),
        message,
    )
    .label("this row")
    .help("every row needs one value per header column; quote values that contain commas")
}

/// The byte ranges of the cells of the CSV record starting at `offset`
/// (quotes included), for pointing at one of them.
fn csv_cells(text: &str, offset: usize) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut cells = Vec::new();
    let mut start = offset;
    let mut quoted = false;
    let mut i = offset;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                cells.push((start, i));
                start = i + 1;
            }
            b'\n' | b'\r' if !quoted => break,
            _ => {}
        }
        i += 1;
    }
    cells.push((start, i));
    cells
}

/// A CSV cell: numbers and booleans keep their type, everything else is text.
fn cell(text: &str) -> serde_json::Value {
    let trimmed = text.trim();
    if let Ok(i) = trimmed.parse::<i64>() {
        return i.into();
    }
    if trimmed.contains('.')
        && let Ok(f) = trimmed.parse::<f64>()
        && f.is_finite()
    {
        return f.into();
    }
    match trimmed {
        "true" => true.into(),
        "false" => false.into(),
        _ => text.into(),
    }
}

fn jsonl_rows(source: &Arc<Source>, out: &mut Vec<Diagnostic>) -> Vec<RawRow> {
    let lines = LineIndex::new(&source.text);
    let mut rows = Vec::new();
    let mut offset = 0;
    for line in source.text.split_inclusive('\n') {
        let content = line.trim_end_matches(['\n', '\r']);
        let span = lines.span(&source.text, offset, content.len().max(1));
        offset += line.len();
        if content.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<serde_json::Value>(content) {
            Ok(serde_json::Value::Object(map)) => {
                let start = span.start;
                let cells = json_cells(content)
                    .into_iter()
                    .map(|(key, (s, e))| (key, lines.span(&source.text, start + s, e - s)))
                    .collect();
                rows.push(RawRow {
                    values: map.into_iter().collect(),
                    span,
                    cells,
                });
            }
            Ok(other) => out.push(
                Diagnostic::new(
                    Code::MatrixFile,
                    source,
                    span,
                    format!(
                        "each line must be a JSON object, found {}",
                        json_type(&other)
                    ),
                )
                .help("write one object per line, e.g. `{\"id\": \"rain\", \"idea\": \"…\"}`"),
            ),
            Err(e) => {
                let col_span =
                    Span::locate(&source.text, span.start + e.column().saturating_sub(1), 1);
                out.push(
                    Diagnostic::new(
                        Code::MatrixFile,
                        source,
                        col_span,
                        format!("malformed JSON: {e}"),
                    )
                    .label("here")
                    .help("each line must be one complete JSON object"),
                );
            }
        }
    }
    rows
}

/// The byte range of each top-level value of the JSON object `line`, by
/// key, for pointing at one cell. `line` is valid JSON already.
fn json_cells(line: &str) -> Vec<(String, (usize, usize))> {
    let bytes = line.as_bytes();
    let mut cells = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    let mut key: Option<String> = None;
    let mut value_start: Option<usize> = None;
    let mut last_string: Option<String> = None;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                if depth == 1 && value_start.is_none() {
                    last_string = serde_json::from_str(line.get(start..=i).unwrap_or("")).ok();
                }
            }
            b':' if depth == 1 => {
                key = last_string.take();
                let mut j = i + 1;
                while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                    j += 1;
                }
                value_start = Some(j);
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' | b',' => {
                if depth == 1
                    && let (Some(k), Some(s)) = (key.take(), value_start.take())
                {
                    let end = line[..i].trim_end().len().max(s);
                    cells.push((k, (s, end)));
                }
                if bytes[i] != b',' {
                    depth = depth.saturating_sub(1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    cells
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Checks the key column: present in every row, a plain name, unique.
fn keyed_rows(
    spec: &MatrixSpec,
    rows: Vec<RawRow>,
    source: &Arc<Source>,
    manifest: &Arc<Source>,
    key_span: Span,
    out: &mut Vec<Diagnostic>,
) -> Option<Vec<MatrixRow>> {
    let mut seen: std::collections::HashMap<String, Span> = std::collections::HashMap::new();
    let mut result = Vec::with_capacity(rows.len());
    let mut ok = true;
    for RawRow {
        values,
        span,
        cells,
    } in rows
    {
        let key = match values.get(&spec.key) {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(_) => {
                ok = false;
                out.push(
                    Diagnostic::new(
                        Code::MatrixKey,
                        source,
                        span,
                        format!(
                            "the key column `{}` must be a non-empty text or number",
                            spec.key
                        ),
                    )
                    .help("give every row a short unique name in the key column"),
                );
                continue;
            }
            None => {
                ok = false;
                let columns: Vec<&str> = values.keys().map(String::as_str).collect();
                let d = if result.is_empty() && seen.is_empty() {
                    Diagnostic::new(
                        Code::MatrixKey,
                        manifest,
                        key_span,
                        format!("the matrix has no column `{}`", spec.key),
                    )
                    .label("key column")
                    .help_opt(
                        crate::diag::did_you_mean(&spec.key, columns.iter().copied())
                            .or_else(|| Some(format!("columns: {}", columns.join(", ")))),
                    )
                } else {
                    Diagnostic::new(
                        Code::MatrixKey,
                        source,
                        span,
                        format!("this row has no value in the key column `{}`", spec.key),
                    )
                    .help("every row needs a unique key")
                };
                out.push(d);
                continue;
            }
        };
        if let Some(first) = seen.get(&key) {
            ok = false;
            let mut d = Diagnostic::new(
                Code::MatrixKey,
                source,
                span,
                format!("matrix key `{key}` is used by more than one row"),
            )
            .label("again here")
            .help(format!(
                "keys name instances in plans and results, so each row needs its own `{}`",
                spec.key
            ));
            d = d.note(*first, "first here");
            out.push(d);
            continue;
        }
        seen.insert(key.clone(), span);
        result.push(MatrixRow {
            key,
            values,
            span,
            cells,
        });
    }
    ok.then_some(result)
}
