//! The live view on a real terminal: `sonicflow run --sandbox` in a
//! pseudo-terminal of a fixed size, its output fed to a terminal emulator,
//! and the screen a person would be left with checked. Once interrupted
//! with Ctrl-C mid-run, and once run to its end.
//!
//! Every wait has a deadline, and the child is killed on every path out.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod common;

use std::io::{Read, Write};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use portable_pty::{Child, CommandBuilder, MasterPty, PtySize, native_pty_system};

const ROWS: u16 = 32;
const COLS: u16 = 100;

/// How long any one wait may take before the test gives up.
const DEADLINE: Duration = Duration::from_secs(60);

/// Four songs, one per row: long enough at time scale 20 that Ctrl-C
/// lands while some are still out.
const SONGS: &str = "version: 1\nname: live\ndefaults: { mv: sonic-v5 }\nmatrix:\n  key: mood\n  rows:\n    - { mood: calm }\n    - { mood: bright }\n    - { mood: dark }\n    - { mood: warm }\nsteps:\n  song:\n    action: create\n    with: { custom_mode: false, gpt_description_prompt: 'a ${{ matrix.mood }} song' }\n";

/// `sonicflow` in a pseudo-terminal, read into a terminal emulator.
struct Terminal {
    child: Box<dyn Child + Send + Sync>,
    // Kept open: closing the master hangs the terminal up.
    _master: Box<dyn MasterPty + Send>,
    input: Box<dyn Write + Send>,
    output: Receiver<Vec<u8>>,
    screen: vt100::Parser,
    /// Everything the program wrote, for failure messages.
    raw: Vec<u8>,
}

impl Terminal {
    fn start(args: &[&str]) -> Terminal {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: ROWS,
                cols: COLS,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("a pseudo-terminal opens");
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_sonicflow"));
        cmd.args(args);
        cmd.cwd(env!("CARGO_MANIFEST_DIR"));
        cmd.env("TERM", "xterm");
        cmd.env("NO_COLOR", "1");
        cmd.env("SONICFLOW_TODAY", "2026-12-01");
        cmd.env_remove("MUSICAPI_KEY");
        cmd.env_remove("MUSICAPI_BASE_URL");
        let child = pair.slave.spawn_command(cmd).expect("sonicflow starts");
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().expect("the terminal reads");
        let input = pair.master.take_writer().expect("the terminal writes");
        let (tx, output) = channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Terminal {
            child,
            _master: pair.master,
            input,
            output,
            screen: vt100::Parser::new(
                std::num::NonZero::new(ROWS).unwrap(),
                std::num::NonZero::new(COLS).unwrap(),
                0,
            ),
            raw: Vec::new(),
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.screen.process(bytes);
        self.raw.extend_from_slice(bytes);
    }

    fn contents(&self) -> String {
        self.screen.screen().contents()
    }

    /// Reads until the screen shows what `seen` looks for; false at the deadline.
    fn wait_for(&mut self, seen: impl Fn(&str) -> bool) -> bool {
        let until = Instant::now() + DEADLINE;
        while !seen(&self.contents()) {
            let left = until.saturating_duration_since(Instant::now());
            match self
                .output
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(bytes) => self.feed(&bytes),
                Err(RecvTimeoutError::Timeout) if Instant::now() < until => {}
                Err(_) => return seen(&self.contents()),
            }
        }
        true
    }

    /// Reads until the program exits and its output has been read; its exit code.
    fn wait_exit(&mut self) -> Option<u32> {
        let until = Instant::now() + DEADLINE;
        let mut code = None;
        while Instant::now() < until {
            if code.is_none() {
                code = self.child.try_wait().ok().flatten().map(|s| s.exit_code());
            }
            match self.output.recv_timeout(Duration::from_millis(100)) {
                Ok(bytes) => self.feed(&bytes),
                // Nothing more to read once it has exited: the screen is final.
                Err(RecvTimeoutError::Timeout) if code.is_some() => break,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    if code.is_some() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        code
    }

    fn press_ctrl_c(&mut self) {
        self.input.write_all(&[0x03]).unwrap();
        self.input.flush().unwrap();
    }

    fn report(&self) -> String {
        format!(
            "screen:\n{}\n--- raw output:\n{}",
            self.contents(),
            String::from_utf8_lossy(&self.raw).escape_debug()
        )
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What only the live view draws: its header and its task lines
/// (`  song[calm]  polling   3s`), not the event lines printed above it.
fn live_lines(screen: &str) -> Vec<&str> {
    let states = ["sending", "polling", "retrying"];
    screen
        .lines()
        .filter(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let task_line = l.starts_with("  ")
                && words.len() == 3
                && states.contains(&words[1])
                && words[2].ends_with('s');
            task_line
                || l.contains(" elapsed · ")
                || l.contains(" running · ")
                || l.starts_with("  … and ")
        })
        .collect()
}

/// The summary's parts, each on the screen whole.
fn assert_summary_whole(screen: &str, status: &str, report: &str) {
    let at = screen
        .find("\nstep ")
        .unwrap_or_else(|| panic!("no summary table\n{report}"));
    let summary = &screen[at..];
    for part in [
        "succeeded  failed  skipped  reused  charged  refunded",
        "\nsong ",
        "\ntotal ",
        "\nwall time: ",
        "\ncredits: ",
        &format!("\nstatus: {status}\n"),
        "\nresults: ",
    ] {
        assert!(
            summary.contains(part),
            "the summary lacks {part:?}\n{report}"
        );
    }
}

#[test]
fn ctrl_c_mid_run_leaves_the_summary_whole_and_no_live_lines() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("songs.yaml");
    std::fs::write(&manifest, SONGS).unwrap();
    let out = dir.path().join("run");
    let mut term = Terminal::start(&[
        "run",
        manifest.to_str().unwrap(),
        "--sandbox",
        "--time-scale",
        "20",
        "--out",
        out.to_str().unwrap(),
    ]);
    let polled = term.wait_for(|s| s.matches(" polling ").count() >= 2);
    assert!(
        polled,
        "the live view never showed two tasks polled\n{}",
        term.report()
    );
    assert!(
        term.contents().contains(" elapsed · ") && term.contents().contains(" credits spent · "),
        "the header shows elapsed time and credits\n{}",
        term.report()
    );
    term.press_ctrl_c();
    let code = term.wait_exit();
    let screen = term.contents();
    let report = term.report();
    assert_eq!(code, Some(130), "an interrupted run exits 130\n{report}");
    assert_eq!(
        live_lines(&screen),
        Vec::<&str>::new(),
        "stale live lines\n{report}"
    );
    assert_eq!(
        screen.matches("interrupted").count(),
        1,
        "`interrupted` is said once\n{report}"
    );
    assert!(
        screen.contains("Ctrl-C: no new submits; waiting for what is in flight"),
        "Ctrl-C is answered\n{report}"
    );
    assert_summary_whole(&screen, "interrupted", &report);
    let resume = format!("resume with: sonicflow run --resume {}", out.display());
    assert!(
        screen.contains(&resume),
        "the resume hint follows\n{report}"
    );
    assert!(
        screen.find("\nstatus: ") < screen.find("resume with:"),
        "the hint comes after the summary\n{report}"
    );
}

#[test]
fn a_finished_run_leaves_only_its_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut term = Terminal::start(&[
        "run",
        "pipelines/cover-and-stems.yaml",
        "--sandbox",
        "--out",
        out.to_str().unwrap(),
    ]);
    let code = term.wait_exit();
    let screen = term.contents();
    let report = term.report();
    assert_eq!(code, Some(0), "the run succeeds\n{report}");
    assert_eq!(
        live_lines(&screen),
        Vec::<&str>::new(),
        "stale live lines\n{report}"
    );
    let at = screen
        .find("\nstep ")
        .unwrap_or_else(|| panic!("no summary\n{report}"));
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(&common::regex_escape(&out.display().to_string()), "[RUN]");
    settings.add_filter(r"wall time: \S+", "wall time: [WALL]");
    settings.bind(|| {
        insta::assert_snapshot!("finished-screen", screen[at..].trim_end());
    });
}
