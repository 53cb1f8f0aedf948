//! Reading a manifest file into typed specs, collecting every problem.
//!
//! This is the only place that calls serde_yaml. The YAML is parsed once into
//! a spanned tree (`yaml.rs`); each part (the head, every step, every `with`
//! block) is then deserialized separately so one broken step does not hide the
//! problems of the others. When serde stops at a bad key or value, that entry
//! is reported, removed, and the part is deserialized again, so every bad key
//! of a block is reported at once.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;

use super::matrix::{self, MatrixRows};
use super::spec::{Manifest, ManifestSpec, Step, StepSpec};
use super::yaml::{self, Node, NodeKind};
use crate::action::Action;
use crate::diag::{Code, Diagnostic, Source};
use crate::span::Span;

/// A manifest as far as it could be typed, with everything found wrong so far.
#[derive(Debug)]
pub struct Loaded {
    pub source: Arc<Source>,
    pub root: Node,
    pub manifest: Manifest,
    /// Each step's `with` block after `defaults` were merged in, for positions.
    pub with_nodes: IndexMap<String, Node>,
    /// Steps whose keys could not be typed; references to them are not reported again.
    pub broken_steps: HashSet<String>,
    pub matrix: Option<MatrixRows>,
    pub diagnostics: Vec<Diagnostic>,
    /// Position of each step id in the `steps` mapping node, for constant-time lookups.
    step_positions: std::collections::HashMap<String, usize>,
}

impl Loaded {
    /// The key and value nodes of step `id`.
    pub fn step_entry(&self, id: &str) -> Option<&(Node, Node)> {
        let entries = self.root.get("steps")?.entries()?;
        entries.get(*self.step_positions.get(id)?)
    }
}

/// What the command line tells the loader: the inputs a matrix `file` may
/// name, and `--matrix FILE`.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--input name=value` pairs, in order.
    pub inputs: Vec<(String, String)>,
    /// `--matrix FILE`: the rows, instead of the manifest's `file` or `rows`.
    pub matrix: Option<PathBuf>,
    /// Where the manifest's own `matrix.file` is read from: the disk when
    /// `None`, else this reader (a manifest as it was at a git revision
    /// reads its matrix file at that revision too).
    pub files: Option<matrix::FileReader>,
}

/// Reads and loads `path`. `None` when the file cannot be read or is not YAML;
/// the diagnostics say why.
pub fn load_file(path: &Path) -> Result<Loaded, Vec<Diagnostic>> {
    load_file_with(path, &LoadOptions::default())
}

/// `load_file` with the command line's inputs and `--matrix`; `-` is the
/// manifest on stdin (read once, whoever asks again gets the same text),
/// its relative matrix file read from the current folder.
pub fn load_file_with(path: &Path, options: &LoadOptions) -> Result<Loaded, Vec<Diagnostic>> {
    let name = display_name(path);
    let text = read_manifest(path).map_err(|(message, help)| {
        let source = Source::new(name.clone(), String::new());
        vec![Diagnostic::new(Code::Io, &source, Span::default(), message).help(help)]
    })?;
    let base = match path.parent() {
        Some(parent) if !is_stdin(path) => parent,
        _ => Path::new(""),
    };
    load_str_with(name.as_str(), text, base, options)
}

/// Whether `path` is `-`, the manifest on stdin.
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// How diagnostics and summaries name the manifest at `path`.
pub fn display_name(path: &Path) -> String {
    if is_stdin(path) {
        "<stdin>".to_owned()
    } else {
        path.display().to_string()
    }
}

/// The most of a manifest read from stdin.
const MAX_STDIN_BYTES: u64 = 16 << 20;

/// The manifest's text, or what is wrong and how to fix it.
fn read_manifest(path: &Path) -> Result<String, (String, String)> {
    if is_stdin(path) {
        static STDIN: std::sync::OnceLock<Result<String, (String, String)>> =
            std::sync::OnceLock::new();
        return STDIN.get_or_init(read_stdin).clone();
    }
    if path.is_dir() {
        return Err((
            "this is a folder, not a manifest".to_owned(),
            format!(
                "name a manifest in it (`{}/….yaml`); `sonicflow validate {}` checks every manifest in a folder",
                path.display().to_string().trim_end_matches('/'),
                path.display()
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| {
        let help = match e.kind() {
            std::io::ErrorKind::NotFound => {
                "check the path; manifests are usually under `pipelines/`".to_owned()
            }
            std::io::ErrorKind::PermissionDenied => format!(
                "sonicflow may not read it: check its permissions (`ls -l {}`)",
                path.display()
            ),
            _ => "check the path and the disk".to_owned(),
        };
        (format!("cannot read the manifest: {e}"), help)
    })?;
    text_of(bytes)
}

fn read_stdin() -> Result<String, (String, String)> {
    use std::io::Read;
    let mut bytes = Vec::new();
    let read = std::io::stdin()
        .lock()
        .take(MAX_STDIN_BYTES + 1)
        .read_to_end(&mut bytes);
    if let Err(e) = read {
        return Err((
            format!("cannot read the manifest from stdin: {e}"),
            "pipe a manifest in (`cat pipeline.yaml | sonicflow validate -`) or name its file"
                .to_owned(),
        ));
    }
    if bytes.len() as u64 > MAX_STDIN_BYTES {
        return Err((
            format!(
                "the manifest on stdin is over {} MiB",
                MAX_STDIN_BYTES >> 20
            ),
            "a manifest is a short YAML file; keep large matrices in a CSV or JSONL `matrix.file`"
                .to_owned(),
        ));
    }
    text_of(bytes)
}

/// The bytes as text: a manifest is UTF-8 YAML, so anything else (an
/// image, an archive, a file in another encoding) is named as such.
fn text_of(bytes: Vec<u8>) -> Result<String, (String, String)> {
    if bytes.contains(&0) {
        return Err((
            "this is a binary file, not a YAML manifest".to_owned(),
            "check that this is the pipeline you meant: manifests are YAML text files".to_owned(),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        (
            format!("this is not UTF-8 text (byte {at} is not valid UTF-8)"),
            "save the manifest as UTF-8, or check that this is the pipeline you meant".to_owned(),
        )
    })
}

/// What a missing required key is best written with, where one value fits
/// every manifest.
fn example_value(field: &str) -> &'static str {
    match field {
        "version" => "1",
        _ => "…",
    }
}

/// Whether a YAML text holds nothing but blank lines and comments.
fn is_blank(text: &str) -> bool {
    text.lines().all(|line| {
        let line = line.trim();
        line.is_empty() || line.starts_with('#') || line == "---" || line == "..."
    })
}

/// Loads manifest text; `base` is the folder that relative matrix files are read from.
pub fn load_str(name: &str, text: String, base: &Path) -> Result<Loaded, Vec<Diagnostic>> {
    load_str_with(name, text, base, &LoadOptions::default())
}

/// `load_str` with the command line's inputs and `--matrix`.
pub fn load_str_with(
    name: &str,
    text: String,
    base: &Path,
    options: &LoadOptions,
) -> Result<Loaded, Vec<Diagnostic>> {
    let source = Source::new(name, text);
    let doc = yaml::parse(&source.text).map_err(|e| vec![refused(&source, &e)])?;
    let mut ctx = Ctx {
        source: Arc::clone(&source),
        diagnostics: Vec::new(),
    };
    ctx.report_duplicates(&doc.duplicates);
    let root = super::extension::strip(doc.root);
    if root.entries().is_none() && is_blank(&source.text) {
        ctx.push(
            Diagnostic::new(
                Code::InvalidType,
                &source,
                root.span,
                "the manifest is empty".to_owned(),
            )
            .help("start with `version: 1`, `name: …` and `steps:`; `sonicflow init` writes a commented one"),
        );
        return Err(ctx.diagnostics);
    }
    if root.entries().is_none() {
        ctx.push(
            Diagnostic::new(
                Code::InvalidType,
                &source,
                root.span,
                format!("a manifest is a mapping, found {}", root.type_name()),
            )
            .help("start with `version: 1`, `name: …` and `steps:`"),
        );
        return Err(ctx.diagnostics);
    }
    let head = ctx.load_head(&root);
    let mut with_nodes = IndexMap::new();
    let mut broken_steps = HashSet::new();
    let mut steps = IndexMap::new();
    let defaults = root.get("defaults");
    for (id, step_node) in &head.steps {
        match ctx.load_step(id, step_node, defaults) {
            Some((step, with_node)) => {
                steps.insert(id.clone(), step);
                with_nodes.insert(id.clone(), with_node);
            }
            None => {
                broken_steps.insert(id.clone());
            }
        }
    }
    let inputs = input_values(&head.inputs, &options.inputs);
    let origin = matrix::Origin {
        inputs: Some(&inputs),
        file: options.matrix.as_deref(),
        files: options.files.as_ref(),
    };
    let matrix = match (&head.matrix, &options.matrix) {
        (Some(m), _) => matrix::read(
            m,
            root.get("matrix"),
            &source,
            base,
            origin,
            &mut ctx.diagnostics,
        ),
        (None, Some(given)) => {
            ctx.push(matrix::no_matrix_block(given));
            None
        }
        (None, None) => None,
    };
    let manifest = head.with_steps(steps);
    note_anchors(&mut ctx.diagnostics, &source, &doc.aliases);
    let step_positions = root
        .get("steps")
        .and_then(Node::entries)
        .map(|entries| {
            entries
                .iter()
                .enumerate()
                .filter_map(|(i, (k, _))| Some((k.as_str()?.to_owned(), i)))
                .collect()
        })
        .unwrap_or_default();
    Ok(Loaded {
        step_positions,
        source,
        root,
        manifest,
        with_nodes,
        broken_steps,
        matrix,
        diagnostics: ctx.diagnostics,
    })
}

/// A problem found in a value an alias copied points at the alias use; a
/// note shows where the anchored original is written.
fn note_anchors(diagnostics: &mut [Diagnostic], source: &Arc<Source>, aliases: &[yaml::AliasUse]) {
    if aliases.is_empty() {
        return;
    }
    let anchors: std::collections::HashMap<(usize, usize), Span> = aliases
        .iter()
        .map(|a| ((a.at.start, a.at.end), a.anchor))
        .collect();
    for d in diagnostics
        .iter_mut()
        .filter(|d| Arc::ptr_eq(&d.source, source))
    {
        if let Some(&anchor) = anchors.get(&(d.span.start, d.span.end)) {
            d.notes.push(crate::diag::Note {
                span: anchor,
                label: "copied from here".to_owned(),
            });
        }
    }
}

/// The diagnostic for a document the YAML reader refused.
fn refused(source: &Arc<Source>, e: &yaml::SyntaxError) -> Diagnostic {
    let (code, message, help) = match e.refusal {
        yaml::Refusal::Syntax => (
            Code::YamlSyntax,
            format!("invalid YAML: {}", e.message),
            "fix the YAML syntax; quote values that contain `: `, `#`, `{` or `}`".to_owned(),
        ),
        yaml::Refusal::TooDeep => (
            Code::YamlLimit,
            e.message.clone(),
            format!(
                "a manifest needs only a few levels; at most {} are read",
                yaml::MAX_DEPTH
            ),
        ),
        yaml::Refusal::AliasExpansion => (
            Code::YamlLimit,
            e.message.clone(),
            format!(
                "write the values out, or use fewer nested aliases (at most {} values are copied)",
                yaml::MAX_ALIAS_NODES
            ),
        ),
        yaml::Refusal::SecondDocument => (
            Code::MultipleDocuments,
            e.message.clone(),
            "put each pipeline in its own file; everything from here on would be ignored"
                .to_owned(),
        ),
    };
    Diagnostic::new(code, source, e.span, message)
        .label("here")
        .help(help)
}

struct Ctx {
    source: Arc<Source>,
    diagnostics: Vec<Diagnostic>,
}

impl Ctx {
    fn push(&mut self, d: Diagnostic) {
        self.diagnostics.push(d);
    }

    fn report_duplicates(&mut self, duplicates: &[yaml::DuplicateKey]) {
        for dup in duplicates {
            let is_step = dup.parents == ["steps"];
            let (code, what) = if is_step {
                (
                    Code::DuplicateStep,
                    format!("step id `{}` is used twice", dup.key),
                )
            } else {
                (
                    Code::DuplicateKey,
                    format!("key `{}` appears twice{}", dup.key, place(&dup.parents)),
                )
            };
            let help = if is_step {
                "give each step a unique id"
            } else {
                "keep one of them; YAML would silently drop the other"
            };
            self.push(
                Diagnostic::new(code, &self.source, dup.again, what)
                    .label("used again here")
                    .note(dup.first, "first used here")
                    .help(help),
            );
        }
    }

    /// The top level, with `steps` kept as raw nodes.
    fn load_head(&mut self, root: &Node) -> ManifestSpec<Node> {
        let mut value = root.to_value();
        if let serde_yaml::Value::Mapping(map) = &mut value {
            map.insert(
                "steps".into(),
                serde_yaml::Value::Mapping(Default::default()),
            );
        }
        let head: Option<ManifestSpec<serde_yaml::Value>> =
            self.collect(&mut value, root, &[], |missing| match missing {
                "version" => Some(1.into()),
                "name" => Some("".into()),
                _ => None,
            });
        let head = head.unwrap_or_else(|| ManifestSpec {
            version: 1,
            name: String::new(),
            description: None,
            inputs: IndexMap::new(),
            defaults: None,
            limits: None,
            retry: None,
            poll: None,
            matrix: None,
            models: IndexMap::new(),
            artifacts: None,
            prices: Default::default(),
            state: None,
            steps: IndexMap::new(),
        });
        if head.version != 1 {
            let span = root.get("version").map_or(root.span, |n| n.span);
            self.push(
                Diagnostic::new(
                    Code::UnsupportedVersion,
                    &self.source,
                    span,
                    format!("manifest version `{}` is not supported", head.version),
                )
                .help("this sonicflow reads `version: 1`"),
            );
        }
        let steps = match root.get("steps").map(|n| (n, &n.kind)) {
            Some((_, NodeKind::Map(entries))) => entries
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.clone())))
                .collect(),
            Some((n, _)) => {
                self.push(
                    Diagnostic::new(
                        Code::InvalidType,
                        &self.source,
                        n.span,
                        format!(
                            "`steps` must be a mapping of step id to step, found {}",
                            n.type_name()
                        ),
                    )
                    .help("write `steps:` followed by indented `<id>:` entries"),
                );
                IndexMap::new()
            }
            None => IndexMap::new(),
        };
        head.with_steps(steps)
    }

    fn load_step(
        &mut self,
        id: &str,
        node: &Node,
        defaults: Option<&Node>,
    ) -> Option<(Step, Node)> {
        let path = ["steps".to_owned(), id.to_owned()];
        let mut value = node.to_value();
        let head: StepSpec<serde_yaml::Value> = self.collect(&mut value, node, &path, |_| None)?;
        let with_node = merged_with(head.action, node, defaults);
        let mut with_value = with_node.to_value();
        let with_path = ["steps".to_owned(), id.to_owned(), "with".to_owned()];
        let with = self.collect_with(head.action, &mut with_value, &with_node, &with_path)?;
        Some((
            StepSpec {
                action: head.action,
                with: Some(with),
                needs: head.needs,
                for_each: head.for_each,
                key: head.key,
                condition: head.condition,
                on_missing: head.on_missing,
                per: head.per,
                retry: head.retry,
                poll: head.poll,
                timeout: head.timeout,
            },
            with_node,
        ))
    }

    fn collect_with(
        &mut self,
        action: Action,
        value: &mut serde_yaml::Value,
        node: &Node,
        path: &[String],
    ) -> Option<super::actions::ActionWith> {
        for _ in 0..64 {
            match action.parse_with(value) {
                Ok(with) => return Some(with),
                Err(e) => {
                    self.report(&e, node, path, Some(action));
                    if !remove_at(value, e.path()) {
                        return None;
                    }
                }
            }
        }
        None
    }

    /// Deserializes `value` as `T`, reporting each error and retrying without
    /// the offending entry, so the result is the best reading of what is
    /// there. `placeholder` supplies a stand-in for a missing required field;
    /// without one the part cannot be typed and `None` is returned.
    fn collect<T: DeserializeOwned>(
        &mut self,
        value: &mut serde_yaml::Value,
        node: &Node,
        path: &[String],
        placeholder: impl Fn(&str) -> Option<serde_yaml::Value>,
    ) -> Option<T> {
        // Keys removed after being reported; their absence is not reported again.
        let mut removed: Vec<String> = Vec::new();
        for _ in 0..64 {
            let e = match serde_path_to_error::deserialize::<_, T>(&*value) {
                Ok(v) => return Some(v),
                Err(e) => e,
            };
            let missing = missing_field(&e.inner().to_string());
            if !missing.as_ref().is_some_and(|m| removed.contains(m)) {
                self.report(&e, node, path, None);
            }
            let repaired = match missing {
                Some(field) => {
                    let stand_in = placeholder(&field)?;
                    insert_at(value, e.path(), field, stand_in)
                }
                None => {
                    if let Some(Segment::Map { key }) = e.path().iter().next_back() {
                        removed.push(key.clone());
                    }
                    remove_at(value, e.path())
                }
            };
            if !repaired {
                return None;
            }
        }
        None
    }

    /// Turns one serde error into a diagnostic.
    fn report(
        &mut self,
        e: &serde_path_to_error::Error<serde_yaml::Error>,
        node: &Node,
        base: &[String],
        action: Option<Action>,
    ) {
        let message = e.inner().to_string();
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_owned();
        let segments: Vec<String> = e.path().iter().filter_map(segment_name).collect();
        let mut full: Vec<String> = base.to_vec();
        full.extend(segments.iter().cloned());
        let (target, parent) = locate(node, &segments);
        let where_ = place(&full[..full.len().saturating_sub(1)]);
        let d = if let Some((key, expected)) = unknown(&message, "unknown field") {
            let help = crate::diag::did_you_mean(&key, expected.iter().map(String::as_str))
                .unwrap_or_else(|| allowed_help(&expected, action, &full));
            let span = parent
                .and_then(|p| p.key_node(&key))
                .map_or(target.span, |k| k.span);
            Diagnostic::new(
                Code::UnknownKey,
                &self.source,
                span,
                format!(
                    "unknown key `{key}`{}",
                    place(&full[..full.len().saturating_sub(1)])
                ),
            )
            .label("not allowed here")
            .help(help)
        } else if let Some((value, expected)) = unknown(&message, "unknown variant") {
            let is_action = full.last().is_some_and(|k| k == "action");
            let code = if is_action {
                Code::UnknownAction
            } else {
                Code::InvalidValue
            };
            let what = if is_action { "action" } else { "value" };
            let help = crate::diag::did_you_mean(&value, expected.iter().map(String::as_str))
                .unwrap_or_else(|| format!("use one of: {}", expected.join(", ")));
            Diagnostic::new(
                code,
                &self.source,
                target.span,
                format!("unknown {what} `{value}`{where_}"),
            )
            .label(format!("not a known {what}"))
            .help(help)
        } else if let Some(field) = missing_field(&message) {
            Diagnostic::new(
                Code::MissingField,
                &self.source,
                target.span,
                format!("missing required key `{field}`{}", place(&full)),
            )
            .label(format!("`{field}` is required here"))
            .help(format!(
                "add `{field}: {}`{}",
                example_value(&field),
                place(&full)
            ))
        } else {
            let message = in_manifest_words(&message, full.last().map_or("", String::as_str));
            Diagnostic::new(
                Code::InvalidType,
                &self.source,
                target.span,
                format!("invalid value for `{}`: {message}", full.join(".")),
            )
            .label("wrong type")
            .help(type_help(&full))
        };
        self.push(d);
    }
}

/// A `--input` value, read as a YAML scalar or flow collection: `3` is a
/// number, `[a, b]` a list, anything else (a mapping, or text YAML reads as
/// null) the text itself. It lives here because only the loader calls
/// serde_yaml.
pub(crate) fn input_value(raw: &str) -> serde_json::Value {
    match yaml::parse(raw) {
        Ok(doc) => match doc.root.to_value() {
            serde_yaml::Value::Null if !raw.trim().is_empty() => raw.into(),
            serde_yaml::Value::Mapping(_) => raw.into(),
            value => serde_json::to_value(value).unwrap_or_else(|_| raw.into()),
        },
        Err(_) => raw.into(),
    }
}

/// Input values: each declared input's default, then the `--input`s that
/// name a declared input (the plan reports the others). `None` for an input
/// with neither.
pub fn input_values(
    declared: &IndexMap<String, super::spec::InputSpec>,
    given: &[(String, String)],
) -> IndexMap<String, Option<serde_json::Value>> {
    let mut values: IndexMap<String, Option<serde_json::Value>> = declared
        .iter()
        .map(|(k, spec)| (k.clone(), spec.default.clone()))
        .collect();
    for (name, raw) in given {
        if let Some(value) = values.get_mut(name) {
            *value = Some(input_value(raw));
        }
    }
    values
}

/// The step's `with` node with every default the action takes added (the step's own values win).
fn merged_with(action: Action, step: &Node, defaults: Option<&Node>) -> Node {
    let own = step.get("with").cloned().unwrap_or(Node {
        kind: NodeKind::Map(Vec::new()),
        span: step.key_node("action").map_or(step.span, |n| n.span),
    });
    let (Some(defaults), NodeKind::Map(entries)) = (defaults.and_then(Node::entries), &own.kind)
    else {
        return own;
    };
    let mut merged = entries.clone();
    for (k, v) in defaults {
        let Some(name) = k.as_str() else { continue };
        let takes = action.field_names().iter().any(|f| f == name);
        if takes && own.get(name).is_none() {
            merged.push((k.clone(), v.clone()));
        }
    }
    Node {
        kind: NodeKind::Map(merged),
        span: own.span,
    }
}

fn segment_name(s: &Segment) -> Option<String> {
    match s {
        Segment::Map { key } => Some(key.clone()),
        Segment::Seq { index } => Some(index.to_string()),
        Segment::Enum { variant } => Some(variant.clone()),
        Segment::Unknown => None,
    }
}

/// The node at `path` (or the deepest that exists) and its parent mapping.
fn locate<'a>(node: &'a Node, path: &[String]) -> (&'a Node, Option<&'a Node>) {
    let mut current = node;
    let mut parent = None;
    for key in path {
        let next = match &current.kind {
            NodeKind::Map(_) => current.get(key),
            NodeKind::Seq(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        match next {
            Some(n) => {
                parent = Some(current);
                current = n;
            }
            None => return (current, Some(current)),
        }
    }
    (current, parent)
}

/// Parses serde's "unknown field `x`, expected one of `a`, `b`" into `x` and the list.
fn unknown(message: &str, prefix: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix(prefix)?;
    let mut quoted = rest.split('`').skip(1).step_by(2).map(str::to_owned);
    let name = quoted.next()?;
    Some((name, quoted.collect()))
}

fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_owned())
}

/// serde's `invalid type: string "x", expected u32` in the manifest's words:
/// `expected a whole number ≥ 1, found "x"`. Every type error of the loader
/// passes here; messages of sonicflow's own types are kept as they are.
fn in_manifest_words(message: &str, key: &str) -> String {
    let body = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .unwrap_or(message);
    let Some((found, expected)) = body.rsplit_once(", expected ") else {
        return body.to_owned();
    };
    if found.starts_with("expected") || found.contains("is not a duration") {
        return body.to_owned();
    }
    let expected = match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => {
            // Counts and rates that cannot be 0 (checked again once typed).
            let least = match key {
                "attempts"
                | "max_in_flight"
                | "submits_per_minute"
                | "quick_calls_per_minute"
                | "polls_per_second" => 1,
                _ => 0,
            };
            format!("a whole number ≥ {least}")
        }
        "i8" | "i16" | "i32" | "i64" => "a whole number".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "a boolean" => "true or false".to_owned(),
        "a string" => "text".to_owned(),
        "a sequence" => "a list".to_owned(),
        e if e == "a map" || e.starts_with("struct ") => "a mapping".to_owned(),
        e => e.to_owned(),
    };
    let found = match found {
        "sequence" => "a list".to_owned(),
        "map" => "a mapping".to_owned(),
        "unit value" | "null" => "nothing".to_owned(),
        f => ["string ", "integer ", "floating point ", "boolean "]
            .iter()
            .find_map(|p| f.strip_prefix(p))
            .map_or_else(|| f.to_owned(), |v| v.trim_matches('`').to_owned()),
    };
    format!("expected {expected}, found {found}")
}

fn allowed_help(expected: &[String], action: Option<Action>, path: &[String]) -> String {
    if expected.is_empty() {
        return "remove it; nothing is accepted here".to_owned();
    }
    let list = expected
        .iter()
        .map(|e| format!("`{e}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match action {
        Some(a) if path.len() == 4 => format!("`{}` takes: {list}", a.name()),
        _ => format!("allowed here: {list}"),
    }
}

fn type_help(path: &[String]) -> String {
    match path.last().map(String::as_str) {
        Some("version") => "write `version: 1`".to_owned(),
        Some("needs") => {
            "write a step id or a list of them, e.g. `needs: upload` or `needs: [upload, song]`"
                .to_owned()
        }
        _ => "see `sonicflow schema` for the expected type".to_owned(),
    }
}

/// ` in step `x``, ` in `with` of step `x``, ` in `limits``, or nothing at the top level.
fn place(path: &[String]) -> String {
    match path {
        [] => String::new(),
        [steps] if steps == "steps" => " in `steps`".to_owned(),
        [steps, id] if steps == "steps" => format!(" in step `{id}`"),
        [steps, id, with, ..] if steps == "steps" && with == "with" => {
            format!(" in `with` of step `{id}`")
        }
        [steps, id, rest @ ..] if steps == "steps" => {
            format!(" in `{}` of step `{id}`", rest.join("."))
        }
        other => format!(" in `{}`", other.join(".")),
    }
}

fn remove_at(value: &mut serde_yaml::Value, path: &serde_path_to_error::Path) -> bool {
    let segments: Vec<&Segment> = path.iter().collect();
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut current = value;
    for seg in parents {
        let next = match (seg, current) {
            (Segment::Map { key }, serde_yaml::Value::Mapping(m)) => m.get_mut(key.as_str()),
            (Segment::Seq { index }, serde_yaml::Value::Sequence(s)) => s.get_mut(*index),
            _ => None,
        };
        match next {
            Some(n) => current = n,
            None => return false,
        }
    }
    match (last, current) {
        (Segment::Map { key }, serde_yaml::Value::Mapping(m)) => m.remove(key.as_str()).is_some(),
        (Segment::Seq { index }, serde_yaml::Value::Sequence(s)) if *index < s.len() => {
            s.remove(*index);
            true
        }
        _ => false,
    }
}

fn insert_at(
    value: &mut serde_yaml::Value,
    path: &serde_path_to_error::Path,
    field: String,
    stand_in: serde_yaml::Value,
) -> bool {
    let mut current = value;
    for seg in path.iter() {
        let next = match (seg, current) {
            (Segment::Map { key }, serde_yaml::Value::Mapping(m)) => m.get_mut(key.as_str()),
            _ => None,
        };
        match next {
            Some(n) => current = n,
            None => return false,
        }
    }
    match current {
        serde_yaml::Value::Mapping(m) => {
            m.insert(field.into(), stand_in);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_values_are_scalars_or_lists_and_otherwise_text() {
        assert_eq!(input_value("3"), serde_json::json!(3));
        assert_eq!(input_value("true"), serde_json::json!(true));
        assert_eq!(input_value("[a, 2]"), serde_json::json!(["a", 2]));
        assert_eq!(input_value("a: b"), serde_json::json!("a: b"));
        assert_eq!(input_value("~"), serde_json::json!("~"));
        assert_eq!(
            input_value("https://x/y.mp3"),
            serde_json::json!("https://x/y.mp3")
        );
        assert_eq!(input_value("[unclosed"), serde_json::json!("[unclosed"));
    }
}
