//! report.html in a real browser: Debian's chromium, headless, driven over
//! the DevTools protocol, opens the report of a sandbox run with downloads
//! from disk and checks that every player loads its file and knows its
//! length, that the timeline has one bar per task, and keeps a screenshot
//! in `target/ci-artifacts/report.png`.
//!
//! Without chromium the test is skipped with a note, unless `CI` is set:
//! CI installs it, so there its absence fails the test.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

const CHROMIUM: &str = "/usr/bin/chromium";
/// Longest the browser may take to start, answer or load the page.
const BOUND: Duration = Duration::from_secs(60);

/// Chromium for the duration of a test: killed and reaped on every path.
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts headless chromium and reads the DevTools address it prints.
fn launch(binary: &Path) -> (Browser, String) {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(binary)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--mute-audio",
            "--allow-file-access-from-files",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "--window-size=1300,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let stderr = child.stderr.take().unwrap();
    let browser = Browser {
        child,
        _profile: profile,
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(at) = line.find("ws://") {
                let _ = tx.send(line[at..].trim().to_owned());
            }
        }
    });
    let url = rx
        .recv_timeout(BOUND)
        .expect("chromium prints its DevTools address within the bound");
    (browser, url)
}

/// One DevTools connection, with a page session attached.
struct DevTools {
    socket: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    session: Option<String>,
}

impl DevTools {
    fn connect(url: &str) -> DevTools {
        let (socket, _) = tungstenite::connect(url).expect("the DevTools socket opens");
        if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
        }
        DevTools {
            socket,
            next_id: 0,
            session: None,
        }
    }

    fn send(&mut self, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let mut message = json!({ "id": self.next_id, "method": method, "params": params });
        if let Some(session) = &self.session {
            message["sessionId"] = json!(session);
        }
        self.socket
            .send(Message::text(message.to_string()))
            .expect("a DevTools command is sent");
        self.next_id
    }

    /// Reads messages until `done` picks one, within the bound.
    fn until(&mut self, what: &str, mut done: impl FnMut(&Value) -> bool) -> Value {
        let deadline = Instant::now() + BOUND;
        while Instant::now() < deadline {
            let message = match self.socket.read() {
                Ok(Message::Text(text)) => text,
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(e) => panic!("the DevTools socket failed waiting for {what}: {e}"),
            };
            let value: Value = serde_json::from_str(message.as_str()).unwrap();
            if done(&value) {
                return value;
            }
        }
        panic!("chromium did not answer {what} within {BOUND:?}")
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.send(method, params);
        let answer = self.until(method, |m| m["id"] == id);
        assert!(answer.get("error").is_none(), "{method} failed: {answer:#}");
        answer["result"].clone()
    }

    /// Opens a new page and talks to it from now on.
    fn open_page(&mut self) {
        let target = self.call("Target.createTarget", json!({ "url": "about:blank" }));
        let attached = self.call(
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        );
        self.session = Some(attached["sessionId"].as_str().unwrap().to_owned());
    }

    fn navigate(&mut self, url: &str) {
        self.call("Page.enable", json!({}));
        let answer = self.call("Page.navigate", json!({ "url": url }));
        assert!(answer.get("errorText").is_none(), "{answer:#}");
        self.until("the page's load event", |m| {
            m["method"] == "Page.loadEventFired"
        });
    }

    /// Evaluates `expression` (a promise of a JSON string) and parses it.
    fn evaluate(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "awaitPromise": true, "returnByValue": true }),
        );
        assert!(result.get("exceptionDetails").is_none(), "{result:#}");
        serde_json::from_str(result["result"]["value"].as_str().unwrap()).unwrap()
    }

    /// A PNG of the whole page.
    fn screenshot(&mut self) -> Vec<u8> {
        let metrics = self.call("Page.getLayoutMetrics", json!({}));
        let size = &metrics["cssContentSize"];
        let shot = self.call(
            "Page.captureScreenshot",
            json!({
                "format": "png",
                "captureBeyondViewport": true,
                "clip": { "x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1 },
            }),
        );
        base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap()
    }
}

/// Waits (in the page, bounded) until every `<audio>` has its metadata or
/// failed, then describes the players and the timeline's bars.
const INSPECT: &str = r"new Promise(resolve => {
  const audios = [...document.querySelectorAll('audio')];
  const settled = a => a.readyState >= 1 || a.error ? Promise.resolve() : new Promise(r => {
    a.addEventListener('loadedmetadata', r, { once: true });
    a.addEventListener('error', r, { once: true });
  });
  const bound = new Promise(r => setTimeout(r, 30000));
  Promise.race([Promise.all(audios.map(settled)), bound]).then(() => resolve(JSON.stringify({
    audios: audios.map(a => ({ src: a.currentSrc, duration: Number.isFinite(a.duration) ? a.duration : null,
                               ready: a.readyState, error: a.error ? a.error.code : null })),
    bars: [...document.querySelectorAll('svg.gantt g.task')].map(g => g.dataset.instance),
  })));
})";

fn chromium() -> Option<PathBuf> {
    let path = PathBuf::from(CHROMIUM);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{CHROMIUM} is missing on CI: .ci/run installs Debian's chromium before the tests"
    );
    eprintln!(
        "skipped: {CHROMIUM} is not installed (apt-get install chromium); the report's browser test did not run"
    );
    None
}

#[test]
fn the_report_of_a_run_with_downloads_plays_every_file_and_draws_every_task() {
    let Some(binary) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let output = common::sonicflow()
        .args([
            "run",
            "pipelines/cover-and-stems.yaml",
            "--sandbox",
            "--download",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{log}");
    let report = out.join("report.html");
    assert!(
        log.contains(&format!("report: {}", report.display())),
        "{log}"
    );
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let tasks: Vec<String> = results["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| !s["attempts"].as_array().unwrap().is_empty() || s.get("reused_from").is_some())
        .map(|s| match s["instance"].as_str() {
            Some(i) => format!("{}[{i}]", s["step"].as_str().unwrap()),
            None => s["step"].as_str().unwrap().to_owned(),
        })
        .collect();

    let (_browser, url) = launch(&binary);
    let mut devtools = DevTools::connect(&url);
    devtools.open_page();
    devtools.navigate(&format!(
        "file://{}",
        report.canonicalize().unwrap().display()
    ));
    let seen = devtools.evaluate(INSPECT);
    let png = devtools.screenshot();
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ci-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(artifacts.join("report.png"), &png).unwrap();

    let audios = seen["audios"].as_array().unwrap();
    // Two cover clips, and four stems of each.
    assert_eq!(audios.len(), 10, "{seen:#}");
    for audio in audios {
        let src = audio["src"].as_str().unwrap_or_default();
        assert!(
            src.starts_with("file://") && src.ends_with(".mp3"),
            "every player plays the downloaded file: {audio}"
        );
        let duration = audio["duration"].as_f64();
        assert!(
            audio["error"].is_null() && duration.is_some_and(|d| d > 0.0),
            "every player loads its file and knows its length: {audio}"
        );
    }
    let bars: Vec<String> = seen["bars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(bars, tasks, "one bar per task, in the results' order");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
}
