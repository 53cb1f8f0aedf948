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
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_LOST: AtomicBool = AtomicBool::new(false);

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
