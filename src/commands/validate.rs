//! `sonicflow validate`: check manifests without sending anything.

use std::path::PathBuf;

use crate::diag::{self, Diagnostic, Format};
use crate::exit;
use crate::format::{FormatArgs, Formats, OutputFormat};
use crate::plan::Options;

/// What `validate` prints.
#[derive(Debug, Clone, Copy)]
pub struct ValidateFormats;

impl Formats for ValidateFormats {
    const ALLOWED: &'static [OutputFormat] = &[
        OutputFormat::Human,
        OutputFormat::Json,
        OutputFormat::Github,
    ];
    const HELP: &'static str = "How to print problems: `human`, a line per valid file and each problem with its source line (the default); `json`, one document with every problem; `github`, GitHub Actions annotations, one per line";
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sonicflow validate pipelines/nightly.yaml
  sonicflow validate pipelines/                 # every *.yaml and *.yml in the folder
  cat p.yaml | sonicflow validate -             # a manifest on stdin")]
pub struct ValidateArgs {
    /// Pipeline manifests to check; a folder stands for the manifests in it
    /// (`*.yaml`, `*.yml`, not those in hidden folders); `-` reads one from stdin.
    #[arg(required = true, value_name = "FILE|DIR|-")]
    pub files: Vec<PathBuf>,
    /// Override an input: `--input name=value` (repeatable).
    #[arg(long = "input", value_name = "NAME=VALUE", value_parser = super::parse_input)]
    pub inputs: Vec<(String, String)>,
    /// Read the matrix rows from this CSV or JSONL file instead of the manifest's `matrix.file` or `matrix.rows`.
    #[arg(long, value_name = "FILE")]
    pub matrix: Option<PathBuf>,
    #[command(flatten)]
    pub format: FormatArgs<ValidateFormats>,
}

pub fn run(args: &ValidateArgs) -> u8 {
    let options = Options {
        inputs: args.inputs.clone(),
        matrix: args.matrix.clone(),
        ..Options::default()
    };
    let (files, mut all) = super::manifests_in(&args.files);
    let mut summaries = Vec::new();
    for file in &files {
        match super::load_and_plan(file, &options) {
            Ok((_, mut plan)) => {
                summaries.push(format!(
                    "{}: valid ({}{})",
                    crate::manifest::load::display_name(file),
                    crate::format::count(plan.steps.len() as u64, "step", "steps"),
                    match plan.instances.len() {
                        1 if plan.instances[0].key.is_none() => String::new(),
                        n => format!(
                            " × {}",
                            crate::format::count(n as u64, "matrix row", "matrix rows")
                        ),
                    }
                ));
                all.append(&mut plan.warnings);
            }
            Err(mut d) => all.append(&mut d),
        }
    }
    diag::sort(&mut all);
    match Format::for_output(args.format.get()) {
        Format::Human => {
            if !crate::output::quiet() {
                for s in &summaries {
                    crate::outln!("{s}");
                }
            }
            if !all.is_empty() {
                super::print_diagnostics(&all, Format::Human);
            }
        }
        format => crate::out!("{}", diag::render(&all, format, false)),
    }
    if !all.iter().any(Diagnostic::is_error) {
        exit::SUCCESS
    } else {
        exit::INVALID
    }
}
