//! Which rate-limit class each priced operation belongs to.
//!
//! The service documents one limit: one **create** request every 3 seconds
//! per key. Everything that starts a generation counts as a create here —
//! every `task_type` of `/sonic/create`, the one-stop upload-extend and
//! upload-cover, sample, mashup, replace-section and both stems splits (and
//! a batch, which is made of them). The other paid calls (analysis, exports,
//! uploads, personas, lyrics) are quick calls that nothing documented limits.
//!
//! The runner paces each class with its own quota and the sandbox applies
//! its slot by the same mapping, so the two can never disagree on a name.

use std::fmt;

/// A rate-limit class of paid calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpClass {
    /// Submits that start a generation: the documented 3 s slot.
    Generation,
    /// Every other paid call.
    Quick,
}

impl OpClass {
    /// Both classes, in a stable order.
    pub const ALL: [OpClass; 2] = [OpClass::Generation, OpClass::Quick];

    /// The class of `operation`; a name the table does not know is taken as
    /// a generation submit, the stricter of the two.
    pub fn of(operation: &str) -> OpClass {
        class_of(operation).unwrap_or(OpClass::Generation)
    }

    /// Its position in [`OpClass::ALL`], for per-class arrays.
    pub fn index(self) -> usize {
        match self {
            OpClass::Generation => 0,
            OpClass::Quick => 1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            OpClass::Generation => "generation",
            OpClass::Quick => "quick",
        }
    }
}

impl fmt::Display for OpClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The class of each operation of [`super::OPERATIONS`] by name; `None` for
/// any other name.
fn class_of(operation: &str) -> Option<OpClass> {
    Some(match operation {
        "create_music"
        | "extend_music"
        | "extend_upload_music"
        | "cover_music"
        | "cover_upload_music"
        | "persona_music"
        | "concat_music"
        | "remaster"
        | "add_instrumental"
        | "add_vocals"
        | "upload_extend"
        | "upload_cover"
        | "sample"
        | "mashup"
        | "replace_section"
        | "stems_basic"
        | "stems_full" => OpClass::Generation,
        "upload" | "persona" | "create_voice" | "bpm" | "vox" | "upsample_tags"
        | "aligned_lyrics" | "midi" | "wav" | "lyrics" => OpClass::Quick,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prices::OPERATIONS;

    #[test]
    fn every_priced_operation_has_a_class_of_its_own_naming() {
        let unnamed: Vec<&str> = OPERATIONS
            .iter()
            .copied()
            .filter(|op| class_of(op).is_none())
            .collect();
        assert_eq!(unnamed, Vec::<&str>::new());
    }

    #[test]
    fn creates_and_stems_are_generation_and_analysis_and_exports_are_quick() {
        let table = [
            ("create_music", OpClass::Generation),
            ("cover_upload_music", OpClass::Generation),
            ("upload_cover", OpClass::Generation),
            ("sample", OpClass::Generation),
            ("mashup", OpClass::Generation),
            ("replace_section", OpClass::Generation),
            ("stems_basic", OpClass::Generation),
            ("stems_full", OpClass::Generation),
            ("persona_music", OpClass::Generation),
            ("bpm", OpClass::Quick),
            ("wav", OpClass::Quick),
            ("midi", OpClass::Quick),
            ("vox", OpClass::Quick),
            ("upsample_tags", OpClass::Quick),
            ("aligned_lyrics", OpClass::Quick),
            ("persona", OpClass::Quick),
            ("upload", OpClass::Quick),
            ("lyrics", OpClass::Quick),
            ("create_voice", OpClass::Quick),
            ("no_such_operation", OpClass::Generation),
        ];
        for (op, class) in table {
            assert_eq!(OpClass::of(op), class, "{op}");
        }
        assert_eq!(
            OpClass::ALL.map(OpClass::index),
            [0, 1],
            "indices follow ALL"
        );
    }
}
