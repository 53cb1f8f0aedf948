//! Process exit codes, as documented in the README.

/// Everything succeeded.
pub const SUCCESS: u8 = 0;
/// The run finished, but some steps failed.
pub const FAILED_STEPS: u8 = 1;
/// Invalid usage or manifest; nothing was sent.
pub const INVALID: u8 = 2;
/// Refused by the budget: plan over `max_credits`, or the balance is short.
pub const BUDGET: u8 = 3;
/// The API refused the key or could not be reached before any step ran.
pub const API_UNAVAILABLE: u8 = 4;
/// `status`: some send of the run has no recorded answer (it may have been charged).
pub const STATUS_IN_DOUBT: u8 = 5;
/// `status`: the run is still running, or unfinished with work outstanding.
pub const STATUS_IN_FLIGHT: u8 = 6;
/// `run --out URL`, `publish`: the results are in the run folder but could
/// not all be published to the bucket; publish them again.
pub const NOT_PUBLISHED: u8 = 7;
/// Interrupted (Ctrl-C); what was in flight was followed for a grace period.
pub const INTERRUPTED: u8 = 130;

/// Every exit code with what it means, in one line each, for `--help`
/// (the README's table says the same at length; a test keeps them in step).
pub const MEANINGS: &[(u8, &str)] = &[
    (SUCCESS, "success"),
    (
        FAILED_STEPS,
        "some steps failed or did not run, or the run stopped early",
    ),
    (
        INVALID,
        "invalid usage or manifest, or the pipeline is locked by another run; nothing was sent",
    ),
    (
        BUDGET,
        "refused or stopped by the budget (`max_credits`) or the balance",
    ),
    (
        API_UNAVAILABLE,
        "the API refused the key or could not be reached before any step ran",
    ),
    (STATUS_IN_DOUBT, "`status`: a send has no recorded answer"),
    (
        STATUS_IN_FLIGHT,
        "`status`: the run is in flight or unfinished",
    ),
    (
        NOT_PUBLISHED,
        "the results are in the run folder, but not all reached the bucket",
    ),
    (
        INTERRUPTED,
        "interrupted (Ctrl-C); resume with `run --resume`",
    ),
];

#[cfg(test)]
mod tests {
    /// The README's exit-code tables list exactly the codes `--help` does.
    #[test]
    fn the_readme_documents_every_exit_code() {
        let readme = include_str!("../README.md");
        let section = readme
            .split("\n## ")
            .find(|s| s.starts_with("Exit codes"))
            .unwrap_or_default();
        let mut documented: Vec<u8> = section
            .lines()
            .filter_map(|line| line.strip_prefix("| "))
            .filter_map(|rest| rest.split(" |").next()?.trim().parse().ok())
            .collect();
        documented.sort_unstable();
        documented.dedup();
        let mut codes: Vec<u8> = super::MEANINGS.iter().map(|(c, _)| *c).collect();
        codes.sort_unstable();
        assert_eq!(documented, codes);
    }
}
