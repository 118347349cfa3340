//! Metrics: plain structs of live and cumulative counters, derived ratios as methods, and
//! a `Display` for people.

use crate::device::DeviceId;
use std::fmt;

/// Counters of one size class.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClassMetrics {
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
}

/// The small-block pool (size classes) of one device.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SmallPoolMetrics {
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
    pub classes: Vec<ClassMetrics>,
}

/// The large-block pool of one device.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LargePoolMetrics {
    /// Strategy name.
    pub strategy: &'static str,
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
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceMetrics {
    /// The device.
    pub device: DeviceId,
    /// Backend name.
    pub backend: String,
    /// Requested bytes of live allocations.
    pub live_bytes: usize,
    /// Highest `live_bytes` seen (exact with one thread; with several, each thread's
    /// unpublished change of under 1 MiB may be counted at its own maximum).
    pub peak_live_bytes: usize,
    /// Bytes held from the device.
    pub reserved_bytes: usize,
    /// Highest `reserved_bytes` seen.
    pub peak_reserved_bytes: usize,
    /// Live allocations.
    pub live_allocations: usize,
    /// Allocations made so far.
    pub allocations: u64,
    /// Frees made so far.
    pub frees: u64,
    /// The budget, if any.
    pub budget: Option<usize>,
    /// Small-block pool.
    pub small: SmallPoolMetrics,
    /// Large-block pool.
    pub large: LargePoolMetrics,
}

impl DeviceMetrics {
    /// Bytes of blocks owned by allocations (class or strategy sizes).
    pub fn live_block_bytes(&self) -> usize {
        self.small.live_block_bytes + self.large.live_block_bytes
    }
    /// Rounding and padding: block bytes beyond what was requested.
    pub fn padding_bytes(&self) -> usize {
        self.live_block_bytes().saturating_sub(self.live_bytes)
    }
    /// Reserved bytes not owned by any allocation (cached or free).
    pub fn free_bytes(&self) -> usize {
        self.reserved_bytes.saturating_sub(self.live_block_bytes())
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

fn ratio(a: usize, b: usize, empty: f64) -> f64 {
    if b == 0 {
        empty
    } else {
        a as f64 / b as f64
    }
}

/// Metrics of a whole manager.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// One entry per device.
    pub devices: Vec<DeviceMetrics>,
}

impl MetricsSnapshot {
    /// The entry of `device`.
    pub fn device(&self, device: DeviceId) -> Option<&DeviceMetrics> {
        self.devices.iter().find(|d| d.device == device)
    }
    /// Live bytes over all devices.
    pub fn live_bytes(&self) -> usize {
        self.devices.iter().map(|d| d.live_bytes).sum()
    }
    /// Reserved bytes over all devices.
    pub fn reserved_bytes(&self) -> usize {
        self.devices.iter().map(|d| d.reserved_bytes).sum()
    }
    /// Sum of per-device peaks of live bytes.
    pub fn peak_live_bytes(&self) -> usize {
        self.devices.iter().map(|d| d.peak_live_bytes).sum()
    }
    /// Sum of per-device peaks of reserved bytes.
    pub fn peak_reserved_bytes(&self) -> usize {
        self.devices.iter().map(|d| d.peak_reserved_bytes).sum()
    }
    /// Live allocations over all devices.
    pub fn live_allocations(&self) -> usize {
        self.devices.iter().map(|d| d.live_allocations).sum()
    }
}

/// Formats bytes with a binary unit.
pub fn fmt_bytes(b: usize) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

impl fmt::Display for DeviceMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} ({})", self.device, self.backend)?;
        writeln!(
            f,
            "  live      {:>12}  peak {:>12}  ({} allocations live)",
            fmt_bytes(self.live_bytes),
            fmt_bytes(self.peak_live_bytes),
            self.live_allocations
        )?;
        writeln!(
            f,
            "  reserved  {:>12}  peak {:>12}  utilization {:.1}%",
            fmt_bytes(self.reserved_bytes),
            fmt_bytes(self.peak_reserved_bytes),
            100.0 * self.utilization()
        )?;
        if let Some(b) = self.budget {
            writeln!(f, "  budget    {:>12}", fmt_bytes(b))?;
        }
        writeln!(
            f,
            "  small     {} live blocks, {} cached, {} free, {} in slabs",
            self.small.live_blocks,
            fmt_bytes(self.small.cached_bytes),
            fmt_bytes(self.small.free_bytes),
            fmt_bytes(self.small.slab_bytes)
        )?;
        writeln!(
            f,
            "  large     {} live blocks, {} free in {} chunks, largest free {} [{}]",
            self.large.live_blocks,
            fmt_bytes(self.large.free_bytes),
            self.large.chunks,
            fmt_bytes(self.large.largest_free),
            self.large.strategy
        )?;
        write!(
            f,
            "  ops       {} allocations, {} frees, padding {}",
            self.allocations,
            self.frees,
            fmt_bytes(self.padding_bytes())
        )
    }
}

impl fmt::Display for MetricsSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.devices.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}
