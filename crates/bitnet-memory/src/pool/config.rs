//! The pool's own configuration: what one device pool reads when it is made. The
//! manager maps its `MemoryConfig` to a [`PoolConfig`] per device (with that device's
//! budget); nothing here knows the manager's settings.
#![deny(unsafe_code)]

/// How a device pool serves requests: the seed's allocation strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Size classes with thread caches up to the manager's `small_threshold` (`MemoryConfig::small_threshold`), best fit
    /// (TLSF) above it. The default, and the fastest.
    #[default]
    Hybrid,
    /// Best fit for every size: a two-level segregated fit, O(1), neighbours coalesce.
    /// Least rounding waste, one lock for all sizes.
    BestFit,
    /// Buddy system for every size: power-of-two blocks that split and merge.
    BuddySystem,
    /// Size classes (slabs) for every size up to 1 GiB; best fit only above that.
    SlabAllocator,
}

/// Settings of one device pool; every size in bytes. See the fields of the same name on
/// `MemoryConfig` for what each one trades.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// How requests are served.
    pub strategy: Strategy,
    /// Largest request served by size classes (0: none); rounded up to a class size.
    pub class_limit: usize,
    /// Whether each thread keeps a cache of small blocks.
    pub thread_cache: bool,
    /// Bytes of each size class a thread's cache holds at first and after a trim.
    pub thread_cache_bytes: usize,
    /// Factor by which a class's cache may grow past that while the class keeps missing.
    pub thread_cache_growth: usize,
    /// Smallest chunk asked of the device.
    pub min_chunk: usize,
    /// Smallest chunk asked of a device that cannot decommit (used there instead of
    /// `min_chunk`, within `max_chunk`).
    pub min_chunk_no_decommit: usize,
    /// On a device that cannot decommit, requests of at least this many bytes get a chunk
    /// of their own, released when the block is freed (`usize::MAX`: never).
    pub dedicated_threshold: usize,
    /// Largest chunk asked for growth.
    pub max_chunk: usize,
    /// Resident limit over the live peak, as a fraction of it.
    pub retain_fraction: f64,
    /// Free memory the pool may always keep resident.
    pub min_retain: usize,
    /// Fault whole 2 MiB pages of fresh requests in as huge pages.
    pub huge_pages: bool,
    /// Most bytes the pool may map from its device; `None`: no limit.
    pub budget: Option<usize>,
    /// Let the optimizer switch the large-block strategy (TLSF, buddy) when measured
    /// figures say so (see `pool::adaptive::large`).
    pub switch_large_strategy: bool,
}
