//! Report of an allocation trace: live bytes by size band on every event, the exact peak,
//! what was live there, what was left at the end; with a replay, what the pool reserved.

use crate::bands::SizeBand;
use crate::blocks::{Spans, MAX_BLOCKS};
use crate::error::{ReportError, Result};
use crate::model::{
    fmt_bytes_exact, fmt_ns, BlockSpan, LeakGroup, LiveBlock, Peak, ReportData, Sample, SeriesKind,
    SourceKind, SummaryItem, Timeline,
};
use crate::options::ReportOptions;
use crate::replay::{PoolReading, Replayer};
use crate::timeline::Downsampler;
use bitnet_memory::trace::{LineEvent, Op};
use bitnet_memory::MemoryManager;
use std::collections::{BTreeMap, HashMap};

const BANDS: usize = SizeBand::ALL.len();

/// A block while it is live.
#[derive(Clone, Copy)]
struct Live {
    size: u64,
    band: usize,
    thread: u32,
    t_ns: u64,
}

/// What a first pass learns: that ids match up, the exact peak, the bands in use.
struct Scan {
    peak: Option<Peak>,
    used: [bool; BANDS],
    t0: u64,
    t_end: u64,
    allocs: u64,
    threads: usize,
    largest: Option<(u64, u64)>,
}

fn scan(events: &[LineEvent]) -> Result<Scan> {
    let mut live: HashMap<u64, u64> = HashMap::new();
    let mut total = 0u64;
    let mut peak: Option<Peak> = None;
    let mut used = [false; BANDS];
    let mut t = 0u64;
    let mut allocs = 0u64;
    let mut threads = std::collections::HashSet::new();
    let mut largest: Option<(u64, u64)> = None;
    for (i, &LineEvent { line, event: ev }) in events.iter().enumerate() {
        t = t.max(ev.t_ns);
        threads.insert(ev.thread);
        match ev.op {
            Op::Alloc => {
                if live.insert(ev.id, ev.size).is_some() {
                    return Err(ReportError::Trace {
                        line,
                        message: format!("allocates id {} which is already live", ev.id),
                    });
                }
                allocs += 1;
                total += ev.size;
                used[SizeBand::of(ev.size).index()] = true;
                if largest.is_none_or(|(size, _)| ev.size > size) {
                    largest = Some((ev.size, ev.id));
                }
                if peak.is_none_or(|p| total > p.bytes) {
                    peak = Some(Peak {
                        t_ns: t,
                        bytes: total,
                        event_index: i as u64,
                        blocks: live.len() as u64,
                    });
                }
            }
            Op::Free => {
                let Some(size) = live.remove(&ev.id) else {
                    return Err(ReportError::Trace {
                        line,
                        message: format!("frees id {} which is not live", ev.id),
                    });
                };
                total -= size;
            }
        }
    }
    Ok(Scan {
        peak,
        used,
        t0: events.first().map_or(0, |e| e.event.t_ns),
        t_end: t,
        allocs,
        threads: threads.len(),
        largest,
    })
}

/// Builds the report of `events` (in file order).
pub(crate) fn build(
    events: &[LineEvent],
    opts: &ReportOptions,
    title: String,
) -> Result<ReportData> {
    let scan = scan(events)?;
    let peak_index = scan.peak.map(|p| p.event_index as usize);
    let mm = match &opts.replay {
        Some(r) => Some(
            MemoryManager::new(r.config.clone())
                .map_err(|e| ReportError::Manager(e.to_string()))?,
        ),
        None => None,
    };
    let mut replayer = mm.as_ref().map(Replayer::new);
    let every = opts
        .replay
        .as_ref()
        .map_or(usize::MAX, |r| r.interval(events.len()));

    let mut down = Downsampler::new(scan.t0, scan.t_end, opts.max_buckets);
    let mut live: HashMap<u64, Live> = HashMap::new();
    let mut by_band = [0u64; BANDS];
    let mut t = 0u64;
    let mut live_at_peak = Vec::new();
    let mut at_peak: Option<PoolReading> = None;
    let mut readings = 0u64;
    let mut reserved_max = 0u64;
    let mut spans = Spans::new(MAX_BLOCKS);
    for (i, le) in events.iter().enumerate() {
        let ev = &le.event;
        t = t.max(ev.t_ns);
        match ev.op {
            Op::Alloc => {
                let band = SizeBand::of(ev.size).index();
                by_band[band] += ev.size;
                live.insert(
                    ev.id,
                    Live {
                        size: ev.size,
                        band,
                        thread: ev.thread,
                        t_ns: ev.t_ns,
                    },
                );
                spans.alloc(BlockSpan {
                    id: ev.id,
                    size: ev.size,
                    t_alloc_ns: t,
                    t_free_ns: None,
                    thread: Some(ev.thread),
                    site: None,
                    addr: None,
                });
            }
            Op::Free => {
                // `scan` has checked that the id is live.
                if let Some(b) = live.remove(&ev.id) {
                    by_band[b.band] -= b.size;
                }
                spans.free(ev.id, t);
            }
        }
        let mut reading = None;
        if let Some(r) = replayer.as_mut() {
            r.apply(le)?;
            if ev.op == Op::Alloc {
                if let Some(a) = r.addr(ev.id) {
                    spans.set_addr(ev.id, a);
                }
            }
            let last = i + 1 == events.len();
            if (i + 1) % every == 0 || last || Some(i) == peak_index {
                let now = r.read();
                readings += 1;
                reserved_max = reserved_max.max(now.reserved);
                reading = Some(now);
            }
        }
        if Some(i) == peak_index {
            live_at_peak = live_blocks(&live);
            at_peak = reading;
        }
        down.push(Sample {
            t_ns: t,
            live: by_band.to_vec(),
            reserved: reading.map(|r| r.reserved),
            free: reading.map(|r| r.free),
            largest_free: reading.map(|r| r.largest_free),
        });
    }

    // Keep only the bands that ever held a byte.
    let keep: Vec<usize> = (0..BANDS).filter(|&b| scan.used[b]).collect();
    let mut samples = down.finish();
    for s in &mut samples {
        s.live = keep.iter().map(|&b| s.live[b]).collect();
    }
    let series = keep
        .iter()
        .map(|&b| SizeBand::ALL[b].name().to_string())
        .collect();

    let end_bytes: u64 = live.values().map(|b| b.size).sum();
    let mut summary = vec![
        SummaryItem::new("input", &title),
        SummaryItem::new("events", events.len()),
        SummaryItem::new("allocations", scan.allocs),
        SummaryItem::new("frees", events.len() as u64 - scan.allocs),
        SummaryItem::new("threads", scan.threads),
        SummaryItem::new("duration", fmt_ns(scan.t_end - scan.t0)),
    ];
    if let Some(p) = scan.peak {
        summary.push(SummaryItem::bytes("peak live bytes", p.bytes));
        summary.push(SummaryItem::new("peak at", fmt_ns(p.t_ns)));
        summary.push(SummaryItem::new("blocks live at peak", p.blocks));
    }
    if let Some((size, id)) = scan.largest {
        summary.push(SummaryItem::new(
            "largest block",
            format!("{} (id {id})", fmt_bytes_exact(size)),
        ));
    }
    summary.push(SummaryItem::new("blocks live at end", live.len()));
    summary.push(SummaryItem::bytes("bytes live at end", end_bytes));
    if let (Some(r), Some(mm)) = (&opts.replay, &mm) {
        let m = mm.metrics();
        summary.push(SummaryItem::new(
            "replayed on",
            format!(
                "bitnet-memory, {:?} strategy, metrics read every {} events ({readings} readings)",
                r.config.strategy, every
            ),
        ));
        summary.push(SummaryItem::bytes(
            "peak reserved bytes (manager)",
            m.peak_reserved_bytes() as u64,
        ));
        summary.push(SummaryItem::bytes(
            "peak reserved bytes (readings)",
            reserved_max,
        ));
        if let (Some(p), Some(at)) = (scan.peak, at_peak) {
            summary.push(SummaryItem::bytes("reserved at live peak", at.reserved));
            summary.push(SummaryItem::new(
                "reserved / live at peak",
                format!("{:.3}", at.reserved as f64 / p.bytes.max(1) as f64),
            ));
            summary.push(SummaryItem::bytes(
                "largest free block at peak",
                at.largest_free,
            ));
        }
    }
    // The replayer's allocations borrow the manager: free them first.
    drop(replayer);

    let (blocks, blocks_dropped) = spans.finish();
    Ok(ReportData {
        title,
        source: if opts.replay.is_some() {
            SourceKind::TraceReplay
        } else {
            SourceKind::Trace
        },
        timeline: Timeline {
            series_kind: SeriesKind::SizeBand,
            series,
            samples,
            events: events.len() as u64,
        },
        peak: scan.peak,
        live_at_peak,
        chunks: Vec::new(),
        leaks: leaks(&live),
        markers: Vec::new(),
        summary,
        blocks,
        blocks_dropped,
    })
}

fn live_blocks(live: &HashMap<u64, Live>) -> Vec<LiveBlock> {
    let mut v: Vec<LiveBlock> = live
        .iter()
        .map(|(&id, b)| LiveBlock {
            id,
            size: b.size,
            series: SizeBand::ALL[b.band].name().to_string(),
            site: None,
            thread: Some(b.thread),
            t_alloc_ns: Some(b.t_ns),
        })
        .collect();
    v.sort_by(|a, b| b.size.cmp(&a.size).then(a.id.cmp(&b.id)));
    v
}

/// Blocks left at the end, by allocating thread (traces record no sites).
fn leaks(live: &HashMap<u64, Live>) -> Vec<LeakGroup> {
    let mut groups: BTreeMap<u32, LeakGroup> = BTreeMap::new();
    for (&id, b) in live {
        let g = groups.entry(b.thread).or_insert_with(|| LeakGroup {
            site: None,
            thread: Some(b.thread),
            count: 0,
            bytes: 0,
            largest: 0,
            example_ids: Vec::new(),
        });
        g.count += 1;
        g.bytes += b.size;
        g.largest = g.largest.max(b.size);
        g.example_ids.push(id);
    }
    let mut v: Vec<LeakGroup> = groups.into_values().collect();
    for g in &mut v {
        g.example_ids.sort_unstable();
        g.example_ids.truncate(8);
    }
    v.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.thread.cmp(&b.thread)));
    v
}
