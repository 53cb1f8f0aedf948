//! One module per subcommand: each turns parsed arguments into an exit code,
//! printing results on stdout and diagnostics on stderr.

pub mod clean;
pub mod credits;
pub mod graph;
pub mod history;
pub mod init;
pub mod merge;
pub mod plan;
pub mod prices;
pub mod publish;
pub mod report;
pub mod run;
pub mod runs;
pub mod sandbox;
pub mod schema;
pub mod status;
pub mod unlock;
pub mod validate;

use std::path::Path;

use crate::diag::{self, Diagnostic, Format};
use crate::manifest::load::{self, Loaded};
use crate::plan::{self as planner, Options, Plan};

/// Parses `name=value` for `--input`.
pub fn parse_input(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!(
            "`{s}` is not `name=value`; write e.g. `--input source=https://example.com/a.mp3`"
        )),
    }
}

/// The day price tables' ages are counted to: `SONICFLOW_TODAY` or the
/// system clock; an unusable `SONICFLOW_TODAY` is named in a warning and the
/// clock's day is used.
pub fn today() -> String {
    crate::prices::today().unwrap_or_else(|e| {
        crate::errln!("warning: {e}");
        crate::prices::clock_today()
    })
}

/// Loads and plans one manifest.
pub fn load_and_plan(file: &Path, options: &Options) -> Result<(Loaded, Plan), Vec<Diagnostic>> {
    let load_options = load::LoadOptions {
        inputs: options.inputs.clone(),
        matrix: options.matrix.clone(),
        files: None,
    };
    let loaded = load::load_file_with(file, &load_options)?;
    let plan = planner::build(&loaded, options)?;
    Ok((loaded, plan))
}

/// Prints diagnostics on stderr in `format`.
pub fn print_diagnostics(diagnostics: &[Diagnostic], format: Format) {
    let color = crate::output::color(crate::output::Stream::Stderr);
    crate::err!("{}", diag::render(diagnostics, format, color));
}

/// The manifests the paths name: a file (or `-`) as given, a folder as
/// the `*.yaml` and `*.yml` files in it and its subfolders (hidden ones,
/// such as `.sonicflow/`, skipped), in name order. A folder with none,
/// or one that cannot be read, is a diagnostic.
pub fn manifests_in(paths: &[std::path::PathBuf]) -> (Vec<std::path::PathBuf>, Vec<Diagnostic>) {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    let problem = |path: &Path, message: String, help: &str| {
        let source = diag::Source::new(path.display().to_string(), String::new());
        Diagnostic::new(
            diag::Code::Io,
            &source,
            crate::span::Span::default(),
            message,
        )
        .help(help)
    };
    for path in paths {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let mut found = Vec::new();
        if let Err(e) = collect_manifests(path, &mut found) {
            let message = format!("cannot read the folder: {e}");
            problems.push(problem(path, message, "check the path and its permissions"));
            continue;
        }
        if found.is_empty() {
            let message = "the folder holds no manifest (`*.yaml` or `*.yml`)".to_owned();
            let help = "name the manifests, or the folder they are in (often `pipelines/`)";
            problems.push(problem(path, message, help));
        }
        found.sort();
        files.append(&mut found);
    }
    (files, problems)
}

fn collect_manifests(dir: &Path, found: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if hidden {
            continue;
        }
        if entry.file_type()?.is_dir() {
            collect_manifests(&path, found)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            found.push(path);
        }
    }
    Ok(())
}
