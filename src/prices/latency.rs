//! How long each kind of remote task is expected to take, from its
//! acceptance to its result: the latency windows of the reference (an
//! upload about 20 s, a song about 2 min, stems and edits 1 to 3 min).
//!
//! The runner starts its poll schedule from these windows, and the sandbox
//! draws its simulated latencies from them unless told otherwise, so the
//! two read the same table.

use std::time::Duration;

/// A closed range of latencies at real-world scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyRange {
    pub min: Duration,
    pub max: Duration,
}

impl LatencyRange {
    pub const fn secs(min: u64, max: u64) -> LatencyRange {
        LatencyRange {
            min: Duration::from_secs(min),
            max: Duration::from_secs(max),
        }
    }

    /// Halfway between `min` and `max`.
    pub fn middle(&self) -> Duration {
        (self.min + self.max) / 2
    }
}

/// The kinds of remote work that wait alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// `/upload` answered with a task.
    Upload,
    /// A new song: create, extend, cover, persona, sample, mashup and the
    /// one-stop upload-extend / upload-cover (timed from their task id).
    Song,
    /// Remaster, add instrumental or vocals, concat, replace-section.
    Edit,
    /// Stems, basic and full.
    Stems,
}

impl Wait {
    /// What the reference says this kind of work takes.
    pub const fn expected(self) -> LatencyRange {
        match self {
            Wait::Upload => LatencyRange::secs(15, 25),
            Wait::Song => LatencyRange::secs(90, 150),
            Wait::Edit | Wait::Stems => LatencyRange::secs(60, 180),
        }
    }

    /// The kind of `operation`; `None` for the quick calls, which are
    /// answered at once, and for names the catalogue does not know.
    pub fn of(operation: &str) -> Option<Wait> {
        Some(match operation {
            "upload" => Wait::Upload,
            "create_music"
            | "extend_music"
            | "extend_upload_music"
            | "cover_music"
            | "cover_upload_music"
            | "persona_music"
            | "upload_extend"
            | "upload_cover"
            | "sample"
            | "mashup" => Wait::Song,
            "concat_music" | "remaster" | "add_instrumental" | "add_vocals" | "replace_section" => {
                Wait::Edit
            }
            "stems_basic" | "stems_full" => Wait::Stems,
            _ => return None,
        })
    }
}

/// Whether the answer to `operation`'s request waits for work on the
/// service (the fetch of an upload, the upload phase of upload-extend and
/// upload-cover: seconds to a minute), rather than coming at once.
pub fn answered_after_work(operation: &str) -> bool {
    matches!(operation, "upload" | "upload_extend" | "upload_cover")
}

/// The latency window expected of `operation`, if it is a remote task.
pub fn expected_latency(operation: &str) -> Option<LatencyRange> {
    Wait::of(operation).map(Wait::expected)
}

/// The typical time from submit to done of `operation`: the middle of its
/// window, or nothing for the quick calls answered at once. The scheduler
/// ranks ready work by it, so only the order of these figures matters.
pub fn typical_latency(operation: &str) -> Duration {
    expected_latency(operation).map_or(Duration::ZERO, |range| range.middle())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prices::{OPERATIONS, OpClass};

    #[test]
    fn every_generation_submit_has_a_window() {
        let without: Vec<&str> = OPERATIONS
            .iter()
            .copied()
            .filter(|op| OpClass::of(op) == OpClass::Generation && Wait::of(op).is_none())
            .collect();
        assert_eq!(without, Vec::<&str>::new());
    }

    #[test]
    fn the_windows_are_the_reference_s() {
        assert_eq!(expected_latency("upload"), Some(LatencyRange::secs(15, 25)));
        assert_eq!(
            expected_latency("create_music"),
            Some(LatencyRange::secs(90, 150))
        );
        assert_eq!(
            expected_latency("stems_basic"),
            Some(LatencyRange::secs(60, 180))
        );
        assert_eq!(expected_latency("wav"), None);
        assert_eq!(
            LatencyRange::secs(60, 180).middle(),
            Duration::from_secs(120)
        );
    }

    #[test]
    fn generations_outlast_uploads_which_outlast_instant_calls() {
        assert!(typical_latency("stems_basic") > typical_latency("upload"));
        assert!(typical_latency("create_music") > typical_latency("upload"));
        assert!(typical_latency("upload") > typical_latency("wav"));
        assert_eq!(typical_latency("wav"), Duration::ZERO);
    }
}
