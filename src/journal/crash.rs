//! A deliberate crash at a chosen record, so tests can kill a run at the
//! exact point where a resume must take over.

/// A deliberate crash for testing resume: `SONICFLOW_CRASH_AT=before:accepted:3`
/// aborts the process (like `kill -9`: no cleanup, no flushing) just before
/// the third `accepted` record is written, i.e. after that request was sent
/// and answered but before the answer is durable. `after:KIND:N` aborts just
/// after the record is synced. KIND is `intent`, `accepted`, `released`,
/// `succeeded` or `failed`.
#[derive(Debug)]
pub(super) struct CrashPoint {
    after: bool,
    kind: String,
    countdown: u32,
}

impl CrashPoint {
    pub(super) fn from_env() -> Option<CrashPoint> {
        let spec = std::env::var("SONICFLOW_CRASH_AT").ok()?;
        let mut parts = spec.split(':');
        let after = match parts.next()? {
            "before" => false,
            "after" => true,
            _ => return None,
        };
        let kind = parts.next()?.to_owned();
        let countdown = parts.next().map_or(Some(1), |n| n.parse().ok())?;
        Some(CrashPoint {
            after,
            kind,
            countdown,
        })
    }

    pub(super) fn reached(&mut self, kind: &str, after: bool) {
        if self.after != after || self.kind != kind {
            return;
        }
        self.countdown = self.countdown.saturating_sub(1);
        if self.countdown == 0 {
            std::process::abort();
        }
    }
}
