//! The sandbox's submit slot in both scopes: by default it spaces
//! generation submits only, as documented, and quick calls go through
//! at once; with the shared scope every paid call takes the one slot.

mod sandbox_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use sandbox_support::*;
use sonicflow::api::{Client, CreateRequest, ErrorClass};
use sonicflow::sandbox::{RateLimitScope, SandboxConfig};

/// Real time, so the 3 s window is far wider than the time between two calls.
fn real_time(scope: RateLimitScope) -> SandboxConfig {
    SandboxConfig::default()
        .with_time_scale(1.0)
        .with_submit_interval(Duration::from_secs(3))
        .with_rate_limit_scope(scope)
}

fn song_request() -> CreateRequest {
    CreateRequest {
        fields: fields_for("sonic-v5"),
        ..Default::default()
    }
}

/// The class of the error a call answered with, `None` when it was accepted.
fn refusal<T>(result: Result<T, sonicflow::api::ApiError>) -> Option<ErrorClass> {
    result.err().map(|e| e.class())
}

async fn create_then_quick_calls(client: &Client) -> [Option<ErrorClass>; 4] {
    [
        refusal(client.create(&song_request()).await),
        refusal(client.upsample_tags("lofi, warm").await),
        refusal(client.upsample_tags("jazz, brushed drums").await),
        refusal(client.create(&song_request()).await),
    ]
}

#[test]
fn the_generation_scope_is_the_default() {
    assert_eq!(
        SandboxConfig::default().rate_limit_scope,
        RateLimitScope::Generation
    );
}

#[tokio::test]
async fn with_the_generation_scope_quick_calls_never_wait_for_a_create() {
    let (handle, client) = start(real_time(RateLimitScope::Generation)).await;
    let answers = create_then_quick_calls(&client).await;
    assert_eq!(answers, [None, None, None, Some(ErrorClass::RateLimited)]);
    let operations: Vec<String> = handle
        .ledger()
        .entries(KEY)
        .iter()
        .map(|e| e.operation.clone())
        .collect();
    assert_eq!(
        operations,
        ["create_music", "upsample_tags", "upsample_tags"]
    );
}

#[tokio::test]
async fn with_the_shared_scope_a_quick_call_right_after_a_create_is_refused() {
    let (handle, client) = start(real_time(RateLimitScope::Shared)).await;
    let answers = create_then_quick_calls(&client).await;
    let limited = Some(ErrorClass::RateLimited);
    assert_eq!(answers, [None, limited, limited, limited]);
    assert_eq!(
        handle.ledger().entries(KEY).len(),
        1,
        "only the create paid"
    );
}

#[tokio::test]
async fn with_the_shared_scope_quick_calls_are_spaced_among_themselves() {
    let (_handle, client) = start(real_time(RateLimitScope::Shared)).await;
    assert_eq!(refusal(client.upsample_tags("lofi").await), None);
    assert_eq!(
        refusal(client.upsample_tags("lofi").await),
        Some(ErrorClass::RateLimited)
    );
}

#[tokio::test]
async fn the_sandbox_binary_takes_the_scope_as_a_flag() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sonicflow"))
        .args(["sandbox", "--addr", "127.0.0.1:0", "--time-scale", "1"])
        .args(["--rate-limit-scope", "shared"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    let client = client_for(url.trim(), KEY);
    let answers = [
        refusal(client.create(&song_request()).await),
        refusal(client.upsample_tags("lofi").await),
    ];
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(answers, [None, Some(ErrorClass::RateLimited)]);
}

#[test]
fn an_unknown_scope_is_refused_with_the_choices() {
    let out = Command::new(env!("CARGO_BIN_EXE_sonicflow"))
        .args(["sandbox", "--rate-limit-scope", "creates"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("[possible values: generation, shared]"),
        "{stderr}"
    );
}
