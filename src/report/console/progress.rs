//! The live view on a terminal: one indicatif bar over the instances known
//! so far (fan-outs add to it as they become known), with the counts beside
//! it. Redraws are rate-limited by indicatif, so thousands of events per
//! second cost little. Lines worth keeping (retries, failures, stops) are
//! printed above the bar.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::tally::Tally;

/// Redraws per second at most.
const REDRAW_HZ: u8 = 8;

pub(crate) struct Progress {
    bar: ProgressBar,
}

impl Progress {
    pub(crate) fn new() -> Progress {
        let bar =
            ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(REDRAW_HZ));
        let style = ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} done  {msg}",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.enable_steady_tick(std::time::Duration::from_millis(250));
        Progress { bar }
    }

    pub(crate) fn update(&self, tally: &Tally) {
        self.bar.set_length(tally.created() as u64);
        self.bar.set_position(tally.done() as u64);
        self.bar.set_message(tally.message());
    }

    /// Prints `line` above the bar without tearing it.
    pub(crate) fn println(&self, line: &str) {
        self.bar.println(line);
    }

    pub(crate) fn clear(&self) {
        self.bar.finish_and_clear();
    }
}
