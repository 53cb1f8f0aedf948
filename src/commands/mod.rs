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

use std::io::IsTerminal;
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
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    crate::err!("{}", diag::render(diagnostics, format, color));
}
