//! What a device pool reports of itself: plain counters of the pool, its size classes and
//! its large-block pool, with the ratios derived from them. The pool fills these; the
//! manager's metrics ([`MetricsSnapshot`](crate::MetricsSnapshot)) compose one per device
//! and show them under the names users know (`DeviceMetrics`, `ClassMetrics`,
//! `SmallPoolMetrics`, `LargePoolMetrics`).
#![deny(unsafe_code)]

use crate::device::DeviceId;

/// Counters of one size class.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClassStats {
    /// Block size of the class in bytes.
    pub block_size: usize,
    /// Blocks owned by allocations.
    pub live_blocks: usize,
    /// Blocks cached by threads.
    pub cached_blocks: usize,
    /// Blocks free in the central list (including not yet carved ones).
    pub free_blocks: usize,
    /// Slabs held by the class.
    pub slabs: usize,
    /// Bytes of those slabs.
    pub slab_bytes: usize,
    /// Batches threads took from the class's central list (one lock each).
    #[serde(default)]
    pub central_takes: u64,
    /// Batches threads gave back to the central list (one lock each).
    #[serde(default)]
    pub central_puts: u64,
}

/// The small-block pool (size classes) of one device.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SmallPoolStats {
    /// Blocks owned by allocations.
    pub live_blocks: usize,
    /// Bytes of those blocks (class sizes).
    pub live_block_bytes: usize,
    /// Bytes cached by threads.
    pub cached_bytes: usize,
    /// Bytes free in central lists.
    pub free_bytes: usize,
    /// Bytes of slabs (live + cached + free).
    pub slab_bytes: usize,
    /// Per class, only classes that hold a slab.
    pub classes: Vec<ClassStats>,
}

/// The large-block pool of one device.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LargePoolStats {
    /// Strategy name.
    pub strategy: String,
    /// Blocks owned by allocations.
    pub live_blocks: usize,
    /// Bytes of those blocks (as rounded by the strategy).
    pub live_block_bytes: usize,
    /// Free bytes inside chunks.
    pub free_bytes: usize,
    /// Largest free block in bytes.
    pub largest_free: usize,
    /// Chunks held from the device.
    pub chunks: usize,
}

/// One device pool.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PoolStats {
    /// The device.
    pub device: DeviceId,
    /// Backend name.
    pub backend: String,
    /// Requested bytes of live allocations.
    pub live_bytes: usize,
    /// Highest `live_bytes` seen (exact with one thread; with several, each thread's
    /// unpublished change of under 1 MiB may be counted at its own maximum).
    pub peak_live_bytes: usize,
    /// Bytes of device memory the pool holds committed: the pages under blocks it handed
    /// out (and slab blocks it carved), less those handed back since. What the resident
    /// set sees when owners touch what they asked for.
    pub reserved_bytes: usize,
    /// Highest `reserved_bytes` seen.
    pub peak_reserved_bytes: usize,
    /// Bytes of chunks mapped from the device (address space; the budget counts these).
    pub mapped_bytes: usize,
    /// Bytes of free blocks whose pages were handed back so far.
    pub purged_bytes: usize,
    /// Bytes of free blocks' pages moved into requests' fresh pages so far, instead of
    /// handed back and faulted in again (devices that can move pages: the CPU on Linux
    /// 6.8 and later).
    #[serde(default)]
    pub moved_bytes: usize,
    /// Bytes of blocks freed on a device that runs submitted work (a GPU) while work
    /// that may use them was still to be submitted or running: neither live nor free for
    /// reuse until the next submission after their free has finished.
    #[serde(default)]
    pub pending_free_bytes: usize,
    /// Chunks given back to the device so far (trims, decay, compaction, and on a device
    /// that cannot decommit, dedicated chunks and chunks a free left empty).
    #[serde(default)]
    pub released_chunks: usize,
    /// Bytes of those chunks.
    #[serde(default)]
    pub released_bytes: usize,
    /// Live allocations.
    pub live_allocations: usize,
    /// Allocations made so far.
    pub allocations: u64,
    /// Frees made so far.
    pub frees: u64,
    /// The budget, if any.
    pub budget: Option<usize>,
    /// Largest request served by size classes now (moves under `Strategy::Hybrid`).
    #[serde(default)]
    pub small_threshold: usize,
    /// Small-block pool.
    pub small: SmallPoolStats,
    /// Large-block pool.
    pub large: LargePoolStats,
    /// Where the reserved bytes that are not live go, and how split up free memory is.
    #[serde(default)]
    pub fragmentation: super::FragmentationReport,
}

impl PoolStats {
    /// Bytes of blocks owned by allocations (class or strategy sizes).
    pub fn live_block_bytes(&self) -> usize {
        self.small.live_block_bytes + self.large.live_block_bytes
    }
    /// Rounding and padding: block bytes beyond what was requested.
    pub fn padding_bytes(&self) -> usize {
        self.live_block_bytes().saturating_sub(self.live_bytes)
    }
    /// Reserved bytes not owned by any allocation (cached or free), less pending frees.
    pub fn free_bytes(&self) -> usize {
        self.reserved_bytes
            .saturating_sub(self.live_block_bytes() + self.pending_free_bytes)
    }
    /// `live / reserved`, 1.0 when nothing is reserved.
    pub fn utilization(&self) -> f64 {
        ratio(self.live_bytes, self.reserved_bytes, 1.0)
    }
    /// `reserved / live`, the overhead ratio the benchmarks report.
    pub fn reserved_over_live(&self) -> f64 {
        ratio(self.reserved_bytes, self.live_bytes, 1.0)
    }
    /// External fragmentation of the large pool: `1 - largest free / free`.
    pub fn external_fragmentation(&self) -> f64 {
        1.0 - ratio(self.large.largest_free, self.large.free_bytes, 1.0)
    }
}

pub(crate) fn ratio(a: usize, b: usize, empty: f64) -> f64 {
    if b == 0 {
        empty
    } else {
        a as f64 / b as f64
    }
}

/// A device pool's cumulative byte counters, read together under the large pool's lock.
/// Mapped bytes move only through growth and release, so between two readings
/// `a.mapped + (b.grown - a.grown) - (b.released - a.released) == b.mapped` always holds;
/// a cleanup's claim is checked against the released and purged bytes between them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PoolLedger {
    /// Bytes of chunks held from the device now.
    pub mapped: usize,
    /// Bytes whose pages may be resident now.
    pub committed: usize,
    /// Bytes of chunks taken from the device so far.
    pub grown: usize,
    /// Bytes of chunks given back to the device so far.
    pub released: usize,
    /// Bytes of free blocks' pages handed back so far (the chunks stayed mapped).
    pub purged: usize,
}

/// Measured cost of the large pool's user operations under one strategy (a sample: one
/// operation in eight is timed).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StrategyTiming {
    /// The strategy's name.
    pub strategy: String,
    /// Operations timed.
    pub timed_ops: u64,
    /// Their nanoseconds.
    pub timed_ns: u64,
}

impl StrategyTiming {
    /// Mean nanoseconds per timed operation (0 when none was timed).
    pub fn ns_per_op(&self) -> f64 {
        ratio(self.timed_ns as usize, self.timed_ops as usize, 0.0)
    }
}
