//! Writing to stdout and stderr without panicking when they are closed.
//!
//! `print!` and `eprint!` panic when a write fails, so `sonicflow plan … |
//! head -1` would end with a panic once `head` has read its line. Commands
//! write through `out!`, `outln!`, `err!` and `errln!` instead: a closed
//! pipe (broken pipe) is not an error, the rest of the output is dropped and
//! the command ends as it would have; any other failure to write stdout is
//! said once on stderr and makes a successful command exit 1, since what it
//! printed was lost. A run is never stopped by its output.

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_LOST: AtomicBool = AtomicBool::new(false);

/// `--color`: whether output may carry colour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    // On a terminal, unless `NO_COLOR` is set; also off a terminal when
    // `CLICOLOR_FORCE` is set (and not `0`). (Plain comments: a doc
    // comment here would become help that switches `--help` to its long
    // layout.)
    #[default]
    Auto,
    // Always, also in a file or a CI log.
    Always,
    Never,
}

/// The options every command takes: colour and how much to say.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settings {
    pub color: ColorChoice,
    /// `-q`: -1; nothing: 0; `-v`, `-vv`, …: 1, 2, …
    pub verbosity: i8,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Sets the options of this process; the first call wins.
pub fn configure(settings: Settings) {
    let _ = SETTINGS.set(settings);
}

fn settings() -> Settings {
    SETTINGS.get().copied().unwrap_or_default()
}

/// Sends `tracing` events to stderr through [`stderr`], so they land above
/// a run's live view: at `warn` and above by default, `info` with `-v`,
/// `debug` with `-vv`, everything with `-vvv`; none with `-q`; `RUST_LOG`
/// (`sonicflow=debug`, …) chooses exactly when set.
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let level = match settings().verbosity {
        ..0 => "error",
        0 => "warn",
        1 => "sonicflow=info,warn",
        2 => "sonicflow=debug,info",
        _ => "trace",
    };
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::try_new(spec).unwrap_or_else(|e| {
            stderr(format_args!(
                "warning: `RUST_LOG` is not a filter sonicflow understands ({e}); using `{level}`\n"
            ));
            EnvFilter::new(level)
        }),
        _ => EnvFilter::new(level),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(color(Stream::Stderr))
        .with_writer(|| TracingWriter)
        .try_init();
}

/// A `tracing` writer into [`stderr`].
struct TracingWriter;

impl Write for TracingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        stderr(format_args!("{}", String::from_utf8_lossy(buf)));
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Which of the two streams a text is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Whether text for `stream` may be coloured: `--color always|never`
/// decides; with `auto`, a non-empty `NO_COLOR` turns colour off, a
/// `CLICOLOR_FORCE` other than `0` turns it on off a terminal, and
/// otherwise colour is used on a terminal only.
pub fn color(stream: Stream) -> bool {
    let terminal = match stream {
        Stream::Stdout => io::stdout().is_terminal(),
        Stream::Stderr => io::stderr().is_terminal(),
    };
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    color_from(
        settings().color,
        env("NO_COLOR").is_some(),
        env("CLICOLOR_FORCE").is_some_and(|v| v != "0"),
        terminal,
    )
}

/// The rule of [`color`], apart from where its facts come from.
pub fn color_from(choice: ColorChoice, no_color: bool, force: bool, terminal: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto if no_color => false,
        ColorChoice::Auto => force || terminal,
    }
}

/// `-q`: only errors, warnings and the result itself are printed.
pub fn quiet() -> bool {
    settings().verbosity < 0
}

/// How many `-v` were given (0 without, or with `-q`).
pub fn verbosity() -> u8 {
    settings().verbosity.max(0).unsigned_abs()
}

/// Writes to stdout; see the module documentation for failures.
pub fn stdout(args: fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| out.flush());
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            if !STDOUT_LOST.swap(true, Ordering::Relaxed) {
                stderr(format_args!("error: cannot write to stdout: {e}\n"));
            }
        }
    }
}

/// Writes to stderr, ignoring failures: there is nowhere left to report them.
/// A run's live view is erased first, so no line lands inside it; the view
/// draws itself again below the line.
pub fn stderr(args: fmt::Arguments<'_>) {
    crate::report::erase_live_view();
    let mut err = io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.flush());
}

/// Whether something meant for stdout could not be written (a closed pipe aside).
pub fn stdout_lost() -> bool {
    STDOUT_LOST.load(Ordering::Relaxed)
}

/// `print!` that does not panic on a closed stdout.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::stdout(format_args!($($arg)*)) };
}

/// `println!` that does not panic on a closed stdout.
#[macro_export]
macro_rules! outln {
    () => { $crate::output::stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprint!` that does not panic on a closed stderr.
#[macro_export]
macro_rules! err {
    ($($arg:tt)*) => { $crate::output::stderr(format_args!($($arg)*)) };
}

/// `eprintln!` that does not panic on a closed stderr.
#[macro_export]
macro_rules! errln {
    () => { $crate::output::stderr(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::stderr(format_args!("{}\n", format_args!($($arg)*))) };
}

#[cfg(test)]
mod tests {
    use super::{ColorChoice, color_from};

    #[test]
    fn colour_follows_the_flag_then_no_color_then_clicolor_force_then_the_terminal() {
        // (choice, NO_COLOR, CLICOLOR_FORCE, terminal) → colour
        let table = [
            (ColorChoice::Always, true, false, false, true),
            (ColorChoice::Never, false, true, true, false),
            (ColorChoice::Auto, true, true, true, false),
            (ColorChoice::Auto, false, true, false, true),
            (ColorChoice::Auto, false, false, true, true),
            (ColorChoice::Auto, false, false, false, false),
        ];
        for (choice, no_color, force, terminal, want) in table {
            assert_eq!(
                color_from(choice, no_color, force, terminal),
                want,
                "{choice:?} NO_COLOR={no_color} CLICOLOR_FORCE={force} terminal={terminal}"
            );
        }
    }

    /// Every line the program prints goes through this module: one
    /// `println!` or `eprintln!` elsewhere would bring back the panic on a
    /// closed pipe.
    #[test]
    fn nothing_in_src_prints_past_these_macros() {
        fn visit(dir: &std::path::Path, found: &mut Vec<String>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                panic!("cannot read {}", dir.display());
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    visit(&path, found);
                } else if path.extension().is_some_and(|e| e == "rs")
                    && !path.ends_with("output.rs")
                {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    for (n, line) in text.lines().enumerate() {
                        let code = line.split("//").next().unwrap_or_default();
                        if code.contains("println!(") || code.contains("print!(") {
                            found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                        }
                    }
                }
            }
        }
        let mut found = Vec::new();
        visit(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut found,
        );
        assert!(
            found.is_empty(),
            "use `out!`/`outln!`/`err!`/`errln!`:\n{}",
            found.join("\n")
        );
    }
}
