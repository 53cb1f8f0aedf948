//! Helpers shared by the sandbox and client integration tests: a fast
//! in-process sandbox, a client for it, and polling until a task ends.
#![allow(
    dead_code,
    reason = "each test crate that includes this module uses only some of its helpers"
)]
#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

use std::time::Duration;

use sonicflow::api::{
    ApiKey, Client, ClientConfig, Clip, ClipState, CreateRequest, GenerationFields, TaskStatus,
    TaskType,
};
use sonicflow::prices::PriceTable;
use sonicflow::sandbox::{AnswerStyle, Sandbox, SandboxConfig, SandboxHandle};

pub const KEY: &str = "test-key-0123456789";

/// Real-world durations divided by 2000 (a song takes ~60 ms) and no
/// submit spacing, so tests can fire requests back to back.
pub fn fast() -> SandboxConfig {
    SandboxConfig::default()
        .with_time_scale(2000.0)
        .with_submit_interval(Duration::ZERO)
}

/// Runs `body` once per answer style, observed first; a failure names the
/// style through the test's own messages or the panic below.
pub async fn styled(body: impl AsyncFn(AnswerStyle)) {
    for style in AnswerStyle::ALL {
        eprintln!("answer style: {style:?}");
        body(style).await;
    }
}

/// The built-in price of `operation`, which the sandbox charges by default.
pub fn price(operation: &str) -> u64 {
    PriceTable::builtin().price(operation).unwrap()
}

/// `mv` as a polled clip shows it in `style`, for a request that sent `sent`.
pub fn polled_mv(style: AnswerStyle, sent: &str) -> String {
    match style {
        AnswerStyle::Observed => sent.to_owned(),
        AnswerStyle::Documented => sent.replacen("sonic-", "chirp-", 1),
    }
}

pub fn client_for(base_url: &str, key: &str) -> Client {
    let config = ClientConfig::new(base_url, ApiKey::new(key).unwrap()).unwrap();
    Client::new(&config).unwrap()
}

pub async fn start(config: SandboxConfig) -> (SandboxHandle, Client) {
    let handle = Sandbox::start(config).await.unwrap();
    let client = client_for(handle.base_url(), KEY);
    (handle, client)
}

/// Polls every 5 ms until the task is finished (at most 10 s).
pub async fn wait_done(client: &Client, task_id: &str) -> TaskStatus {
    for _ in 0..2000 {
        let status = client.task(task_id).await.unwrap();
        if status.is_finished() {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("task `{task_id}` did not finish");
}

pub fn fields_for(mv: &str) -> GenerationFields {
    GenerationFields {
        custom_mode: Some(true),
        mv: Some(mv.into()),
        prompt: Some("[Verse]\nCity lights are fading\n\n[Chorus]\nDrive into the night".into()),
        tags: Some("synthwave, dreamy".into()),
        title: Some("Night Drive".into()),
        ..GenerationFields::default()
    }
}

/// A finished `create_music` with `sonic-v5`: its clips.
pub async fn song(client: &Client) -> Vec<Clip> {
    let req = CreateRequest {
        task_type: Some(TaskType::CreateMusic),
        fields: fields_for("sonic-v5"),
        ..Default::default()
    };
    let task = client.create(&req).await.unwrap();
    succeeded(&wait_done(client, &task.task_id).await)
}

pub fn succeeded(status: &TaskStatus) -> Vec<Clip> {
    let clips: Vec<Clip> = status.clips().into_iter().cloned().collect();
    assert!(
        clips.iter().all(|c| c.state == ClipState::Succeeded),
        "{clips:?}"
    );
    clips
}

/// A clip made by a synchronous upload.
pub async fn uploaded(client: &Client) -> String {
    client
        .upload("https://example.com/in.mp3")
        .await
        .unwrap()
        .clip_id
}
