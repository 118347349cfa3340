//! Chrome trace-event JSON (the format Perfetto and `chrome://tracing` open): counter
//! tracks for live bytes (one per series), reserved bytes, free bytes and the largest
//! free block, and instant events for the peak, trims and pressure.

use crate::model::{MarkerKind, ReportData};
use serde_json::{json, Map, Value};

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

/// The report's timeline as Chrome trace-event JSON (`{"traceEvents": [...]}`).
///
/// Counters (`"ph": "C"`): `live bytes` with one argument per series (drawn stacked),
/// `reserved bytes`, `free bytes` and `largest free block` where measured. Instants
/// (`"ph": "i"`): `peak live bytes` with the exact figure, `trim` and `pressure`.
pub fn render_perfetto(data: &ReportData) -> String {
    let mut events = vec![json!({
        "ph": "M", "name": "process_name", "pid": PID, "tid": 0,
        "args": { "name": format!("bitnet-memory: {}", data.title) }
    })];
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
