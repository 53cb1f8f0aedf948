//! `sonicflow run` through the binary against a hostile API on loopback:
//! a finished task whose file cannot be fetched, and polls that cannot be
//! decoded, are reported with their real cause in `results.json`, and the
//! file is not fetched again every poll interval; and key files as editors
//! and careless copies leave them; a balance call that would wait past its
//! deadline; and the attempts a resume finds before a send in doubt.

#![expect(
    clippy::unwrap_used,
    reason = "tests fail by panicking, as assertions do"
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

const KEY: &str = "sk-run-hostile-5e0c2a";

#[derive(Clone)]
struct Api {
    base: String,
    file_hits: Arc<AtomicUsize>,
}

async fn create(headers: axum::http::HeaderMap, body: axum::Json<Value>) -> Response {
    // The prompt names the task, so each step meets its own trouble.
    let task = body["gpt_description_prompt"].as_str().unwrap_or("none");
    if task == "echo" {
        // Refuses with a flood of text that echoes the key and spoofs the terminal.
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
        let message = format!(
            "\u{1b}[2J\u{1b}]0;owned\u{7}bad header {} {}",
            auth.unwrap_or_default(),
            "x".repeat(5 << 20)
        );
        let refused = json!({"code": 400, "message": message});
        return (StatusCode::BAD_REQUEST, axum::Json(refused)).into_response();
    }
    axum::Json(json!({"code": 200, "task_id": task})).into_response()
}

async fn task(State(api): State<Api>, Path(id): Path<String>) -> Response {
    match id.as_str() {
        "gone" => {
            let clip = json!({"clip_id": "c1", "state": "succeeded",
                "audio_url": format!("{}/files/gone.mp3", api.base)});
            axum::Json(json!({"code": 200, "data": [clip]})).into_response()
        }
        _ => axum::Json(json!({"code": 200, "data": {"clip_id": 7}})).into_response(),
    }
}

async fn credits(headers: axum::http::HeaderMap) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {KEY}")) {
        let refused = json!({"code": 401, "message": "Invalid authorization format."});
        return (StatusCode::UNAUTHORIZED, axum::Json(refused)).into_response();
    }
    axum::Json(json!({"credits": 1000, "extra_credits": 0})).into_response()
}

async fn gone(State(api): State<Api>) -> StatusCode {
    api.file_hits.fetch_add(1, Ordering::SeqCst);
    StatusCode::NOT_FOUND
}

async fn serve() -> Api {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = Api {
        base: format!("http://{}", listener.local_addr().unwrap()),
        file_hits: Arc::new(AtomicUsize::new(0)),
    };
    let app = Router::new()
        .route("/api/v1/get-credits", get(credits))
        .route("/api/v1/sonic/create", post(create))
        .route("/api/v1/sonic/task/{id}", get(task))
        .route("/files/gone.mp3", get(gone))
        .with_state(api.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    api
}

const PIPELINE: &str = "version: 1
name: hostile
defaults: { mv: sonic-v5 }
poll: { initial_delay: 1s, interval: 1s, timeout: 2m }
steps:
  lost:
    action: create
    with: { custom_mode: false, gpt_description_prompt: gone }
  garbled:
    action: create
    with: { custom_mode: false, gpt_description_prompt: garbled }
  echo:
    action: create
    with: { custom_mode: false, gpt_description_prompt: echo }
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_after_a_finished_task_keep_their_cause() {
    let api = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pipeline.yaml");
    std::fs::write(&file, PIPELINE).unwrap();
    let out = dir.path().join("out");
    let mut cmd = common::sonicflow();
    cmd.env("MUSICAPI_KEY", KEY)
        .env("MUSICAPI_BASE_URL", &api.base)
        .args([
            "run",
            file.to_str().unwrap(),
            "--download",
            "--time-scale",
            "100",
            "--log-format",
            "json",
            "--out",
            out.to_str().unwrap(),
        ]);
    let output = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let step = |id: &str| {
        results["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == id)
            .cloned()
            .unwrap()
    };

    // The file's 404: a local failure after a paid answer, with the host
    // and status, fetched once (a 404 is not worth retrying), not a timeout.
    let lost = step("lost");
    let error = &lost["error"];
    assert_eq!(error["kind"], "local", "{lost:#}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("404") && message.contains("127.0.0.1"),
        "{message}"
    );
    assert!(!message.contains("did not finish in time"), "{message}");
    assert_eq!(lost["attempts"][0]["error"]["kind"], "local", "{lost:#}");
    assert_eq!(api.file_hits.load(Ordering::SeqCst), 1);

    // Undecodable polls run into the timeout, which names what was wrong.
    let garbled = step("garbled");
    let message = garbled["error"]["message"].as_str().unwrap();
    assert_eq!(garbled["error"]["kind"], "timeout", "{garbled:#}");
    assert!(
        message.contains("the last poll failed: cannot decode the response")
            && message.contains("`data`"),
        "{message}"
    );

    // What the server said is stored cut, stripped and without the key, in
    // every file the run wrote and on stderr.
    let echo = step("echo");
    let message = echo["error"]["message"].as_str().unwrap();
    assert_eq!(echo["error"]["kind"], "invalid", "{echo:#}");
    assert!(
        message.contains("bad header Bearer <redacted> xxx"),
        "{message}"
    );
    assert!(message.len() < 1_000, "{} bytes", message.len());
    for (what, text) in written_below(dir.path())
        .into_iter()
        .chain([("stderr".into(), stderr.to_string())])
    {
        assert!(!text.contains(KEY), "{what} holds the key");
        assert!(!text.contains('\u{1b}'), "{what} holds an escape sequence");
        assert!(text.len() < 1 << 20, "{what} is {} bytes", text.len());
    }
}

/// Every file below `dir` (results, journal, state) with its text.
fn written_below(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.push((
                    path.display().to_string(),
                    String::from_utf8_lossy(&bytes).into_owned(),
                ));
            }
        }
    }
    assert!(out.len() >= 3, "{out:?}");
    out
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_readable_key_file_with_a_bom_works_and_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let api = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("musicapi.key");
    std::fs::write(&key_file, format!("\u{feff}{KEY}\r\n")).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = key_file.to_str().unwrap().to_owned();
    let mut cmd = common::sonicflow();
    cmd.args(["credits", "--api-base", &api.base, "--api-key-file", &path]);
    let output = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("1000") || stderr.contains("1000"),
        "{stdout}{stderr}"
    );
    assert!(
        stderr.contains(&format!("`{path}` can be read by every user"))
            && stderr.contains(&format!("chmod 600 {path}")),
        "{stderr}"
    );

    // A stray character is named by position, the key is not shown.
    std::fs::write(&key_file, format!("{KEY}\u{a0}x")).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut cmd = common::sonicflow();
    cmd.args(["credits", "--api-base", &api.base, "--api-key-file", &path]);
    let output = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("a non-ASCII character (U+00A0) at character 22"),
        "{stderr}"
    );
    assert!(!stderr.contains("warning"), "{stderr}");
    assert!(!stderr.contains(KEY), "{stderr}");
}

/// A server that asks every balance call to wait the longest `Retry-After`
/// (600 s) and counts the submits it is sent.
async fn stalling() -> (String, Arc<AtomicUsize>) {
    let submits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&submits);
    let app = axum::Router::new()
        .route(
            "/api/v1/get-credits",
            get(|| async {
                let slow = json!({"code": 429, "message": "slow down"});
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "100000")],
                    axum::Json(slow),
                )
            }),
        )
        .route(
            "/api/v1/sonic/create",
            post(move || async move {
                counted.fetch_add(1, Ordering::SeqCst);
                StatusCode::INTERNAL_SERVER_ERROR
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, submits)
}

/// A server that would keep the balance call waiting for longer than its
/// deadline is given up on at once: `run` refuses with exit 4 naming the
/// server and the flag that starts without the balance, sending nothing,
/// and `credits` fails naming the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_balance_call_told_to_wait_past_its_deadline_gives_up_at_once() {
    let (base, submits) = stalling().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pipeline.yaml");
    std::fs::write(&file, PIPELINE).unwrap();
    let out = dir.path().join("out");
    let mut cmd = common::sonicflow();
    cmd.env("MUSICAPI_KEY", KEY)
        .env("MUSICAPI_BASE_URL", &base)
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out);
    let output = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the API at `{base}` did not tell the balance in time"
        )) && stderr.contains("no balance within 60 s")
            && stderr.contains("`--no-balance-check`"),
        "{stderr}"
    );
    assert_eq!(submits.load(Ordering::SeqCst), 0, "nothing was sent");

    let mut cmd = common::sonicflow();
    cmd.env("MUSICAPI_KEY", KEY)
        .args(["credits", "--api-base", &base]);
    let output = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot get the balance from `{base}`"))
            && stderr.contains("no balance within 60 s"),
        "{stderr}"
    );
}

/// A server whose first submit fails with a 502 and whose later ones are
/// accepted as task `t2`.
async fn flaky() -> String {
    let submits = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new()
        .route("/api/v1/get-credits", get(credits))
        .route(
            "/api/v1/sonic/create",
            post(move || async move {
                if submits.fetch_add(1, Ordering::SeqCst) == 0 {
                    let busy = json!({"code": 502, "message": "upstream busy"});
                    return (StatusCode::BAD_GATEWAY, axum::Json(busy)).into_response();
                }
                axum::Json(json!({"code": 200, "task_id": "t2"})).into_response()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// A retried send whose answer was lost to a kill: the resume lists both
/// attempts from the journal, the first with the server's error, the
/// second in doubt, each with the time it was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_lists_the_attempts_before_a_send_in_doubt_with_their_errors() {
    let base = flaky().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pipeline.yaml");
    let pipeline = "version: 1
name: flaky
defaults: { mv: sonic-v5 }
retry: { attempts: 3, backoff: { initial: 1s, max: 1s } }
steps:
  song:
    action: create
    with: { custom_mode: false, gpt_description_prompt: rain }
";
    std::fs::write(&file, pipeline).unwrap();
    let out = dir.path().join("out");
    let command = |crash: Option<&str>| {
        let mut cmd = common::sonicflow();
        cmd.env("MUSICAPI_KEY", KEY)
            .env("MUSICAPI_BASE_URL", &base)
            .env_remove("SONICFLOW_CRASH_AT")
            .args(["run", "--time-scale", "100"]);
        if let Some(point) = crash {
            cmd.env("SONICFLOW_CRASH_AT", point);
        }
        cmd
    };
    let mut first = command(Some("before:accepted:1"));
    first.arg(&file).arg("--out").arg(&out);
    let killed = tokio::task::spawn_blocking(move || first.output().unwrap())
        .await
        .unwrap();
    assert_ne!(killed.status.code(), Some(0));
    let mut resume = command(None);
    resume.arg("--resume").arg(&out);
    let resumed = tokio::task::spawn_blocking(move || resume.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert_eq!(resumed.status.code(), Some(1), "{stderr}");
    let sent: Vec<String> = std::fs::read_to_string(out.join("journal.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["type"] == "intent")
        .map(|e| e["at"].as_str().unwrap().to_owned())
        .collect();
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let attempts: Vec<(u64, String, String, bool)> = results["steps"][0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["attempt"].as_u64().unwrap(),
                a["started_at"].as_str().unwrap().to_owned(),
                a["error"]["kind"].as_str().unwrap_or("none").to_owned(),
                a["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("upstream busy")),
            )
        })
        .collect();
    assert_eq!(
        attempts,
        [
            (1, sent[0].clone(), "transient".to_owned(), true),
            (2, sent[1].clone(), "in_doubt".to_owned(), false),
        ],
        "{results:#}"
    );
}

/// A key file that cannot be used stops `run` before the state folder is
/// touched: no lock, no run folder, nothing sent.
#[cfg(unix)]
#[tokio::test]
async fn a_run_with_an_unusable_key_file_leaves_no_state_behind() {
    use std::os::unix::fs::PermissionsExt;
    let api = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("p.yaml");
    std::fs::write(&manifest, PIPELINE).unwrap();
    let key_file = dir.path().join("musicapi.key");
    std::fs::write(&key_file, format!("{KEY}\u{7}")).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut cmd = common::sonicflow();
    cmd.arg("run")
        .arg(&manifest)
        .args(["--api-base", &api.base, "--api-key-file"])
        .arg(&key_file);
    let output = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(!stderr.contains(KEY), "{stderr}");
    assert!(
        !dir.path().join(".sonicflow").exists(),
        "a state folder was made: {stderr}"
    );

    // A manifest that cannot run is said first, whatever the key.
    std::fs::write(
        &manifest,
        "version: 1\nname: p\nsteps:\n  a: { action: nope }\n",
    )
    .unwrap();
    let mut cmd = common::sonicflow();
    cmd.arg("run")
        .arg(&manifest)
        .args(["--api-base", &api.base, "--api-key-file"])
        .arg(&key_file);
    let output = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("nope"), "{stderr}");
    assert!(!dir.path().join(".sonicflow").exists(), "{stderr}");
}
