//! `sonicflow publish RUN_DIR [URL]`: deliver a run folder's results to a
//! bucket, as `run --out URL` does when the run ends; for a publish that
//! failed (the store was down), or a run that was made locally. Nothing is
//! sent to the API.

use std::path::PathBuf;

use crate::exit;
use crate::journal::RunLog;
use crate::store::publish::open_checked;

#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// The run folder (holding results.json).
    #[arg(value_name = "RUN_DIR")]
    pub dir: PathBuf,
    /// The bucket URL (s3://bucket/prefix, gs://…, az://…, file:///…) [default: the run's `--out URL`].
    #[arg(value_name = "URL")]
    pub url: Option<String>,
}

pub fn run(args: &PublishArgs) -> u8 {
    let results = args.dir.join("results.json");
    if !results.is_file() {
        crate::errln!(
            "error: `{}` has no results.json to publish; give the folder of a run (`sonicflow run` prints it)",
            args.dir.display()
        );
        return exit::INVALID;
    }
    let url = match &args.url {
        Some(url) => url.clone(),
        None => match RunLog::header(&args.dir).ok().and_then(|h| h.out_url) {
            Some(url) => url,
            None => {
                crate::errln!(
                    "error: the run in `{}` was not started with `--out URL`; say where to publish it: `sonicflow publish {} s3://bucket/prefix`",
                    args.dir.display(),
                    args.dir.display()
                );
                return exit::INVALID;
            }
        },
    };
    match open_checked(&url) {
        Ok(bucket) => super::run::publish::deliver(&bucket, &args.dir, exit::SUCCESS, true),
        Err(message) => {
            crate::errln!("error: cannot publish to `{url}`: {message}; nothing was published");
            crate::errln!(
                "  help: check the URL, and the store's credentials in the standard environment (AWS_*, GOOGLE_*, AZURE_*)"
            );
            exit::NOT_PUBLISHED
        }
    }
}
