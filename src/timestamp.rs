//! How a time is written down in results, JSON event lines and journals:
//! one format for all of them. A leaf: it imports no module of the crate,
//! so the reporters and the journal share it without importing each other.

use std::time::SystemTime;

/// RFC 3339 in UTC with milliseconds: `2026-11-21T12:00:01.000Z`.
pub(crate) fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

/// Reads a time written by [`rfc3339`]; `None` for anything else.
pub(crate) fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(text.trim()).ok()
}
