//! Result files from a hostile file host on loopback: URLs to hosts that
//! were not allowed, redirects elsewhere, endless and slow files, and clip
//! ids that sanitise to the same name.

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
use axum::routing::get;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sonicflow::action::Action;
use sonicflow::engine::{ErrorKind, Job, PollOutcome, StepError, StepExecutor, TaskRef};
use sonicflow::steps::naming::{FileNames, NameTemplate, Needs};
use sonicflow::steps::{ApiExecutor, DownloadOptions, HostRule};
use steps_support::*;

#[derive(Clone)]
struct Host {
    base: String,
    /// Where the `elsewhere` task points: another server.
    other: String,
    file_hits: Arc<AtomicUsize>,
}

fn clip(id: &str, audio_url: String) -> Value {
    json!({"clip_id": id, "state": "succeeded", "audio_url": audio_url})
}

async fn task(State(h): State<Host>, Path(id): Path<String>) -> Response {
    let (b, o) = (&h.base, &h.other);
    let data = match id.as_str() {
        "elsewhere" => vec![clip("c1", format!("{o}/file/1"))],
        "redirect-out" => vec![clip("c1", format!("{b}/to-other"))],
        "redirect-in" => vec![clip("c1", format!("{b}/to-self"))],
        "loop" => vec![clip("c1", format!("{b}/loop/0"))],
        "endless" => vec![clip("c1", format!("{b}/endless"))],
        "slow" => vec![clip("c1", format!("{b}/slow"))],
        "twins" => vec![
            clip("a/b", format!("{b}/file/1")),
            clip("a_b", format!("{b}/file/2")),
            clip("a?b", format!("{b}/file/3")),
        ],
        _ => vec![],
    };
    axum::Json(json!({"code": 200, "data": data})).into_response()
}

fn content(n: &str) -> Vec<u8> {
    format!("file number {n}").into_bytes()
}

async fn file(State(h): State<Host>, Path(n): Path<String>) -> Vec<u8> {
    h.file_hits.fetch_add(1, Ordering::SeqCst);
    content(&n)
}

fn redirect(to: String) -> Response {
    (StatusCode::FOUND, [("location", to)]).into_response()
}

fn stream_of(chunks: impl futures::Stream<Item = Bytes> + Send + 'static) -> Response {
    use futures::StreamExt;
    Response::new(Body::from_stream(chunks.map(Ok::<_, std::io::Error>)))
}

async fn serve(app: Router, listener: tokio::net::TcpListener) {
    tokio::spawn(async move { axum::serve(listener, app).await });
}

/// The API (and its own file host) and another server, both counting
/// the files they hand out.
async fn hosts() -> (Host, Host) {
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_base = format!("http://{}", api.local_addr().unwrap());
    let other_base = format!("http://{}", other.local_addr().unwrap());
    let state = |base: &str, other: &str| Host {
        base: base.to_owned(),
        other: other.to_owned(),
        file_hits: Arc::new(AtomicUsize::new(0)),
    };
    let (a, o) = (state(&api_base, &other_base), state(&other_base, &api_base));
    for (h, listener) in [(a.clone(), api), (o.clone(), other)] {
        let to_other = format!("{}/file/9", h.other);
        let to_self = format!("{}/file/8", h.base);
        let app = Router::new()
            .route("/api/v1/sonic/task/{id}", get(task))
            .route("/file/{n}", get(file))
            .route("/to-other", get(move || async move { redirect(to_other) }))
            .route("/to-self", get(move || async move { redirect(to_self) }))
            .route(
                "/loop/{n}",
                get(|Path(n): Path<u32>| async move { redirect(format!("/loop/{}", n + 1)) }),
            )
            .route(
                "/endless",
                get(|| async {
                    let chunk = Bytes::from(vec![7u8; 16 << 10]);
                    stream_of(futures::stream::repeat(chunk))
                }),
            )
            .route(
                "/slow",
                get(|| async {
                    let ticks = futures::stream::unfold((), |()| async {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Some((Bytes::from_static(b"x"), ()))
                    });
                    stream_of(ticks)
                }),
            )
            .with_state(h);
        serve(app, listener).await;
    }
    (a, o)
}

fn options(out: &std::path::Path) -> DownloadOptions {
    DownloadOptions::new(out)
        .with_retries(2, Duration::from_millis(10))
        .with_time_scale(10.0)
}

fn song() -> Job {
    job("song", Action::Create, "create_music", json!({}))
}

async fn poll(exec: &ApiExecutor, task: &str) -> Result<PollOutcome, StepError> {
    exec.poll(&song(), &TaskRef::new(task)).await
}

async fn refused(exec: &ApiExecutor, task: &str) -> StepError {
    let err = poll(exec, task).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Local, "{}", err.message);
    err
}

#[tokio::test]
async fn files_only_come_from_allowed_hosts() {
    let (api, other) = hosts().await;
    let out = tempfile::tempdir().unwrap();
    let exec = executor(&api.base, KEY, options(out.path()));
    // Another port on the same loopback address is another host.
    let err = refused(&exec, "elsewhere").await;
    assert!(
        err.message.contains("not an allowed download host")
            && err.message.contains(&format!(
                "--allow-download-host {}",
                other.base.trim_end_matches('/')
            )),
        "{}",
        err.message
    );
    assert_eq!(other.file_hits.load(Ordering::SeqCst), 0);
    assert!(files_below(out.path()).is_empty());

    // Allowed by name, it is fetched.
    let allow: HostRule = other.base.parse().unwrap();
    let exec = executor(
        &api.base,
        KEY,
        options(out.path()).with_allowed_hosts(vec![allow]),
    );
    let PollOutcome::Done(outputs) = poll(&exec, "elsewhere").await.unwrap() else {
        panic!()
    };
    assert_eq!(outputs.files.len(), 1);
    assert_eq!(other.file_hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn redirects_are_followed_only_to_allowed_hosts_and_not_forever() {
    let (api, other) = hosts().await;
    let out = tempfile::tempdir().unwrap();
    let exec = executor(&api.base, KEY, options(out.path()));

    let err = refused(&exec, "redirect-out").await;
    assert!(err.message.contains("redirect refused"), "{}", err.message);
    // Refused by policy: not retried.
    assert!(!err.message.contains("attempts"), "{}", err.message);
    assert_eq!(other.file_hits.load(Ordering::SeqCst), 0);

    let err = refused(&exec, "loop").await;
    assert!(
        err.message.contains("more than 5 redirects"),
        "{}",
        err.message
    );

    let PollOutcome::Done(outputs) = poll(&exec, "redirect-in").await.unwrap() else {
        panic!()
    };
    assert_eq!(
        outputs.files[0].sha256,
        hex::encode(Sha256::digest(content("8")))
    );
}

#[tokio::test]
async fn an_endless_file_stops_at_the_size_cap_and_leaves_nothing() {
    let (api, _) = hosts().await;
    let out = tempfile::tempdir().unwrap();
    let limited = options(out.path()).with_limits(100_000, Duration::from_secs(60));
    let exec = executor(&api.base, KEY, limited);
    let err = refused(&exec, "endless").await;
    assert!(
        err.message.contains("larger than the 97.7 KiB limit")
            && err.message.contains("--max-download-size"),
        "{}",
        err.message
    );
    assert!(files_below(out.path()).is_empty());
}

#[tokio::test]
async fn a_slow_file_ends_at_the_deadline_whatever_its_retries() {
    let (api, _) = hosts().await;
    let out = tempfile::tempdir().unwrap();
    let limited = options(out.path()).with_limits(1 << 20, Duration::from_millis(300));
    let exec = executor(&api.base, KEY, limited);
    let err = tokio::time::timeout(Duration::from_secs(30), refused(&exec, "slow"))
        .await
        .expect("the download deadline ends a slow file");
    assert!(
        err.message
            .contains("not complete within the 300ms deadline"),
        "{}",
        err.message
    );
    assert!(files_below(out.path()).is_empty());
}

#[tokio::test]
async fn ids_that_sanitise_alike_get_files_of_their_own() {
    let (api, _) = hosts().await;
    let out = tempfile::tempdir().unwrap();
    // Clip ids name the files here, so ids that sanitise alike meet.
    let by_clip = NameTemplate::parse("{step}/{instance}/{clip}.{ext}", Needs::default());
    let names = FileNames {
        files: by_clip.unwrap(),
        ..FileNames::default()
    };
    let exec = executor(&api.base, KEY, options(out.path()).with_names(names));
    let PollOutcome::Done(outputs) = poll(&exec, "twins").await.unwrap() else {
        panic!()
    };
    assert_eq!(outputs.files.len(), 3);
    assert_eq!(files_below(out.path()).len(), 3);
    assert!(outputs.files.iter().any(|f| f.path == "song/a_b.mp3"));
    for f in &outputs.files {
        let on_disk = std::fs::read(out.path().join(&f.path)).unwrap();
        assert_eq!(
            f.sha256,
            hex::encode(Sha256::digest(&on_disk)),
            "{}",
            f.path
        );
        assert_eq!(f.bytes, on_disk.len() as u64);
    }
}
