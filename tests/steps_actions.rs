//! Every action through the step executor against the in-process sandbox:
//! the right operation is charged, the outputs have exactly the declared
//! shape, and the result files are saved whole where documented, in both
//! answer styles.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod steps_support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sonicflow::action::Action;
use sonicflow::engine::{Job, Outputs};
use sonicflow::sandbox::{AnswerStyle, EntryKind, NotReadyForm};
use sonicflow::steps::{ApiExecutor, DownloadOptions};
use steps_support::*;

/// Generation fields plus `extra`.
fn song(extra: Value) -> Value {
    let mut base = json!({
        "custom_mode": true,
        "mv": "sonic-v5",
        "prompt": "[Verse]\nCity lights are fading\n\n[Chorus]\nDrive into the night",
        "tags": "synthwave, dreamy",
        "title": "Night Drive",
    });
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

struct Chain<'a> {
    exec: &'a ApiExecutor,
    ran: Vec<(Action, &'static str)>,
    files: Vec<sonicflow::engine::SavedFile>,
}

impl Chain<'_> {
    async fn run(&mut self, id: &str, action: Action, op: &'static str, fields: Value) -> Value {
        let job: Job = job(id, action, op, fields);
        let Outputs { value, files } = run(self.exec, &job).await;
        self.ran.push((action, op));
        self.files.extend(files);
        value
    }
}

fn id(v: &Value, path: &str) -> String {
    v.pointer(path).and_then(Value::as_str).unwrap().to_owned()
}

#[tokio::test]
async fn every_action_yields_its_declared_outputs() {
    for style in AnswerStyle::ALL {
        every_action_yields_its_declared_outputs_in(style).await;
    }
}

async fn every_action_yields_its_declared_outputs_in(style: AnswerStyle) {
    let out = tempfile::tempdir().unwrap();
    let downloads = DownloadOptions::new(out.path())
        .with_retries(2, Duration::from_millis(100))
        .with_time_scale(1000.0);
    let (handle, exec) = start(fast().with_style(style), downloads).await;
    let mut c = Chain {
        exec: &exec,
        ran: vec![],
        files: vec![],
    };
    let url = "https://example.com/in.mp3";

    let up = c
        .run("up", Action::Upload, "upload", json!({"url": url}))
        .await;
    let uploaded = id(&up, "/clip_id");
    c.run(
        "cover_up",
        Action::Cover,
        "cover_upload_music",
        song(json!({"clip": uploaded, "clip_origin": "upload", "audio_weight": 0.5})),
    )
    .await;
    let made = c
        .run("make", Action::Create, "create_music", song(json!({})))
        .await;
    let g0 = id(&made, "/clips/0/clip_id");
    let g1 = id(&made, "/clips/1/clip_id");
    assert_eq!(id(&made, "/clip_id"), g0);

    let basic = c
        .run(
            "split",
            Action::StemsBasic,
            "stems_basic",
            json!({"clip": g0}),
        )
        .await;
    let names: Vec<&str> = basic["stems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["vocals", "drums", "bass", "other"], "{style:?}");
    let full = c
        .run(
            "split_all",
            Action::StemsFull,
            "stems_full",
            json!({"clip": g0}),
        )
        .await;
    assert_eq!(full["stems"].as_array().unwrap().len(), 24, "{style:?}");
    let wav = c.run("wav", Action::Wav, "wav", json!({"clip": g0})).await;
    assert!(wav["wav_url"].as_str().unwrap().ends_with(".wav"));
    c.run("midi", Action::Midi, "midi", json!({"clip": g0}))
        .await;
    let bpm = c.run("bpm", Action::Bpm, "bpm", json!({"clip": g0})).await;
    assert!(bpm["avg_bpm"].as_f64().unwrap() > 0.0);
    let vox = c
        .run(
            "vox",
            Action::Vox,
            "vox",
            json!({"clip": g0, "vocal_start_s": 0, "vocal_end_s": 20}),
        )
        .await;
    assert_eq!(id(&vox, "/source_clip_id"), g0);
    c.run(
        "words",
        Action::LyricsTimeline,
        "aligned_lyrics",
        json!({"clip": g0}),
    )
    .await;

    let ext = c
        .run(
            "ext",
            Action::Extend,
            "extend_music",
            song(json!({"clip": g0, "continue_at": 10.0, "clip_origin": "generated"})),
        )
        .await;
    let joined = c
        .run(
            "join",
            Action::Concat,
            "concat_music",
            json!({"clip": id(&ext, "/clip_id")}),
        )
        .await;
    assert_eq!(joined["clips"].as_array().unwrap().len(), 1);

    let persona = c
        .run(
            "voice",
            Action::Persona,
            "persona",
            json!({"clip": g0, "name": "Nova", "describe": "airy"}),
        )
        .await;
    c.run(
        "sung",
        Action::PersonaMusic,
        "persona_music",
        song(json!({"persona_id": id(&persona, "/persona_id")})),
    )
    .await;
    c.run(
        "master",
        Action::Remaster,
        "remaster",
        json!({"clip": g0, "mv": "sonic-v5", "variation_category": "normal"}),
    )
    .await;
    c.run(
        "vocals",
        Action::AddVocals,
        "add_vocals",
        song(json!({"clip": uploaded, "overpainting_start_s": 0, "overpainting_end_s": 30})),
    )
    .await;
    c.run(
        "band",
        Action::AddInstrumental,
        "add_instrumental",
        json!({"clip": uploaded, "mv": "sonic-v5"}),
    )
    .await;

    let ue = c
        .run(
            "up_ext",
            Action::UploadExtend,
            "upload_extend",
            song(json!({"url": url, "continue_at": 0.1, "auto_concat": true})),
        )
        .await;
    assert_eq!(ue["full_clips"].as_array().unwrap().len(), 2);
    assert!(ue["upload_clip_id"].is_string());
    let uc = c
        .run(
            "up_cov",
            Action::UploadCover,
            "upload_cover",
            song(json!({"url": url})),
        )
        .await;
    assert!(uc["upload_clip_id"].is_string());
    c.run(
        "sampled",
        Action::Sample,
        "sample",
        song(json!({"clip": g0, "chop_sample_start_s": 0, "chop_sample_end_s": 10})),
    )
    .await;
    c.run(
        "mixed",
        Action::Mashup,
        "mashup",
        song(json!({"clips": [g0, g1]})),
    )
    .await;
    let rs = c
        .run(
            "fix",
            Action::ReplaceSection,
            "replace_section",
            json!({
        "clip": g0, "mv": "sonic-v5", "infill_start_s": 1.0, "infill_end_s": 5.0,
        "infill_lyrics": "[Chorus]\nnew words", "auto_concat": true}),
        )
        .await;
    assert_eq!(rs["full_clips"].as_array().unwrap().len(), 2);
    let tags = c
        .run(
            "tags",
            Action::UpsampleTags,
            "upsample_tags",
            json!({"tags": "pop, happy"}),
        )
        .await;
    assert!(!tags["upsampled_tags"].as_str().unwrap().is_empty());
    let words = c
        .run(
            "words_for",
            Action::Lyrics,
            "lyrics",
            json!({"description": "a song about rain"}),
        )
        .await;
    assert_eq!(words["lyrics"], words["results"][0]["lyrics"]);

    let covered: BTreeSet<Action> = c.ran.iter().map(|(a, _)| *a).collect();
    assert_eq!(
        covered,
        Action::ALL.iter().copied().collect::<BTreeSet<_>>()
    );
    // Each job charged exactly its own operation, once, in order.
    let charged: Vec<String> = handle
        .ledger()
        .entries(KEY)
        .into_iter()
        .filter(|e| e.kind == EntryKind::Charge)
        .map(|e| e.operation)
        .collect();
    let ops: Vec<&str> = c.ran.iter().map(|(_, op)| *op).collect();
    assert_eq!(charged, ops);

    check_files(out.path(), &c.files);
}

/// Every recorded file is whole, where it says, with a valid header; nothing
/// else (no `.part`) is left in the output folder.
fn check_files(out: &std::path::Path, files: &[sonicflow::engine::SavedFile]) {
    let exts: BTreeSet<&str> = files
        .iter()
        .filter_map(|f| f.path.rsplit('.').next())
        .collect();
    // A generated clip's cover art comes with its audio.
    assert_eq!(exts, ["jpeg", "mid", "mp3", "wav"].into_iter().collect());
    for f in files {
        let bytes = std::fs::read(out.join(&f.path)).unwrap();
        assert_eq!(bytes.len() as u64, f.bytes, "{}", f.path);
        assert_eq!(hex::encode(Sha256::digest(&bytes)), f.sha256, "{}", f.path);
        match f.path.rsplit('.').next().unwrap() {
            "wav" => assert!(
                bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WAVE",
                "{}",
                f.path
            ),
            "mid" => assert!(bytes.starts_with(b"MThd"), "{}", f.path),
            _ => assert_eq!(bytes[0], 0xFF, "{}", f.path),
        }
    }
    let mut recorded: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
    recorded.sort();
    assert_eq!(files_below(out), recorded);
    let wav = files.iter().find(|f| f.path.ends_with(".wav")).unwrap();
    assert_eq!(
        wav.path, "wav/wav-1.wav",
        "a step run once has no instance folder"
    );
}

#[tokio::test]
async fn every_not_ready_answer_counts_as_pending() {
    for (style, form) in AnswerStyle::ALL.into_iter().flat_map(|style| {
        [
            NotReadyForm::EmptyData,
            NotReadyForm::TypeObject,
            NotReadyForm::Accepted,
        ]
        .map(|form| (style, form))
    }) {
        let config = fast().with_style(style).with_not_ready_form(form);
        let (_handle, exec) = start(config, DownloadOptions::disabled()).await;
        let job = job("make", Action::Create, "create_music", song(json!({})));
        let made = run(&exec, &job).await;
        let clips = made.value["clips"].as_array().unwrap();
        assert_eq!(clips.len(), 2, "{style:?} {form:?}");
        for clip in clips {
            assert_eq!(clip["state"], "succeeded", "{style:?} {form:?}");
            assert!(clip["audio_url"].as_str().is_some_and(|u| !u.is_empty()));
            assert!(clip["duration"].as_f64().is_some(), "{clip}");
        }
    }
}
