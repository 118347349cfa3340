//! Report of a snapshot: the timeline and peak from its history, the chunk map and the
//! leak list from its pools.

use crate::bands::SizeBand;
use crate::blocks::{Spans, MAX_BLOCKS};
use crate::error::{ReportError, Result};
use crate::model::{
    fmt_ns, BlockSpan, ChunkBlock, ChunkMap, LeakGroup, LiveBlock, Marker, MarkerKind, Peak,
    ReportData, Sample, SeriesKind, SourceKind, SummaryItem, Timeline,
};
use crate::options::ReportOptions;
use crate::snapshot::{HistoryEntry, HistoryKind, Snapshot};
use crate::timeline::Downsampler;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Name of the series of bytes that were live before the first history entry.
pub const BEFORE_HISTORY: &str = "before history";

/// A live block as the snapshot's pools show it.
struct PoolBlock<'a> {
    pool: &'a str,
    size: u64,
    site: Option<&'a str>,
    /// Its place in the pool: the chunk's offset plus the block's.
    addr: u64,
}

/// How live bytes are split into series.
struct Series {
    kind: SeriesKind,
    names: Vec<String>,
    index: HashMap<String, usize>,
}

impl Series {
    /// By pool when every alloc and free entry names its pool (the pools of the history
    /// and of the snapshot), else by size band. Index 0 is always [`BEFORE_HISTORY`].
    fn of(snap: &Snapshot) -> Self {
        let blocks = snap
            .history
            .iter()
            .filter(|e| matches!(e.kind, HistoryKind::Alloc | HistoryKind::Free));
        let by_pool = blocks.clone().all(|e| e.pool.is_some());
        let mut names = vec![BEFORE_HISTORY.to_string()];
        let kind = if by_pool {
            let in_pools = snap.devices.iter().flat_map(|d| &d.pools);
            let mut pools: Vec<&str> = blocks
                .filter_map(|e| e.pool.as_deref())
                .chain(in_pools.map(|p| p.pool.as_str()))
                .collect();
            let rank = |p: &str| match p {
                "small" => 0,
                "large" => 1,
                _ => 2,
            };
            pools.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
            pools.dedup();
            names.extend(pools.into_iter().map(String::from));
            SeriesKind::Pool
        } else {
            names.extend(SizeBand::ALL.iter().map(|b| b.name().to_string()));
            SeriesKind::SizeBand
        };
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        Self { kind, names, index }
    }

    fn name_of<'a>(&self, size: u64, pool: Option<&'a str>) -> &'a str {
        match (self.kind, pool) {
            (SeriesKind::Pool, Some(p)) => p,
            _ => SizeBand::of(size).name(),
        }
    }

    fn of_entry(&self, e: &HistoryEntry) -> usize {
        let name = self.name_of(e.size, e.pool.as_deref());
        self.index.get(name).copied().unwrap_or(0)
    }
}

/// Builds the report of a checked snapshot.
pub(crate) fn build(snap: &Snapshot, opts: &ReportOptions, title: String) -> Result<ReportData> {
    let pool_blocks = pool_blocks(snap);
    let series = Series::of(snap);
    let h = &snap.history;

    // Exact peak of live bytes over the history (first event that reached it).
    let mut peak: Option<Peak> = None;
    let mut t = 0u64;
    let mut window: HashMap<u64, usize> = HashMap::new();
    for (i, e) in h.iter().enumerate() {
        t = t.max(e.t_ns);
        let twice = match (e.kind, e.id) {
            (HistoryKind::Alloc, Some(id)) => window.insert(id, i).map(|_| id),
            (HistoryKind::Free, Some(id)) => {
                window.remove(&id);
                None
            }
            _ => None,
        };
        if let Some(id) = twice {
            return Err(ReportError::Snapshot {
                path: format!("history[{i}].id"),
                message: format!("allocates id {id} which is already live"),
            });
        }
        if peak.is_none_or(|p| e.live_bytes > p.bytes) {
            peak = Some(Peak {
                t_ns: t,
                bytes: e.live_bytes,
                event_index: i as u64,
                blocks: 0,
            });
        }
    }

    // The timeline: tracked series from the entries, the rest of `live_bytes` is what
    // was live before the first entry.
    let t0 = h.first().map_or(snap.t_ns, |e| e.t_ns);
    let t_end = t.max(snap.t_ns);
    let mut down = Downsampler::new(t0, t_end, opts.max_buckets);
    let mut tracked = vec![0u64; series.names.len()];
    let mut alloc_series: HashMap<u64, (usize, u64)> = HashMap::new();
    let mut used = vec![false; series.names.len()];
    let mut markers = Vec::new();
    let mut spans = Spans::new(MAX_BLOCKS);
    let mut t = 0u64;
    for e in h {
        t = t.max(e.t_ns);
        match (e.kind, e.id) {
            (HistoryKind::Alloc, Some(id)) => {
                let s = series.of_entry(e);
                tracked[s] += e.size;
                alloc_series.insert(id, (s, e.size));
                let block = pool_blocks.get(&id);
                spans.alloc(BlockSpan {
                    id,
                    size: e.size,
                    t_alloc_ns: t,
                    t_free_ns: None,
                    thread: None,
                    site: e
                        .site
                        .clone()
                        .or_else(|| block.and_then(|b| b.site.map(String::from))),
                    addr: block.map(|b| b.addr),
                });
            }
            (HistoryKind::Free, Some(id)) => {
                if let Some((s, size)) = alloc_series.remove(&id) {
                    tracked[s] = tracked[s].saturating_sub(size);
                }
                spans.free(id, t);
            }
            (HistoryKind::Trim, _) | (HistoryKind::Pressure, _) => markers.push(Marker {
                t_ns: t,
                kind: if e.kind == HistoryKind::Trim {
                    MarkerKind::Trim
                } else {
                    MarkerKind::Pressure
                },
                bytes: e.size,
                detail: e.detail.clone(),
            }),
            _ => {}
        }
        let mut live = tracked.clone();
        live[0] = e.live_bytes.saturating_sub(tracked[1..].iter().sum());
        for (u, v) in used.iter_mut().zip(&live) {
            *u |= *v > 0;
        }
        down.push(Sample {
            t_ns: t,
            live,
            reserved: Some(e.reserved_bytes),
            free: None,
            largest_free: None,
        });
    }
    // The snapshot itself: the only moment free bytes and the largest free block are
    // known.
    let m = &snap.metrics;
    let mut now = vec![0u64; series.names.len()];
    if h.is_empty() {
        for b in pool_blocks.values() {
            let s = series.index.get(series.name_of(b.size, Some(b.pool)));
            now[s.copied().unwrap_or(0)] += b.size;
        }
    } else {
        now = tracked.clone();
        now[0] = m.live_bytes.saturating_sub(tracked[1..].iter().sum());
    }
    for (u, v) in used.iter_mut().zip(&now) {
        *u |= *v > 0;
    }
    down.push(Sample {
        t_ns: t_end,
        live: now,
        reserved: Some(m.reserved_bytes),
        free: Some(m.free_bytes),
        largest_free: Some(m.largest_free),
    });
    let keep: Vec<usize> = (0..series.names.len()).filter(|&i| used[i]).collect();
    let mut samples = down.finish();
    for s in &mut samples {
        s.live = keep.iter().map(|&i| s.live[i]).collect();
    }

    let live_at_peak = match peak {
        Some(p) => live_at(snap, &series, &pool_blocks, p.event_index as usize),
        None => Vec::new(),
    };
    let peak = peak.map(|p| Peak {
        blocks: live_at_peak.len() as u64,
        ..p
    });

    let mut summary = vec![
        SummaryItem::new("input", &title),
        SummaryItem::new("snapshot at", fmt_ns(snap.t_ns)),
        SummaryItem::new("devices", snap.devices.len()),
        SummaryItem::bytes("live bytes", m.live_bytes),
        SummaryItem::bytes("peak live bytes (manager)", m.peak_live_bytes),
        SummaryItem::bytes("reserved bytes", m.reserved_bytes),
        SummaryItem::bytes("peak reserved bytes (manager)", m.peak_reserved_bytes),
        SummaryItem::new("live allocations", m.live_allocations),
        SummaryItem::new("allocations", m.allocations),
        SummaryItem::new("frees", m.frees),
        SummaryItem::bytes("free bytes", m.free_bytes),
        SummaryItem::bytes("largest free block", m.largest_free),
    ];
    if let Some(b) = m.budget {
        summary.push(SummaryItem::bytes("budget", b));
    }
    summary.push(SummaryItem::new("history entries", h.len()));
    summary.push(SummaryItem::new(
        "history entries dropped",
        snap.history_dropped,
    ));
    if let Some(p) = peak {
        summary.push(SummaryItem::bytes("peak live bytes (history)", p.bytes));
        summary.push(SummaryItem::new("peak at", fmt_ns(p.t_ns)));
        summary.push(SummaryItem::new("blocks known live at peak", p.blocks));
    }
    let untracked = snap
        .devices
        .iter()
        .flat_map(|d| &d.pools)
        .flat_map(|p| &p.chunks)
        .flat_map(|c| &c.blocks)
        .filter(|b| b.live && b.allocation_id.is_none())
        .count();
    summary.push(SummaryItem::new("live blocks without id", untracked));

    let (blocks, blocks_dropped) = spans.finish();
    Ok(ReportData {
        title,
        source: SourceKind::Snapshot,
        timeline: Timeline {
            series_kind: series.kind,
            series: keep.iter().map(|&i| series.names[i].clone()).collect(),
            samples,
            events: h.len() as u64,
        },
        peak,
        live_at_peak,
        chunks: chunks(snap),
        leaks: leaks(snap),
        markers,
        summary,
        blocks,
        blocks_dropped,
    })
}

/// Live blocks of the snapshot's pools by allocation id.
fn pool_blocks(snap: &Snapshot) -> HashMap<u64, PoolBlock<'_>> {
    let mut m = HashMap::new();
    for pool in snap.devices.iter().flat_map(|d| &d.pools) {
        for c in &pool.chunks {
            for b in &c.blocks {
                if let (true, Some(id)) = (b.live, b.allocation_id) {
                    m.insert(
                        id,
                        PoolBlock {
                            pool: &pool.pool,
                            size: b.size,
                            site: b.site.as_deref(),
                            addr: c.base_offset.saturating_add(b.offset),
                        },
                    );
                }
            }
        }
    }
    m
}

/// Blocks live just after history entry `p`, largest first: those allocated in the
/// history and not yet freed, those freed later but allocated before the history began,
/// and those still live in the snapshot that the history never mentions.
fn live_at(
    snap: &Snapshot,
    series: &Series,
    pool_blocks: &HashMap<u64, PoolBlock<'_>>,
    p: usize,
) -> Vec<LiveBlock> {
    let h = &snap.history;
    let mut out: BTreeMap<u64, LiveBlock> = BTreeMap::new();
    let mut seen: HashSet<u64> = HashSet::new();
    let site_of = |id: u64, e: &HistoryEntry| {
        e.site
            .clone()
            .or_else(|| pool_blocks.get(&id).and_then(|b| b.site.map(String::from)))
    };
    for (i, e) in h.iter().enumerate() {
        let Some(id) = e.id else { continue };
        match e.kind {
            HistoryKind::Alloc => {
                seen.insert(id);
                if i <= p {
                    out.insert(
                        id,
                        LiveBlock {
                            id,
                            size: e.size,
                            series: series.name_of(e.size, e.pool.as_deref()).to_string(),
                            site: site_of(id, e),
                            thread: None,
                            t_alloc_ns: Some(e.t_ns),
                        },
                    );
                }
            }
            HistoryKind::Free => {
                if i <= p {
                    out.remove(&id);
                } else if !seen.contains(&id) {
                    out.insert(
                        id,
                        LiveBlock {
                            id,
                            size: e.size,
                            series: BEFORE_HISTORY.to_string(),
                            site: site_of(id, e),
                            thread: None,
                            t_alloc_ns: None,
                        },
                    );
                }
                seen.insert(id);
            }
            _ => {}
        }
    }
    for (&id, b) in pool_blocks {
        if !seen.contains(&id) {
            out.insert(
                id,
                LiveBlock {
                    id,
                    size: b.size,
                    series: BEFORE_HISTORY.to_string(),
                    site: b.site.map(String::from),
                    thread: None,
                    t_alloc_ns: None,
                },
            );
        }
    }
    let mut v: Vec<LiveBlock> = out.into_values().collect();
    v.sort_by(|a, b| b.size.cmp(&a.size).then(a.id.cmp(&b.id)));
    v
}

fn chunks(snap: &Snapshot) -> Vec<ChunkMap> {
    let mut v = Vec::new();
    for d in &snap.devices {
        for p in &d.pools {
            for c in &p.chunks {
                v.push(ChunkMap {
                    device: d.device,
                    pool: p.pool.clone(),
                    index: c.index,
                    size: c.size,
                    blocks: c
                        .blocks
                        .iter()
                        .map(|b| ChunkBlock {
                            offset: b.offset,
                            size: b.size,
                            live: b.live,
                            allocation_id: b.allocation_id,
                            site: b.site.clone(),
                        })
                        .collect(),
                });
            }
        }
    }
    v
}

/// Live blocks of the snapshot by site; most bytes first.
fn leaks(snap: &Snapshot) -> Vec<LeakGroup> {
    let mut groups: BTreeMap<Option<&str>, LeakGroup> = BTreeMap::new();
    for b in snap
        .devices
        .iter()
        .flat_map(|d| &d.pools)
        .flat_map(|p| &p.chunks)
        .flat_map(|c| &c.blocks)
        .filter(|b| b.live)
    {
        let g = groups
            .entry(b.site.as_deref())
            .or_insert_with(|| LeakGroup {
                site: b.site.clone(),
                thread: None,
                count: 0,
                bytes: 0,
                largest: 0,
                example_ids: Vec::new(),
            });
        g.count += 1;
        g.bytes += b.size;
        g.largest = g.largest.max(b.size);
        g.example_ids.extend(b.allocation_id);
    }
    let mut v: Vec<LeakGroup> = groups.into_values().collect();
    for g in &mut v {
        g.example_ids.sort_unstable();
        g.example_ids.truncate(8);
    }
    v.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.site.cmp(&b.site)));
    v
}
