//! The Perfetto / chrome://tracing JSON parses back and holds the expected events.

mod common;

use bitnet_report::{
    render_perfetto, Marker, MarkerKind, ReplayOptions, ReportData, ReportOptions,
};
use common::*;
use serde_json::Value;

fn events(data: &ReportData) -> Vec<Value> {
    let v: Value = serde_json::from_str(&render_perfetto(data)).expect("valid JSON");
    v["traceEvents"]
        .as_array()
        .expect("traceEvents array")
        .clone()
}

fn named<'a>(ev: &'a [Value], ph: &str, name: &str) -> Vec<&'a Value> {
    ev.iter()
        .filter(|e| e["ph"] == ph && e["name"] == name)
        .collect()
}

#[test]
fn counters_follow_the_timeline_and_the_peak_is_an_instant() {
    let d = ReportData::from_trace(SMALL_TRACE, &ReportOptions::default()).expect("report");
    let ev = events(&d);
    let live = named(&ev, "C", "live bytes");
    assert_eq!(live.len(), d.timeline.samples.len());
    // ts in microseconds; one argument per series, summing to the live total.
    let at_peak = live
        .iter()
        .find(|e| e["ts"].as_f64() == Some(SMALL_PEAK_T as f64 / 1000.0))
        .expect("a counter at the peak");
    let args = at_peak["args"].as_object().expect("args");
    assert_eq!(args.len(), SMALL_SERIES.len());
    assert_eq!(
        args.values().filter_map(Value::as_u64).sum::<u64>(),
        SMALL_PEAK
    );
    assert_eq!(args["1 MiB - 16 MiB"], 2_000_000);
    let peak = named(&ev, "i", "peak live bytes");
    assert_eq!(peak.len(), 1);
    assert_eq!(peak[0]["args"]["bytes"], SMALL_PEAK);
    // No replay: no reserved counter.
    assert!(named(&ev, "C", "reserved bytes").is_empty());
    for e in &ev {
        assert!(e["pid"].is_u64() && e["ph"].is_string(), "{e}");
    }
}

#[test]
fn replay_adds_reserved_counters_and_markers_become_instants() {
    let opts = ReportOptions::default().replay(ReplayOptions::default());
    let mut d = ReportData::from_trace(SMALL_TRACE, &opts).expect("report");
    d.markers = vec![
        Marker {
            t_ns: 2500,
            kind: MarkerKind::Trim,
            bytes: 4096,
            detail: None,
        },
        Marker {
            t_ns: 3500,
            kind: MarkerKind::Pressure,
            bytes: 0,
            detail: Some("high".into()),
        },
    ];
    let ev = events(&d);
    let reserved = named(&ev, "C", "reserved bytes");
    let measured = d
        .timeline
        .samples
        .iter()
        .filter(|s| s.reserved.is_some())
        .count();
    assert_eq!(reserved.len(), measured);
    assert!(reserved
        .iter()
        .all(|e| e["args"]["reserved"].as_u64().is_some_and(|r| r > 0)));
    assert_eq!(named(&ev, "C", "largest free block").len(), measured);
    let trim = named(&ev, "i", "trim");
    assert_eq!(trim.len(), 1);
    assert_eq!(
        (trim[0]["ts"].as_f64(), &trim[0]["args"]["bytes"]),
        (Some(2.5), &Value::from(4096))
    );
    let pressure = named(&ev, "i", "pressure");
    assert_eq!(pressure[0]["args"]["detail"], "high");
    assert_eq!(pressure[0]["s"], "g");
}

/// A manager's own history as Perfetto counters: live and reserved bytes per entry, the
/// trim as an instant, the exact peak.
#[test]
fn a_managers_history_becomes_live_and_reserved_counters_and_trim_instants() {
    use bitnet_memory::{MemoryConfig, MemoryManager};
    use std::alloc::Layout;
    let mut config = MemoryConfig::default()
        .min_chunk(4 << 20)
        .max_chunk(4 << 20);
    config.cleanup.background = false;
    let mm = MemoryManager::new(config).unwrap();
    mm.record_history(100).unwrap();
    let a = mm.allocate(Layout::from_size_align(2 << 20, 64).unwrap());
    let b = mm.allocate(Layout::from_size_align(1000, 64).unwrap());
    drop(a);
    drop(b);
    mm.trim();
    let d = ReportData::from_snapshot(&mm.snapshot(), &ReportOptions::default()).unwrap();
    let ev = events(&d);
    assert_eq!(
        named(&ev, "i", "peak live bytes")[0]["args"]["bytes"],
        (2 << 20) + 1000
    );
    assert!(!named(&ev, "C", "reserved bytes").is_empty());
    let trims = named(&ev, "i", "trim");
    assert_eq!(trims.len(), 1);
    assert!(trims[0]["args"]["bytes"].as_u64().unwrap() > 0);
    let live = named(&ev, "C", "live bytes");
    let last = live.last().unwrap()["args"].as_object().unwrap();
    assert_eq!(last.values().filter_map(Value::as_u64).sum::<u64>(), 0);
}

/// One track per thread: its name, the allocations and frees of its blocks on it, and a
/// leak instant for what it left live; trims stay process-wide.
#[test]
fn each_thread_gets_its_own_track_with_its_blocks_and_leaks() {
    // Thread 0 allocates 1 and 3 (3 is never freed), thread 2 allocates 2 and frees it.
    let trace = "op,id,size,align,thread,t_ns
a,1,1000,16,0,10
a,2,5000,16,2,20
f,2,0,0,2,30
a,3,700,16,0,40
f,1,0,0,0,50
";
    let d = ReportData::from_trace(trace, &ReportOptions::default()).unwrap();
    let ev = events(&d);
    let names: Vec<(u64, &str)> = named(&ev, "M", "thread_name")
        .iter()
        .map(|e| {
            (
                e["tid"].as_u64().unwrap(),
                e["args"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            (0, "memory (all threads)"),
            (1, "thread 0"),
            (3, "thread 2")
        ]
    );
    let on = |name: &str, tid: u64| -> Vec<u64> {
        named(&ev, "i", name)
            .iter()
            .filter(|e| e["tid"] == tid)
            .map(|e| {
                assert_eq!(e["s"], "t", "{e}");
                e["args"]["id"].as_u64().unwrap_or(0)
            })
            .collect()
    };
    assert_eq!(on("alloc", 1), [1, 3]);
    assert_eq!(on("free", 1), [1]);
    assert_eq!(on("alloc", 3), [2]);
    assert_eq!(on("free", 3), [2]);
    let alloc2 = named(&ev, "i", "alloc")
        .into_iter()
        .find(|e| e["args"]["id"] == 2)
        .unwrap();
    assert_eq!(
        (alloc2["ts"].as_f64(), alloc2["args"]["size"].as_u64()),
        (Some(0.02), Some(5000))
    );
    let leaks = named(&ev, "i", "leak");
    assert_eq!(leaks.len(), 1, "{leaks:?}");
    assert_eq!(leaks[0]["tid"], 1, "thread 0 left block 3 live");
    assert_eq!(leaks[0]["args"]["bytes"], 700);
    assert_eq!(leaks[0]["args"]["ids"], serde_json::json!([3]));
}
