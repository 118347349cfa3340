//! The tracking layer's settings and the figures it reports of itself.

/// Tracking settings; all can be changed at run time through the manager.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackingConfig {
    /// Whether tracking runs at all. Default: `true`.
    pub enabled: bool,
    /// Fraction of small allocations tracked, `0.0..=1.0`. Default: `0.1`.
    pub sample_rate: f64,
    /// Allocations of at least this many bytes are always tracked. Default: 1 MiB.
    pub large_threshold: usize,
    /// Capture an (unresolved) backtrace for each tracked allocation. Default: `false`.
    pub capture_backtraces: bool,
    /// Share of allocation time, in percent, tracking may take before it lowers its
    /// sampling rate. Default: `5.0`.
    pub overhead_limit_percent: f64,
}

impl Default for TrackingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            sample_rate: 0.1,
            large_threshold: 1 << 20,
            capture_backtraces: false,
            overhead_limit_percent: 5.0,
        }
    }
}

impl TrackingConfig {
    /// Tracking switched off.
    pub fn off() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }
    /// Every allocation tracked.
    pub fn full() -> Self {
        Self {
            sample_rate: 1.0,
            ..Self::default()
        }
    }
}

/// Estimates and costs of the tracking layer.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrackingStats {
    /// Current base sampling rate of small allocations.
    pub sample_rate: f64,
    /// Tracked allocations live now.
    pub tracked_live: usize,
    /// Allocations tracked so far (sampled or large).
    pub tracked_total: u64,
    /// Estimated number of allocations made so far (sampled ones weighted by
    /// `1 / probability`, large ones counted once).
    pub estimated_allocations: f64,
    /// Estimated bytes requested so far, weighted likewise.
    pub estimated_bytes: f64,
    /// Allocation sites seen.
    pub sites: usize,
    /// Share of allocation time spent tracking, in percent (measured on a sub-sample; 0
    /// until 32 allocations were timed).
    pub tracking_overhead_percentage: f64,
    /// Bytes the tracking layer holds (records, sites, histogram).
    pub tracking_memory_overhead: usize,
    /// Samples lost because the record store was full.
    pub dropped_samples: u64,
}
