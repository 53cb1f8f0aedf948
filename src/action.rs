//! The actions a step can take, one per Sonic operation: the vocabulary
//! every stage shares, from the manifest that names them to the reporters
//! that print them. A leaf: it imports no module of this crate, so any
//! stage may use it without pointing at another.
//!
//! What an action accepts (its typed `with` block) belongs to
//! `manifest::actions`; what it means on the wire, to `plan::catalog`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Generates `Action` and its names from one table.
macro_rules! actions {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal ),* $(,)?) => {
        /// What a step does: one Sonic operation.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize, JsonSchema)]
        pub enum Action {
            $( $(#[$doc])* #[serde(rename = $name)] $variant, )*
        }

        impl Action {
            pub const ALL: &'static [Action] = &[$(Action::$variant),*];

            /// The name written in manifests.
            pub fn name(self) -> &'static str {
                match self { $(Action::$variant => $name,)* }
            }
        }
    };
}

actions! {
    /// Upload audio from a URL.
    Upload = "upload",
    /// Create songs from lyrics or a description.
    Create = "create",
    /// Continue a clip.
    Extend = "extend",
    /// Restyle a clip.
    Cover = "cover",
    /// Join an extension with its source into the full song.
    Concat = "concat",
    /// Create a voice persona.
    Persona = "persona",
    /// Generate with a persona.
    PersonaMusic = "persona_music",
    /// Remaster a clip.
    Remaster = "remaster",
    /// Add an instrumental to an uploaded vocal clip.
    AddInstrumental = "add_instrumental",
    /// Add vocals to an uploaded instrumental clip.
    AddVocals = "add_vocals",
    /// Upload and extend in one call.
    UploadExtend = "upload_extend",
    /// Upload and cover in one call.
    UploadCover = "upload_cover",
    /// Build a song from a sample.
    Sample = "sample",
    /// Mix two clips.
    Mashup = "mashup",
    /// Replace a section of a clip.
    ReplaceSection = "replace_section",
    /// Measure a clip's tempo.
    Bpm = "bpm",
    /// Extract vocals.
    Vox = "vox",
    /// Export a clip as WAV.
    Wav = "wav",
    /// Export a clip as MIDI.
    Midi = "midi",
    /// Word timings of a clip's lyrics.
    LyricsTimeline = "lyrics_timeline",
    /// Expand style tags.
    UpsampleTags = "upsample_tags",
    /// Split a clip into vocals and instrumental.
    StemsBasic = "stems_basic",
    /// Split a clip into many stems.
    StemsFull = "stems_full",
    /// Write lyrics.
    Lyrics = "lyrics",
}

impl Action {
    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.iter().copied().find(|a| a.name() == name)
    }
}
