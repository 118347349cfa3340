//! Reports of allocation traces: exact peak, live at peak, series, leaks, replay,
//! downsampling, and errors that name the line.

mod common;

use bitnet_report::{
    ReplayOptions, ReportData, ReportError, ReportOptions, SeriesKind, SizeBand, SourceKind,
};
use common::*;
use std::collections::HashMap;
use std::fmt::Write;

fn report(text: &str) -> ReportData {
    ReportData::from_trace(text, &ReportOptions::default()).expect("report")
}

#[test]
fn small_trace_gives_the_hand_computed_peak_and_blocks() {
    let d = report(SMALL_TRACE);
    assert_eq!(d.source, SourceKind::Trace);
    let p = d.peak.expect("peak");
    assert_eq!(
        (p.bytes, p.t_ns, p.event_index, p.blocks),
        (SMALL_PEAK, SMALL_PEAK_T, 4, 3)
    );
    let ids: Vec<u64> = d.live_at_peak.iter().map(|b| b.id).collect();
    assert_eq!(ids, SMALL_PEAK_IDS);
    assert_eq!(d.live_at_peak[0].size, 2_000_000);
    assert_eq!(d.live_at_peak[0].thread, Some(1));
    assert_eq!(d.timeline.series_kind, SeriesKind::SizeBand);
    assert_eq!(d.timeline.series, SMALL_SERIES);
    assert_eq!(d.timeline.events, 7);
    // Few events: every state is kept, and the split sums to the running total.
    let totals: Vec<u64> = d.timeline.samples.iter().map(|s| s.live_total()).collect();
    assert_eq!(
        totals,
        [1000, 101000, 2101000, 2100000, 2150000, 150000, 150300]
    );
    assert_eq!(d.timeline.samples[4].live, [0, 50000, 100000, 2000000]);
    assert!(d.timeline.samples.iter().all(|s| s.reserved.is_none()));
    // Left at the end: ids 2, 4, 5 of thread 0.
    assert_eq!(d.leaks.len(), 1);
    let l = &d.leaks[0];
    assert_eq!(
        (l.thread, l.count, l.bytes, l.largest),
        (Some(0), 3, 150300, 100000)
    );
    assert_eq!(l.example_ids, [2, 4, 5]);
    assert!(d.chunks.is_empty());
}

#[test]
fn out_of_order_stamps_keep_the_timeline_monotonic() {
    let d = report("a,1,10,8,0,100\na,2,10,8,1,90\nf,1,0,0,0,120\n");
    let t: Vec<u64> = d.timeline.samples.iter().map(|s| s.t_ns).collect();
    assert_eq!(t, [100, 100, 120]);
}

#[test]
fn bad_traces_name_the_line() {
    let cases = [
        (
            "op,id,size,align,thread,t_ns\na,1,8,8,0,1\na,1,8,8,0,2\n",
            3,
            "already live",
        ),
        ("a,1,8,8,0,1\nf,2,0,0,0,2\n", 2, "not live"),
        ("a,1,8,8,0,1\nf,1,0,0,0,2\nf,1,0,0,0,3\n", 3, "not live"),
        ("a,1,8,8,0,1\na,2,8,8,0,two\n", 2, "t_ns"),
        ("a,1,472,16,0\n", 1, "expected 6 fields"),
        ("# hand-made\na,1,x,16,0,1\n", 2, "field `size`: \"x\""),
        ("a,1,4,16,0,1\r\nm,2,4,16,0,2\r\n", 2, "unknown op \"m\""),
        ("a,1,4,3,0,1\n", 1, "power of two"),
        ("a,1,4,16,-1,1\n", 1, "field `thread`: \"-1\""),
    ];
    for (text, line, words) in cases {
        match ReportData::from_trace(text, &ReportOptions::default()) {
            Err(e @ ReportError::Trace { line: l, .. }) => {
                assert_eq!(l, line, "{text:?}: {e}");
                let msg = e.to_string();
                assert!(
                    msg.contains(words) && msg.contains(&format!("line {line}")),
                    "{msg}"
                );
            }
            other => panic!("{text:?}: expected a trace error, got {other:?}"),
        }
    }
}

#[test]
fn comments_blank_lines_and_crlf_are_read_like_the_plain_trace() {
    let plain = report(SMALL_TRACE);
    let text = format!(
        "# recorded by hand\r\n\r\n{}",
        SMALL_TRACE.replace('\n', "\r\n\r\n")
    );
    let d = report(&text);
    assert_eq!(d.peak, plain.peak);
    assert_eq!(d.timeline.samples, plain.timeline.samples);
    // Lines still count: the 2 MB block is on line 4 of the plain trace, and on line 9 here.
    let tight = ReplayOptions {
        config: bitnet_memory::MemoryConfig::default().budget(1 << 20),
        ..ReplayOptions::default()
    };
    let opts = ReportOptions::default().replay(tight);
    for (text, at) in [(SMALL_TRACE.to_string(), 4), (text, 9)] {
        match ReportData::from_trace(&text, &opts).unwrap_err() {
            ReportError::Replay { line, .. } => assert_eq!(line, at),
            other => panic!("expected a replay error, got {other}"),
        }
    }
}

#[test]
fn load_reads_a_file_and_names_a_missing_one() {
    let dir = TempDir::new("load");
    let path = dir.0.join("t.csv");
    std::fs::write(&path, SMALL_TRACE).expect("write");
    let d = ReportData::load(&path, &ReportOptions::default()).expect("load");
    assert_eq!(d.title, "t.csv");
    assert_eq!(d.peak.map(|p| p.bytes), Some(SMALL_PEAK));
    let missing = dir.0.join("nope.csv");
    let err = ReportData::load(&missing, &ReportOptions::default()).unwrap_err();
    assert!(matches!(err, ReportError::Io { .. }), "{err}");
    assert!(err.to_string().contains("nope.csv"), "{err}");
}

#[test]
fn replay_adds_reserved_and_free_figures() {
    let opts = ReportOptions::default().replay(ReplayOptions {
        metrics_every: 2,
        ..ReplayOptions::default()
    });
    let d = ReportData::from_trace(SMALL_TRACE, &opts).expect("report");
    assert_eq!(d.source, SourceKind::TraceReplay);
    // Read after events 2, 4, 6 (every 2nd), after the peak (event 5) and the last (7).
    let read: Vec<usize> = d
        .timeline
        .samples
        .iter()
        .enumerate()
        .filter(|(_, s)| s.reserved.is_some())
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(read, [2, 4, 5, 6, 7]);
    for s in d.timeline.samples.iter().filter(|s| s.reserved.is_some()) {
        let (r, f, l) = (
            s.reserved.unwrap(),
            s.free.unwrap(),
            s.largest_free.unwrap(),
        );
        assert!(
            r >= s.live_total(),
            "reserved {r} < live {}",
            s.live_total()
        );
        assert!(f <= r && l <= r, "free {f}, largest {l}, reserved {r}");
    }
    let keys: Vec<&str> = d.summary.iter().map(|s| s.key.as_str()).collect();
    assert!(keys.contains(&"peak reserved bytes (manager)"), "{keys:?}");
    assert!(keys.contains(&"reserved at live peak"), "{keys:?}");
}

/// A long trace with one short spike: the drawn timeline is small, the spike and the
/// exact peak survive.
#[test]
fn downsampling_bounds_the_samples_and_keeps_the_spike() {
    let mut text = String::from("op,id,size,align,thread,t_ns\n");
    let mut id = 0u64;
    // 50,000 pairs: a 4 KiB block allocated and freed, with a 64 MiB spike at pair 31,337.
    for i in 0..50_000u64 {
        id += 1;
        let size = if i == 31_337 {
            64 << 20
        } else {
            4096 + i % 100
        };
        writeln!(text, "a,{id},{size},64,0,{}", i * 100).unwrap();
        writeln!(text, "f,{id},0,0,0,{}", i * 100 + 50).unwrap();
    }
    let opts = ReportOptions::default().max_buckets(500);
    let d = ReportData::from_trace(&text, &opts).expect("report");
    assert_eq!(d.timeline.events, 100_000);
    assert!(
        d.timeline.samples.len() <= 500 * 10,
        "{} samples drawn",
        d.timeline.samples.len()
    );
    let p = d.peak.expect("peak");
    assert_eq!((p.bytes, p.t_ns), (64 << 20, 3_133_700));
    assert!(d
        .timeline
        .samples
        .iter()
        .any(|s| s.live_total() == 64 << 20));
    assert_eq!(d.live_at_peak.len(), 1);
    assert_eq!(
        d.timeline.series,
        [SizeBand::From4KiB.name(), SizeBand::From16MiB.name()]
    );
    assert!(d.leaks.is_empty());
}

/// The recorded numpy trace against a plain recomputation of its peak.
#[test]
fn numpy_trace_peak_matches_a_plain_recount() {
    let text = std::fs::read_to_string(numpy_trace()).expect("read numpy-serving.csv");
    let (mut live, mut cur, mut peak) = (HashMap::new(), 0u64, 0u64);
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let size: u64 = f[2].parse().unwrap();
        if f[0] == "a" {
            live.insert(f[1].to_string(), size);
            cur += size;
            peak = peak.max(cur);
        } else {
            cur -= live.remove(f[1]).unwrap();
        }
    }
    let d = report(&text);
    assert_eq!(d.peak.map(|p| p.bytes), Some(peak));
    assert_eq!(d.timeline.events, text.lines().count() as u64 - 1);
    let sum: u64 = d.live_at_peak.iter().map(|b| b.size).sum();
    assert_eq!(sum, peak, "blocks live at the peak add up to it");
    assert_eq!(
        d.leaks.iter().map(|g| g.count).sum::<u64>(),
        live.len() as u64
    );
    assert_eq!(d.leaks.iter().map(|g| g.bytes).sum::<u64>(), cur);
    assert!(d.timeline.samples.len() < 20_000);
}

#[test]
fn an_empty_trace_gives_an_empty_report_that_still_renders() {
    let d = report("op,id,size,align,thread,t_ns\n");
    assert!(d.peak.is_none() && d.timeline.samples.is_empty() && d.leaks.is_empty());
    assert!(d.timeline.series.is_empty());
    let html = bitnet_report::render_html(&d);
    assert!(html.contains("\"peak\":null"));
    let v: serde_json::Value = serde_json::from_str(&bitnet_report::render_perfetto(&d)).unwrap();
    assert_eq!(
        v["traceEvents"].as_array().map(Vec::len),
        Some(1),
        "only the process name"
    );
}

#[test]
fn a_bad_manager_config_and_a_failing_replay_are_errors() {
    let bad = ReplayOptions {
        config: bitnet_memory::MemoryConfig::default().min_chunk(1000),
        ..ReplayOptions::default()
    };
    let err =
        ReportData::from_trace(SMALL_TRACE, &ReportOptions::default().replay(bad)).unwrap_err();
    assert!(matches!(err, ReportError::Manager(_)), "{err}");
    // A 1 MiB budget: the 100 B block fits, the 2 MiB one (line 3) cannot.
    let tight = ReplayOptions {
        config: bitnet_memory::MemoryConfig::default().budget(1 << 20),
        ..ReplayOptions::default()
    };
    let trace = "op,id,size,align,thread,t_ns\na,1,100,16,0,0\na,2,2097152,64,0,10\n";
    let err = ReportData::from_trace(trace, &ReportOptions::default().replay(tight)).unwrap_err();
    match &err {
        ReportError::Replay { line, message } => {
            assert_eq!(*line, 3, "{err}");
            assert!(message.contains("budget"), "{err}");
        }
        other => panic!("expected a replay error, got {other}"),
    }
}
