//! How the step executor reports each failure the sandbox can produce, and
//! that a rule broken by a resolved value stops the request before it is
//! sent. No message may ever contain the API key.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod steps_support;

use serde_json::json;
use sonicflow::action::Action;
use sonicflow::engine::{ErrorKind, Job, PollOutcome, StepError, StepExecutor, Submission};
use sonicflow::sandbox::{EntryKind, Faults, SandboxHandle};
use sonicflow::steps::DownloadOptions;
use steps_support::*;

fn create_job() -> Job {
    job(
        "song",
        Action::Create,
        "create_music",
        json!({"custom_mode": false, "mv": "sonic-v4-5", "gpt_description_prompt": "a calm piano piece"}),
    )
}

fn charges(handle: &SandboxHandle) -> Vec<String> {
    handle
        .ledger()
        .entries(KEY)
        .into_iter()
        .filter(|e| e.kind == EntryKind::Charge)
        .map(|e| e.operation)
        .collect()
}

fn assert_clean(e: &StepError) {
    assert!(!e.message.contains(KEY), "the key leaked: {}", e.message);
    assert!(!e.message.is_empty());
}

/// Submits `job` to a sandbox with `faults` and returns the error.
async fn submit_err(faults: Faults, job: &Job) -> (StepError, SandboxHandle) {
    let (handle, exec) = start(fast().with_faults(faults), DownloadOptions::disabled()).await;
    let err = exec.submit(job).await.unwrap_err();
    assert_clean(&err);
    (err, handle)
}

#[tokio::test]
async fn server_errors_are_transient_and_uncharged() {
    let (err, handle) = submit_err(
        Faults {
            http_500: 1.0,
            ..Faults::default()
        },
        &create_job(),
    )
    .await;
    assert_eq!(err.kind, ErrorKind::Transient);
    assert!(!err.charged);
    assert!(charges(&handle).is_empty());
}

#[tokio::test]
async fn rate_limits_are_reported_as_such() {
    let (err, handle) = submit_err(
        Faults {
            http_429: 1.0,
            ..Faults::default()
        },
        &create_job(),
    )
    .await;
    assert_eq!(err.kind, ErrorKind::RateLimited);
    assert!(!err.charged);
    assert!(charges(&handle).is_empty());
}

#[tokio::test]
async fn a_dropped_answer_after_a_charge_is_in_doubt_never_transient() {
    let faults = Faults {
        drop_after_charge: 1.0,
        ..Faults::default()
    };
    let (err, handle) = submit_err(faults, &create_job()).await;
    assert_eq!(err.kind, ErrorKind::InDoubt);
    assert!(err.charged);
    assert!(!err.kind.may_resend());
    assert_eq!(charges(&handle), ["create_music"]);
}

#[tokio::test]
async fn a_garbled_submit_answer_is_in_doubt_and_a_garbled_poll_is_transient() {
    let faults = Faults {
        malformed_json: 1.0,
        ..Faults::default()
    };
    let (handle, exec) = start(fast().with_faults(faults), DownloadOptions::disabled()).await;
    let job = create_job();
    let err = exec.submit(&job).await.unwrap_err();
    assert_clean(&err);
    assert_eq!(err.kind, ErrorKind::InDoubt);
    assert!(err.charged);
    // The task exists (the ledger knows it); polling it gets garbled answers too.
    let task_id = handle.ledger().entries(KEY)[0].task_id.clone().unwrap();
    let err = exec
        .poll(&job, &sonicflow::engine::TaskRef::new(task_id.clone()))
        .await
        .unwrap_err();
    assert_clean(&err);
    assert_eq!(err.kind, ErrorKind::Transient);
    assert!(!err.charged);
}

#[tokio::test]
async fn a_failed_task_is_a_failed_poll_with_its_reason() {
    let faults = Faults {
        task_failed: 1.0,
        ..Faults::default()
    };
    let (_handle, exec) = start(fast().with_faults(faults), DownloadOptions::disabled()).await;
    match drive(&exec, &create_job()).await.unwrap() {
        PollOutcome::Failed { message } => {
            assert!(message.starts_with("clip `"), "{message}");
            assert!(!message.contains(KEY));
        }
        other => panic!("expected a failed task, got {other:?}"),
    }
}

#[tokio::test]
async fn refusals_map_to_their_kinds() {
    let (handle, exec) = start(fast(), DownloadOptions::disabled()).await;
    let unknown_clip = job("wav", Action::Wav, "wav", json!({"clip": "no-such-clip"}));
    let err = exec.submit(&unknown_clip).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid, "{err}");
    let mut moderated = create_job();
    moderated.fields["gpt_description_prompt"] = json!("a song in the style of someone famous");
    let err = exec.submit(&moderated).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Moderation, "{err}");
    assert_clean(&err);
    assert!(charges(&handle).is_empty());
}

#[tokio::test]
async fn a_short_balance_is_out_of_credits() {
    let (handle, exec) = start(fast().with_balance(1), DownloadOptions::disabled()).await;
    let err = exec.submit(&create_job()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::OutOfCredits, "{err}");
    assert_clean(&err);
    assert!(charges(&handle).is_empty());
}

#[tokio::test]
async fn a_refused_key_is_unauthorised_and_never_echoed() {
    let handle =
        sonicflow::sandbox::Sandbox::start(fast().with_keys(vec!["another-key-987".into()]))
            .await
            .unwrap();
    let exec = executor(handle.base_url(), KEY, DownloadOptions::disabled());
    let err = exec.submit(&create_job()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unauthorised, "{err}");
    assert_clean(&err);
    let err = exec
        .poll(&create_job(), &sonicflow::engine::TaskRef::new("any-task"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unauthorised, "{err}");
    assert_clean(&err);
}

#[tokio::test]
async fn a_resolved_value_breaking_a_model_limit_is_refused_before_sending() {
    let (handle, exec) = start(fast(), DownloadOptions::disabled()).await;
    let job = job(
        "song",
        Action::Create,
        "create_music",
        json!({"custom_mode": true, "mv": "sonic-v4", "prompt": "a".repeat(3001)}),
    );
    let err = exec.submit(&job).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid);
    assert!(
        err.message.contains("`prompt`") && err.message.contains("3000"),
        "{}",
        err.message
    );
    assert!(handle.ledger().entries(KEY).is_empty());
    assert_eq!(
        handle.ledger().balance(KEY),
        handle.ledger().start_balance()
    );
    // The same prompt is fine on a model that allows 5000 characters.
    let mut ok = job.clone();
    ok.fields["mv"] = json!("sonic-v4-5");
    assert!(matches!(exec.submit(&ok).await, Ok(Submission::Task(_))));
}

#[tokio::test]
async fn a_field_of_the_wrong_type_or_unknown_to_the_action_is_refused_unsent() {
    let (handle, exec) = start(fast(), DownloadOptions::disabled()).await;
    let wrong = job("bpm", Action::Bpm, "bpm", json!({"clip": ["a", "b"]}));
    let err = exec.submit(&wrong).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid);
    assert!(err.message.contains("`clip`"), "{}", err.message);
    let extra = job("bpm", Action::Bpm, "bpm", json!({"clip": "a", "tempo": 3}));
    let err = exec.submit(&extra).await.unwrap_err();
    assert!(err.message.contains("`tempo`"), "{}", err.message);
    assert!(handle.ledger().entries(KEY).is_empty());
}
