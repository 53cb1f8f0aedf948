//! report.html: the page of a sandbox run with downloads (pinned with its
//! volatile parts masked), of a killed run, of hostile service text, and of
//! a run of 1,000 rows; and `sonicflow report`'s errors.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod common;

use std::process::Stdio;

use serde_json::{Value, json};
use sonicflow::report::Results;
use sonicflow::report::html;

/// Masks what changes from one run to the next.
fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(r"(?s)<style>.*?</style>", "<style>[CSS]</style>");
    s.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", "[TIME]");
    s.add_filter(r"[0-9a-f]{64}", "[SHA256]");
    s.add_filter(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "[ID]",
    );
    s.add_filter(r"127\.0\.0\.1:\d+", "[HOST]");
    s.add_filter(r"sonicflow \d+\.\d+\.\d+", "sonicflow [VERSION]");
    s.add_filter(r"#[0-9a-f]{12}", "#[HASH]");
    s.add_filter(r"\b\d+ min \d\d s|\b\d+(\.\d+)? m?s\b", "[DURATION]");
    s.add_filter(r#"\b(x|x1|x2|width)="[\d.]+""#, r#"$1="[N]""#);
    s.add_filter(r#"class="task critical""#, r#"class="task""#);
    s.add_filter(r"critical path: [^<]*", "critical path: [PATH]");
    s
}

/// A sandbox run of cover-and-stems with downloads into a temporary folder.
fn sandbox_run(dir: &std::path::Path) -> (std::process::Output, std::path::PathBuf) {
    let out = dir.join("run");
    let output = common::sonicflow()
        .args([
            "run",
            "pipelines/cover-and-stems.yaml",
            "--sandbox",
            "--download",
            "--no-observe-charges",
            "--max-in-flight",
            "1",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    (output, out)
}

#[test]
fn the_report_of_a_sandbox_run_with_downloads() {
    let dir = tempfile::tempdir().unwrap();
    let (output, out) = sandbox_run(dir.path());
    let log = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{log}");
    let report = out.join("report.html");
    assert!(
        log.contains(&format!("report: {}\n", report.display())),
        "the run says where its report is: {log}"
    );
    let page = std::fs::read_to_string(&report).unwrap();
    // Every player plays a downloaded file, found in the run folder.
    let sources: Vec<&str> = page
        .split("<audio ")
        .skip(1)
        .filter_map(|a| a.split("src=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(sources.len(), 10, "two clips and four stems of each");
    for src in &sources {
        assert!(out.join(src).is_file(), "{src} is a file of the run");
    }
    assert!(
        !page.to_ascii_lowercase().contains("<script"),
        "the page has no script"
    );
    settings().bind(|| insta::assert_snapshot!("report-sandbox-run", page));
}

#[test]
fn a_run_stopped_at_its_cap_has_a_report_and_keeps_its_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let output = common::sonicflow()
        .args(["run", "pipelines/cover-and-stems.yaml", "--sandbox"])
        .args(["--max-credits", "10", "--allow-partial", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{log}");
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(page.contains(r#"id="run-status">stopped</span>"#));
    assert!(
        page.contains("stopped: budget: `jazz` needs 15 credits"),
        "the stop reason, whole"
    );
}

#[test]
fn a_report_that_cannot_be_written_is_a_warning_not_the_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    // A folder where the report would go.
    std::fs::create_dir_all(out.join("report.html")).unwrap();
    let output = common::sonicflow()
        .args(["run", "pipelines/analyse.yaml", "--sandbox", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert!(
        log.contains(&format!(
            "warning: no report.html: cannot write the report `{}`",
            out.join("report.html").display()
        )),
        "{log}"
    );
    assert!(log.contains("sonicflow report RUN_DIR --out FILE"), "{log}");
    assert!(out.join("results.json").is_file());
}

#[test]
fn a_killed_run_still_has_a_report_of_what_it_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let child = common::sonicflow()
        .args([
            "run",
            "pipelines/cover-and-stems.yaml",
            "--sandbox",
            "--time-scale",
            "20",
            "--log-format",
            "json",
            "--out",
        ])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The upload, the cover and a WAV: the results were rewritten when the
    // cover succeeded (seconds after their first write, and before the
    // console logs any later event); the stems are still to come.
    let (_, seen) = common::kill_after_events(child, "succeeded", 3);
    assert_eq!(seen, 3, "the run was killed while it ran");
    let written = common::sonicflow()
        .args(["report"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&written.stdout);
    assert_eq!(
        written.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&written.stderr)
    );
    let report = out.join("report.html");
    assert_eq!(stdout, format!("{}\n", report.display()));
    let page = std::fs::read_to_string(&report).unwrap();
    assert!(
        page.contains(r#"id="run-status">running</span>"#),
        "the status is the one recorded"
    );
    assert!(page.contains("had not finished when the report was made"));
    // What it had recorded as sent is drawn, bar for bar.
    let recorded: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let sent = recorded["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| !s["attempts"].as_array().unwrap().is_empty())
        .count();
    assert!(sent >= 1, "the results had recorded a send: {recorded:#}");
    assert_eq!(page.matches(r#"<g class="task"#).count(), sent);

    // Elsewhere with --out: the run's files are linked from there.
    let elsewhere = dir.path().join("copy.html");
    let written = common::sonicflow()
        .args(["report"])
        .arg(&out)
        .arg("--out")
        .arg(&elsewhere)
        .output()
        .unwrap();
    assert_eq!(written.status.code(), Some(0));
    assert!(elsewhere.is_file());
}

#[test]
fn a_folder_without_results_is_named_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let missing = common::sonicflow()
        .args(["report"])
        .arg(dir.path())
        .output()
        .unwrap();
    std::fs::write(dir.path().join("results.json"), "{\"schema_version\": 1").unwrap();
    let corrupt = common::sonicflow()
        .args(["report"])
        .arg(dir.path())
        .output()
        .unwrap();
    let mut s = settings();
    s.add_filter(
        &common::regex_escape(&dir.path().display().to_string()),
        "[DIR]",
    );
    s.bind(|| {
        insta::assert_snapshot!(
            "report-errors",
            format!(
                "{}\n{}",
                common::render(&["report", "[DIR]"], &missing),
                common::render(&["report", "[DIR]"], &corrupt)
            )
        );
    });
    assert!(!dir.path().join("report.html").exists());
}

/// A finished run of `rows` matrix rows, each a `song` (two clips, their
/// audio and cover art downloaded) and its `wav`.
fn synthetic(rows: usize) -> Value {
    let mut steps = Vec::new();
    let mut matrix = Vec::new();
    for n in 0..rows {
        let key = format!("r{n:04}");
        let clip = |c: usize| {
            json!({
                "clip_id": format!("{key}-c{c}"), "state": "succeeded",
                "title": format!("Song {n} take {c}"), "tags": "synthwave, night drive",
                "lyrics": "[Verse]\nNeon on the water\n[Chorus]\nDrive until the morning\n",
                "audio_url": format!("https://cdn.example/{key}-c{c}.mp3"),
                "image_url": format!("https://cdn.example/{key}-c{c}.jpeg"),
                "video_url": null, "duration": 151.2, "created_at": "2026-12-01T00:00:00.000Z",
                "mv": "sonic-v5", "gpt_description_prompt": "a night drive"
            })
        };
        let file = |c: usize, kind: &str, ext: &str| {
            json!({
                "path": format!("{key}/song/Song {n} take {c}.{ext}"), "sha256": "0".repeat(64),
                "bytes": 1000, "url": format!("https://cdn.example/{key}-c{c}.{ext}"),
                "row": key, "step": "song", "instance": key, "clip_id": format!("{key}-c{c}"),
                "kind": kind, "stem": null, "title": format!("Song {n} take {c}")
            })
        };
        let at = |s: u64| format!("2026-12-01T00:{:02}:{:02}.000Z", s / 60 % 60, s % 60);
        let t = n as u64 % 3000;
        let instance = |step: &str,
                        action: &str,
                        outputs: Value,
                        files: Value,
                        from: u64,
                        to: u64| {
            json!({
                "step": step, "instance": key, "row_key": key, "path": [], "action": action,
                "operation": if action == "create" { "generate_music" } else { "wav" },
                "status": "succeeded", "request_hash": null, "task_id": null, "request": null,
                "credits": { "planned": 15, "charged": 15, "refunded": 0, "in_doubt": 0 },
                "attempts": [{ "attempt": 1, "task_id": null, "error": null, "started_at": at(from),
                               "accepted_at": at(from), "finished_at": at(to) }],
                "outputs": outputs, "files": files, "queued_at": at(from), "started_at": at(from),
                "finished_at": at(to), "duration_ms": (to - from) * 1000,
                "skip_reason": null, "error": null
            })
        };
        steps.push(instance(
            "song",
            "create",
            json!({ "clips": [clip(0), clip(1)], "clip_id": format!("{key}-c0") }),
            json!([
                file(0, "audio", "mp3"),
                file(1, "audio", "mp3"),
                file(0, "image", "jpeg"),
                file(1, "image", "jpeg")
            ]),
            t,
            t + 30,
        ));
        steps.push(instance(
            "wav",
            "wav",
            json!({ "wav_url": format!("https://cdn.example/{key}-c0.wav") }),
            json!([]),
            t + 30,
            t + 32,
        ));
        matrix.push(
            json!({ "key": key, "values": { "idea": format!("idea {n}"), "tags": "synthwave" } }),
        );
    }
    json!({
        "schema_version": 1,
        "tool": { "name": "sonicflow", "version": "0.1.0" },
        "pipeline": { "name": "nightly", "file": "pipelines/nightly.yaml", "sha256": "a".repeat(64) },
        "price_table": { "name": "t", "date": "2026-10-07", "source": "test", "version": "t@2026-10-07#000000000000" },
        "started_at": "2026-12-01T00:00:00.000Z",
        "finished_at": "2026-12-01T01:00:00.000Z",
        "status": "succeeded", "stop_reason": null,
        "totals": { "instances": rows * 2, "succeeded": rows * 2, "failed": 0, "skipped": 0, "running": 0,
                    "waiting": 0, "credits_estimated": 0, "credits_planned": 0, "credits_charged": 0,
                    "credits_refunded": 0 },
        "service": { "base_url": "https://api.example", "sandbox": false },
        "inputs": { "mood": "calm" },
        "matrix": { "file": "nightly-prompts.csv", "sha256": "b".repeat(64), "rows": matrix },
        "wall_ms": 3_600_000,
        "steps": steps
    })
}

fn parse(value: Value) -> Results {
    serde_json::from_value(value).unwrap()
}

#[test]
fn a_report_of_a_thousand_rows_stays_small_and_collapsed() {
    let results = parse(synthetic(1000));
    let page = html::render(&results, "").unwrap();
    eprintln!("report of 1,000 rows: {} bytes", page.len());
    assert!(page.len() < 8_000_000, "{} bytes", page.len());
    assert_eq!(
        page.matches(r#"<details class="row">"#).count(),
        1000,
        "rows collapsed"
    );
    assert_eq!(
        page.matches(r#"<g class="task"#).count(),
        2000,
        "one bar per task"
    );
    assert_eq!(page.matches("<audio ").count(), 2000);
    // Downloaded files are played from the run folder, with their paths encoded.
    assert!(page.contains(r#"src="r0007/song/Song%207%20take%201.mp3""#));
    assert!(page.contains(r#"src="r0007/song/Song%207%20take%201.jpeg""#));
    assert!(
        !page.contains("cdn.example/r0007-c1.mp3"),
        "not the remote copy"
    );
    assert!(
        page.contains(r#"href="https://cdn.example/r0007-c0.wav""#),
        "remote when not downloaded"
    );
}

#[test]
fn hostile_service_text_is_escaped_and_hostile_urls_are_never_linked() {
    let mut value = synthetic(1);
    let song = &mut value["steps"][0];
    song["files"] = json!([]);
    song["outputs"]["clips"][0]["title"] = json!("<script>alert('title')</script>");
    song["outputs"]["clips"][0]["tags"] = json!("\"><img src=x onerror=alert(1)>");
    song["outputs"]["clips"][0]["lyrics"] = json!("</pre></details><script>alert(2)</script>");
    song["outputs"]["clips"][0]["audio_url"] = json!("javascript:alert(3)");
    song["outputs"]["clips"][0]["image_url"] = json!(" JavaScript:alert(4)");
    song["outputs"]["clips"][1]["audio_url"] = json!("data:text/html,<script>alert(5)</script>");
    song["outputs"]["clips"][1]["image_url"] = json!("file:///etc/passwd");
    let wav = &mut value["steps"][1];
    wav["outputs"]["wav_url"] = json!("vbscript:msgbox");
    wav["status"] = json!("failed");
    wav["error"] =
        json!({ "kind": "task_failed", "message": "<script>alert(6)</script>\nsecond line" });
    value["steps"][0]["row_key"] = json!("<b>row</b>");
    let page = html::render(&parse(value), "").unwrap();
    let lower = page.to_ascii_lowercase();
    assert!(!lower.contains("<script"), "no script element");
    assert!(!lower.contains("<img src=x"), "no injected element");
    for scheme in ["javascript:", "data:", "vbscript:"] {
        assert!(!lower.contains(scheme), "no `{scheme}` URL anywhere");
    }
    assert!(!lower.contains("\"file:"), "no file URL in an attribute");
    assert!(page.contains("&lt;script&gt;alert(&#39;title&#39;)&lt;/script&gt;"));
    assert!(page.contains("&lt;/pre&gt;&lt;/details&gt;&lt;script&gt;alert(2)"));
    assert!(page.contains("&lt;b&gt;row&lt;/b&gt;"));
    // The failure is there whole, with its fix.
    assert!(page.contains("&lt;script&gt;alert(6)&lt;/script&gt;\nsecond line"));
    assert!(page.contains("fix: the service&#39;s task failed and was refunded"));
    assert_eq!(page.matches("no audio yet").count(), 2);
}

#[test]
fn a_retried_task_shows_each_attempt_and_the_critical_path_is_outlined() {
    let mut value = synthetic(2);
    let song = &mut value["steps"][0];
    song["attempts"] = json!([
        { "attempt": 1, "task_id": null, "started_at": "2026-12-01T00:00:00.000Z",
          "accepted_at": "2026-12-01T00:00:01.000Z", "finished_at": "2026-12-01T00:00:10.000Z",
          "error": { "kind": "task_failed", "message": "model overloaded" } },
        { "attempt": 2, "task_id": null, "error": null, "started_at": "2026-12-01T00:00:12.000Z",
          "accepted_at": "2026-12-01T00:00:13.000Z", "finished_at": "2026-12-01T00:00:30.000Z" }
    ]);
    let page = html::render(&parse(value), "").unwrap();
    let bar = page
        .split(r#"data-instance="song[r0000]""#)
        .nth(1)
        .and_then(|rest| rest.split("</g>").next())
        .unwrap();
    let classes: Vec<&str> = bar
        .split(r#"<rect class=""#)
        .skip(1)
        .filter_map(|r| r.split('"').next())
        .collect();
    assert_eq!(
        classes,
        ["queued", "sent", "failed", "sent", "accepted", "retry"],
        "{bar}"
    );
    // The last to finish is r0001's wav, released by its song; nothing
    // had finished when that song was queued.
    assert!(
        page.contains("critical path: song[r0001] → wav[r0001]"),
        "{page}"
    );
    assert_eq!(page.matches(r#"<g class="task critical""#).count(), 2);
}
