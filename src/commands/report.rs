//! `sonicflow report RUN_DIR`: render a run folder's `results.json` as
//! `report.html`, for any run: finished, still running, or killed.

use std::path::PathBuf;

use crate::exit;
use crate::report::html;

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The run folder (the one holding results.json, as `sonicflow run` prints it).
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,
    /// Write the report here instead of RUN_DIR/report.html.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn run(args: &ReportArgs) -> u8 {
    let written = match &args.out {
        Some(out) => html::write_report_to(&args.run_dir, out),
        None => html::write_report(&args.run_dir),
    };
    match written {
        Ok(path) => {
            crate::outln!("{}", path.display());
            exit::SUCCESS
        }
        Err(e) => {
            crate::errln!("error: {e}");
            exit::INVALID
        }
    }
}
