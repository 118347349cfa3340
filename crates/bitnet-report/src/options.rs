//! How a report is built.

use bitnet_memory::MemoryConfig;

/// Options of report building. `Default` gives what `bitnet-mem report` uses.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    /// Page title; `None`: the input's file name, or "memory report".
    pub title: Option<String>,
    /// Time buckets of the drawn timeline. Each bucket keeps at most ten real states
    /// (first, last, and the extremes of each figure), so peaks survive. Default: 2048,
    /// about two per pixel of a wide screen.
    pub max_buckets: usize,
    /// Replay a trace through a memory manager to measure reserved and free bytes;
    /// `None` (the default) reads live bytes only. Ignored for snapshots.
    pub replay: Option<ReplayOptions>,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            title: None,
            max_buckets: 2048,
            replay: None,
        }
    }
}

impl ReportOptions {
    /// Sets [`title`](Self::title).
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }
    /// Sets [`max_buckets`](Self::max_buckets).
    pub fn max_buckets(mut self, buckets: usize) -> Self {
        self.max_buckets = buckets;
        self
    }
    /// Sets [`replay`](Self::replay).
    pub fn replay(mut self, replay: ReplayOptions) -> Self {
        self.replay = Some(replay);
        self
    }
}

/// Replay of a trace through a `bitnet_memory::MemoryManager`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReplayOptions {
    /// Configuration of the manager the trace is replayed on. Default: the library's.
    pub config: MemoryConfig,
    /// Read the manager's metrics after every this many events (and always after the
    /// peak and the last event). 0, the default, picks one so that about 8192 readings
    /// are taken whatever the trace's length: a reading walks every size class, so one
    /// per event would make a 100,000-event replay slow.
    pub metrics_every: usize,
}

impl ReplayOptions {
    /// Readings taken when [`metrics_every`](Self::metrics_every) is 0.
    pub const AUTO_READINGS: usize = 8192;

    /// The reading interval for a trace of `events` events.
    pub fn interval(&self, events: usize) -> usize {
        if self.metrics_every > 0 {
            self.metrics_every
        } else {
            events.div_ceil(Self::AUTO_READINGS).max(1)
        }
    }
}
