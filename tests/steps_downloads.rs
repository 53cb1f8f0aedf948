//! Result files against a hostile or unreliable file host: names from the
//! service never escape the output folder, a download cut short leaves no
//! file that looks complete, transient failures are retried, and only web
//! URLs are fetched.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod steps_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sonicflow::action::Action;
use sonicflow::engine::{ErrorKind, Job, PollOutcome, StepExecutor};
use sonicflow::steps::naming::{FileNames, NameTemplate, Needs};
use sonicflow::steps::{ApiExecutor, DownloadOptions};
use steps_support::*;

const AUDIO: &[u8] = &[0xFF, 0xF3, 0x18, 0xC0, 1, 2, 3, 4, 5, 6, 7, 8];

#[derive(Clone)]
struct Host {
    base: String,
    flaky_left: Arc<AtomicUsize>,
}

fn clip(id: &str, audio_url: String) -> Value {
    json!({"clip_id": id, "state": "succeeded", "audio_url": audio_url, "duration": "12.5"})
}

async fn task(State(host): State<Host>, Path(id): Path<String>) -> Response {
    let b = &host.base;
    let data = match id.as_str() {
        "hostile" => vec![
            clip("../../etc/passwd", format!("{b}/files/ok")),
            clip("a/../../b", format!("{b}/files/ok")),
            clip("..", format!("{b}/files/ok")),
        ],
        "broken" => vec![clip("c1", format!("{b}/broken"))],
        "flaky" => vec![clip("c1", format!("{b}/flaky"))],
        "gone" => vec![clip("c1", format!("{b}/gone"))],
        _ => vec![clip("c1", "file:///etc/passwd".to_owned())],
    };
    axum::Json(json!({"code": 200, "data": data})).into_response()
}

async fn broken() -> Response {
    let chunks = futures::stream::iter(vec![
        Ok::<Bytes, std::io::Error>(Bytes::from_static(&AUDIO[..4])),
        Err(std::io::Error::other("cut short")),
    ]);
    // Announce more than arrives, so the client sees a truncated body.
    Response::builder()
        .header("content-length", "1000")
        .body(Body::from_stream(chunks))
        .unwrap()
}

/// A paid synchronous export whose file cannot be fetched.
async fn wav(State(host): State<Host>) -> Response {
    axum::Json(json!({"code": 200, "data": {"wav_url": format!("{}/broken", host.base)}}))
        .into_response()
}

async fn flaky(State(host): State<Host>) -> Response {
    let before = host.flaky_left.load(Ordering::SeqCst);
    if before > 0 {
        host.flaky_left.store(before - 1, Ordering::SeqCst);
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    AUDIO.into_response()
}

/// A file host that is also just enough of the task API; `flaky` answers
/// 503 the given number of times first.
async fn host(flaky_failures: usize) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = Host {
        base: base.clone(),
        flaky_left: Arc::new(AtomicUsize::new(flaky_failures)),
    };
    let app = Router::new()
        .route("/api/v1/sonic/task/{id}", get(task))
        .route("/files/ok", get(|| async { AUDIO }))
        .route("/broken", get(broken))
        .route("/flaky", get(flaky))
        .route("/gone", get(|| async { StatusCode::NOT_FOUND }))
        .route("/api/v1/sonic/wav", post(wav))
        .with_state(state);
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

fn options(out: &std::path::Path) -> DownloadOptions {
    DownloadOptions::new(out)
        .with_retries(2, Duration::from_millis(10))
        .with_time_scale(10.0)
}

fn create(step: &str, row_key: Option<&str>) -> Job {
    job_at(
        step,
        row_key,
        vec![0, 1],
        Action::Create,
        "create_music",
        json!({}),
    )
}

async fn poll(
    exec: &ApiExecutor,
    job: &Job,
    task: &str,
) -> Result<PollOutcome, sonicflow::engine::StepError> {
    exec.poll(job, &sonicflow::engine::TaskRef::new(task)).await
}

#[tokio::test]
async fn hostile_ids_and_instances_stay_inside_the_output_folder() {
    let base = host(0).await;
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("out");
    // Clip ids name the files here, so hostile ids reach the paths.
    let by_clip = NameTemplate::parse("{row}/{step}/{instance}/{clip}.{ext}", Needs::default());
    let names = FileNames {
        files: by_clip.unwrap(),
        ..FileNames::default()
    };
    let exec = executor(&base, KEY, options(&out).with_names(names));
    let job = create("../../up", Some("a/../../b"));
    let PollOutcome::Done(outputs) = poll(&exec, &job, "hostile").await.unwrap() else {
        panic!()
    };
    let paths: Vec<&str> = outputs.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "a_.._.._b-feddf167/___.._up/0.1/___.._etc_passwd-3754d6cb.mp3",
            "a_.._.._b-feddf167/___.._up/0.1/a_.._.._b-feddf167.mp3",
            "a_.._.._b-feddf167/___.._up/0.1/__-5ec1f7e7.mp3",
        ]
    );
    for f in &outputs.files {
        assert_eq!(f.bytes, AUDIO.len() as u64);
        assert_eq!(f.sha256, hex::encode(Sha256::digest(AUDIO)));
    }
    // Nothing was written beside the output folder.
    let beside: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(beside, ["out"]);
    assert_eq!(files_below(&out).len(), 3);
}

#[tokio::test]
async fn a_download_cut_short_leaves_no_complete_looking_file() {
    let base = host(0).await;
    let out = tempfile::tempdir().unwrap();
    let exec = executor(&base, KEY, options(out.path()));
    let err = poll(&exec, &create("song", None), "broken")
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Local);
    assert!(err.message.contains("paid"), "{}", err.message);
    assert!(err.message.contains("after 3 attempts"), "{}", err.message);
    assert!(!err.kind.may_resend());
    // Neither the file nor a leftover `.part`.
    assert_eq!(files_below(out.path()), Vec::<String>::new());
}

#[tokio::test]
async fn transient_download_failures_are_retried_until_the_limit() {
    let base = host(2).await;
    let out = tempfile::tempdir().unwrap();
    let exec = executor(&base, KEY, options(out.path()));
    let PollOutcome::Done(outputs) = poll(&exec, &create("song", None), "flaky").await.unwrap()
    else {
        panic!()
    };
    assert_eq!(outputs.files[0].path, "song/0.1/song-1.mp3");
    assert_eq!(files_below(out.path()), ["song/0.1/song-1.mp3"]);
    assert_eq!(outputs.value["clips"][0]["duration"], json!(12.5));

    let base = host(3).await;
    let exec = executor(&base, KEY, options(out.path()));
    let err = poll(&exec, &create("again", None), "flaky")
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Local);
    assert!(err.message.contains("503"), "{}", err.message);
}

#[tokio::test]
async fn missing_files_are_not_retried_and_non_web_urls_are_refused() {
    let base = host(0).await;
    let out = tempfile::tempdir().unwrap();
    let exec = executor(&base, KEY, options(out.path()));
    let err = poll(&exec, &create("song", None), "gone")
        .await
        .unwrap_err();
    assert!(
        err.message.contains("404") && !err.message.contains("attempts"),
        "{}",
        err.message
    );
    let err = poll(&exec, &create("song", None), "local")
        .await
        .unwrap_err();
    assert!(err.message.contains("scheme `file`"), "{}", err.message);
    assert_eq!(files_below(out.path()), Vec::<String>::new());
}

#[tokio::test]
async fn disabled_downloads_save_nothing() {
    let base = host(0).await;
    let exec = executor(&base, KEY, DownloadOptions::disabled());
    let PollOutcome::Done(outputs) = poll(&exec, &create("song", None), "hostile").await.unwrap()
    else {
        panic!()
    };
    assert!(outputs.files.is_empty());
    assert_eq!(outputs.value["clips"].as_array().unwrap().len(), 3);
}

#[cfg(unix)]
#[tokio::test]
async fn a_planted_part_link_is_replaced_not_followed() {
    let base = host(0).await;
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("out");
    let victim = root.path().join("victim");
    std::fs::write(&victim, b"keep").unwrap();
    std::fs::create_dir_all(out.join("song/0.1")).unwrap();
    std::os::unix::fs::symlink(&victim, out.join("song/0.1/song-1.mp3.part")).unwrap();
    let exec = executor(&base, KEY, options(&out));
    let PollOutcome::Done(outputs) = poll(&exec, &create("song", None), "flaky").await.unwrap()
    else {
        panic!()
    };
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    assert_eq!(
        std::fs::read(out.join(&outputs.files[0].path)).unwrap(),
        AUDIO
    );
    assert_eq!(files_below(&out), ["song/0.1/song-1.mp3"]);
}

#[tokio::test]
async fn a_failed_download_after_a_paid_sync_call_counts_the_charge() {
    let base = host(0).await;
    let out = tempfile::tempdir().unwrap();
    let exec = executor(&base, KEY, options(out.path()));
    let job = job("export", Action::Wav, "wav", json!({"clip": "c1"}));
    let err = exec.submit(&job).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Local);
    assert!(err.charged);
    assert!(err.message.contains("paid"), "{}", err.message);
    assert_eq!(files_below(out.path()), Vec::<String>::new());
}
