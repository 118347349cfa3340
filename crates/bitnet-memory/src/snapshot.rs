//! Snapshots: the pool's state as data (`MemoryManager::snapshot`), with the recorded
//! history (`MemoryManager::record_history`). `docs/report.md` describes the JSON for
//! people; this file is the contract, read back by `bitnet-report`.
//!
//! Sizes are bytes, times nanoseconds on one monotonic clock of the manager (the same
//! for `t_ns` of the snapshot and of its history). Optional fields may be absent or
//! `null`; unknown fields are ignored, so the library can add figures without breaking
//! older reports.
#![deny(unsafe_code)]

use serde::{Deserialize, Serialize};

/// A snapshot JSON that does not match the schema: the path of the offending field and
/// what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("snapshot field `{path}`: {message}")]
pub struct SnapshotError {
    /// Path of the field, e.g. `devices[0].pools[1].chunks[3].blocks[2].offset` (`.`
    /// for the document itself).
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

/// The schema version written and read.
pub const SNAPSHOT_VERSION: u32 = 1;

/// The whole state of a memory manager at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Schema version; must be [`SNAPSHOT_VERSION`].
    pub version: u32,
    /// When the snapshot was taken.
    pub t_ns: u64,
    /// Metrics summed over all devices.
    pub metrics: MetricsSummary,
    /// One entry per device.
    pub devices: Vec<DeviceSnapshot>,
    /// The recorded history (`mm.record_history(n)`), oldest first; empty when history
    /// was off.
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// Entries that fell out of the capped history ring before the snapshot.
    #[serde(default)]
    pub history_dropped: u64,
    /// The whole [`MetricsSnapshot`](crate::MetricsSnapshot) behind `metrics`: per class,
    /// tracking, latency, cleanup, fragmentation. Absent in hand-made snapshots.
    #[serde(default)]
    pub metrics_detail: Option<crate::metrics::MetricsSnapshot>,
    /// Registered resources (`MemoryManager::register_resource`).
    #[serde(default)]
    pub resources: Vec<crate::lifecycle::ResourceInfo>,
}

/// Key figures of `MetricsSnapshot` (per device, or summed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsSummary {
    /// Requested bytes of live allocations.
    pub live_bytes: u64,
    /// Highest `live_bytes` seen.
    pub peak_live_bytes: u64,
    /// Bytes of device memory held committed: pages under blocks handed out and free
    /// blocks not yet handed back (what the resident set sees). At most `mapped_bytes`.
    pub reserved_bytes: u64,
    /// Highest `reserved_bytes` seen.
    pub peak_reserved_bytes: u64,
    /// Live allocations.
    pub live_allocations: u64,
    /// Allocations made so far.
    pub allocations: u64,
    /// Frees made so far.
    pub frees: u64,
    /// Reserved (committed) bytes owned by no allocation (cached or free).
    pub free_bytes: u64,
    /// Largest free block of the large pool, in mapped address space: its pages may have
    /// been handed back, so it may exceed `free_bytes` and `reserved_bytes`, never
    /// `mapped_bytes`.
    pub largest_free: u64,
    /// Bytes of chunks mapped from the device(s): address space, committed or not (the
    /// budget counts these). Absent (0) in snapshots written before it was added.
    #[serde(default)]
    pub mapped_bytes: u64,
    /// The budget, if any.
    #[serde(default)]
    pub budget: Option<u64>,
    /// Bytes of freed blocks waiting for GPU work to finish (devices that count
    /// submissions): neither live nor free.
    #[serde(default)]
    pub pending_free_bytes: u64,
}

impl From<&crate::metrics::DeviceMetrics> for MetricsSummary {
    fn from(m: &crate::metrics::DeviceMetrics) -> Self {
        Self {
            live_bytes: m.live_bytes as u64,
            peak_live_bytes: m.peak_live_bytes as u64,
            reserved_bytes: m.reserved_bytes as u64,
            peak_reserved_bytes: m.peak_reserved_bytes as u64,
            live_allocations: m.live_allocations as u64,
            allocations: m.allocations,
            frees: m.frees,
            free_bytes: m.free_bytes() as u64,
            largest_free: m.large.largest_free as u64,
            mapped_bytes: m.mapped_bytes as u64,
            budget: m.budget.map(|b| b as u64),
            pending_free_bytes: m.pending_free_bytes as u64,
        }
    }
}

impl MetricsSummary {
    /// The figures of several devices added up (peaks: the sum of each device's peak;
    /// largest free block: the largest of any device; budget: only when every device
    /// has one).
    pub fn sum<'a>(all: impl IntoIterator<Item = &'a MetricsSummary>) -> Self {
        let mut t = Self {
            live_bytes: 0,
            peak_live_bytes: 0,
            reserved_bytes: 0,
            peak_reserved_bytes: 0,
            live_allocations: 0,
            allocations: 0,
            frees: 0,
            free_bytes: 0,
            largest_free: 0,
            mapped_bytes: 0,
            budget: Some(0),
            pending_free_bytes: 0,
        };
        let mut any = false;
        for m in all {
            any = true;
            t.live_bytes += m.live_bytes;
            t.peak_live_bytes += m.peak_live_bytes;
            t.reserved_bytes += m.reserved_bytes;
            t.peak_reserved_bytes += m.peak_reserved_bytes;
            t.live_allocations += m.live_allocations;
            t.allocations += m.allocations;
            t.frees += m.frees;
            t.free_bytes += m.free_bytes;
            t.pending_free_bytes += m.pending_free_bytes;
            t.mapped_bytes += m.mapped_bytes;
            t.largest_free = t.largest_free.max(m.largest_free);
            t.budget = t.budget.zip(m.budget).map(|(a, b)| a + b);
        }
        if !any {
            t.budget = None;
        }
        t
    }
}

/// One device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceSnapshot {
    /// Device index (`DeviceId.0`).
    pub device: u32,
    /// Backend name, e.g. `"cpu"`.
    pub backend: String,
    /// This device's metrics.
    pub metrics: MetricsSummary,
    /// Its pools.
    pub pools: Vec<PoolSnapshot>,
}

pub use crate::pool::snapshot::{BlockSnapshot, ChunkSnapshot, PoolSnapshot};

/// One history event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When it happened.
    pub t_ns: u64,
    /// What happened.
    pub kind: HistoryKind,
    /// Allocation id; required for `alloc` and `free`, absent otherwise.
    #[serde(default)]
    pub id: Option<u64>,
    /// Requested bytes (`alloc`, `free`), bytes released (`trim`), bytes wanted
    /// (`pressure`, 0 if not known).
    pub size: u64,
    /// Live bytes of the manager just after the event.
    pub live_bytes: u64,
    /// Reserved bytes of the manager just after the event.
    pub reserved_bytes: u64,
    /// Device of the event. Default 0.
    #[serde(default)]
    pub device: u32,
    /// Pool that served the block (`alloc`, `free`), if known.
    #[serde(default)]
    pub pool: Option<String>,
    /// Allocation site (`alloc`), if tracked.
    #[serde(default)]
    pub site: Option<String>,
    /// Free text, e.g. the pressure level.
    #[serde(default)]
    pub detail: Option<String>,
}

/// Kind of a [`HistoryEntry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryKind {
    /// An allocation.
    Alloc,
    /// A free.
    Free,
    /// Cached memory handed back to a device.
    Trim,
    /// Memory pressure (a budget or device limit came near).
    Pressure,
}

impl Snapshot {
    /// Parses and checks a snapshot JSON. Errors name the offending field's path, e.g.
    /// `devices[0].pools[1].chunks[3].blocks[2].offset`.
    pub fn from_json(text: &str) -> Result<Self, SnapshotError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let snap: Snapshot = serde_path_to_error::deserialize(de).map_err(|e| SnapshotError {
            path: e.path().to_string(),
            message: e.inner().to_string(),
        })?;
        snap.check()?;
        Ok(snap)
    }

    /// Checks what the types cannot: the version, that blocks lie inside their chunk in
    /// order, and that `alloc` and `free` entries carry an id.
    pub fn check(&self) -> Result<(), SnapshotError> {
        let bad = |path: String, message: String| Err(SnapshotError { path, message });
        if self.version != SNAPSHOT_VERSION {
            return bad(
                "version".into(),
                format!(
                    "this report reads version {SNAPSHOT_VERSION}, found {}",
                    self.version
                ),
            );
        }
        for (d, dev) in self.devices.iter().enumerate() {
            for (p, pool) in dev.pools.iter().enumerate() {
                for (c, chunk) in pool.chunks.iter().enumerate() {
                    let mut end = 0u64;
                    for (b, block) in chunk.blocks.iter().enumerate() {
                        let path = format!("devices[{d}].pools[{p}].chunks[{c}].blocks[{b}]");
                        if block.offset < end {
                            return bad(
                                format!("{path}.offset"),
                                format!(
                                    "block at offset {} overlaps the previous block, which ends at {end}",
                                    block.offset
                                ),
                            );
                        }
                        end = block.offset.saturating_add(block.size);
                        if end > chunk.size {
                            return bad(
                                format!("{path}.size"),
                                format!(
                                    "block {}..{end} lies outside the chunk of {} bytes",
                                    block.offset, chunk.size
                                ),
                            );
                        }
                    }
                }
            }
        }
        for (i, e) in self.history.iter().enumerate() {
            let needs_id = matches!(e.kind, HistoryKind::Alloc | HistoryKind::Free);
            if needs_id && e.id.is_none() {
                return bad(
                    format!("history[{i}].id"),
                    format!("an `{:?}` entry needs an id", e.kind).to_lowercase(),
                );
            }
        }
        Ok(())
    }
}
