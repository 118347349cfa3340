//! Configuration of a [`MemoryManager`](crate::MemoryManager): plain data, every field in
//! stated units, with a builder.

pub use crate::cleanup::CleanupConfig;
use crate::error::MemoryError;
pub use crate::leak::LeakConfig;
pub use crate::tracking::TrackingConfig;

use crate::pool::config::PoolConfig;
pub use crate::pool::config::Strategy;
pub use crate::security::HardenedConfig;

/// Largest alignment any request may ask for: 1 GiB.
pub const MAX_ALIGN: usize = 1 << 30;

/// Configuration of a memory manager.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryConfig {
    /// Allocation strategy of every device pool. Default: [`Strategy::Hybrid`].
    pub strategy: Strategy,
    /// Largest request, in bytes, served by size classes under [`Strategy::Hybrid`].
    /// Rounded up to a class size. Default: 1 MiB. At least 16 B.
    pub small_threshold: usize,
    /// Reserved-memory budget of the CPU device in bytes; `None` for no limit beyond what
    /// the system gives. Default: `None`.
    pub budget: Option<usize>,
    /// Smallest chunk requested from a device, in bytes. Chunks grow geometrically from
    /// this (an eighth of what is mapped) up to `max_chunk`. Default: 64 MiB: only the
    /// pages blocks touch become resident, and few big chunks let free blocks coalesce.
    pub min_chunk: usize,
    /// Largest chunk requested for growth, in bytes (a single bigger request still gets a
    /// chunk of its own size). Default: 1 GiB.
    pub max_chunk: usize,
    /// Smallest chunk requested from a device that cannot decommit (a GPU, whose buffers
    /// go back whole or not at all: every byte of a chunk stays held), in bytes, used
    /// there instead of [`min_chunk`](Self::min_chunk). Chunks grow geometrically from it
    /// as from `min_chunk`, and on such a device a chunk a free leaves wholly free goes
    /// back at once. Default: 4 MiB. A multiple of 4096.
    pub min_chunk_no_decommit: usize,
    /// On a device that cannot decommit, requests of at least this many bytes get a
    /// chunk of their own, of just their size (whole 4 KiB), given back to the device as
    /// soon as the block is freed (on a GPU: once its fenced free is reclaimed), so big
    /// blocks never leave holes in shared chunks. In bytes; `usize::MAX` turns it off.
    /// Never used on a device that can decommit (the CPU). Default: 4 MiB.
    pub dedicated_threshold: usize,
    /// Whether each thread keeps a cache of small blocks. Default: `true`. Turning it off
    /// makes every small request take the class lock (useful to measure the cache).
    pub thread_cache: bool,
    /// Bytes of each size class a thread's cache may hold (at most 128 blocks; classes of
    /// blocks bigger than this are not cached). Default: 64 KiB;
    /// [`low_footprint`](Self::low_footprint) uses 32 KiB, [`fast`](Self::fast) 256 KiB.
    /// Cached blocks stay resident: a thread's cache can hold about 33 times this (times
    /// [`thread_cache_growth`](Self::thread_cache_growth) while classes grow).
    pub thread_cache_bytes: usize,
    /// How far a class's thread cache may grow past `thread_cache_bytes` while that class
    /// keeps missing (each miss takes the class's shared lock: a thread that churns one
    /// class, or only frees blocks others allocated, misses on most operations when its
    /// cache holds one or two blocks). The cache doubles its limit after a few misses, up
    /// to this factor times `thread_cache_bytes` (at most 128 blocks); a trim puts every
    /// limit back. Classes `thread_cache_bytes` does not cache stay uncached. `1`: caches
    /// of a fixed size. Default: 8; [`low_footprint`](Self::low_footprint) uses 2.
    pub thread_cache_growth: usize,
    /// The resident limit, as a fraction of the peak of live bytes: committed memory may
    /// pass `peak_live * (1 + retain_fraction)` (or `peak_live + min_retain`, whichever is
    /// more) only where no free block holds resident pages any more. Before a request takes
    /// fresh pages past the limit, pages of free blocks are handed back to the device,
    /// oldest frees first, just what is over. Handed-back pages fault again when reused,
    /// so a low limit costs time where live sizes keep changing. Default: `0.08`;
    /// [`low_footprint`](Self::low_footprint) uses `0.05`, [`fast`](Self::fast) `0.5`.
    /// See `docs/resident.md`.
    pub retain_fraction: f64,
    /// Free memory in bytes the pool may always keep resident: the limit is never under
    /// `peak_live + min_retain`, and where blocks in use (with the small pool's cached and
    /// partly used slabs) alone pass the limit, free blocks still keep this much of their
    /// pages (handing all back at every request would only make the next ones fault).
    /// Default: 1 MiB; [`fast`](Self::fast) uses 16 MiB.
    pub min_retain: usize,
    /// Whether a request whose fresh pages hold whole 2 MiB huge pages has those faulted
    /// in at once, as transparent huge pages, before it returns (one fault each instead of
    /// 512; they are counted as resident either way, and the chunks refuse huge pages
    /// everywhere else, so the resident count stays exact). The pages are then resident
    /// even where the owner never writes them. Needs THP set to `madvise` or `always`;
    /// without it nothing happens. Default: `true`. See `docs/resident.md`.
    pub huge_pages: bool,
    /// Tracking: sampling rate, large threshold, backtraces, overhead limit.
    pub tracking: TrackingConfig,
    /// Cleanup: background worker, decay time, pressure thresholds.
    pub cleanup: CleanupConfig,
    /// Leak detection: shutdown report, detectors and their settings.
    pub leak: LeakConfig,
    /// Let the pool optimizer switch each pool's large-block strategy (TLSF best fit,
    /// buddy) when the figures it measures say another does better (see
    /// `pool::adaptive::large`): evaluated by the background worker once per period,
    /// or by `MemoryManager::optimize_pools_now`. Default: `true`.
    pub adaptive_large_strategy: bool,
    /// Hardened mode (canaries, poisoning, checked frees, audit log). Default: off.
    pub hardened: HardenedConfig,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            strategy: Strategy::Hybrid,
            small_threshold: 1 << 20,
            budget: None,
            min_chunk: 64 << 20,
            max_chunk: 1 << 30,
            min_chunk_no_decommit: 4 << 20,
            dedicated_threshold: 4 << 20,
            thread_cache: true,
            thread_cache_bytes: 64 << 10,
            thread_cache_growth: 8,
            retain_fraction: 0.08,
            min_retain: 1 << 20,
            huge_pages: true,
            tracking: TrackingConfig::default(),
            cleanup: CleanupConfig::default(),
            leak: LeakConfig::default(),
            adaptive_large_strategy: true,
            hardened: HardenedConfig::default(),
        }
    }
}

impl MemoryConfig {
    /// A configuration that keeps the resident set closer to the peak of live bytes than
    /// the default, at the price of more page faults when handed-back memory is reused:
    /// `retain_fraction` 0.05, 32 KiB thread caches, 4 MiB chunks.
    pub fn low_footprint() -> Self {
        Self {
            retain_fraction: 0.05,
            min_retain: 1 << 20,
            thread_cache_bytes: 32 << 10,
            thread_cache_growth: 2,
            min_chunk: 4 << 20,
            max_chunk: 256 << 20,
            ..Self::default()
        }
    }

    /// A configuration that favours speed over footprint: free memory stays resident up
    /// to 50% over the live peak (`retain_fraction` 0.5, `min_retain` 16 MiB) and thread
    /// caches hold 256 KiB per class, so reused memory seldom faults again.
    pub fn fast() -> Self {
        Self {
            retain_fraction: 0.5,
            min_retain: 16 << 20,
            thread_cache_bytes: 256 << 10,
            ..Self::default()
        }
    }

    /// Turns hardened mode on or off (its other settings as they are).
    pub fn hardened(mut self, on: bool) -> Self {
        self.hardened.enabled = on;
        self
    }

    /// Sets [`strategy`](Self::strategy).
    pub fn strategy(mut self, s: Strategy) -> Self {
        self.strategy = s;
        self
    }
    /// Sets [`small_threshold`](Self::small_threshold), in bytes.
    pub fn small_threshold(mut self, bytes: usize) -> Self {
        self.small_threshold = bytes;
        self
    }
    /// Sets [`budget`](Self::budget), in bytes.
    pub fn budget(mut self, bytes: usize) -> Self {
        self.budget = Some(bytes);
        self
    }
    /// Sets [`adaptive_large_strategy`](Self::adaptive_large_strategy).
    pub fn adaptive_large_strategy(mut self, on: bool) -> Self {
        self.adaptive_large_strategy = on;
        self
    }
    /// Sets [`min_chunk`](Self::min_chunk), in bytes.
    pub fn min_chunk(mut self, bytes: usize) -> Self {
        self.min_chunk = bytes;
        self
    }
    /// Sets [`min_chunk_no_decommit`](Self::min_chunk_no_decommit), in bytes.
    pub fn min_chunk_no_decommit(mut self, bytes: usize) -> Self {
        self.min_chunk_no_decommit = bytes;
        self
    }
    /// Sets [`dedicated_threshold`](Self::dedicated_threshold), in bytes.
    pub fn dedicated_threshold(mut self, bytes: usize) -> Self {
        self.dedicated_threshold = bytes;
        self
    }
    /// Sets [`max_chunk`](Self::max_chunk), in bytes.
    pub fn max_chunk(mut self, bytes: usize) -> Self {
        self.max_chunk = bytes;
        self
    }
    /// Sets [`huge_pages`](Self::huge_pages).
    pub fn huge_pages(mut self, on: bool) -> Self {
        self.huge_pages = on;
        self
    }
    /// Sets [`retain_fraction`](Self::retain_fraction).
    pub fn retain_fraction(mut self, f: f64) -> Self {
        self.retain_fraction = f;
        self
    }
    /// Sets [`min_retain`](Self::min_retain), in bytes.
    pub fn min_retain(mut self, bytes: usize) -> Self {
        self.min_retain = bytes;
        self
    }
    /// Sets [`tracking`](Self::tracking).
    pub fn tracking(mut self, t: TrackingConfig) -> Self {
        self.tracking = t;
        self
    }
    /// Sets [`cleanup`](Self::cleanup).
    pub fn cleanup(mut self, c: CleanupConfig) -> Self {
        self.cleanup = c;
        self
    }
    /// Sets [`leak`](Self::leak).
    pub fn leak(mut self, l: LeakConfig) -> Self {
        self.leak = l;
        self
    }
    /// Sets [`thread_cache`](Self::thread_cache).
    pub fn thread_cache(mut self, on: bool) -> Self {
        self.thread_cache = on;
        self
    }

    /// Largest request served by size classes under this configuration (0: none).
    pub(crate) fn class_limit(&self) -> usize {
        match self.strategy {
            Strategy::Hybrid => self.small_threshold,
            Strategy::BestFit | Strategy::BuddySystem => 0,
            Strategy::SlabAllocator => 1 << 30,
        }
    }

    /// What the pool of one device needs of this configuration, with that device's
    /// `budget`: the manager's settings mapped down to the pool's own.
    pub(crate) fn pool_config(&self, budget: Option<usize>) -> PoolConfig {
        PoolConfig {
            strategy: self.strategy,
            class_limit: self.class_limit(),
            thread_cache: self.thread_cache,
            thread_cache_bytes: self.thread_cache_bytes,
            thread_cache_growth: self.thread_cache_growth,
            min_chunk: self.min_chunk,
            max_chunk: self.max_chunk,
            min_chunk_no_decommit: self.min_chunk_no_decommit,
            dedicated_threshold: self.dedicated_threshold,
            retain_fraction: self.retain_fraction,
            min_retain: self.min_retain,
            huge_pages: self.huge_pages,
            budget,
            switch_large_strategy: self.adaptive_large_strategy,
        }
    }

    /// Checks the configuration; the error names the first bad field.
    pub fn validate(&self) -> Result<(), MemoryError> {
        let bad = |reason: &'static str| {
            Err(MemoryError::InvalidConfig {
                field: reason.split(':').next().unwrap_or(reason),
                reason,
            })
        };
        if self.thread_cache_growth == 0 || self.thread_cache_growth > 1024 {
            return bad("thread_cache_growth: must be between 1 (fixed caches) and 1024");
        }
        if self.small_threshold < 16 || self.small_threshold > 1 << 30 {
            return bad("small_threshold: must be between 16 B and 1 GiB");
        }
        if self.min_chunk < 4096 || !self.min_chunk.is_multiple_of(4096) {
            return bad("min_chunk: must be a multiple of 4096 B");
        }
        if self.min_chunk_no_decommit < 4096 || !self.min_chunk_no_decommit.is_multiple_of(4096) {
            return bad("min_chunk_no_decommit: must be a multiple of 4096 B");
        }
        if self.dedicated_threshold == 0 {
            return bad("dedicated_threshold: must be more than 0 B");
        }
        if self.max_chunk < self.min_chunk || !self.max_chunk.is_multiple_of(4096) {
            return bad("max_chunk: must be a multiple of 4096 B and at least min_chunk");
        }
        if !(0.0..=1.0).contains(&self.tracking.sample_rate) {
            return bad("tracking.sample_rate: must be between 0.0 and 1.0");
        }
        if !(self.retain_fraction >= 0.0 && self.retain_fraction.is_finite()) {
            return bad("retain_fraction: must be a finite number >= 0");
        }
        let p = &self.cleanup.pressure;
        if !(0.0 < p.medium && p.medium <= p.high && p.high <= p.critical) {
            return bad("cleanup.pressure: thresholds must satisfy 0 < medium <= high <= critical");
        }
        if self.cleanup.period.is_zero() {
            return bad("cleanup.period: must be more than zero");
        }
        if self.leak.growth_window < 8 || !self.leak.growth_window.is_multiple_of(2) {
            return bad("leak.growth_window: must be an even number of steps, at least 8");
        }
        if !(self.leak.growth_false_alarm > 0.0 && self.leak.growth_false_alarm < 1.0) {
            return bad("leak.growth_false_alarm: must be between 0 and 1 (exclusive)");
        }
        if self.budget == Some(0) {
            return bad("budget: must be more than 0 B (use None for no limit)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryConfig;

    #[test]
    fn presets_are_valid_and_ordered_by_what_they_keep_resident() {
        let (low, def, fast) = (
            MemoryConfig::low_footprint(),
            MemoryConfig::default(),
            MemoryConfig::fast(),
        );
        for c in [&low, &def, &fast] {
            c.validate().unwrap();
        }
        assert!(low.retain_fraction < def.retain_fraction);
        assert!(def.retain_fraction < fast.retain_fraction);
        assert!(low.thread_cache_bytes < def.thread_cache_bytes);
        assert!(def.thread_cache_bytes < fast.thread_cache_bytes);
        assert!(def.min_retain < fast.min_retain);
    }
}
