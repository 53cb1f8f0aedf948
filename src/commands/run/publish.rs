//! `run --out URL`: the run works in a local run folder as without it, the
//! bucket is proved reachable before anything is paid for, and the run
//! folder's results are published to it whatever way the run ends.

use std::path::Path;

use super::{RunArgs, RunError};
use crate::exit;
use crate::journal::RunHeader;
use crate::store::Bucket;
use crate::store::publish::{self, store_url};

/// The store URL `--out` gives, if it gives one; a folder is `None`.
pub(super) fn given(args: &RunArgs) -> Result<Option<String>, RunError> {
    let Some(out) = args.out.as_deref() else {
        return Ok(None);
    };
    store_url(out)
        .map(|url| url.map(str::to_owned))
        .map_err(|message| RunError::Out {
            url: out.display().to_string(),
            message,
        })
}

/// Whether `--out` names a folder to work in (not a bucket).
pub(super) fn is_folder(out: &Path) -> bool {
    matches!(store_url(out), Ok(None))
}

/// The bucket the run publishes to: `--out URL`, else the one the resumed
/// run was started with; opened and asked one cheap question now, so that
/// a wrong URL or an unreachable store stops the run before it pays.
pub(super) fn target(
    args: &RunArgs,
    resumed: Option<&RunHeader>,
) -> Result<Option<Bucket>, RunError> {
    let url = given(args)?.or_else(|| resumed.and_then(|h| h.out_url.clone()));
    let Some(url) = url else {
        return Ok(None);
    };
    publish::open_checked(&url)
        .map(Some)
        .map_err(|message| RunError::Out { url, message })
}

/// Publishes the run folder `out` to `bucket` once the run has ended with
/// `outcome_code` (unless its results.json could not be `written`: a stale
/// one is not published), and returns the exit code: a run whose results
/// did not all reach the bucket says so (its own code wins when it asks
/// for a resume, which publishes again).
pub(crate) fn deliver(bucket: &Bucket, out: &Path, outcome_code: u8, written: bool) -> u8 {
    if !written {
        crate::errln!(
            "error: nothing was published to `{bucket}`: the run's results.json could not be written"
        );
        return not_delivered(outcome_code);
    }
    match publish::publish(bucket, out) {
        Ok(done) => {
            crate::errln!(
                "published: {} ({} file(s) sent, {} already there)",
                bucket.location("results.json"),
                done.sent,
                done.kept
            );
            outcome_code
        }
        Err(e) => {
            crate::errln!("error: {e}");
            crate::errln!(
                "  help: nothing is paid again: the results are in `{dir}`; publish them with `sonicflow publish {dir}`",
                dir = out.display()
            );
            not_delivered(outcome_code)
        }
    }
}

/// The exit code of a run whose results were not all published.
fn not_delivered(outcome_code: u8) -> u8 {
    match outcome_code {
        exit::SUCCESS | exit::FAILED_STEPS => exit::NOT_PUBLISHED,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_that_needs_a_resume_keeps_its_code_when_not_published() {
        assert_eq!(not_delivered(exit::SUCCESS), exit::NOT_PUBLISHED);
        assert_eq!(not_delivered(exit::FAILED_STEPS), exit::NOT_PUBLISHED);
        assert_eq!(not_delivered(exit::INTERRUPTED), exit::INTERRUPTED);
        assert_eq!(not_delivered(exit::BUDGET), exit::BUDGET);
    }
}
