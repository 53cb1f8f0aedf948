//! The client against the in-process sandbox, one test per endpoint and
//! each in both answer styles: the request is accepted, the answer decodes,
//! and the ledger charged the documented operation exactly once.

mod sandbox_support;

use sandbox_support::*;
use sonicflow::api::*;
use sonicflow::sandbox::EntryKind;

fn charges(handle: &sonicflow::sandbox::SandboxHandle) -> Vec<(String, u64)> {
    handle
        .ledger()
        .entries(KEY)
        .into_iter()
        .filter(|e| e.kind == EntryKind::Charge)
        .map(|e| (e.operation, e.credits))
        .collect()
}

/// Each operation with its built-in price, in order.
fn priced(operations: &[&str]) -> Vec<(String, u64)> {
    operations
        .iter()
        .map(|o| ((*o).to_owned(), price(o)))
        .collect()
}

fn create(task_type: TaskType, clip: &str, fields: GenerationFields) -> CreateRequest {
    CreateRequest {
        task_type: Some(task_type),
        continue_clip_id: Some(clip.into()),
        fields,
        ..Default::default()
    }
}

#[tokio::test]
async fn credits_report_the_starting_balance() {
    styled(async |style| {
        let (handle, client) = start(fast().with_style(style).with_balance(77)).await;
        assert_eq!(
            client.credits().await.unwrap(),
            Credits {
                credits: 77,
                extra_credits: 0
            }
        );
        handle.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn create_music_yields_two_clips_with_playable_files() {
    styled(async |style| {
        let (handle, client) = start(fast().with_style(style)).await;
        let clips = song(&client).await;
        assert_eq!(clips.len(), 2);
        let clip = &clips[0];
        assert_eq!(clip.title.as_deref(), Some("Night Drive"));
        assert_eq!(clip.mv, Some(polled_mv(style, "sonic-v5")));
        let duration = clip.duration.unwrap();
        let audio = reqwest::get(clip.audio_url.clone().unwrap()).await.unwrap();
        assert_eq!(audio.headers()["content-type"], "audio/mpeg");
        assert!(!audio.bytes().await.unwrap().is_empty());
        let wav = client.wav(&clip.clip_id).await.unwrap();
        let bytes = reqwest::get(&wav.wav_url)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&bytes[..4], b"RIFF");
        assert_eq!(bytes.len(), 44 + (duration * 8000.0).round() as usize);
        assert_eq!(charges(&handle), priced(&["create_music", "wav"]));
        let spent = price("create_music") + price("wav");
        assert_eq!(client.credits().await.unwrap().credits, 1000 - spent as i64);
    })
    .await;
}

#[tokio::test]
async fn description_mode_and_omitted_task_type_mean_create_music() {
    styled(async |style| {
        let (handle, client) = start(fast().with_style(style)).await;
        let fields = GenerationFields {
            custom_mode: Some(false),
            mv: Some("sonic-v4".into()),
            gpt_description_prompt: Some("calm piano with soft strings".into()),
            make_instrumental: Some(true),
            ..Default::default()
        };
        let task = client
            .create(&CreateRequest {
                fields,
                ..Default::default()
            })
            .await
            .unwrap();
        let clips = succeeded(&wait_done(&client, &task.task_id).await);
        assert_eq!(clips.len(), 2);
        assert_eq!(charges(&handle), priced(&["create_music"]));
    })
    .await;
}

#[tokio::test]
async fn extend_then_concat_gives_one_full_clip() {
    styled(async |style| {
        let (handle, client) = start(fast().with_style(style)).await;
        let source = song(&client).await.remove(0);
        let mut req = create(
            TaskType::ExtendMusic,
            &source.clip_id,
            fields_for("sonic-v5"),
        );
        req.continue_at = Some(10.0);
        let ext = succeeded(&wait_done(&client, &client.create(&req).await.unwrap().task_id).await);
        let concat = create(
            TaskType::ConcatMusic,
            &ext[0].clip_id,
            GenerationFields::default(),
        );
        let full =
            succeeded(&wait_done(&client, &client.create(&concat).await.unwrap().task_id).await);
        assert_eq!(full.len(), 1);
        let ops: Vec<String> = charges(&handle).into_iter().map(|c| c.0).collect();
        assert_eq!(ops, ["create_music", "extend_music", "concat_music"]);
    })
    .await;
}

#[tokio::test]
async fn cover_remaster_and_persona_on_generated_clips() {
    styled(async |style| {
        let (handle, client) = start(fast().with_style(style)).await;
        let source = song(&client).await.remove(0);
        let cover = create(
            TaskType::CoverMusic,
            &source.clip_id,
            fields_for("sonic-v4-5"),
        );
        succeeded(&wait_done(&client, &client.create(&cover).await.unwrap().task_id).await);
        let mut remaster = create(
            TaskType::Remaster,
            &source.clip_id,
            GenerationFields {
                mv: Some("sonic-v5".into()),
                ..Default::default()
            },
        );
        remaster.variation_category = Some("normal".into());
        succeeded(&wait_done(&client, &client.create(&remaster).await.unwrap().task_id).await);
        let persona = client
            .persona(&PersonaRequest {
                name: "Nova".into(),
                clip_id: source.clip_id.clone(),
                describe: Some("airy".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        let req = CreateRequest {
            task_type: Some(TaskType::PersonaMusic),
            persona_id: Some(persona.persona_id),
            fields: fields_for("sonic-v5"),
            ..Default::default()
        };
        succeeded(&wait_done(&client, &client.create(&req).await.unwrap().task_id).await);
        let ops: Vec<(String, u64)> = charges(&handle);
        assert_eq!(
            ops,
            priced(&[
                "create_music",
                "cover_music",
                "remaster",
                "persona",
                "persona_music"
            ])
        );
    })
    .await;
}

#[tokio::test]
async fn uploaded_clips_take_the_upload_task_types_and_add_layers() {
    styled(async |style| {
        let (handle, client) = start(fast().with_style(style)).await;
        let clip = uploaded(&client).await;
        let mut extend = create(TaskType::ExtendUploadMusic, &clip, fields_for("sonic-v5"));
        extend.continue_at = Some(0.1);
        let cover = create(TaskType::CoverUploadMusic, &clip, fields_for("sonic-v5"));
        let mut vocals = create(TaskType::AddVocals, &clip, fields_for("sonic-v5"));
        vocals.overpainting_start_s = Some(0.0);
        vocals.overpainting_end_s = Some(30.0);
        let instrumental = create(
            TaskType::AddInstrumental,
            &clip,
            GenerationFields {
                mv: Some("sonic-v5".into()),
                ..Default::default()
            },
        );
        for req in [extend, cover, vocals, instrumental] {
            let task = client.create(&req).await.unwrap();
            assert_eq!(succeeded(&wait_done(&client, &task.task_id).await).len(), 2);
        }
        let ops: Vec<String> = charges(&handle).into_iter().map(|c| c.0).collect();
        assert_eq!(
            ops,
            [
                "upload",
                "extend_upload_music",
                "cover_upload_music",
                "add_vocals",
                "add_instrumental"
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn provenance_rules_reject_the_wrong_source() {
    styled(async |style| {
        let (handle, client) = start(fast().with_style(style)).await;
        let generated = song(&client).await.remove(0).clip_id;
        let up = uploaded(&client).await;
        let cases = [
            (
                create(TaskType::AddVocals, &generated, fields_for("sonic-v5")),
                "only works on clips from /sonic/upload",
            ),
            (
                create(TaskType::CoverMusic, &up, fields_for("sonic-v5")),
                "use cover_upload_music for uploaded clips",
            ),
            (
                create(
                    TaskType::CoverUploadMusic,
                    &generated,
                    fields_for("sonic-v5"),
                ),
                "only works on clips from /sonic/upload",
            ),
        ];
        for (req, needle) in cases {
            let err = client.create(&req).await.unwrap_err();
            assert_eq!(err.class(), ErrorClass::Invalid);
            assert_eq!(err.status(), Some(400));
            assert!(err.message().contains(needle), "{err}");
        }
        let unknown = create(
            TaskType::CoverMusic,
            "00000000-0000-4000-8000-000000000000",
            fields_for("sonic-v5"),
        );
        let err = client.create(&unknown).await.unwrap_err();
        assert_eq!(
            (err.status(), err.message()),
            (Some(404), "clip not found.")
        );
        assert_eq!(charges(&handle).len(), 2, "refusals cost nothing");
    })
    .await;
}

#[tokio::test]
async fn upload_extend_with_auto_concat_pairs_extended_and_full() {
    styled(async |style| {
        let (_handle, client) = start(fast().with_style(style)).await;
        let req = UploadExtendRequest {
            url: "https://example.com/in.mp3".into(),
            fields: fields_for("sonic-v4-5"),
            continue_at: Some(0.1),
            auto_concat: Some(true),
        };
        let sub = client.upload_extend(&req).await.unwrap();
        assert!(sub.upload_clip_id.is_some());
        let status = wait_done(&client, &sub.task_id).await;
        let TaskStatus::Items(items) = &status else {
            panic!("{status:?}")
        };
        assert_eq!(items.len(), 2);
        for item in items {
            let TaskItem::Paired { kind, part, full } = item else {
                panic!("{item:?}")
            };
            assert_eq!(*kind, PairKind::Extended);
            assert_eq!(part.state, ClipState::Succeeded);
            assert!(full.as_ref().unwrap().duration.unwrap() > part.duration.unwrap());
        }
    })
    .await;
}

#[tokio::test]
async fn upload_cover_answers_with_steps_and_covers() {
    styled(async |style| {
        let (handle, client) = start(fast().with_style(style)).await;
        let req = UploadCoverRequest {
            url: "https://example.com/in.mp3".into(),
            fields: GenerationFields {
                audio_weight: Some(0.5),
                ..fields_for("sonic-v4-5")
            },
        };
        let sub = client.upload_cover(&req).await.unwrap();
        let clips = succeeded(&wait_done(&client, &sub.task_id).await);
        assert_eq!(clips.len(), 2);
        assert_eq!(charges(&handle), priced(&["upload_cover"]));
        let refused = UploadCoverRequest {
            url: "https://example.com/catalog-match.mp3".into(),
            ..req
        };
        let err = client.upload_cover(&refused).await.unwrap_err();
        assert_eq!(
            err.message(),
            "This audio matches an existing recording in our catalog."
        );
        assert_eq!(charges(&handle).len(), 1);
    })
    .await;
}

#[tokio::test]
async fn sample_mashup_and_replace_section() {
    styled(async |style| {
        let (handle, client) = start(fast().with_style(style)).await;
        let clips = song(&client).await;
        let sample = SampleRequest {
            sample_clip_id: Some(clips[0].clip_id.clone()),
            chop_sample_start_s: Some(0.0),
            chop_sample_end_s: Some(10.0),
            fields: fields_for("sonic-v4-5-all"),
            ..Default::default()
        };
        succeeded(&wait_done(&client, &client.sample(&sample).await.unwrap().task_id).await);
        let mashup = MashupRequest {
            mashup_clip_ids: vec![clips[0].clip_id.clone(), clips[1].clip_id.clone()],
            fields: fields_for("sonic-v5"),
        };
        succeeded(&wait_done(&client, &client.mashup(&mashup).await.unwrap().task_id).await);
        let one = MashupRequest {
            mashup_clip_ids: vec![clips[0].clip_id.clone()],
            fields: fields_for("sonic-v5"),
        };
        let err = client.mashup(&one).await.unwrap_err();
        assert_eq!(
            err.message(),
            "mashup_clip_ids should contain exactly 2 clip ids."
        );
        let replace = ReplaceSectionRequest {
            clip_id: clips[0].clip_id.clone(),
            infill_start_s: 1.0,
            infill_end_s: 5.0,
            infill_lyrics: Some("[Chorus]\nnew words".into()),
            auto_concat: Some(true),
            fields: GenerationFields {
                mv: Some("sonic-v5".into()),
                ..Default::default()
            },
        };
        let status = wait_done(
            &client,
            &client.replace_section(&replace).await.unwrap().task_id,
        )
        .await;
        let TaskStatus::Items(items) = &status else {
            panic!()
        };
        assert!(items.iter().all(|i| matches!(
            i,
            TaskItem::Paired {
                kind: PairKind::Replaced,
                full: Some(_),
                ..
            }
        )));
        let ops: Vec<String> = charges(&handle).into_iter().map(|c| c.0).collect();
        assert_eq!(ops, ["create_music", "sample", "mashup", "replace_section"]);
    })
    .await;
}

#[tokio::test]
async fn stems_basic_and_full_name_their_stems() {
    styled(async |style| {
        let (handle, client) = start(fast().with_style(style)).await;
        let clip = song(&client).await.remove(0).clip_id;
        let basic =
            succeeded(&wait_done(&client, &client.stems_basic(&clip).await.unwrap().task_id).await);
        let titles: Vec<_> = basic.iter().map(|c| c.title.clone().unwrap()).collect();
        assert_eq!(titles, ["vocals", "drums", "bass", "other"]);
        let full =
            succeeded(&wait_done(&client, &client.stems_full(&clip).await.unwrap().task_id).await);
        assert_eq!(full.len(), 24);
        assert!(full.iter().all(|c| c.stem_type == c.title));
        assert!(
            full.iter()
                .all(|c| c.audio_url.as_deref().is_some_and(|u| !u.is_empty()))
        );
        assert_eq!(
            &charges(&handle)[1..],
            priced(&["stems_basic", "stems_full"])
        );
    })
    .await;
}

#[tokio::test]
async fn stem_counts_are_settings() {
    styled(async |style| {
        let config = fast()
            .with_style(style)
            .with_stems_basic_count(2)
            .with_stems_full_count(12);
        let (_handle, client) = start(config).await;
        let clip = song(&client).await.remove(0).clip_id;
        let basic =
            succeeded(&wait_done(&client, &client.stems_basic(&clip).await.unwrap().task_id).await);
        let titles: Vec<_> = basic.iter().map(|c| c.title.clone().unwrap()).collect();
        assert_eq!(titles, ["vocals", "instrumental"]);
        let full =
            succeeded(&wait_done(&client, &client.stems_full(&clip).await.unwrap().task_id).await);
        assert_eq!(full.len(), 12);
    })
    .await;
}

#[tokio::test]
async fn analysis_endpoints_answer_synchronously() {
    styled(async |style| {
        let (handle, client) = start(fast().with_style(style)).await;
        let clip = song(&client).await.remove(0).clip_id;
        let bpm = client.bpm(&clip).await.unwrap();
        assert!(bpm.avg_bpm >= 70.0);
        let vox = client
            .vox(&VoxRequest {
                clip_id: clip.clone(),
                vocal_start_s: Some(0.0),
                vocal_end_s: Some(20.0),
            })
            .await
            .unwrap();
        assert_eq!(vox.source_clip_id.as_deref(), Some(clip.as_str()));
        let err = client
            .vox(&VoxRequest {
                clip_id: clip.clone(),
                vocal_start_s: Some(0.0),
                vocal_end_s: Some(31.0),
            })
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Invalid);
        let midi = client.midi(&clip).await.unwrap();
        assert_eq!(midi.instruments[0].notes.len(), 8);
        let file = reqwest::get(&midi.midi_url)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&file[..4], b"MThd");
        let aligned = client.aligned_lyrics(&clip).await.unwrap();
        assert_eq!(aligned.alignment[0].word, "City");
        client.aligned_lyrics(&clip).await.unwrap();
        let tags = client.upsample_tags("pop, happy").await.unwrap();
        assert!(tags.upsampled_tags.starts_with("pop, happy"));
        let lyrics = client.lyrics("a song about sky").await.unwrap();
        assert_eq!(lyrics.results.len(), 2);
        let ops: Vec<(String, u64)> = charges(&handle);
        let expected = priced(&[
            "create_music",
            "bpm",
            "vox",
            "midi",
            "aligned_lyrics",
            "upsample_tags",
            "lyrics",
        ]);
        assert_eq!(
            ops, expected,
            "aligned lyrics is charged only the first time"
        );
    })
    .await;
}

#[tokio::test]
async fn aligned_lyrics_of_an_instrumental_is_not_found() {
    styled(async |style| {
        let (_handle, client) = start(fast().with_style(style)).await;
        let up = uploaded(&client).await;
        let err = client.aligned_lyrics(&up).await.unwrap_err();
        assert_eq!(
            (err.status(), err.message()),
            (Some(404), "The clip has no lyrics.")
        );
    })
    .await;
}

#[tokio::test]
async fn batch_submits_items_and_reports_their_status() {
    styled(async |style| {
        let (handle, client) = start(fast().with_style(style)).await;
        let item = CreateRequest {
            fields: fields_for("sonic-v5"),
            ..Default::default()
        };
        let bad = CreateRequest {
            fields: GenerationFields {
                mv: Some("sonic-v9".into()),
                ..fields_for("sonic-v5")
            },
            ..Default::default()
        };
        let sub = client
            .batch(&BatchRequest {
                items: vec![item.clone(), bad, item],
            })
            .await
            .unwrap();
        assert_eq!(sub.submitted, Some(2));
        assert!(
            sub.tasks[1]
                .error
                .as_deref()
                .unwrap()
                .starts_with("The 'mv' field is invalid")
        );
        for task in sub.tasks.iter().filter_map(|t| t.task_id.as_ref()) {
            wait_done(&client, task).await;
        }
        let status = client.batch_status(&sub.batch_id).await.unwrap();
        assert_eq!(status.tasks.len(), 2);
        assert!(
            status
                .tasks
                .iter()
                .all(|t| t.status.as_deref() == Some("succeeded") && t.data.len() == 2)
        );
        assert_eq!(handle.ledger().charged(KEY), 2 * price("create_music"));
    })
    .await;
}

#[tokio::test]
async fn async_upload_posts_to_the_callback() {
    use axum::{Router, routing::post};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    let app = Router::new().route(
        "/hook",
        post(move |body: axum::Json<serde_json::Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body.0);
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (_handle, client) = start(fast()).await;
    let sub = client
        .upload_async("https://example.com/in.mp3", &hook)
        .await
        .unwrap();
    let event = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event["task_id"], serde_json::json!(sub.task_id));
    assert_eq!(event["event"], "song.completed");
    assert_eq!(event["data"][0]["state"], "succeeded");
}
