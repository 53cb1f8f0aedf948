//! `run --out s3://…` and `sonicflow publish` against a real S3
//! implementation (moto on loopback): every downloaded file arrives with
//! the sha256 results.json records, big files as multipart uploads,
//! results.json and report.html last; a URL or store that cannot be used
//! stops the run before it pays; a publish cut mid-upload leaves nothing
//! half-written under a final name and a publish again completes it.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::s3::{S3Server, SECRET_KEY, aws_env};
use common::{SandboxProcess, sonicflow};
use sha2::{Digest, Sha256};
use sonicflow::store::Bucket;

/// A cover with a hostile title, stems and WAVs of every clip: small MP3s
/// and cover art, and WAVs (680 kB) bigger than the test part size.
const PIPELINE: &str = "version: 1
name: nightly
defaults: { mv: sonic-v4-5 }
steps:
  song:
    action: create
    with:
      custom_mode: true
      title: '../../../../outside/../..'
      tags: jazz
      prompt: la la la
  wav:
    action: wav
    for_each: ${{ steps.song.outputs.clips }}
    with: { clip: '${{ item.clip_id }}' }
";

/// Parts of 300 kB (moto is told to take parts that small): the MP3s and
/// cover art go as single PUTs, the WAVs in three parts.
const PART: &str = "300000";

fn moto() -> Option<S3Server> {
    S3Server::start_with(&[("S3_UPLOAD_PART_MIN_SIZE", "1024")])
}

fn setup(dir: &Path) -> PathBuf {
    let file = dir.join("pipeline.yaml");
    std::fs::write(&file, PIPELINE).unwrap();
    file
}

/// `sonicflow run FILE --download --out URL` against an in-process
/// sandbox, with the store at `endpoint`.
fn run_sandboxed(file: &Path, url: &str, endpoint: &str) -> Output {
    let mut cmd = sonicflow();
    cmd.arg("run")
        .arg(file)
        .args(["--sandbox", "--download", "--out", url])
        .env("SONICFLOW_PUBLISH_PART_SIZE", PART);
    aws_env(&mut cmd, endpoint);
    cmd.output().unwrap()
}

fn publish(dir: &Path, endpoint: &str) -> Output {
    let mut cmd = sonicflow();
    cmd.arg("publish")
        .arg(dir)
        .env("SONICFLOW_PUBLISH_PART_SIZE", PART);
    aws_env(&mut cmd, endpoint);
    cmd.output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A client of `url` in this process, configured as the binary is.
fn client(server: &S3Server, url: &str) -> Bucket {
    server.open(url)
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The run folder a run printed as its results path.
fn run_dir(output: &Output) -> PathBuf {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let results = PathBuf::from(stdout.trim());
    assert!(results.ends_with("results.json"), "{}", text(output));
    let dir = results.parent().unwrap();
    Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)
}

/// Every file results.json lists: path → (sha256, bytes).
fn listed(results: &[u8]) -> BTreeMap<String, (String, u64)> {
    let results: serde_json::Value = serde_json::from_slice(results).unwrap();
    results["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["files"].as_array().unwrap().clone())
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                (
                    f["sha256"].as_str().unwrap().to_owned(),
                    f["bytes"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

/// Asserts that every file `dir`'s results.json lists is in `bucket`,
/// hashing to what it records, and that results.json and report.html
/// there are the run folder's.
fn assert_published(bucket: &Bucket, dir: &Path) {
    let results = std::fs::read(dir.join("results.json")).unwrap();
    let files = listed(&results);
    assert!(files.len() >= 4, "the run downloaded files: {files:?}");
    for (path, (sha, bytes)) in &files {
        let object = bucket
            .get(path, 1 << 24)
            .unwrap()
            .unwrap_or_else(|| panic!("`{path}` is in the bucket"));
        assert_eq!(object.bytes.len() as u64, *bytes, "{path}");
        assert_eq!(&sha256(&object.bytes), sha, "{path} hashes as recorded");
        assert_eq!(
            object.bytes.as_ref(),
            std::fs::read(dir.join(path)).unwrap(),
            "{path}"
        );
    }
    for name in ["results.json", "report.html"] {
        let object = bucket.get(name, 1 << 24).unwrap().expect(name);
        assert_eq!(
            object.bytes.as_ref(),
            std::fs::read(dir.join(name)).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn a_run_with_downloads_publishes_every_file_then_its_results() {
    let Some(server) = moto() else { return };
    let url = format!("{}/nightly/2026-12-06", server.bucket("results"));
    let dir = tempfile::tempdir().unwrap();
    let file = setup(dir.path());
    let run = run_sandboxed(&file, &url, &server.endpoint());
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let out = run_dir(&run);
    assert!(
        out.starts_with(dir.path().join(".sonicflow/runs")),
        "the run works in its default folder: {}",
        out.display()
    );
    let bucket = client(&server, &url);
    assert_published(&bucket, &out);

    // The WAVs, bigger than a part, went as multipart uploads (S3 gives
    // those an etag ending in `-<parts>`) and read back equal.
    let files = listed(&std::fs::read(out.join("results.json")).unwrap());
    let wavs: Vec<&String> = files.keys().filter(|p| p.ends_with(".wav")).collect();
    assert!(!wavs.is_empty(), "{files:?}");
    for wav in wavs {
        assert!(files[wav].1 > 300_000, "{wav} is bigger than a part");
        let etag = bucket.get(wav, 1 << 24).unwrap().unwrap().etag.unwrap();
        assert!(etag.trim_matches('"').contains('-'), "{wav}: {etag}");
    }

    // A hostile title names no object outside the prefix.
    let whole = client(&server, "s3://results");
    for key in whole.list("").unwrap() {
        assert!(key.starts_with("nightly/2026-12-06/"), "{key}");
        assert!(!key.split('/').any(|p| p == ".."), "{key}");
    }

    // Published again, nothing is sent twice.
    let again = publish(&out, &server.endpoint());
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(
        text(&again).contains(&format!("0 file(s) sent, {} already there", files.len())),
        "{}",
        text(&again)
    );
    // A resume keeps the run's `--out` and publishes again, sending
    // nothing that is there already.
    let mut cmd = sonicflow();
    cmd.args(["run", "--sandbox", "--resume"]).arg(&out);
    aws_env(&mut cmd, &server.endpoint());
    let resumed = cmd.output().unwrap();
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));
    assert!(
        text(&resumed).contains(&format!(
            "published: {url}/results.json (0 file(s) sent, {} already there)",
            files.len()
        )),
        "{}",
        text(&resumed)
    );
    assert_published(&bucket, &out);
    // The store's secret is nowhere.
    for shown in [text(&run), text(&again), text(&resumed)] {
        assert!(!shown.contains(SECRET_KEY), "{shown}");
    }
    for name in ["journal.jsonl", "results.json", "report.html"] {
        let written = std::fs::read_to_string(out.join(name)).unwrap();
        assert!(!written.contains(SECRET_KEY), "{name}");
    }
}

#[test]
fn a_file_url_is_published_to_as_a_bucket_is() {
    let dir = tempfile::tempdir().unwrap();
    let file = setup(dir.path());
    let target = dir.path().join("published");
    let url = format!("file://{}", target.display());
    let run = run_sandboxed(&file, &url, "http://127.0.0.1:1");
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let out = run_dir(&run);
    let results = std::fs::read(out.join("results.json")).unwrap();
    assert_eq!(std::fs::read(target.join("results.json")).unwrap(), results);
    for (path, (sha, _)) in listed(&results) {
        assert_eq!(
            &sha256(&std::fs::read(target.join(&path)).unwrap()),
            &sha,
            "{path}"
        );
    }
    assert!(target.join("report.html").is_file());
}

#[test]
fn an_out_url_that_cannot_be_used_stops_the_run_before_it_pays() {
    let Some(server) = moto() else { return };
    let sandbox = SandboxProcess::start(&["--time-scale", "1000"]);
    let dir = tempfile::tempdir().unwrap();
    let file = setup(dir.path());
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cases = [
        // A bucket that does not exist.
        ("s3://no-such-bucket/x".to_owned(), server.endpoint()),
        // A store that does not answer.
        (
            server.bucket("results") + "/x",
            format!("http://127.0.0.1:{closed}"),
        ),
        // A scheme sonicflow cannot write to.
        ("ftp://host/x".to_owned(), server.endpoint()),
    ];
    for (url, endpoint) in cases {
        let mut cmd = sonicflow();
        cmd.arg("run")
            .arg(&file)
            .args(["--download", "--out", &url])
            .env("MUSICAPI_BASE_URL", &sandbox.url)
            .env("MUSICAPI_KEY", "nopay");
        aws_env(&mut cmd, &endpoint);
        let run = cmd.output().unwrap();
        let shown = text(&run);
        assert_eq!(run.status.code(), Some(2), "{url}: {shown}");
        assert!(shown.contains(&format!("`--out {url}`")), "{shown}");
        assert!(shown.contains("nothing was sent"), "{shown}");
        assert!(!shown.contains(SECRET_KEY), "{shown}");
    }
    let ledger = sandbox.ledger("nopay");
    assert_eq!(
        ledger["entries"].as_array().map(Vec::len),
        Some(0),
        "nothing was paid: {ledger}"
    );
    assert!(
        !dir.path().join("ftp:").exists(),
        "an unknown scheme is no folder"
    );
}

#[test]
fn a_publish_cut_mid_upload_leaves_nothing_half_written_and_a_publish_again_completes_it() {
    let Some(server) = moto() else { return };
    let url = format!("{}/cut", server.bucket("results"));
    // The store goes away as the second part of the first multipart
    // upload leaves, once the other files and the first part are in.
    let proxy = CuttingProxy::start(server.port, b"partNumber=2&");
    let dir = tempfile::tempdir().unwrap();
    let file = setup(dir.path());
    let run = run_sandboxed(&file, &url, &proxy.endpoint());
    let shown = text(&run);
    assert!(proxy.was_cut(), "{shown}");
    assert_eq!(
        run.status.code(),
        Some(7),
        "the results were not delivered: {shown}"
    );
    assert!(shown.contains("not published to"), "{shown}");
    assert!(shown.contains("`results.json`"), "{shown}");
    assert!(shown.contains("sonicflow publish"), "{shown}");
    assert!(!shown.contains(SECRET_KEY), "{shown}");
    let out = run_dir(&run);

    // Whatever is under a final name is whole; results.json and the
    // report, which go last, are not there.
    let bucket = client(&server, &url);
    let files = listed(&std::fs::read(out.join("results.json")).unwrap());
    let there = bucket.list("").unwrap();
    assert!(!there.contains(&"results.json".to_owned()), "{there:?}");
    assert!(!there.contains(&"report.html".to_owned()), "{there:?}");
    let mut whole = 0;
    for key in &there {
        let Some((sha, _)) = files.get(key) else {
            continue;
        };
        let object = bucket.get(key, 1 << 24).unwrap().unwrap();
        assert_eq!(&sha256(&object.bytes), sha, "{key} is whole");
        whole += 1;
    }
    assert!(whole > 0, "files went before the cut: {there:?}");
    assert!(
        !there.iter().any(|k| k.ends_with(".wav")),
        "the WAV cut mid-upload shows under no name: {there:?}"
    );

    // Published again (to the run's own URL), it completes.
    let again = publish(&out, &server.endpoint());
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(text(&again).contains("published: "), "{}", text(&again));
    assert_published(&bucket, &out);
}

/// A proxy in front of moto that, when a request carrying `needle` goes
/// through, cuts every connection and refuses new ones.
struct CuttingProxy {
    port: u16,
    cut: Arc<AtomicBool>,
}

impl CuttingProxy {
    fn start(upstream: u16, needle: &'static [u8]) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let cut2 = cut.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if cut2.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                {
                    let mut open = open.lock().unwrap();
                    open.push(client.try_clone().unwrap());
                    open.push(server.try_clone().unwrap());
                }
                let (mut from, mut to) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (cut3, open3) = (cut2.clone(), open.clone());
                std::thread::spawn(move || {
                    let mut window: Vec<u8> = Vec::new();
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n) = from.read(&mut buf)
                        && n > 0
                    {
                        window.extend_from_slice(&buf[..n]);
                        if window.windows(needle.len()).any(|w| w == needle) {
                            cut3.store(true, Ordering::SeqCst);
                            for stream in open3.lock().unwrap().drain(..) {
                                let _ = stream.shutdown(Shutdown::Both);
                            }
                            break;
                        }
                        let keep = window.len().saturating_sub(needle.len());
                        window.drain(..keep);
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(Shutdown::Write);
                });
                let (mut back, mut client) = (server, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut back, &mut client);
                    let _ = client.shutdown(Shutdown::Write);
                });
            }
        });
        CuttingProxy { port, cut }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn was_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }
}
