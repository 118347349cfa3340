//! A progress bar on stderr that shows itself only once a run has taken over a second.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::cell::Cell;
use std::time::{Duration, Instant};

/// Counts steps; draws on stderr after the first second.
pub struct Progress {
    bar: ProgressBar,
    start: Instant,
    shown: Cell<bool>,
}

impl Progress {
    /// A bar of `total` steps, hidden for now.
    pub fn new(total: u64) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        Self {
            bar,
            start: Instant::now(),
            shown: Cell::new(false),
        }
    }

    /// Starts a step named `msg`.
    pub fn step(&self, msg: &str) {
        if !self.shown.get() && self.start.elapsed() > Duration::from_secs(1) {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
            self.shown.set(true);
        }
        self.bar.set_message(msg.to_string());
        self.bar.inc(1);
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
