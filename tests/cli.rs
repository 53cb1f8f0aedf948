//! The command line as a whole, through the binary: help grouped by topic
//! and in step with the README, one `--format` everywhere, completions and
//! the manual page, `--color`, `-q` / `-v`, a manifest on stdin, folders
//! for `validate`, and the sandbox knobs of `run` and `credits`.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, as assertions do"
)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{render, run, sonicflow};

fn output(args: &[&str]) -> Output {
    sonicflow().args(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `sonicflow args…` with `input` on its stdin.
fn with_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = sonicflow()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// `cmd GLOBAL… run pipelines/cover-and-stems.yaml --sandbox EXTRA… --state STATE`.
fn sandbox_run(mut cmd: Command, global: &[&str], extra: &[&str], state: &Path) -> Output {
    cmd.args(global)
        .args(["run", "pipelines/cover-and-stems.yaml", "--sandbox"])
        .args(extra)
        .arg("--state")
        .arg(state)
        .output()
        .unwrap()
}

/// The names of the commands the top-level `--help` lists.
fn commands_in_help() -> Vec<String> {
    let help = stdout(&output(&["--help"]));
    let mut names = Vec::new();
    let mut in_topic = false;
    for line in help.lines() {
        if line.ends_with(':') && !line.starts_with(' ') {
            in_topic = line != "Options:" && line != "Examples:" && line != "Exit codes:";
            continue;
        }
        if in_topic
            && let Some(rest) = line.strip_prefix("  ")
            && !rest.starts_with(' ')
            && let Some(name) = rest.split_whitespace().next()
        {
            names.push(name.to_owned());
        }
    }
    names
}

#[test]
fn the_top_level_help_lists_the_commands_by_topic_with_examples_and_exit_codes() {
    insta::assert_snapshot!("help", run(&["--help"]));
}

#[test]
fn every_command_in_the_help_is_in_the_readmes_command_list() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Commands"))
        .unwrap();
    let names = commands_in_help();
    assert!(names.len() >= 18, "{names:?}");
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| *n != "help" && !section.contains(&format!("| `sonicflow {n}")))
        .collect();
    assert!(
        missing.is_empty(),
        "not in the README's command list: {missing:?}"
    );
    // And nothing in that list that the binary does not have.
    for line in section.lines().filter(|l| l.starts_with("| `sonicflow ")) {
        let name = line["| `sonicflow ".len()..]
            .split([' ', '`'])
            .next()
            .unwrap();
        assert!(names.iter().any(|n| n == name), "README lists `{name}`");
    }
}

#[test]
fn run_help_groups_its_flags_by_topic_with_examples() {
    let help = stdout(&output(&["run", "--help"]));
    let headings: Vec<&str> = help
        .lines()
        .filter(|l| l.ends_with(':') && !l.starts_with(' '))
        .collect();
    assert_eq!(
        headings,
        [
            "Arguments:",
            "Options:",
            "Pipeline:",
            "Where it runs:",
            "Pace:",
            "Budget:",
            "State and reuse:",
            "Results and files:",
            "Global options:",
            "Examples:",
        ],
        "{help}"
    );
    assert!(help.contains("\nExit codes: 0 succeeded;"), "{help}");
    // The short layout: one line per flag, not a paragraph each.
    assert!(
        help.contains("      --sandbox                Run against"),
        "{help}"
    );
}

#[test]
fn completions_cover_every_shell_and_know_the_commands_and_flags() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = output(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        for word in ["validate", "completions", "sandbox-balance", "--format"] {
            assert!(script.contains(word), "{shell} lacks {word}");
        }
    }
    insta::assert_snapshot!("completions-unknown-shell", run(&["completions", "tcsh"]));
}

#[test]
fn the_manual_page_is_roff_and_one_page_per_command_can_be_written() {
    let out = output(&["man"]);
    assert!(out.status.success());
    let page = stdout(&out);
    assert!(page.contains(".TH sonicflow 1"), "{page}");
    for name in commands_in_help().iter().filter(|n| *n != "help") {
        assert!(page.contains(name.as_str()), "the page lacks `{name}`");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = sonicflow()
        .args(["man", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut pages: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    assert!(pages.contains(&"sonicflow.1".to_owned()), "{pages:?}");
    assert!(pages.contains(&"sonicflow-run.1".to_owned()), "{pages:?}");
    // Every command but `help` has its page, and the top page.
    assert_eq!(pages.len(), commands_in_help().len(), "{pages:?}");
    let run_page = std::fs::read_to_string(dir.path().join("sonicflow-run.1")).unwrap();
    assert!(run_page.contains("sandbox\\-balance"), "{run_page}");
}

/// `validate` of a broken manifest, with this colour flag and environment.
fn problems_coloured(flag: Option<&str>, env: &[(&str, &str)]) -> bool {
    let mut cmd = sonicflow();
    cmd.env_remove("NO_COLOR").env_remove("CLICOLOR_FORCE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(flag) = flag {
        cmd.arg(flag);
    }
    let out = cmd
        .args(["validate", "tests/fixtures/invalid/unknown-action.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    stderr(&out).contains('\u{1b}')
}

#[test]
fn colour_follows_the_flag_then_no_color_then_clicolor_force() {
    // Not a terminal: no colour unless asked for.
    assert!(!problems_coloured(None, &[]));
    assert!(problems_coloured(Some("--color=always"), &[]));
    assert!(problems_coloured(
        Some("--color=always"),
        &[("NO_COLOR", "1")]
    ));
    assert!(!problems_coloured(
        Some("--color=never"),
        &[("CLICOLOR_FORCE", "1")]
    ));
    assert!(problems_coloured(None, &[("CLICOLOR_FORCE", "1")]));
    assert!(!problems_coloured(None, &[("CLICOLOR_FORCE", "0")]));
    assert!(!problems_coloured(
        None,
        &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]
    ));
}

#[test]
fn quiet_prints_only_the_result_and_verbose_logs_each_request_without_the_key() {
    let out = output(&["-q", "validate", "pipelines/cover-and-stems.yaml"]);
    assert_eq!(
        (out.status.code(), stdout(&out), stderr(&out)),
        (Some(0), String::new(), String::new())
    );

    let dir = tempfile::tempdir().unwrap();
    let out = sandbox_run(sonicflow(), &["-q"], &[], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "",
        "a quiet run that succeeds says nothing on stderr"
    );
    assert!(
        stdout(&out).trim_end().ends_with("results.json"),
        "{}",
        stdout(&out)
    );

    let out = sandbox_run(sonicflow(), &["-v"], &[], dir.path());
    assert_eq!(out.status.code(), Some(0));
    let log = stderr(&out);
    assert!(log.contains("POST /api/v1/sonic/upload → 200 in "), "{log}");
    assert!(log.contains("`upload` is sent"), "{log}");
    assert!(
        !log.contains("sandbox-key"),
        "the key is never logged: {log}"
    );

    // RUST_LOG chooses exactly what is logged, over `-v`.
    let out = {
        let mut cmd = sonicflow();
        cmd.env("RUST_LOG", "sonicflow=off");
        sandbox_run(cmd, &["-v"], &[], dir.path())
    };
    assert_eq!(out.status.code(), Some(0));
    assert!(!stderr(&out).contains(" INFO "), "{}", stderr(&out));
}

#[test]
fn a_manifest_on_stdin_is_validated_planned_and_run() {
    let manifest = std::fs::read("pipelines/cover-and-stems.yaml").unwrap();
    let out = with_stdin(&["validate", "-"], &manifest);
    insta::assert_snapshot!("stdin-validate", render(&["validate", "-"], &out));
    let out = with_stdin(&["plan", "-", "--json"], &manifest);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["file"], "<stdin>", "{plan}");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    let out = with_stdin(&["run", "-", "--sandbox", "--state", state], &manifest);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(stdout(&out).trim()).unwrap()).unwrap();
    assert_eq!(results["status"], "succeeded");

    let out = with_stdin(&["validate", "-"], b"");
    insta::assert_snapshot!("stdin-empty", render(&["validate", "-"], &out));
}

#[test]
fn validate_of_a_folder_checks_the_manifests_in_it() {
    insta::assert_snapshot!("validate-folder", run(&["validate", "pipelines"]));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(
        &common::regex_escape(&dir.path().display().to_string()),
        "[DIR]",
    );
    let _guard = settings.bind_to_scope();
    let path = dir.path().display().to_string();
    insta::assert_snapshot!("validate-empty-folder", run(&["validate", &path]));
    // `plan` takes one manifest: a folder is named as such, with the fix.
    insta::assert_snapshot!("plan-folder", run(&["plan", &path]));
}

#[test]
fn every_command_takes_one_format_flag_with_json_as_its_alias() {
    let file = "pipelines/cover-and-stems.yaml";
    let long = output(&["plan", file, "--format", "json"]);
    let short = output(&["plan", file, "--json"]);
    assert_eq!(long.status.code(), Some(0));
    assert_eq!(stdout(&long), stdout(&short));
    let doc: serde_json::Value = serde_json::from_slice(&long.stdout).unwrap();
    assert!(doc["total_credits"].is_u64(), "{doc}");

    insta::assert_snapshot!("prices-json", run(&["prices", "--json"]));
    let out = output(&["prices", "--json"]);
    let table: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(table["prices"]["create_music"].is_u64(), "{table}");
    assert_eq!(
        table["date"],
        stdout(&output(&["prices", "--format", "json"]))
            .parse::<serde_json::Value>()
            .unwrap()["date"]
    );

    // A format a command does not print in is refused, naming those it does.
    insta::assert_snapshot!(
        "status-format-markdown",
        run(&["status", file, "--format", "markdown"])
    );
    insta::assert_snapshot!(
        "validate-format-markdown",
        run(&["validate", file, "--format", "markdown"])
    );
    insta::assert_snapshot!(
        "format-and-json",
        run(&["plan", file, "--format", "human", "--json"])
    );
}

fn credits_filters() -> insta::internals::SettingsBindDropGuard {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"http://127\.0\.0\.1:\d+", "[BASE_URL]");
    settings.bind_to_scope()
}

#[test]
fn credits_asks_a_sandbox_of_its_own_and_prints_json() {
    let _guard = credits_filters();
    insta::assert_snapshot!(
        "credits-sandbox-json",
        run(&[
            "credits",
            "--sandbox",
            "--sandbox-balance",
            "5000",
            "--json"
        ])
    );
    insta::assert_snapshot!("credits-sandbox", run(&["credits", "--sandbox"]));
    insta::assert_snapshot!(
        "credits-balance-without-sandbox",
        run(&["credits", "--sandbox-balance", "5"])
    );
}

#[test]
fn credits_for_a_host_that_does_not_answer_names_the_address_not_the_key() {
    let _guard = credits_filters();
    let out = sonicflow()
        .env("MUSICAPI_KEY", "a-key")
        .env("SONICFLOW_TIME_SCALE", "1000")
        .args(["credits", "--api-base", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    let text = render(&["credits", "--api-base", "http://127.0.0.1:9"], &out);
    let mut settings = insta::Settings::clone_current();
    // The operating system's words for a refused connection vary.
    settings.add_filter(
        r"cannot reach `\[BASE_URL\]`: .*",
        "cannot reach `[BASE_URL]`: [WHY]",
    );
    settings.add_filter(r"http://127\.0\.0\.1:\d+", "[BASE_URL]");
    settings.bind(|| insta::assert_snapshot!("credits-unreachable", text));
}

#[test]
fn a_sandbox_run_takes_its_balance_faults_and_seed_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    let file = "pipelines/cover-and-stems.yaml";
    // The default sandbox balance covers this pipeline; 10 credits do not.
    let out = run(&[
        "run",
        file,
        "--sandbox",
        "--sandbox-balance",
        "10",
        "--state",
        state,
    ]);
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(&common::regex_escape(state), "[STATE]");
    let _guard = settings.bind_to_scope();
    insta::assert_snapshot!("run-sandbox-balance-short", out);
    insta::assert_snapshot!(
        "run-sandbox-balance-without-sandbox",
        run(&["run", file, "--sandbox-balance", "10"])
    );

    let faults = dir.path().join("faults.yaml");
    std::fs::write(&faults, "http_500: 2\n").unwrap();
    let faults = faults.to_str().unwrap();
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(&common::regex_escape(faults), "[FAULTS]");
    let _guard = settings.bind_to_scope();
    insta::assert_snapshot!(
        "run-sandbox-bad-faults",
        run(&[
            "run",
            file,
            "--sandbox",
            "--sandbox-faults",
            faults,
            "--state",
            state
        ])
    );

    // Three requests in ten answer 500: the run retries them and succeeds.
    let faults_path = dir.path().join("flaky.yaml");
    std::fs::write(&faults_path, "http_500: 0.3\n").unwrap();
    let out = sonicflow()
        .args([
            "run",
            file,
            "--sandbox",
            "--sandbox-seed",
            "7",
            "--sandbox-faults",
        ])
        .arg(&faults_path)
        .args(["--state", state, "--log-format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("\"event\":\"retrying\""),
        "{}",
        stderr(&out)
    );
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(stdout(&out).trim()).unwrap()).unwrap();
    assert_eq!(results["status"], "succeeded");
}

#[test]
fn run_markdown_format_prints_the_summary_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let out = sandbox_run(sonicflow(), &[], &["--format", "markdown"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("### "), "{text}");
    assert!(text.contains("succeeded"), "{text}");
}

/// One pipeline of one song and its tempo (1 credit), in `dir`.
fn one_credit_pipeline(dir: &std::path::Path) -> String {
    let path = dir.join("tempo.yaml");
    std::fs::write(
        &path,
        "version: 1\nname: tempo\nsteps:\n  song:\n    action: create\n    with: { mv: sonic-v5, custom_mode: false, gpt_description_prompt: a calm piano piece }\n  tempo:\n    action: bpm\n    with: { clip: \"${{ steps.song.outputs.clip_id }}\" }\n",
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn counts_agree_with_their_word_in_plans_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let file = one_credit_pipeline(dir.path());
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(
        &common::regex_escape(&dir.path().display().to_string()),
        "[DIR]",
    );
    settings.add_filter(r"http://127\.0\.0\.1:\d+", "[BASE_URL]");
    settings.add_filter(r"tempo-\d{8}T\d{9}Z", "tempo-[TIME]");
    let _guard = settings.bind_to_scope();
    // Only the tempo is left to pay once the song is known: `1 credit`.
    let sandbox =
        common::SandboxProcess::start(&["--time-scale", "1000", "--submit-interval", "0"]);
    let out = sandbox.run("k", &[&file, "--select", "song", "--time-scale", "1000"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan = sonicflow()
        .env("MUSICAPI_BASE_URL", &sandbox.url)
        .args(["plan", &file])
        .output()
        .unwrap();
    let text = stdout(&plan);
    assert!(text.contains("to spend: 1 credit ("), "{text}");
    let out = sandbox.run("k", &[&file, "--time-scale", "1000"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = stderr(&out);
    let line = log
        .lines()
        .find(|l| l.contains("taken from earlier work"))
        .unwrap_or_default();
    insta::assert_snapshot!("reuse-count", line);
}

#[test]
fn the_readme_stands_on_its_own() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    for outside in ["DESIGN", "§", "../shared", "musicapi-sonic.md", "STYLE.md"] {
        assert!(!readme.contains(outside), "the README cites `{outside}`");
    }
}

#[test]
fn status_json_is_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // Which submits share a balance window depends on timing: not read here.
    let out = sandbox_run(sonicflow(), &[], &["--no-observe-charges"], &state);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let results = stdout(&out);
    let run_dir = std::path::Path::new(results.trim()).parent().unwrap();
    let out = sonicflow()
        .args(["status", "--json"])
        .arg(run_dir)
        .output()
        .unwrap();
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(
        &common::regex_escape(&dir.path().display().to_string()),
        "[DIR]",
    );
    settings.add_filter(&common::regex_escape(env!("CARGO_MANIFEST_DIR")), "[CRATE]");
    settings.add_filter(r"\d{8}T\d{9}Z", "[TIME]");
    settings.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[TIMESTAMP]");
    let _guard = settings.bind_to_scope();
    insta::assert_snapshot!(
        "status-json",
        render(&["status", "--json", "RUN_DIR"], &out)
    );
}
