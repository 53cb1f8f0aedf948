//! What each action means on the wire: the operation it resolves to (its
//! `task_type` or endpoint, which is also its price key) and the typed shape
//! of its outputs.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::shape::{Count, Origin, Ty};
use crate::action::Action;

/// Clips a generation yields, as documented ("each call generates 2 songs").
pub const CLIPS_PER_GENERATION: u64 = 2;
/// Stems of `stems_basic`, as the service was seen to return (2026-10-07).
pub const STEMS_BASIC: u64 = 4;
/// Stems of `stems_full`, as the service was seen to return (2026-10-07).
pub const STEMS_FULL: u64 = 24;

impl Action {
    /// The operation this action submits. For `cover` and `extend` it depends
    /// on where the source clip came from.
    pub fn operation(self, origin: Origin) -> &'static str {
        match self {
            Action::Upload => "upload",
            Action::Create => "create_music",
            Action::Extend if origin == Origin::Upload => "extend_upload_music",
            Action::Extend => "extend_music",
            Action::Cover if origin == Origin::Upload => "cover_upload_music",
            Action::Cover => "cover_music",
            Action::Concat => "concat_music",
            Action::Persona => "persona",
            Action::PersonaMusic => "persona_music",
            Action::Remaster => "remaster",
            Action::AddInstrumental => "add_instrumental",
            Action::AddVocals => "add_vocals",
            Action::UploadExtend => "upload_extend",
            Action::UploadCover => "upload_cover",
            Action::Sample => "sample",
            Action::Mashup => "mashup",
            Action::ReplaceSection => "replace_section",
            Action::Bpm => "bpm",
            Action::Vox => "vox",
            Action::Wav => "wav",
            Action::Midi => "midi",
            Action::LyricsTimeline => "aligned_lyrics",
            Action::UpsampleTags => "upsample_tags",
            Action::StemsBasic => "stems_basic",
            Action::StemsFull => "stems_full",
            Action::Lyrics => "lyrics",
        }
    }

    /// Actions submitted to `/sonic/create` with a `task_type`.
    pub fn uses_create_endpoint(self) -> bool {
        matches!(
            self,
            Action::Create
                | Action::Extend
                | Action::Cover
                | Action::Concat
                | Action::PersonaMusic
                | Action::Remaster
                | Action::AddInstrumental
                | Action::AddVocals
        )
    }

    /// Actions whose requests carry the generation fields and need `custom_mode`.
    pub fn takes_lyrics_or_description(self) -> bool {
        matches!(
            self,
            Action::Create
                | Action::Extend
                | Action::Cover
                | Action::PersonaMusic
                | Action::UploadExtend
                | Action::UploadCover
                | Action::Sample
                | Action::Mashup
        )
    }

    /// Actions that need an `mv` model.
    pub fn needs_model(self) -> bool {
        self.takes_lyrics_or_description()
            || matches!(
                self,
                Action::Remaster
                    | Action::AddInstrumental
                    | Action::AddVocals
                    | Action::ReplaceSection
            )
    }

    /// Actions that produce new clips (and so output `clips` / `clip_id`).
    pub fn generates(self) -> bool {
        self.needs_model() || self == Action::Concat
    }

    /// The typed shape of `steps.<id>.outputs`.
    pub fn outputs(self) -> &'static Ty {
        static SHAPES: LazyLock<HashMap<Action, Ty>> = LazyLock::new(|| {
            Action::ALL
                .iter()
                .map(|a| (*a, build_outputs(*a)))
                .collect()
        });
        static EMPTY: Ty = Ty::Any;
        SHAPES.get(&self).unwrap_or(&EMPTY)
    }
}

fn clip(origin: Origin) -> Ty {
    Ty::Obj(
        "clip",
        vec![
            ("clip_id", Ty::Clip(origin)),
            ("state", Ty::Str),
            ("title", Ty::Str),
            ("tags", Ty::Str),
            ("lyrics", Ty::Str),
            ("audio_url", Ty::Str),
            ("image_url", Ty::Str),
            ("video_url", Ty::Str),
            ("duration", Ty::Num),
            ("created_at", Ty::Str),
            ("mv", Ty::Str),
            ("gpt_description_prompt", Ty::Str),
        ],
    )
}

fn clips(count: u64) -> Ty {
    Ty::List(Box::new(clip(Origin::Generated)), Count::Expected(count))
}

fn build_outputs(action: Action) -> Ty {
    let obj = |fields| Ty::Obj("outputs", fields);
    let generated = |n| {
        vec![
            ("clips", clips(n)),
            ("clip_id", Ty::Clip(Origin::Generated)),
        ]
    };
    match action {
        Action::Upload => obj(vec![("clip_id", Ty::Clip(Origin::Upload))]),
        Action::Concat => obj(generated(1)),
        Action::UploadExtend | Action::ReplaceSection => {
            let mut fields = generated(CLIPS_PER_GENERATION);
            fields.push(("full_clips", clips(CLIPS_PER_GENERATION)));
            if action == Action::UploadExtend {
                fields.push(("upload_clip_id", Ty::Clip(Origin::Upload)));
            }
            obj(fields)
        }
        Action::UploadCover => {
            let mut fields = generated(CLIPS_PER_GENERATION);
            fields.push(("upload_clip_id", Ty::Clip(Origin::Upload)));
            obj(fields)
        }
        a if a.generates() => obj(generated(CLIPS_PER_GENERATION)),
        Action::Persona => obj(vec![("persona_id", Ty::Str)]),
        Action::Bpm => obj(vec![
            ("avg_bpm", Ty::Num),
            ("max_bpm", Ty::Num),
            ("min_bpm", Ty::Num),
        ]),
        Action::Vox => obj(vec![
            ("vox_audio_id", Ty::Str),
            ("vocal_start_s", Ty::Num),
            ("vocal_end_s", Ty::Num),
            ("source_clip_id", Ty::Clip(Origin::Generated)),
        ]),
        Action::Wav => obj(vec![("wav_url", Ty::Str)]),
        Action::Midi => {
            let note = Ty::Obj(
                "note",
                vec![
                    ("pitch", Ty::Num),
                    ("start", Ty::Num),
                    ("end", Ty::Num),
                    ("velocity", Ty::Num),
                ],
            );
            let instrument = Ty::Obj(
                "instrument",
                vec![
                    ("name", Ty::Str),
                    ("notes", Ty::List(Box::new(note), Count::Expected(1))),
                ],
            );
            obj(vec![
                ("midi_url", Ty::Str),
                (
                    "instruments",
                    Ty::List(Box::new(instrument), Count::Expected(1)),
                ),
            ])
        }
        Action::LyricsTimeline => {
            let word = Ty::Obj(
                "aligned word",
                vec![
                    ("word", Ty::Str),
                    ("start_s", Ty::Num),
                    ("end_s", Ty::Num),
                    ("p_align", Ty::Num),
                    ("success", Ty::Bool),
                ],
            );
            obj(vec![(
                "alignment",
                Ty::List(Box::new(word), Count::Expected(1)),
            )])
        }
        Action::UpsampleTags => obj(vec![("upsampled_tags", Ty::Str)]),
        Action::StemsBasic | Action::StemsFull => {
            let n = if action == Action::StemsBasic {
                STEMS_BASIC
            } else {
                STEMS_FULL
            };
            let stem = Ty::Obj(
                "stem",
                vec![
                    ("name", Ty::Str),
                    ("clip_id", Ty::Clip(Origin::Generated)),
                    ("audio_url", Ty::Str),
                ],
            );
            obj(vec![(
                "stems",
                Ty::List(Box::new(stem), Count::Expected(n)),
            )])
        }
        Action::Lyrics => {
            let result = Ty::Obj(
                "lyrics result",
                vec![("title", Ty::Str), ("lyrics", Ty::Str)],
            );
            obj(vec![
                ("results", Ty::List(Box::new(result), Count::Expected(2))),
                ("title", Ty::Str),
                ("lyrics", Ty::Str),
            ])
        }
        _ => Ty::Any,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prices::PriceTable;

    #[test]
    fn every_action_resolves_to_a_priced_operation_and_has_outputs() {
        let prices = PriceTable::builtin();
        for a in Action::ALL {
            for origin in [Origin::Upload, Origin::Generated, Origin::Unknown] {
                assert!(prices.price(a.operation(origin)).is_some(), "{a:?}");
            }
            assert!(matches!(a.outputs(), Ty::Obj(..)), "{a:?}");
        }
        assert_eq!(
            Action::Cover.operation(Origin::Upload),
            "cover_upload_music"
        );
        assert_eq!(Action::Extend.operation(Origin::Generated), "extend_music");
    }
}
