//! `report.html`: one run folder's `results.json` rendered as a single
//! self-contained page a person opens from disk or a CI artifact: the
//! clips to listen to, what the run cost, a timeline of its tasks, what
//! failed and why, and what was run where.
//!
//! Static HTML with inline CSS and SVG, no script and no fetch of anything
//! but the run's own files (and, for files not downloaded, the service's
//! URLs). Every string the service sent is untrusted: the template escapes
//! everything it prints, and only `http(s)` URLs or relative paths inside
//! the run folder ever reach a `src` or `href`.

mod files;
mod links;
mod text;
mod timeline;
mod view;

use std::path::{Path, PathBuf};

use super::results::Results;
use super::write_atomically;

pub use timeline::Timeline;
pub use view::{Page, build_page};

const TEMPLATE: &str = include_str!("report.html");
const STYLE: &str = include_str!("style.css");

/// The file name of the report inside a run folder.
pub const REPORT_FILE: &str = "report.html";

/// The report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(
        "`{}` does not exist\nhelp: pass the folder of a run (the one holding results.json, as `sonicflow run` prints it), e.g. `.sonicflow/runs/<name>-<time>`",
        path.display()
    )]
    Missing { path: PathBuf },
    #[error("cannot read `{}`: {source}\nhelp: check that the file is readable", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "`{}` is not a results file this sonicflow can read: {source}\nhelp: it may be damaged or written by a newer sonicflow; restore it, or run the pipeline again",
        path.display()
    )]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot render the report: {0}")]
    Render(String),
    #[error(
        "cannot write the report `{}`: {source}\nhelp: check that the folder exists and is writable and the disk is not full, or write it elsewhere with `sonicflow report RUN_DIR --out FILE`",
        path.display()
    )]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Reads `run_dir/results.json` and writes `run_dir/report.html`
/// atomically; returns the report's path.
pub fn write_report(run_dir: &Path) -> Result<PathBuf, ReportError> {
    write_report_to(run_dir, &run_dir.join(REPORT_FILE))
}

/// Like [`write_report`], into `out`: the run's files are linked relative
/// to where the report is.
pub fn write_report_to(run_dir: &Path, out: &Path) -> Result<PathBuf, ReportError> {
    let results = read_results(run_dir)?;
    let base = link_base(run_dir, out);
    let html = render(&results, &base)?;
    write_atomically(out, html.as_bytes()).map_err(|source| ReportError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    Ok(out.to_path_buf())
}

/// Writes the report of `results`, whose file paths are relative to the
/// folder of `out`, atomically.
pub fn write_results_report(results: &Results, out: &Path) -> Result<(), ReportError> {
    let html = render(results, "")?;
    write_atomically(out, html.as_bytes()).map_err(|source| ReportError::Write {
        path: out.to_path_buf(),
        source,
    })
}

/// The results of the run in `run_dir`.
pub fn read_results(run_dir: &Path) -> Result<Results, ReportError> {
    let path = run_dir.join("results.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let path = if run_dir.is_dir() {
                path
            } else {
                run_dir.to_path_buf()
            };
            return Err(ReportError::Missing { path });
        }
        Err(source) => return Err(ReportError::Read { path, source }),
    };
    serde_json::from_str(&text).map_err(|source| ReportError::Corrupt { path, source })
}

/// The page for `results`; `base` is what goes before a file's path
/// (relative to the run folder) to reach it from the report: empty when the
/// report is in the run folder.
pub fn render(results: &Results, base: &str) -> Result<String, ReportError> {
    let page = build_page(results, base);
    let mut env = minijinja::Environment::new();
    // Named `.html`, so everything printed is HTML-escaped.
    env.set_formatter(escape);
    env.add_template("report.html", TEMPLATE)
        .map_err(|e| ReportError::Render(e.to_string()))?;
    let template = env
        .get_template("report.html")
        .map_err(|e| ReportError::Render(e.to_string()))?;
    template
        .render(minijinja::context! {
            page => minijinja::Value::from(minijinja::value::Serde(&page)),
            style => minijinja::Value::from_safe_string(STYLE.to_owned()),
        })
        .map_err(|e| ReportError::Render(e.to_string()))
}

/// Prints a value as the default formatter does, escaping what is not
/// marked safe with the five characters HTML needs escaped (and not `/`,
/// so paths and URLs stay readable in the page's source).
fn escape(
    out: &mut minijinja::Output,
    state: &mut minijinja::State,
    value: &minijinja::Value,
) -> Result<(), minijinja::Error> {
    if value.is_safe() || *state.auto_escape() == minijinja::AutoEscape::None {
        return minijinja::escape_formatter(out, state, value);
    }
    let text = value.to_string();
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    out.write_str(&escaped)
        .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, e.to_string()))
}

/// The prefix that leads from `out`'s folder to the run folder, as a URL
/// path: empty when they are the same folder.
fn link_base(run_dir: &Path, out: &Path) -> String {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let run = canonical(run_dir);
    let out_dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => canonical(p),
        _ => canonical(Path::new(".")),
    };
    if run == out_dir {
        return String::new();
    }
    if let Ok(below) = run.strip_prefix(&out_dir) {
        let mut base = String::new();
        for part in below.components() {
            base.push_str(&links::encode_segment(&part.as_os_str().to_string_lossy()));
            base.push('/');
        }
        return base;
    }
    // Elsewhere: an absolute file URL of the run folder.
    let mut base = "file://".to_owned();
    for part in run.components().skip(1) {
        base.push('/');
        base.push_str(&links::encode_segment(&part.as_os_str().to_string_lossy()));
    }
    base.push('/');
    base
}
