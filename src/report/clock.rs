//! Wall-clock time for reporters.
//!
//! Run events carry no timestamps: a reporter stamps each event when it
//! applies it. The clock is injected so tests pin every timestamp and
//! duration instead of filtering them out.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// Returns the current time; cheap to clone and share between reporters.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The real wall clock.
pub fn system_clock() -> Clock {
    Arc::new(SystemTime::now)
}

/// A clock that starts at `start` and moves forward by `step` on every read,
/// so a test sees distinct, predictable times without sleeping.
pub fn stepping_clock(start: SystemTime, step: Duration) -> Clock {
    let reads = AtomicU64::new(0);
    Arc::new(move || {
        let n = reads.fetch_add(1, Ordering::Relaxed);
        let offset = step.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX));
        start + offset
    })
}

/// `HH:MM:SS` in UTC, for log lines a person reads.
pub(crate) fn time_of_day(at: SystemTime) -> String {
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Milliseconds from `from` to `to`, zero if the clock went backwards.
pub(crate) fn millis_between(from: SystemTime, to: SystemTime) -> u64 {
    let ms = to.duration_since(from).unwrap_or_default().as_millis();
    u64::try_from(ms).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timestamp::rfc3339;

    #[test]
    fn formats_and_steps() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_780_800);
        let clock = stepping_clock(start, Duration::from_millis(1500));
        let (a, b) = (clock(), clock());
        assert_eq!(rfc3339(a), "2026-11-27T12:00:00.000Z");
        assert_eq!(rfc3339(b), "2026-11-27T12:00:01.500Z");
        assert_eq!(time_of_day(b), "12:00:01");
        assert_eq!(millis_between(a, b), 1500);
        assert_eq!(millis_between(b, a), 0);
    }
}
