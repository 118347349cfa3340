//! Chrome trace-event JSON (the format Perfetto and `chrome://tracing` open): counter
//! tracks for live bytes (one per series), reserved bytes, free bytes and the largest
//! free block; one track per thread with the allocations and frees of its blocks; and
//! instant events for the peak, trims, pressure and the blocks still live at the end
//! (leaks).

use crate::model::{MarkerKind, ReportData};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

/// Process id every event is filed under.
const PID: u32 = 1;

fn ts(t_ns: u64) -> f64 {
    // The format counts microseconds; fractions keep nanoseconds.
    t_ns as f64 / 1000.0
}

fn counter(name: &str, t_ns: u64, args: Value) -> Value {
    json!({ "ph": "C", "name": name, "pid": PID, "tid": 0, "ts": ts(t_ns), "args": args })
}

fn instant(name: &str, t_ns: u64, args: Value) -> Value {
    json!({ "ph": "i", "s": "g", "name": name, "pid": PID, "tid": 0, "ts": ts(t_ns), "args": args })
}

/// The track of a thread: tid 0 is the process-wide track (counters, global instants, and
/// blocks whose thread is not recorded); thread `n` is tid `n + 1`.
fn tid_of(thread: Option<u32>) -> u64 {
    thread.map_or(0, |t| u64::from(t) + 1)
}

/// An instant on one thread's track.
fn thread_instant(name: &str, thread: Option<u32>, t_ns: u64, args: Value) -> Value {
    json!({ "ph": "i", "s": "t", "name": name, "pid": PID, "tid": tid_of(thread), "ts": ts(t_ns), "args": args })
}

/// The report's timeline as Chrome trace-event JSON (`{"traceEvents": [...]}`).
///
/// Counters (`"ph": "C"`): `live bytes` with one argument per series (drawn stacked),
/// `reserved bytes`, `free bytes` and `largest free block` where measured. Instants
/// (`"ph": "i"`): `peak live bytes` with the exact figure, `trim` and `pressure`
/// (process-wide); on each thread's own track (`thread_name` metadata, tid = thread + 1),
/// `alloc` and `free` of the blocks of [`ReportData::blocks`] (id, size, site) and
/// `leak` for each group of blocks still live at the end (site, count, bytes).
pub fn render_perfetto(data: &ReportData) -> String {
    let mut events = vec![json!({
        "ph": "M", "name": "process_name", "pid": PID, "tid": 0,
        "args": { "name": format!("bitnet-memory: {}", data.title) }
    })];
    let threads: BTreeSet<u32> = data
        .blocks
        .iter()
        .filter_map(|b| b.thread)
        .chain(data.leaks.iter().filter_map(|g| g.thread))
        .collect();
    if !threads.is_empty() || !data.blocks.is_empty() {
        events.push(json!({
            "ph": "M", "name": "thread_name", "pid": PID, "tid": 0,
            "args": { "name": "memory (all threads)" }
        }));
    }
    for &t in &threads {
        events.push(json!({
            "ph": "M", "name": "thread_name", "pid": PID, "tid": tid_of(Some(t)),
            "args": { "name": format!("thread {t}") }
        }));
    }
    let t_end = data.timeline.samples.last().map_or(0, |s| s.t_ns).max(
        data.blocks
            .iter()
            .filter_map(|b| b.t_free_ns)
            .max()
            .unwrap_or(0),
    );
    for b in &data.blocks {
        let mut args = json!({ "id": b.id, "size": b.size });
        if let Some(site) = &b.site {
            args["site"] = json!(site);
        }
        events.push(thread_instant(
            "alloc",
            b.thread,
            b.t_alloc_ns,
            args.clone(),
        ));
        if let Some(t) = b.t_free_ns {
            events.push(thread_instant("free", b.thread, t, args));
        }
    }
    for g in &data.leaks {
        events.push(thread_instant(
            "leak",
            g.thread,
            t_end,
            json!({
                "site": g.site.as_deref().unwrap_or("(site not recorded)"),
                "blocks": g.count,
                "bytes": g.bytes,
                "largest": g.largest,
                "ids": g.example_ids,
            }),
        ));
    }
    for s in &data.timeline.samples {
        let live: Map<String, Value> = data
            .timeline
            .series
            .iter()
            .zip(&s.live)
            .map(|(name, v)| (name.clone(), json!(v)))
            .collect();
        events.push(counter("live bytes", s.t_ns, Value::Object(live)));
        if let Some(r) = s.reserved {
            events.push(counter("reserved bytes", s.t_ns, json!({ "reserved": r })));
        }
        if let Some(f) = s.free {
            events.push(counter("free bytes", s.t_ns, json!({ "free": f })));
        }
        if let Some(l) = s.largest_free {
            events.push(counter(
                "largest free block",
                s.t_ns,
                json!({ "largest free": l }),
            ));
        }
    }
    if let Some(p) = data.peak {
        events.push(instant(
            "peak live bytes",
            p.t_ns,
            json!({ "bytes": p.bytes, "blocks": p.blocks }),
        ));
    }
    for m in &data.markers {
        let name = match m.kind {
            MarkerKind::Trim => "trim",
            MarkerKind::Pressure => "pressure",
        };
        let mut args = json!({ "bytes": m.bytes });
        if let Some(d) = &m.detail {
            args["detail"] = json!(d);
        }
        events.push(instant(name, m.t_ns, args));
    }
    json!({ "traceEvents": events, "displayTimeUnit": "ns" }).to_string()
}
