//! `sonicflow validate`: check manifests without sending anything.

use std::path::PathBuf;

use crate::diag::{self, Diagnostic, Format};
use crate::exit;
use crate::plan::Options;

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Pipeline manifests to check.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Override an input: `--input name=value` (repeatable).
    #[arg(long = "input", value_name = "NAME=VALUE", value_parser = super::parse_input)]
    pub inputs: Vec<(String, String)>,
    /// Read the matrix rows from this CSV or JSONL file instead of the manifest's `matrix.file` or `matrix.rows`.
    #[arg(long, value_name = "FILE")]
    pub matrix: Option<PathBuf>,
    /// How to print problems.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

pub fn run(args: &ValidateArgs) -> u8 {
    let options = Options {
        inputs: args.inputs.clone(),
        matrix: args.matrix.clone(),
        ..Options::default()
    };
    let mut all: Vec<Diagnostic> = Vec::new();
    let mut summaries = Vec::new();
    for file in &args.files {
        match super::load_and_plan(file, &options) {
            Ok((_, mut plan)) => {
                summaries.push(format!(
                    "{}: valid ({} step{}{})",
                    file.display(),
                    plan.steps.len(),
                    if plan.steps.len() == 1 { "" } else { "s" },
                    match plan.instances.len() {
                        1 if plan.instances[0].key.is_none() => String::new(),
                        n => format!(" × {n} matrix rows"),
                    }
                ));
                all.append(&mut plan.warnings);
            }
            Err(mut d) => all.append(&mut d),
        }
    }
    diag::sort(&mut all);
    match args.format {
        Format::Human => {
            for s in &summaries {
                crate::outln!("{s}");
            }
            if !all.is_empty() {
                super::print_diagnostics(&all, Format::Human);
            }
        }
        Format::Json => crate::out!("{}", diag::render(&all, Format::Json, false)),
        Format::Github => crate::out!("{}", diag::render(&all, Format::Github, false)),
    }
    if !all.iter().any(Diagnostic::is_error) {
        exit::SUCCESS
    } else {
        exit::INVALID
    }
}
