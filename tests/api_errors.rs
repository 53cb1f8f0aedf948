//! Every error class of the client, produced by the sandbox (or a closed
//! port), with the documented status and message; where the answer style
//! changes the body, in both styles.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod sandbox_support;

use std::time::Duration;

use sandbox_support::*;
use sonicflow::api::*;
use sonicflow::sandbox::{AnswerStyle, Faults, NotReadyForm, Sandbox, SandboxConfig};

fn song_request() -> CreateRequest {
    CreateRequest {
        fields: fields_for("sonic-v5"),
        ..Default::default()
    }
}

#[tokio::test]
async fn unknown_key_is_unauthorised() {
    styled(async |style| unknown_key_is_unauthorised_in(style).await).await;
}

async fn unknown_key_is_unauthorised_in(style: AnswerStyle) {
    let config = fast().with_style(style).with_keys(vec!["good".into()]);
    let (handle, _) = start(config).await;
    let client = client_for(handle.base_url(), "bad");
    let err = client.credits().await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Unauthorised);
    assert_eq!(err.message(), "Invalid authorization format.");
    assert!(!err.is_retryable());
    let ok = client_for(handle.base_url(), "good");
    assert_eq!(ok.credits().await.unwrap().credits, 1000);
}

#[tokio::test]
async fn short_balance_is_out_of_credits_and_charges_nothing() {
    styled(async |style| short_balance_is_out_of_credits_in(style).await).await;
}

async fn short_balance_is_out_of_credits_in(style: AnswerStyle) {
    let (handle, client) = start(fast().with_style(style).with_balance(10)).await;
    let err = client.create(&song_request()).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::OutOfCredits);
    assert_eq!(
        err.message(),
        "The remaining credits are not enough. You can buy more one-time credit packs or subscribe."
    );
    assert_eq!(handle.ledger().balance(KEY), 10);
    assert!(handle.ledger().entries(KEY).is_empty());
}

#[tokio::test]
async fn refused_lyrics_are_moderation() {
    styled(async |style| refused_lyrics_are_moderation_in(style).await).await;
}

async fn refused_lyrics_are_moderation_in(style: AnswerStyle) {
    let (_handle, client) = start(fast().with_style(style)).await;
    let mut req = song_request();
    req.fields.prompt = Some("[Verse]\nsome copyrighted line".into());
    let err = client.create(&req).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Moderation);
    assert_eq!(
        err.message(),
        "The lyrics contain copyrighted content: 'some copyrighted line'. Please use original lyrics."
    );
}

#[tokio::test]
async fn second_submit_within_the_window_is_rate_limited_but_polls_are_not() {
    let config = SandboxConfig::default()
        .with_time_scale(1.0)
        .with_submit_interval(Duration::from_secs(3));
    let (handle, client) = start(config).await;
    let task = client.create(&song_request()).await.unwrap();
    let err = client.create(&song_request()).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::RateLimited);
    assert!(err.is_retryable());
    for _ in 0..5 {
        client.task(&task.task_id).await.unwrap();
        client.credits().await.unwrap();
    }
    assert_eq!(handle.ledger().entries(KEY).len(), 1);
}

#[tokio::test]
async fn unknown_task_is_invalid_with_the_documented_message() {
    let (_handle, client) = start(fast()).await;
    let err = client.task("no-such-task").await.unwrap_err();
    assert_eq!(
        (err.class(), err.status(), err.message()),
        (ErrorClass::Invalid, Some(400), "task not found.")
    );
}

#[tokio::test]
async fn injected_500_is_transient_and_free() {
    let faults = Faults {
        http_500: 1.0,
        ..Faults::default()
    };
    let (handle, client) = start(fast().with_faults(faults)).await;
    let err = client.create(&song_request()).await.unwrap_err();
    assert_eq!(
        (err.class(), err.message()),
        (ErrorClass::Transient, "Internal Server Error.")
    );
    assert!(err.is_retryable());
    assert!(handle.ledger().entries(KEY).is_empty());
}

#[tokio::test]
async fn injected_429_is_rate_limited() {
    let faults = Faults {
        http_429: 1.0,
        ..Faults::default()
    };
    let (_handle, client) = start(fast().with_faults(faults)).await;
    let err = client.create(&song_request()).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::RateLimited);
}

#[tokio::test]
async fn dropped_connection_after_charge_is_in_doubt_and_charged_once() {
    let faults = Faults {
        drop_after_charge: 1.0,
        ..Faults::default()
    };
    let (handle, client) = start(fast().with_faults(faults)).await;
    let err = client.create(&song_request()).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::InDoubt, "{err}");
    assert!(!err.is_retryable());
    let entries = handle.ledger().entries(KEY);
    assert_eq!(entries.len(), 1);
    let task_id = entries[0].task_id.clone().unwrap();
    // The work really happened: the task exists and finishes.
    succeeded(&wait_done(&client, &task_id).await);
    assert_eq!(handle.ledger().entries_for_task(KEY, &task_id).len(), 1);
}

#[tokio::test]
async fn malformed_body_is_a_decode_error_with_the_raw_body() {
    let faults = Faults {
        malformed_json: 1.0,
        ..Faults::default()
    };
    let (handle, client) = start(fast().with_faults(faults)).await;
    let err = client.credits().await.unwrap_err();
    let ApiError::Decode { body, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(body.starts_with("{\"credits\""), "{body}");
    assert_eq!(err.class(), ErrorClass::Decode);
    assert!(!err.may_have_been_charged());
    let err = client.create(&song_request()).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Decode);
    assert!(
        err.may_have_been_charged(),
        "the garbled answer was a 200: the submit was charged"
    );
    assert_eq!(handle.ledger().charged(KEY), price("create_music"));
}

#[tokio::test]
async fn failed_task_is_refunded_exactly_once() {
    let faults = Faults {
        task_failed: 1.0,
        ..Faults::default()
    };
    let (handle, client) = start(fast().with_faults(faults)).await;
    let task = client.create(&song_request()).await.unwrap();
    let status = wait_done(&client, &task.task_id).await;
    let clips = status.clips();
    assert!(
        clips
            .iter()
            .all(|c| c.state == ClipState::Failed && c.error_message.is_some())
    );
    wait_done(&client, &task.task_id).await;
    let entries = handle.ledger().entries_for_task(KEY, &task.task_id);
    let kinds: Vec<_> = entries.iter().map(|e| (e.kind, e.credits)).collect();
    use sonicflow::sandbox::EntryKind::*;
    let paid = price("create_music");
    assert_eq!(kinds, vec![(Charge, paid), (Refund, paid)]);
    assert_eq!(client.credits().await.unwrap().credits, 1000);
}

#[tokio::test]
async fn not_ready_forms_decode_as_not_ready() {
    let forms = [
        None,
        Some(NotReadyForm::TypeObject),
        Some(NotReadyForm::Accepted),
        Some(NotReadyForm::EmptyData),
    ];
    for style in AnswerStyle::ALL {
        for form in forms {
            let mut config = SandboxConfig::default()
                .with_style(style)
                .with_submit_interval(Duration::ZERO);
            if let Some(form) = form {
                config = config.with_not_ready_form(form);
            }
            let (handle, client) = start(config).await;
            let task = client.create(&song_request()).await.unwrap();
            let status = client.task(&task.task_id).await.unwrap();
            let served = form.unwrap_or(style.not_ready_form());
            let expected = if served == NotReadyForm::EmptyData {
                TaskStatus::Items(vec![])
            } else {
                TaskStatus::NotReady
            };
            assert_eq!(status, expected, "{style:?} {form:?}");
            assert!(!status.is_finished());
            handle.shutdown().await;
        }
    }
}

#[tokio::test]
async fn closed_port_is_transient_even_for_a_paid_submit() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = client_for(&url, KEY);
    assert_eq!(
        client.credits().await.unwrap_err().class(),
        ErrorClass::Transient
    );
    let err = client.create(&song_request()).await.unwrap_err();
    assert_eq!(
        err.class(),
        ErrorClass::Transient,
        "nothing was sent: {err}"
    );
}

#[tokio::test]
async fn timeout_after_a_paid_submit_was_sent_is_in_doubt() {
    // A real-speed sandbox takes 15–25 s to answer a sync upload.
    let handle = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let config = ClientConfig::new(handle.base_url(), ApiKey::new(KEY).unwrap())
        .unwrap()
        .with_timeouts(Duration::from_secs(2), Duration::from_millis(200));
    let client = Client::new(&config).unwrap();
    let err = client
        .upload("https://example.com/in.mp3")
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::InDoubt, "{err}");
    assert_eq!(handle.ledger().charged(KEY), 2);
}
