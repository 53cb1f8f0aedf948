//! The client against a hostile API on loopback: absurd `Retry-After`
//! values, endless bodies, redirects, and text meant to flood, spoof the
//! terminal or leak the key. Nothing panics, nothing grows without bound,
//! nothing is followed elsewhere, and nothing the server says is kept raw.

#![expect(
    clippy::unwrap_used,
    reason = "tests fail by panicking, as assertions do"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{any, get, post};
use sonicflow::api::*;

const KEY: &str = "sk-hostile-test-KEY-8d1e";

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

fn client(base: &str) -> Client {
    Client::new(&ClientConfig::new(base, ApiKey::new(KEY).unwrap()).unwrap()).unwrap()
}

fn song() -> CreateRequest {
    CreateRequest {
        fields: GenerationFields {
            custom_mode: Some(false),
            gpt_description_prompt: Some("a song".into()),
            mv: Some("sonic-v5".into()),
            ..GenerationFields::default()
        },
        ..CreateRequest::default()
    }
}

/// An answer that never ends: 64 KiB chunks of `[`, forever.
fn endless(status: StatusCode) -> Response {
    let chunk = Bytes::from(vec![b'['; 64 << 10]);
    let stream = futures::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap()
}

#[tokio::test]
async fn absurd_retry_after_values_are_clamped_never_a_panic() {
    for value in [
        "10000000000000000000",
        "100000000000000000000",
        "1e19",
        "1e20",
        "1000000000",
        "Fri, 01 Jan 2100 00:00:00 GMT",
    ] {
        let app = Router::new().route(
            "/api/v1/get-credits",
            get(move || async move {
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", value)],
                    r#"{"message":"slow down"}"#,
                )
            }),
        );
        let base = serve(app).await;
        let err = client(&base).credits().await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::RateLimited, "{value}");
        assert_eq!(err.retry_after(), Some(MAX_RETRY_AFTER), "{value}");
    }
}

#[tokio::test]
async fn endless_answers_are_cut_at_the_endpoints_cap() {
    let app = Router::new()
        .route(
            "/api/v1/get-credits",
            get(|| async { endless(StatusCode::OK) }),
        )
        .route(
            "/api/v1/sonic/create",
            post(|| async { endless(StatusCode::OK) }),
        )
        .route(
            "/api/v1/sonic/task/{id}",
            get(|| async { endless(StatusCode::INTERNAL_SERVER_ERROR) }),
        );
    let base = serve(app).await;
    let c = client(&base);

    let err = c.credits().await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Decode);
    let text = err.to_string();
    assert!(text.contains("larger than the 1 MiB limit"), "{text}");
    assert!(text.len() < 1000, "{} bytes", text.len());

    // A paid submit whose answer cannot be read may have been charged.
    let err = c.create(&song()).await.unwrap_err();
    assert!(err.may_have_been_charged(), "{err}");

    // An endless error body: only its start is read, the status decides.
    let err = c.task("t").await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient);
    assert_eq!(err.status(), Some(500));
    assert!(err.to_string().len() < 1000);
}

#[tokio::test]
async fn a_redirect_is_reported_and_never_followed() {
    let elsewhere_hits = Arc::new(AtomicUsize::new(0));
    let hits = Arc::clone(&elsewhere_hits);
    let elsewhere = serve(Router::new().fallback(any(move || {
        hits.fetch_add(1, Ordering::SeqCst);
        async { r#"{"task_id":"stolen"}"# }
    })))
    .await;
    let target = format!("{elsewhere}/api/v1/sonic/create");
    let app = Router::new().fallback(any(move || {
        let target = target.clone();
        async move { (StatusCode::TEMPORARY_REDIRECT, [("location", target)]) }
    }));
    let base = serve(app).await;
    let c = client(&base);

    let err = c.create(&song()).await.unwrap_err();
    assert!(
        matches!(err, ApiError::Redirected { status: 307, .. }),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Invalid);
    assert!(!err.is_retryable());
    assert!(!err.may_have_been_charged());
    let text = err.to_string();
    assert!(
        text.contains(&elsewhere) && text.contains("--api-base"),
        "{text}"
    );
    let err = c.credits().await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Invalid);
    assert_eq!(elsewhere_hits.load(Ordering::SeqCst), 0);
}

fn hostile_text() -> String {
    format!(
        "\u{1b}[2J\u{1b}]0;pwned\u{7}refused {KEY} Bearer {KEY} {}",
        "x".repeat(50_000)
    )
}

fn assert_clean(what: &str, text: &str) {
    assert!(!text.contains(KEY), "{what} holds the key: {text}");
    assert!(!text.contains("KEY-8d1e"), "{what} holds part of the key");
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "{what} holds control characters: {text:?}"
    );
    assert!(text.len() < 2_000, "{what} is {} bytes", text.len());
}

#[tokio::test]
async fn server_text_is_cut_stripped_and_redacted() {
    let app = Router::new()
        .route(
            "/api/v1/sonic/create",
            post(|| async {
                let body = serde_json::json!({"code": 400, "message": hostile_text()});
                (StatusCode::BAD_REQUEST, axum::Json(body))
            }),
        )
        .route(
            "/api/v1/get-credits",
            get(|| async {
                let body = serde_json::json!({"credits": hostile_text()});
                axum::Json(body)
            }),
        )
        .route(
            "/api/v1/sonic/task/{id}",
            get(|headers: HeaderMap| async move {
                // Echoes what it was sent, as a careless proxy might.
                let auth = headers
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                let clip = serde_json::json!({
                    "clip_id": "c1", "state": "failed",
                    "title": hostile_text(),
                    "error_message": format!("{auth} \u{1b}[31m{}", "y".repeat(60_000)),
                    "lyrics": format!("[Verse]\nla la {KEY}\n\u{1b}[1mloud"),
                });
                axum::Json(serde_json::json!({"code": 200, "data": [clip]}))
            }),
        );
    let base = serve(app).await;
    let c = client(&base);

    let err = c.create(&song()).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Invalid);
    assert!(
        err.message()
            .starts_with("refused <redacted> Bearer <redacted> xxx")
    );
    assert!(err.message().contains("truncated"), "{}", err.message());
    assert_clean("error", &err.to_string());

    let err = c.credits().await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Decode);
    assert_clean("decode error", &err.to_string());

    let status = c.task("t").await.unwrap();
    let clip = status.clips()[0].clone();
    assert_clean("title", clip.title.as_deref().unwrap());
    assert_clean("error message", clip.error_message.as_deref().unwrap());
    assert_eq!(
        clip.error_message.as_deref().unwrap().split(' ').next(),
        Some("Bearer")
    );
    assert_eq!(
        clip.lyrics.as_deref(),
        Some("[Verse]\nla la <redacted>\nloud")
    );
}

/// Asking for the balance takes at most its deadline against a server that
/// never answers, or that keeps asking for short waits; virtual time, no
/// real waiting.
#[tokio::test(start_paused = true)]
async fn the_balance_is_given_up_on_at_its_deadline() {
    use sonicflow::commands::credits::{BALANCE_DEADLINE, BalanceError, balance};

    let silent = Router::new().route(
        "/api/v1/get-credits",
        get(futures::future::pending::<StatusCode>),
    );
    let base = serve(silent).await;
    let err = balance(&client(&base), BALANCE_DEADLINE, 1.0)
        .await
        .unwrap_err();
    assert!(
        matches!(err, BalanceError::Deadline { last: None, .. }),
        "{err:?}"
    );

    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let busy = Router::new().route(
        "/api/v1/get-credits",
        get(move || async move {
            counted.fetch_add(1, Ordering::SeqCst);
            (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "25")], "{}")
        }),
    );
    let base = serve(busy).await;
    let err = balance(&client(&base), BALANCE_DEADLINE, 1.0)
        .await
        .unwrap_err();
    assert!(
        matches!(err, BalanceError::Deadline { last: Some(_), .. }),
        "{err:?}"
    );
    // Asked at 0, 25 and 50 s; the next wait would end past 60 s.
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}
