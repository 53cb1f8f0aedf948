//! The sandbox speaks the documented protocol: every JSON request example of
//! the reference is accepted, and every documented invalid case is refused
//! with its documented status and message, in both answer styles. Plain
//! reqwest and `json!` bodies, never the typed client.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod sandbox_support;

use std::time::Duration;

use sandbox_support::{KEY, fast, styled};
use serde_json::{Value, json};
use sonicflow::sandbox::{AnswerStyle, Sandbox, SandboxHandle};

struct Raw {
    http: reqwest::Client,
    base: String,
}

impl Raw {
    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(KEY)
            .json(body)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    async fn finished_clips(&self, task_id: &str) -> Vec<Value> {
        for _ in 0..2000 {
            let (status, body) = self.get(&format!("/api/v1/sonic/task/{task_id}")).await;
            assert_eq!(status, 200, "{body}");
            let data = body["data"].as_array().cloned().unwrap_or_default();
            let done = |c: &Value| matches!(c["state"].as_str(), Some("succeeded" | "failed"));
            if !data.is_empty() && data.iter().all(done) {
                return data;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("task `{task_id}` did not finish")
    }

    /// A finished generated clip and an uploaded clip to fill `<clip uuid>` placeholders.
    async fn sources(&self) -> (String, String) {
        let (_, body) = self
            .post(
                "/api/v1/sonic/create",
                &json!({"custom_mode": true, "mv": "sonic-v5", "prompt": "[Verse]\nla la"}),
            )
            .await;
        let clips = self.finished_clips(body["task_id"].as_str().unwrap()).await;
        let (_, up) = self
            .post(
                "/api/v1/sonic/upload",
                &json!({"url": "https://example.com/in.mp3"}),
            )
            .await;
        (
            clips[0]["clip_id"].as_str().unwrap().to_owned(),
            up["clip_id"].as_str().unwrap().to_owned(),
        )
    }
}

async fn sandbox(style: AnswerStyle) -> (SandboxHandle, Raw) {
    let handle = Sandbox::start(fast().with_style(style)).await.unwrap();
    let raw = Raw {
        http: reqwest::Client::new(),
        base: handle.base_url().to_owned(),
    };
    (handle, raw)
}

/// The reference's examples (§2), with `<…uuid>` replaced by real clips.
fn examples(generated: &str, uploaded: &str) -> Vec<(&'static str, Value)> {
    vec![
        (
            "/api/v1/sonic/create",
            json!({"task_type": "create_music", "custom_mode": true, "mv": "sonic-v4-5", "title": "Night Drive",
            "tags": "synthwave, dreamy", "prompt": "[Verse]\nCity lights are fading\n\n[Chorus]\nDrive into the night"}),
        ),
        (
            "/api/v1/sonic/create",
            json!({"custom_mode": false, "mv": "sonic-v5", "make_instrumental": true,
            "gpt_description_prompt": "calm piano with soft strings"}),
        ),
        (
            "/api/v1/sonic/create",
            json!({"task_type": "extend_music", "continue_clip_id": generated, "continue_at": 120,
            "custom_mode": true, "mv": "sonic-v5", "prompt": "[Bridge]\n..."}),
        ),
        (
            "/api/v1/sonic/create",
            json!({"task_type": "concat_music", "continue_clip_id": generated}),
        ),
        (
            "/api/v1/sonic/create",
            json!({"task_type": "remaster", "continue_clip_id": generated, "mv": "sonic-v5", "variation_category": "normal"}),
        ),
        (
            "/api/v1/sonic/create",
            json!({"task_type": "add_vocals", "continue_clip_id": uploaded, "mv": "sonic-v5",
            "custom_mode": true, "prompt": "[Verse]\n...", "tags": "pop", "audio_weight": 0.7,
            "overpainting_start_s": 0, "overpainting_end_s": 30}),
        ),
        (
            "/api/v1/sonic/upload-extend",
            json!({"url": "https://example.com/in.mp3", "mv": "sonic-v4-5", "custom_mode": true,
            "prompt": "[Verse]\nExtension lyrics...", "tags": "pop", "continue_at": 0.1, "auto_concat": true}),
        ),
        (
            "/api/v1/sonic/upload-cover",
            json!({"url": "https://example.com/in.mp3", "mv": "sonic-v4-5", "custom_mode": true,
            "prompt": "[Verse]\nCover lyrics...", "tags": "jazz, acoustic", "audio_weight": 0.5}),
        ),
        (
            "/api/v1/sonic/persona",
            json!({"name": "Nova", "clip_id": generated, "describe": "airy", "styles": "pop"}),
        ),
        (
            "/api/v1/sonic/persona",
            json!({"name": "Nova", "continue_clip_id": generated, "description": "airy voice"}),
        ),
        (
            "/api/v1/sonic/sample",
            json!({"sample_clip_id": generated, "chop_sample_start_s": 0, "chop_sample_end_s": 8,
            "custom_mode": false, "mv": "sonic-v4-5-all", "gpt_description_prompt": "lofi beat"}),
        ),
        (
            "/api/v1/sonic/mashup",
            json!({"mashup_clip_ids": [generated, uploaded], "custom_mode": false, "mv": "sonic-v5",
            "gpt_description_prompt": "blend them"}),
        ),
        (
            "/api/v1/sonic/replace-section",
            json!({"clip_id": generated, "mv": "sonic-v5", "infill_start_s": 30, "infill_end_s": 45,
            "prompt": "[Verse]\n...full lyrics...", "infill_lyrics": "[Chorus]\nnew words", "auto_concat": true}),
        ),
        ("/api/v1/sonic/bpm", json!({"clip_id": generated})),
        (
            "/api/v1/sonic/vox",
            json!({"clip_id": generated, "vocal_start_s": 10, "vocal_end_s": 40}),
        ),
        ("/api/v1/sonic/wav", json!({"clip_id": generated})),
        ("/api/v1/sonic/midi", json!({"clip_id": generated})),
        (
            "/api/v1/sonic/aligned-lyrics",
            json!({"clip_id": generated}),
        ),
        ("/api/v1/sonic/upsample-tags", json!({"tags": "pop, happy"})),
        ("/api/v1/sonic/stems/basic", json!({"clip_id": generated})),
        ("/api/v1/sonic/stems/full", json!({"clip_id": generated})),
        (
            "/api/v1/sonic/lyrics",
            json!({"description": "a song about sky"}),
        ),
        (
            "/api/v1/sonic/upload",
            json!({"url": "https://example.com/in.mp3", "callback_url": "http://127.0.0.1:9/cb"}),
        ),
        (
            "/api/v1/sonic/batch",
            json!({"items": [{"custom_mode": true, "mv": "sonic-v5", "prompt": "[Verse]\na"},
            {"custom_mode": false, "mv": "sonic-v4", "gpt_description_prompt": "b"}]}),
        ),
    ]
}

/// An error answer in `style`: `code` and `message`, plus `error` with the
/// same text as the service was seen to send.
fn error_body(style: AnswerStyle, code: u16, message: &str) -> Value {
    let mut body = json!({"code": code, "message": message});
    if style == AnswerStyle::Observed {
        body["error"] = json!(message);
    }
    body
}

#[tokio::test]
async fn every_reference_example_is_accepted() {
    styled(async |style| every_reference_example_is_accepted_in(style).await).await;
}

async fn every_reference_example_is_accepted_in(style: AnswerStyle) {
    let (handle, raw) = sandbox(style).await;
    let (generated, uploaded) = raw.sources().await;
    for (path, body) in examples(&generated, &uploaded) {
        let (status, answer) = raw.post(path, &body).await;
        assert_eq!(status, 200, "{path} {body} → {answer}");
        // Async submits answer without `code` as seen live; sync answers keep it.
        let submit = answer.get("task_id").is_some() || answer.get("batch_id").is_some();
        if style == AnswerStyle::Observed && submit {
            assert_eq!(answer.get("code"), None, "{path} → {answer}");
        } else {
            assert_eq!(answer["code"], 200, "{path} → {answer}");
        }
        let has_result = [
            "task_id",
            "clip_id",
            "persona_id",
            "data",
            "results",
            "batch_id",
        ]
        .iter()
        .any(|k| answer.get(k).is_some());
        assert!(has_result, "{path} → {answer}");
    }
    let (_, credits) = raw.get("/api/v1/get-credits").await;
    assert_eq!(
        credits,
        json!({"credits": handle.ledger().balance(KEY), "extra_credits": 0})
    );
}

fn long(n: usize) -> String {
    "x".repeat(n)
}

/// `(path, body, status, message)` for every documented refusal.
fn invalid_cases(generated: &str) -> Vec<(&'static str, Value, u16, String)> {
    let create = "/api/v1/sonic/create";
    let song = |extra: Value| {
        let mut body = json!({"custom_mode": true, "mv": "sonic-v5", "prompt": "[Verse]\nla"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let s = |m: &str| m.to_owned();
    vec![
        (
            create,
            song(json!({"mv": "sonic-v9"})),
            400,
            s("The 'mv' field is invalid. The model should be 'sonic-v3-5' or 'sonic-v4'."),
        ),
        (
            create,
            song(json!({"mv": "sonic-v4-5-all"})),
            400,
            s("The 'mv' field is invalid. The model should be 'sonic-v3-5' or 'sonic-v4'."),
        ),
        (
            create,
            song(json!({"task_type": "persona_music"})),
            400,
            s("The 'persona_id' field is required when task_type = persona_music."),
        ),
        (
            create,
            song(json!({"make_instrumental": "yes"})),
            400,
            s("The 'make_instrumental' field should be boolean."),
        ),
        (
            create,
            song(json!({"custom_mode": "true"})),
            400,
            s("The 'custom_mode' field should be boolean."),
        ),
        (
            create,
            song(json!({"use_suno_cdn": "false"})),
            400,
            s("The 'use_suno_cdn' field should be boolean."),
        ),
        (
            create,
            song(json!({"mv": "sonic-v4", "prompt": long(3001)})),
            400,
            s("The prompt character length should be less than 3000."),
        ),
        (
            create,
            song(json!({"prompt": long(5001)})),
            400,
            s("The prompt character length should be less than 5000."),
        ),
        (
            create,
            json!({"custom_mode": false, "mv": "sonic-v5", "gpt_description_prompt": long(401)}),
            400,
            s("The 'gpt_description_prompt' character length should be less than 200."),
        ),
        (
            create,
            song(json!({"mv": "chirp-v3-5", "tags": long(201)})),
            400,
            s("The tags character length should be less than 200."),
        ),
        (
            create,
            song(json!({"tags": long(1001)})),
            400,
            s("The tags character length should be less than 1000."),
        ),
        (
            create,
            song(json!({"title": long(81)})),
            400,
            s("The title character length should be less than 80."),
        ),
        (
            create,
            song(json!({"style_weight": 1.01})),
            400,
            s("style_weight should be 0-1"),
        ),
        (
            create,
            song(json!({"weirdness_constraint": -0.01})),
            400,
            s("weirdness_constraint should be 0-1"),
        ),
        (
            create,
            song(
                json!({"task_type": "cover_music", "continue_clip_id": generated, "audio_weight": 1.5}),
            ),
            400,
            s("audio_weight should be 0-1"),
        ),
        (
            create,
            song(json!({"mv": "sonic-v4", "vocal_gender": "f"})),
            400,
            s("vocal_gender is only supported by sonic-v4-5 and later models."),
        ),
        (
            create,
            json!({"task_type": "remaster", "continue_clip_id": generated, "mv": "sonic-v4-5", "variation_category": "high"}),
            400,
            s("variation_category is only supported by sonic-v5."),
        ),
        (
            create,
            song(json!({"task_type": "extend_music", "continue_at": 1})),
            400,
            s("continue_clip_id is required"),
        ),
        (
            create,
            song(json!({"duration": 5})),
            400,
            s("The 'duration' field should be an integer between 10 and 360."),
        ),
        (
            create,
            song(json!({"task_type": "nope"})),
            400,
            s("The 'task_type' field is invalid."),
        ),
        (
            create,
            song(json!({"prompt": "[Verse]\nthis is copyrighted"})),
            403,
            s(
                "The lyrics contain copyrighted content: 'this is copyrighted'. Please use original lyrics.",
            ),
        ),
        (
            create,
            json!({"custom_mode": false, "mv": "sonic-v5", "gpt_description_prompt": "a song in the style of someone"}),
            403,
            s("The song description needs moderation review."),
        ),
        (
            "/api/v1/sonic/lyrics",
            json!({}),
            400,
            s("description is required."),
        ),
        (
            "/api/v1/sonic/lyrics",
            json!({"description": long(120)}),
            400,
            s("The description character length should be less than 120."),
        ),
        (
            "/api/v1/sonic/persona",
            json!({"name": "n"}),
            400,
            s("name and continue_clip_id are required fields."),
        ),
        (
            "/api/v1/sonic/persona",
            json!({"name": long(81), "clip_id": generated}),
            400,
            s("The name character length should be less than 80."),
        ),
        (
            "/api/v1/sonic/persona",
            json!({"name": "n", "continue_clip_id": generated, "description": long(201)}),
            400,
            s("The description character length should be less than 200."),
        ),
        (
            "/api/v1/sonic/mashup",
            json!({"mashup_clip_ids": [generated, generated, generated], "custom_mode": false, "mv": "sonic-v5",
            "gpt_description_prompt": "x"}),
            400,
            s("mashup_clip_ids should contain exactly 2 clip ids."),
        ),
        (
            "/api/v1/sonic/upload",
            json!({"url": "ftp://example.com/a.mp3"}),
            400,
            s("Audio URL is not accessible. Please provide a public direct audio file URL."),
        ),
        (
            "/api/v1/sonic/upload",
            json!({"url": "https://example.com/invalid-audio.txt"}),
            400,
            s("Invalid audio file"),
        ),
        (
            "/api/v1/sonic/wav",
            json!({"clip_id": "4a1e0e3c-0000-4000-8000-000000000000"}),
            404,
            s("clip not found."),
        ),
    ]
}

#[tokio::test]
async fn every_documented_invalid_case_is_refused_with_its_message() {
    styled(async |style| every_documented_invalid_case_is_refused_in(style).await).await;
}

async fn every_documented_invalid_case_is_refused_in(style: AnswerStyle) {
    let (handle, raw) = sandbox(style).await;
    let (generated, _) = raw.sources().await;
    let before = handle.ledger().entries(KEY).len();
    for (path, body, status, message) in invalid_cases(&generated) {
        let (got, answer) = raw.post(path, &body).await;
        assert_eq!(
            (got, answer["message"].as_str().unwrap()),
            (status, message.as_str()),
            "{path} {body}"
        );
        assert_eq!(answer, error_body(style, status, &message));
    }
    assert_eq!(
        handle.ledger().entries(KEY).len(),
        before,
        "refusals cost nothing"
    );
}

#[tokio::test]
async fn authorization_and_polling_errors_have_their_documented_texts() {
    styled(async |style| authorization_and_polling_errors_in(style).await).await;
}

async fn authorization_and_polling_errors_in(style: AnswerStyle) {
    let (handle, raw) = sandbox(style).await;
    let url = format!("{}/api/v1/sonic/create", handle.base_url());
    let resp = raw.http.post(&url).json(&json!({})).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        error_body(style, 401, "Authorization header is missing.")
    );
    let resp = raw
        .http
        .post(&url)
        .header("Authorization", "Token abc")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.json::<Value>().await.unwrap()["message"],
        "Invalid authorization format."
    );
    assert_eq!(
        raw.get("/api/v1/sonic/task/unknown").await,
        (400, error_body(style, 400, "task not found."))
    );
    assert_eq!(
        raw.get("/api/v1/sonic/task/").await,
        (400, error_body(style, 400, "missing task id."))
    );
    let resp = raw
        .http
        .post(&url)
        .bearer_auth(KEY)
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
}
