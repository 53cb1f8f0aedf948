//! `sonicflow init`: write a commented pipeline to start from, with the
//! schema line pointing at a schema file that is there, and the CSV of the
//! templates that read one.

use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::exit;
use crate::format::{FormatArgs, HumanOrJson};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sonicflow init                                         # create.yaml: one song → WAV
  sonicflow init pipelines/covers.yaml --template cover  # then: sonicflow validate pipelines/covers.yaml
  sonicflow init nightly.yaml --template nightly         # and nightly.csv beside it")]
pub struct InitArgs {
    /// Where to write the pipeline [default: `<template>.yaml` in the current folder].
    #[arg(value_name = "PATH")]
    pub path: Option<PathBuf>,
    /// What the pipeline does — nightly: a CSV matrix of sources, upload → cover → stems + WAV per row;
    /// cover: one recording, upload → cover → WAV per clip; create: one new song from a description → WAV.
    #[arg(long, value_enum, default_value_t = Template::Create)]
    pub template: Template,
    /// Overwrite files that are already there.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub format: FormatArgs<HumanOrJson>,
}

/// The pipelines `init` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Template {
    // What each does is said in `--template`'s help: a doc comment here
    // would switch `init --help` to clap's long layout.
    Nightly,
    Cover,
    Create,
}

impl Template {
    /// Every template.
    pub const ALL: [Template; 3] = [Template::Nightly, Template::Cover, Template::Create];

    pub fn name(self) -> &'static str {
        match self {
            Template::Nightly => "nightly",
            Template::Cover => "cover",
            Template::Create => "create",
        }
    }

    /// The manifest, with `{{name}}`, `{{schema}}` and `{{csv}}` to fill in.
    fn manifest(self) -> &'static str {
        match self {
            Template::Nightly => include_str!("init/nightly.yaml"),
            Template::Cover => include_str!("init/cover.yaml"),
            Template::Create => include_str!("init/create.yaml"),
        }
    }

    /// The matrix the manifest reads, if it reads one.
    fn csv(self) -> Option<&'static str> {
        match self {
            Template::Nightly => Some(include_str!("init/nightly.csv")),
            Template::Cover | Template::Create => None,
        }
    }
}

/// What `init` did, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct Initialized {
    pub template: &'static str,
    /// The files written, the pipeline first.
    pub written: Vec<Written>,
    /// The schema file that was there already and was left as it is.
    pub kept_schema: Option<String>,
    /// The commands to try next.
    pub next: Vec<String>,
}

/// A file `init` wrote, and what it is.
#[derive(Debug, Serialize)]
pub struct Written {
    pub path: String,
    pub what: &'static str,
}

pub fn run(args: &InitArgs) -> u8 {
    match init(args) {
        Ok(done) => {
            crate::format::print(args.format.get(), &done, render);
            exit::SUCCESS
        }
        Err(message) => {
            crate::errln!("error: {message}");
            exit::INVALID
        }
    }
}

fn init(args: &InitArgs) -> Result<Initialized, String> {
    let template = args.template;
    let path = args
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.yaml", template.name())));
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            format!(
                "`{}` names no file; give e.g. `pipeline.yaml`",
                path.display()
            )
        })?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned();
    let csv_name = format!("{stem}.csv");
    let csv = template
        .csv()
        .map(|text| (path.with_file_name(&csv_name), text));

    // Nothing is written unless everything can be.
    if !args.force {
        for p in std::iter::once(&path).chain(csv.as_ref().map(|(p, _)| p)) {
            if p.exists() {
                return Err(format!(
                    "`{}` is already there; pass `--force` to overwrite it, or give another PATH",
                    p.display()
                ));
            }
        }
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("cannot create the folder `{}`: {e}", dir.display()))?;

    let root = project_root(&dir);
    let schema = root.join("schema").join("pipeline.schema.json");
    // Said as a path from here when it is below the current folder.
    let cwd = crate::journal::absolute(Path::new("."));
    let shown = schema
        .strip_prefix(&cwd)
        .unwrap_or(&schema)
        .display()
        .to_string();
    let mut written = Vec::new();
    let mut kept_schema = None;
    if schema.exists() {
        kept_schema = Some(shown);
    } else {
        if let Some(parent) = schema.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create the folder `{}`: {e}", parent.display()))?;
        }
        write(&schema, &super::schema::pipeline_schema_text())?;
        written.push(Written {
            path: shown,
            what: "the manifest schema, for editors",
        });
    }
    let text = fill(
        template.manifest(),
        &crate::journal::safe_name(&stem),
        &relative(&dir, &schema),
        &csv_name,
    );
    write(&path, &text)?;
    written.insert(
        0,
        Written {
            path: path.display().to_string(),
            what: "the pipeline",
        },
    );
    if let Some((csv_path, text)) = &csv {
        write(csv_path, text)?;
        written.insert(
            1,
            Written {
                path: csv_path.display().to_string(),
                what: "its matrix, one row per song",
            },
        );
    }

    let file = path.display();
    Ok(Initialized {
        template: template.name(),
        written,
        kept_schema,
        next: vec![
            format!("sonicflow validate {file}"),
            format!("sonicflow plan {file}"),
            format!("sonicflow run {file} --sandbox"),
        ],
    })
}

fn render(done: &Initialized) -> String {
    let mut out = String::new();
    for w in &done.written {
        let _ = writeln!(out, "wrote {} ({})", w.path, w.what);
    }
    if let Some(schema) = &done.kept_schema {
        let _ = writeln!(
            out,
            "kept {schema} (already there; `sonicflow schema` prints the current one)"
        );
    }
    let why = [
        "check it",
        "what it would cost",
        "run it against a local sandbox, free",
    ];
    let width = done.next.iter().map(String::len).max().unwrap_or(0);
    let _ = writeln!(out, "\nnext:");
    for (command, why) in done.next.iter().zip(why) {
        let _ = writeln!(out, "  {command:<width$}   # {why}");
    }
    out
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}

fn fill(template: &str, name: &str, schema: &str, csv: &str) -> String {
    template
        .replace("{{name}}", name)
        .replace("{{schema}}", schema)
        .replace("{{csv}}", csv)
}

/// Where the schema goes: the nearest folder at or above `dir` holding a
/// `.git` (the repository the pipeline is committed to), else `dir` itself.
fn project_root(dir: &Path) -> PathBuf {
    let dir = crate::journal::absolute(dir);
    dir.ancestors()
        .find(|a| a.join(".git").exists())
        .unwrap_or(&dir)
        .to_owned()
}

/// `target` as a `/`-separated path relative to the folder `from`, both
/// made absolute first (`target` is at or below an ancestor of `from`).
fn relative(from: &Path, target: &Path) -> String {
    let clean = |p: &Path| -> Vec<String> {
        let mut parts: Vec<String> = Vec::new();
        for c in crate::journal::absolute(p).components() {
            match c {
                Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
                Component::ParentDir => {
                    parts.pop();
                }
                _ => {}
            }
        }
        parts
    };
    let (from, target) = (clean(from), clean(target));
    let common = from.iter().zip(&target).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_owned(); from.len() - common];
    parts.extend(target[common..].iter().cloned());
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_path_is_relative_to_the_manifest_folder() {
        assert_eq!(
            relative(Path::new("/p/pipelines"), Path::new("/p/schema/s.json")),
            "../schema/s.json"
        );
        assert_eq!(
            relative(Path::new("/p"), Path::new("/p/schema/s.json")),
            "schema/s.json"
        );
        assert_eq!(
            relative(Path::new("/p/a/b"), Path::new("/p/schema/s.json")),
            "../../schema/s.json"
        );
    }

    #[test]
    fn every_template_has_its_placeholders_filled() {
        for t in Template::ALL {
            let text = fill(t.manifest(), "n", "s.json", "n.csv");
            // `${{ … }}` is the manifest's own expression syntax.
            assert!(
                !text.replace("${{", "").contains("{{"),
                "{}: {text}",
                t.name()
            );
            assert!(text.starts_with("# yaml-language-server: $schema=s.json\n"));
        }
    }
}
