//! Run state in a bucket of a real S3 implementation (moto on loopback):
//! the pipeline lock as conditional objects, a writer that lost its lock
//! unable to write over the new holder's records, and the messages of a
//! bad or hostile store. The crash, resume and store-fault tests of the
//! journal in a bucket are in `tests/crash.rs`.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::s3::{S3Server, SECRET_KEY};
use common::{SandboxProcess, sonicflow};
use sonicflow::journal::lock::{
    self, AcquireError, Created, Holder, LockStore, Observer, STALE_AFTER,
};
use sonicflow::journal::store::BucketState;
use sonicflow::journal::{BucketLocks, JournalError, StateDir};
use sonicflow::store::Bucket;

fn bucket(server: &S3Server, url: &str) -> Bucket {
    server.open(url)
}

#[derive(Default)]
struct Seen {
    took_over: Vec<String>,
}

impl Observer for Seen {
    fn waiting(&mut self, _: &Holder, _: Duration) {}
    fn took_over(&mut self, old: &Holder, why: &str) {
        self.took_over.push(format!("{}: {why}", old.run));
    }
}

fn me(run: &str) -> Holder {
    Holder::this_process("songs", run, Path::new("/w/runs/r"), "run")
}

fn take(store: &Arc<dyn LockStore>, run: &str) -> Result<lock::StateLock, AcquireError> {
    lock::acquire(
        Arc::clone(store),
        Duration::ZERO,
        &mut Seen::default(),
        || me(run),
    )
}

#[test]
fn the_lock_on_a_bucket_refuses_a_second_taker_naming_the_holder_and_frees_on_release() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let url = format!("{}/team", server.bucket("locks"));
    let store: Arc<dyn LockStore> = Arc::new(BucketLocks::new(bucket(&server, &url)));
    let first = take(&store, "first").unwrap();
    let Err(AcquireError::Held(held)) = take(&store, "second") else {
        panic!("a held lock refuses a second taker");
    };
    assert_eq!(held.holder.run, "first");
    let text = held.to_string();
    assert!(
        text.starts_with("pipeline `songs` is locked by run `first` (pid ")
            && text.contains(&format!("{url}/locks/songs.json")),
        "{text}"
    );
    drop(first);
    // Released: a tombstone, read as no lock, taken over by a create.
    assert_eq!(store.read("songs").unwrap(), None);
    assert!(store.list().unwrap().is_empty());
    let second = take(&store, "second").unwrap();
    assert_eq!(store.read("songs").unwrap().unwrap().holder.run, "second");
    drop(second);
}

/// A holder on another host cannot be seen to die: it keeps the lock while
/// its heartbeat is fresh, and loses it once the heartbeat is older than
/// the lease (`STALE_AFTER`).
#[test]
fn a_holder_on_another_host_keeps_the_lock_until_its_heartbeat_is_older_than_the_lease() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let url = format!("{}/team", server.bucket("lease"));
    let store: Arc<dyn LockStore> = Arc::new(BucketLocks::new(bucket(&server, &url)));
    let elsewhere = |ago: Duration| Holder {
        host: "another-host".into(),
        pid: 1,
        pid_start: None,
        heartbeat: humantime::format_rfc3339_millis(SystemTime::now() - ago).to_string(),
        ..me("remote")
    };
    let Created::Mine(fresh) = store.create(&elsewhere(Duration::ZERO)).unwrap() else {
        panic!("the bucket is empty");
    };
    let Err(AcquireError::Held(held)) = take(&store, "local") else {
        panic!("a fresh heartbeat on another host keeps the lock");
    };
    assert_eq!(held.holder.host, "another-host");
    // The remote holder stops beating: its last heartbeat ages past the lease.
    let old = elsewhere(STALE_AFTER + Duration::from_secs(5));
    store.replace(&fresh.etag, &old).unwrap().unwrap();
    let mut seen = Seen::default();
    let lock = lock::acquire(Arc::clone(&store), Duration::ZERO, &mut seen, || {
        me("local")
    })
    .unwrap();
    assert_eq!(lock.holder().run, "local");
    assert_eq!(seen.took_over.len(), 1, "{:?}", seen.took_over);
    assert!(
        seen.took_over[0].starts_with("remote: its last heartbeat is"),
        "{:?}",
        seen.took_over
    );
}

/// A writer that lost the run's lock (paused past its lease while another
/// process took the run over) wakes and appends: its record would take the
/// number the new holder already wrote, so the bucket refuses it, the
/// zombie's log stops, and the new holder's record stands.
#[test]
fn a_writer_that_lost_its_lock_cannot_write_a_record_over_the_new_holders() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let url = format!("{}/team", server.bucket("zombie"));
    let dirs = tempfile::tempdir().unwrap();
    let machine = |name: &str| StateDir {
        root: dirs.path().join(name),
        store: Arc::new(BucketState::new(bucket(&server, &url))),
        url: Some(url.clone()),
    };
    let (old, new) = (machine("old"), machine("new"));
    let journal = |state: &StateDir| {
        let dir = state.root.join("runs/r");
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("journal.jsonl")
    };
    let mut zombie = old.open_journal(&journal(&old), "r").unwrap();
    zombie.append(&serde_json::json!({"n": 0})).unwrap();
    // The new holder takes the run up from the bucket and writes on.
    new.hydrate().unwrap();
    let mut holder = new.open_journal(&journal(&new), "r").unwrap();
    holder
        .append(&serde_json::json!({"n": 1, "by": "new"}))
        .unwrap();
    let refused = zombie
        .append(&serde_json::json!({"n": 1, "by": "zombie"}))
        .unwrap_err();
    assert!(
        matches!(refused, JournalError::Superseded { .. }),
        "{refused:?}"
    );
    let message = refused.to_string();
    assert!(
        message.contains("written by another process") && message.contains(&url),
        "{message}"
    );
    let again = zombie.append(&serde_json::json!({"n": 2})).unwrap_err();
    assert!(again.to_string().contains("took the run over"), "{again}");
    let b = bucket(&server, &url);
    let record = b
        .get("runs/r/journal/0000000001.json", 1024)
        .unwrap()
        .unwrap();
    assert_eq!(record.bytes.as_ref(), br#"{"n":1,"by":"new"}"#);
    assert!(
        b.get("runs/r/journal/0000000002.json", 1024)
            .unwrap()
            .is_none()
    );
    let local = std::fs::read_to_string(journal(&old)).unwrap();
    assert_eq!(local, "{\"n\":0}\n", "the refused line is not kept locally");
}

const SLOW: &str = "version: 1
name: slow
defaults: { mv: sonic-v5 }
poll: { initial_delay: 1h, interval: 1h, timeout: 10h }
steps:
  song:
    action: create
    with: { custom_mode: false, gpt_description_prompt: calm piano }
";

/// Two processes, one lock in the bucket: while the first runs, the second
/// is refused naming it, a third machine reading the store knows it is
/// running, and `unlock` will not remove a live holder's lock; once the
/// first is killed with `kill -9`, its lock can be taken.
#[test]
fn a_second_process_is_refused_while_the_first_holds_the_lock_in_the_bucket() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let url = format!("{}/team", server.bucket("two"));
    let sandbox = SandboxProcess::start(&["--time-scale", "1"]);
    let dir = tempfile::tempdir().unwrap();
    // Each machine has a folder of its own with its copy of the manifest.
    let cmd = |machine: &str| {
        let cwd = dir.path().join(machine);
        std::fs::create_dir_all(&cwd).unwrap();
        std::fs::write(cwd.join("slow.yaml"), SLOW).unwrap();
        std::fs::write(
            cwd.join("other.yaml"),
            SLOW.replace("name: slow", "name: other"),
        )
        .unwrap();
        let mut cmd = sonicflow();
        cmd.current_dir(cwd)
            .env("MUSICAPI_BASE_URL", &sandbox.url)
            .env("MUSICAPI_KEY", "two");
        server.env(&mut cmd);
        cmd
    };
    let mut first = cmd("a")
        .args(["run", "slow.yaml", "--state", &url])
        .args(["--log-format", "json"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it has sent its request (so it holds the lock).
    let lines = BufReader::new(first.stderr.take().unwrap()).lines();
    for line in lines.map_while(Result::ok) {
        if line.contains("\"event\":\"submitted\"") {
            break;
        }
    }
    let second = cmd("b")
        .args(["run", "slow.yaml", "--state", &url])
        .args(["--lock-timeout", "0s"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&second.stderr);
    assert_ne!(second.status.code(), Some(0), "{text}");
    assert!(
        text.contains("pipeline `slow` is locked by run `slow-")
            && text.contains(&format!("pid {}", first.id())),
        "{text}"
    );
    // Another pipeline on the same store, on another machine: the live run
    // is known to be running (its lock is held), not taken for dead.
    let plan = cmd("d")
        .args(["plan", "other.yaml", "--state", &url])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&plan.stderr);
    assert!(
        said.contains("is still running; its requests in flight are left to it"),
        "{said}"
    );
    let holder = lock_holder(&server, &url);
    let unlock = cmd("c")
        .args(["unlock", &holder, "--state", &url])
        .output()
        .unwrap();
    assert_ne!(unlock.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&unlock.stderr).contains("looks alive"),
        "{}",
        String::from_utf8_lossy(&unlock.stderr)
    );
    first.kill().unwrap();
    first.wait().unwrap();
    let unlock = cmd("c")
        .args(["unlock", &holder, "--state", &url])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&unlock.stdout);
    assert_eq!(unlock.status.code(), Some(0), "{said}");
    assert!(said.contains("is no longer running"), "{said}");
}

/// The run id holding `slow`'s lock in the bucket.
fn lock_holder(server: &S3Server, url: &str) -> String {
    let store = BucketLocks::new(bucket(server, url));
    store.read("slow").unwrap().unwrap().holder.run
}

/// A bad state URL is refused before anything is sent, naming where it
/// came from (the flag or the manifest's key) and the fix.
#[test]
fn a_bad_state_url_is_refused_naming_the_flag_or_the_manifest_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, SLOW).unwrap();
    let flag = sonicflow()
        .args([
            "plan",
            file.to_str().unwrap(),
            "--state",
            "ftp://somewhere/x",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&flag.stderr);
    assert_ne!(flag.status.code(), Some(0));
    assert!(
        text.contains("`--state` `ftp://somewhere/x`") && text.contains("s3://bucket/prefix"),
        "{text}"
    );
    std::fs::write(&file, format!("{SLOW}state: ftp://somewhere/x\n")).unwrap();
    let key = sonicflow()
        .args(["plan", file.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&key.stderr);
    assert_ne!(key.status.code(), Some(0));
    assert!(text.contains("the manifest's `state:`"), "{text}");
}

/// A store that echoes the credentials back in its refusals: no message of
/// sonicflow's shows them.
#[test]
fn a_store_echoing_the_secret_never_gets_it_shown() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 65536];
            let _ = stream.read(&mut buf);
            let body = format!(
                "<Error><Code>AccessDenied</Code><Message>secret {SECRET_KEY} and key {} refused</Message></Error>",
                common::s3::ACCESS_KEY
            );
            let _ = write!(
                stream,
                "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, SLOW).unwrap();
    let mut cmd = sonicflow();
    common::s3::aws_env(&mut cmd, &format!("http://127.0.0.1:{port}"));
    let out = cmd
        .current_dir(dir.path())
        .args(["run", file.to_str().unwrap(), "--state", "s3://echo/team"])
        .env("MUSICAPI_KEY", "k")
        .env("MUSICAPI_BASE_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("s3://echo/team"), "the store is named: {all}");
    assert!(!all.contains(SECRET_KEY), "{all}");
}

const ROWS: &str = "version: 1
name: rows
defaults: { mv: sonic-v5 }
limits: { max_in_flight: 1 }
poll: { initial_delay: 20s, interval: 15s, timeout: 1h }
matrix:
  key: id
  rows: [{ id: a, idea: calm }, { id: b, idea: loud }, { id: c, idea: slow }]
steps:
  song:
    action: create
    with: { custom_mode: false, gpt_description_prompt: '${{ matrix.idea }}' }
";

/// A run started on machine A with `--out`, taken further on machine B,
/// then resumed on A again: A's journal (in its `--out` folder) is brought
/// up to date from the bucket first, so A writes on after B's records.
#[test]
fn a_machine_resuming_after_another_took_the_run_further_writes_on_after_its_records() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let url = format!("{}/team", server.bucket("back"));
    let sandbox = SandboxProcess::start(&["--time-scale", "1000", "--submit-interval", "0"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a/out");
    let cmd = |machine: &str, crash: Option<&str>| {
        let cwd = dir.path().join(machine);
        std::fs::create_dir_all(&cwd).unwrap();
        std::fs::write(cwd.join("rows.yaml"), ROWS).unwrap();
        let mut cmd = sonicflow();
        cmd.current_dir(cwd)
            .args(["run", "rows.yaml", "--state", &url, "--time-scale", "1000"])
            .env("MUSICAPI_BASE_URL", &sandbox.url)
            .env("MUSICAPI_KEY", "back")
            .env_remove("SONICFLOW_CRASH_AT");
        if let Some(point) = crash {
            cmd.env("SONICFLOW_CRASH_AT", point);
        }
        server.env(&mut cmd);
        cmd
    };
    let first = cmd("a", Some("after:succeeded:1"))
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(first.status.code().is_none(), "the first run is aborted");
    let further = cmd("b", Some("after:succeeded:1"))
        .args(["--resume", "last"])
        .output()
        .unwrap();
    assert!(
        further.status.code().is_none(),
        "the resume on B is aborted"
    );
    let back = cmd("a", None).args(["--resume", "last"]).output().unwrap();
    let said = String::from_utf8_lossy(&back.stderr);
    assert_eq!(back.status.code(), Some(0), "{said}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["status"], "succeeded", "{results}");
    let ledger = sandbox.ledger("back");
    let charges = ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "charge")
        .count();
    assert_eq!(charges, 3, "each row paid once: {ledger}");
}
