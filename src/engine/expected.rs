//! How long the service is expected to take over each operation, from
//! submit to done: the middle of the windows the reference gives (uploads
//! 15–25 s, songs 90–150 s, stems and edits 60–180 s, the upload phase of
//! the one-stop calls 30–60 s). Synchronous calls answer at once.
//!
//! Only the order of these figures matters to the scheduler (which ready
//! request has the longest work behind it), so they are the service's
//! typical figures at real-world scale, not tuned to any run.

use std::time::Duration;

const UPLOAD: Duration = Duration::from_secs(20);
const SONG: Duration = Duration::from_secs(120);
const EDIT: Duration = Duration::from_secs(120);
const UPLOAD_PHASE: Duration = Duration::from_secs(45);

/// The expected time from submit to done of `operation`; an operation the
/// table does not know is taken to be as long as a song.
pub(crate) fn latency(operation: &str) -> Duration {
    match operation {
        "upload" => UPLOAD,
        "create_music"
        | "extend_music"
        | "extend_upload_music"
        | "cover_music"
        | "cover_upload_music"
        | "persona_music"
        | "sample"
        | "mashup" => SONG,
        "upload_extend" | "upload_cover" => UPLOAD_PHASE + SONG,
        "concat_music" | "remaster" | "add_instrumental" | "add_vocals" | "replace_section"
        | "stems_basic" | "stems_full" => EDIT,
        "persona" | "create_voice" | "bpm" | "vox" | "upsample_tags" | "aligned_lyrics"
        | "midi" | "wav" | "lyrics" => Duration::ZERO,
        _ => SONG,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prices::OPERATIONS;

    #[test]
    fn generations_outlast_uploads_which_outlast_instant_calls() {
        assert!(latency("stems_basic") > latency("upload"));
        assert!(latency("upload") > latency("wav"));
        assert!(latency("upload_cover") > latency("cover_music"));
        // Every known operation has a figure of its own kind, not the fallback by accident.
        let instant = OPERATIONS.iter().filter(|op| latency(op).is_zero()).count();
        assert_eq!(instant, 9);
    }
}
