//! The live area at the bottom of the terminal: the lines the live view
//! drew last, so they can be erased before anything else is printed.
//!
//! There is one terminal, so there is one area, shared by the process:
//! whatever else writes to stderr (`errln!`, a second Ctrl-C) erases it
//! first through [`erase`], and the live view draws it again on its next
//! redraw. Once [`close`]d, nothing draws it again.

use std::io::{IsTerminal, Write};
use std::sync::{Mutex, OnceLock};

struct Area {
    /// Lines drawn by the last frame; the cursor stands below the last.
    lines: usize,
    closed: bool,
}

static AREA: Mutex<Area> = Mutex::new(Area {
    lines: 0,
    closed: false,
});

/// The terminal's rows and columns (24 × 80 when stderr is no terminal).
pub(crate) fn size() -> (usize, usize) {
    let (rows, cols) = console::Term::stderr().size();
    (usize::from(rows.max(3)), usize::from(cols.max(20)))
}

/// Whether stderr is a terminal: where it is not, nothing is drawn.
pub(crate) fn on_terminal() -> bool {
    static TERMINAL: OnceLock<bool> = OnceLock::new();
    *TERMINAL.get_or_init(|| std::io::stderr().is_terminal())
}

/// Replaces the live area with `frame`, each line shorter than the
/// terminal is wide.
pub(crate) fn draw(frame: &[String]) {
    let Ok(mut area) = AREA.lock() else {
        return;
    };
    if area.closed || !on_terminal() {
        return;
    }
    let mut text = erasing(area.lines);
    for line in frame {
        text.push_str(line);
        text.push('\n');
    }
    area.lines = frame.len();
    write(&text);
}

/// Prints `line` above the live area, which is redrawn on the next frame.
pub(crate) fn print_above(line: &str) {
    let Ok(mut area) = AREA.lock() else {
        return;
    };
    if !on_terminal() {
        return;
    }
    let text = format!("{}{line}\n", erasing(area.lines));
    area.lines = 0;
    write(&text);
}

/// Erases the live area, if one is drawn; the next frame draws it again.
pub fn erase() {
    // Called for every line the program writes to stderr: a run without a
    // live view pays one uncontended lock.
    let Ok(mut area) = AREA.lock() else {
        return;
    };
    if area.lines > 0 {
        let text = erasing(area.lines);
        area.lines = 0;
        write(&text);
    }
}

/// Erases the live area for good: the run's view is over.
pub fn close() {
    let Ok(mut area) = AREA.lock() else {
        return;
    };
    let text = erasing(area.lines);
    area.lines = 0;
    area.closed = true;
    if !text.is_empty() {
        write(&text);
    }
}

/// Back to the first column, up `lines` lines, and clear to the end of
/// the screen (what the terminal echoed below the area, `^C`, included).
fn erasing(lines: usize) -> String {
    match lines {
        0 => String::new(),
        n => format!("\r\x1b[{n}A\x1b[J"),
    }
}

fn write(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
}

#[cfg(test)]
mod tests {
    use super::erasing;

    #[test]
    fn erasing_goes_up_as_many_lines_as_were_drawn() {
        assert_eq!(erasing(0), "");
        assert_eq!(erasing(3), "\r\x1b[3A\x1b[J");
    }
}
