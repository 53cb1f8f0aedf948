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
