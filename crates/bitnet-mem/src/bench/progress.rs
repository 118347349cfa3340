//! A progress bar on stderr for long runs: it shows itself only once a run has taken
//! over [`SHOW_AFTER`] (two seconds), only where stderr is a terminal, and never when the
//! command was asked to be quiet (`--quiet`) or to write JSON (`--json`).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::cell::Cell;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How long a run goes before its bar shows: shorter runs print nothing but their result.
pub const SHOW_AFTER: Duration = Duration::from_secs(2);

/// Whether a bar wanted at all (`enabled`) shows after `elapsed`.
pub fn wants_bar(enabled: bool, elapsed: Duration) -> bool {
    enabled && elapsed > SHOW_AFTER
}

/// Whether a command draws a bar: not when told `quiet` or writing `json`, and only to
/// a terminal.
pub fn bar_enabled(quiet: bool, json: bool) -> bool {
    !quiet && !json && std::io::stderr().is_terminal()
}

/// Counts steps; draws on stderr once [`wants_bar`] says so.
pub struct Progress {
    bar: ProgressBar,
    start: Instant,
    shown: Cell<bool>,
    enabled: bool,
}

impl Progress {
    /// A bar of `total` steps, hidden for now; drawn later if stderr is a terminal.
    pub fn new(total: u64) -> Self {
        Self::with(total, bar_enabled(false, false))
    }

    /// A bar of `total` steps that draws only if `enabled` (see [`bar_enabled`]).
    pub fn with(total: u64, enabled: bool) -> Self {
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
            enabled,
        }
    }

    /// Starts a step named `msg`.
    pub fn step(&self, msg: &str) {
        if !self.shown.get() && wants_bar(self.enabled, self.start.elapsed()) {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
            self.shown.set(true);
        }
        self.bar.set_message(msg.to_string());
        self.bar.inc(1);
    }

    /// Whether the bar has been drawn.
    pub fn shown(&self) -> bool {
        self.shown.get()
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_shows_only_on_runs_over_two_seconds_and_only_when_enabled() {
        assert!(!wants_bar(true, Duration::from_millis(1999)));
        assert!(!wants_bar(true, SHOW_AFTER));
        assert!(wants_bar(true, Duration::from_millis(2001)));
        assert!(!wants_bar(false, Duration::from_secs(60)));
        assert!(!bar_enabled(true, false), "--quiet");
        assert!(!bar_enabled(false, true), "--json");
        // Test harnesses capture stderr: not a terminal, so no bar even unasked.
        if !std::io::stderr().is_terminal() {
            assert!(!bar_enabled(false, false));
        }
        let p = Progress::with(3, false);
        p.step("a");
        assert!(!p.shown());
        p.finish();
    }
}
