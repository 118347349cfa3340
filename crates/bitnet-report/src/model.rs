//! The report's data model: what both inputs (a trace, a snapshot) map into, and what the
//! renderers read. Plain data with `serde`, so a report can also be saved as JSON.
//!
//! Sizes are bytes, times are nanoseconds on the input's clock (`t_ns`).

use serde::{Deserialize, Serialize};

/// Everything a report shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportData {
    /// Title of the page (usually the input's file name).
    pub title: String,
    /// What the report was built from.
    pub source: SourceKind,
    /// Live, reserved and free bytes over time, downsampled for drawing.
    pub timeline: Timeline,
    /// The exact peak of live bytes, found on every event (never on the downsampled
    /// timeline). `None` when the input has no allocation events.
    pub peak: Option<Peak>,
    /// Blocks live at [`peak`](Self::peak), largest first (ties: lower id first).
    pub live_at_peak: Vec<LiveBlock>,
    /// Chunks of the pools and their blocks. Empty when the input has no pool layout
    /// (a trace).
    pub chunks: Vec<ChunkMap>,
    /// Blocks still live at the end of the input, grouped; most bytes first.
    pub leaks: Vec<LeakGroup>,
    /// Trims and pressure events, in time order.
    pub markers: Vec<Marker>,
    /// Key figures for people, in display order.
    pub summary: Vec<SummaryItem>,
    /// Blocks over time for the per-block timeline, in allocation order: at most
    /// [`MAX_BLOCKS`](crate::MAX_BLOCKS), the largest kept.
    #[serde(default)]
    pub blocks: Vec<BlockSpan>,
    /// Blocks left out of [`blocks`](Self::blocks) (the smaller ones past the cap).
    #[serde(default)]
    pub blocks_dropped: u64,
}

/// One block from its allocation to its free: a band of the per-block timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockSpan {
    /// Allocation id.
    pub id: u64,
    /// Requested size.
    pub size: u64,
    /// When it was allocated.
    pub t_alloc_ns: u64,
    /// When it was freed; `None` if still live at the end of the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_free_ns: Option<u64>,
    /// Thread that allocated it, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<u32>,
    /// Where it was allocated, if tracked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// Where it lay, to stack blocks by address: the host address of a replayed trace's
    /// block, or a snapshot block's place in its pool (chunk offset plus block offset);
    /// `None` where unknown (the page then stacks it by allocation order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<u64>,
}

/// What a report was built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// An allocation trace (`op,id,size,align,thread,t_ns`).
    Trace,
    /// A trace replayed through a `bitnet_memory::MemoryManager`, which adds reserved and
    /// free bytes.
    TraceReplay,
    /// A snapshot JSON of a manager (`mm.snapshot()`).
    Snapshot,
}

/// How live bytes are split into series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeriesKind {
    /// By pool (`"small"`, `"large"`), when the input says which pool served a block.
    Pool,
    /// By size band (see [`SizeBand`](crate::SizeBand)), when the pool is unknown.
    SizeBand,
}

/// Live, reserved and free bytes over time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// How live bytes are split.
    pub series_kind: SeriesKind,
    /// Names of the live series, bottom of the stack first. Only series that ever held a
    /// byte are listed.
    pub series: Vec<String>,
    /// Samples in time order. `t_ns` never decreases: stamps of several threads that come
    /// slightly out of order are raised to the latest one seen.
    pub samples: Vec<Sample>,
    /// Events in the input (the timeline keeps a subset of their states).
    pub events: u64,
}

/// The state after one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Time of the event.
    pub t_ns: u64,
    /// Live (requested) bytes per series, in the order of [`Timeline::series`].
    pub live: Vec<u64>,
    /// Bytes held from devices, if measured at this event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved: Option<u64>,
    /// Reserved bytes owned by no allocation (cached or free), if measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free: Option<u64>,
    /// Largest free block of the large pool, if measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub largest_free: Option<u64>,
}

impl Sample {
    /// Live bytes over all series.
    pub fn live_total(&self) -> u64 {
        self.live.iter().sum()
    }
}

/// The exact peak of live bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peak {
    /// Time of the event that reached it first.
    pub t_ns: u64,
    /// Live bytes at the peak.
    pub bytes: u64,
    /// Index of that event in the input (0-based, allocation events and frees counted).
    pub event_index: u64,
    /// Blocks live at the peak.
    pub blocks: u64,
}

/// A block live at the peak.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveBlock {
    /// Allocation id.
    pub id: u64,
    /// Requested size.
    pub size: u64,
    /// Series (pool or size band) it counts in.
    pub series: String,
    /// Where it was allocated, if tracked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// Thread that allocated it, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<u32>,
    /// When it was allocated, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_alloc_ns: Option<u64>,
}

/// One chunk of a pool and its blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkMap {
    /// Device index.
    pub device: u32,
    /// Pool name (`"small"`, `"large"`).
    pub pool: String,
    /// Chunk index inside the pool.
    pub index: u64,
    /// Chunk size.
    pub size: u64,
    /// Blocks by offset. Bytes covered by no block are not part of the pool's blocks
    /// (e.g. not yet carved).
    pub blocks: Vec<ChunkBlock>,
}

/// One block of a chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkBlock {
    /// Offset inside the chunk.
    pub offset: u64,
    /// Block size.
    pub size: u64,
    /// Owned by an allocation (else free or cached).
    pub live: bool,
    /// Allocation id, if tracked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_id: Option<u64>,
    /// Allocation site, if tracked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
}

/// Blocks still live at the end, grouped by site (and thread, when known).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeakGroup {
    /// Allocation site; `None` when the input does not record sites.
    pub site: Option<String>,
    /// Allocating thread; `None` when unknown or not part of the grouping.
    pub thread: Option<u32>,
    /// Blocks in the group.
    pub count: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The largest block of the group.
    pub largest: u64,
    /// Ids of up to 8 of its blocks, lowest first.
    pub example_ids: Vec<u64>,
}

/// A trim or pressure event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// When.
    pub t_ns: u64,
    /// What.
    pub kind: MarkerKind,
    /// Bytes released (trim) or asked for (pressure); 0 when not given.
    pub bytes: u64,
    /// Extra words from the input (e.g. a pressure level).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Kind of a [`Marker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkerKind {
    /// Cached memory given back.
    Trim,
    /// Memory pressure seen.
    Pressure,
}

/// One line of the summary table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryItem {
    /// What (e.g. `"peak live bytes"`).
    pub key: String,
    /// The figure, formatted for people (bytes figures give the exact count first).
    pub value: String,
}

impl SummaryItem {
    /// A line with a plain value.
    pub fn new(key: impl Into<String>, value: impl ToString) -> Self {
        Self {
            key: key.into(),
            value: value.to_string(),
        }
    }
    /// A line with a byte count: exact, then in binary units.
    pub fn bytes(key: impl Into<String>, bytes: u64) -> Self {
        Self::new(key, fmt_bytes_exact(bytes))
    }
}

/// `"68518854 B (65.3 MiB)"`: the exact count, then a binary unit for people.
pub fn fmt_bytes_exact(bytes: u64) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else {
        format!("{bytes} B ({})", fmt_bytes(bytes))
    }
}

/// Bytes with a binary unit, three significant digits (the library's formatter).
pub fn fmt_bytes(bytes: u64) -> String {
    bitnet_memory::metrics::fmt_bytes(bytes as usize)
}

/// Nanoseconds for people: `"812 ns"`, `"3.250 ms"`, `"6.215 s"`.
pub fn fmt_ns(ns: u64) -> String {
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.3} µs", ns as f64 / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.3} ms", ns as f64 / 1e6)
    } else {
        format!("{:.3} s", ns as f64 / 1e9)
    }
}
