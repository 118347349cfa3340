//! Reports of snapshots: the schema parses back, the history gives the timeline and the
//! exact peak, the pools give the chunk map and leaks, bad files name the field.

use bitnet_report::snapshot::{HistoryKind, Snapshot};
use bitnet_report::{
    MarkerKind, ReportData, ReportError, ReportOptions, SeriesKind, SourceKind, BEFORE_HISTORY,
};
mod common;

use common::sample_snapshot as sample;
use serde_json::{json, Value};

fn report(v: &Value) -> ReportData {
    ReportData::from_snapshot_json(&v.to_string(), &ReportOptions::default()).expect("report")
}

#[test]
fn snapshot_round_trips_through_json() {
    let text = sample().to_string();
    let snap = Snapshot::from_json(&text).expect("parse");
    assert_eq!(snap.history.len(), 8);
    assert_eq!(snap.history[2].kind, HistoryKind::Trim);
    assert_eq!(snap.devices[0].pools[1].strategy.as_deref(), Some("tlsf"));
    let again = Snapshot::from_json(&serde_json::to_string(&snap).unwrap()).expect("reparse");
    assert_eq!(snap, again);
}

#[test]
fn history_gives_the_exact_peak_and_who_was_live_there() {
    let d = report(&sample());
    assert_eq!(d.source, SourceKind::Snapshot);
    let p = d.peak.expect("peak");
    assert_eq!((p.bytes, p.t_ns, p.event_index), (279000, 350, 3));
    let got: Vec<(u64, u64, &str)> = d
        .live_at_peak
        .iter()
        .map(|b| (b.id, b.size, b.series.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (11, 200000, "large"),
            (12, 70000, "large"),
            (1, 5000, BEFORE_HISTORY),
            (2, 3072, BEFORE_HISTORY),
            (10, 1000, "small"),
        ]
    );
    assert_eq!(d.live_at_peak[0].site.as_deref(), Some("b.rs:2"));
    assert_eq!(d.live_at_peak[3].site.as_deref(), Some("d.rs:4"));
    assert_eq!(p.blocks, 5);
}

#[test]
fn timeline_is_split_by_pool_with_what_came_before_the_history() {
    let d = report(&sample());
    assert_eq!(d.timeline.series_kind, SeriesKind::Pool);
    assert_eq!(d.timeline.series, [BEFORE_HISTORY, "small", "large"]);
    let live: Vec<Vec<u64>> = d.timeline.samples.iter().map(|s| s.live.clone()).collect();
    assert_eq!(live[0], [8000, 1000, 0]);
    assert_eq!(live[3], [8000, 1000, 270000]);
    assert_eq!(
        live[4],
        [3000, 1000, 270000],
        "id 1 freed: it was before the history"
    );
    // The last sample is the snapshot itself, the one moment free bytes are known.
    let last = d.timeline.samples.last().unwrap();
    assert_eq!(
        (last.t_ns, last.free, last.largest_free),
        (800, Some(979456), Some(978432))
    );
    let kinds: Vec<(MarkerKind, u64)> = d.markers.iter().map(|m| (m.kind, m.t_ns)).collect();
    assert_eq!(
        kinds,
        [(MarkerKind::Trim, 300), (MarkerKind::Pressure, 600)]
    );
    assert_eq!(d.markers[1].detail.as_deref(), Some("high"));
}

#[test]
fn pools_give_the_chunk_map_and_the_leaks_by_site() {
    let d = report(&sample());
    assert_eq!(d.chunks.len(), 2);
    assert_eq!(
        (d.chunks[0].pool.as_str(), d.chunks[0].blocks.len()),
        ("small", 4)
    );
    assert_eq!(
        (d.chunks[1].pool.as_str(), d.chunks[1].size),
        ("large", 1 << 20)
    );
    let leaks: Vec<(Option<&str>, u64)> = d
        .leaks
        .iter()
        .map(|g| (g.site.as_deref(), g.bytes))
        .collect();
    assert_eq!(
        leaks,
        [
            (Some("c.rs:3"), 70144),
            (Some("d.rs:4"), 3072),
            (Some("a.rs:1"), 1024),
            (None, 64)
        ]
    );
}

#[test]
fn without_history_the_pools_still_draw_one_state() {
    let mut v = sample();
    v["history"] = json!([]);
    let d = report(&v);
    assert!(d.peak.is_none() && d.live_at_peak.is_empty());
    assert_eq!(d.timeline.samples.len(), 1);
    assert_eq!(d.timeline.series, ["small", "large"]);
    assert_eq!(d.timeline.samples[0].live, [1024 + 3072 + 64, 70144]);
}

fn snapshot_error(v: &Value) -> (String, String) {
    match ReportData::from_snapshot_json(&v.to_string(), &ReportOptions::default()) {
        Err(ReportError::Snapshot { path, message }) => (path, message),
        other => panic!("expected a snapshot error, got {other:?}"),
    }
}

#[test]
fn bad_snapshots_name_the_field() {
    let mut v = sample();
    v["devices"][0]["pools"][0]["chunks"][0]["blocks"][1]["size"] = json!("big");
    let (path, msg) = snapshot_error(&v);
    assert_eq!(
        path, "devices[0].pools[0].chunks[0].blocks[1].size",
        "{msg}"
    );

    let mut v = sample();
    v["metrics"].as_object_mut().unwrap().remove("free_bytes");
    let (path, msg) = snapshot_error(&v);
    assert_eq!(path, "metrics");
    assert!(msg.contains("free_bytes"), "{msg}");

    let mut v = sample();
    v["history"][1]["kind"] = json!("allocate");
    let (path, msg) = snapshot_error(&v);
    assert_eq!(path, "history[1].kind", "{msg}");

    let mut v = sample();
    v["history"][0]["id"] = Value::Null;
    assert_eq!(snapshot_error(&v).0, "history[0].id");

    let mut v = sample();
    v["history"][3]["id"] = json!(10);
    let (path, msg) = snapshot_error(&v);
    assert_eq!(path, "history[3].id");
    assert!(msg.contains("already live"), "{msg}");

    let mut v = sample();
    v["devices"][0]["pools"][0]["chunks"][0]["blocks"][1]["offset"] = json!(512);
    let (path, msg) = snapshot_error(&v);
    assert_eq!(path, "devices[0].pools[0].chunks[0].blocks[1].offset");
    assert!(msg.contains("overlaps"), "{msg}");

    let mut v = sample();
    v["devices"][0]["pools"][1]["chunks"][0]["blocks"][1]["size"] = json!(1 << 20);
    let (path, msg) = snapshot_error(&v);
    assert_eq!(path, "devices[0].pools[1].chunks[0].blocks[1].size");
    assert!(msg.contains("outside the chunk"), "{msg}");

    let mut v = sample();
    v["version"] = json!(2);
    assert_eq!(snapshot_error(&v).0, "version");

    let (path, msg) =
        match ReportData::from_snapshot_json("{\"version\": 1,", &ReportOptions::default()) {
            Err(ReportError::Snapshot { path, message }) => (path, message),
            other => panic!("{other:?}"),
        };
    assert!(msg.contains("line 1"), "{path}: {msg}");
}

#[test]
fn load_tells_a_snapshot_from_a_trace() {
    let dir = std::env::temp_dir().join(format!("bitnet-report-snap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("snap.json");
    std::fs::write(&path, format!("\n  {}", sample())).unwrap();
    let d = ReportData::load(&path, &ReportOptions::default());
    let _ = std::fs::remove_dir_all(&dir);
    let d = d.expect("load");
    assert_eq!(
        (d.source, d.title.as_str()),
        (SourceKind::Snapshot, "snap.json")
    );
}

/// The example in docs/report.md is a valid snapshot and reads as it says.
#[test]
fn the_documented_example_parses() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/report.md"))
        .expect("read docs/report.md");
    let start = doc.find("```json\n").expect("a json block") + "```json\n".len();
    let end = start + doc[start..].find("```").expect("end of the block");
    let d = ReportData::from_snapshot_json(&doc[start..end], &ReportOptions::default())
        .expect("the documented snapshot");
    let p = d.peak.expect("peak");
    assert_eq!((p.bytes, p.t_ns), (3_001_472, 2000));
    // id 17 was allocated before the history (its entry was dropped) and is still live.
    let ids: Vec<u64> = d.live_at_peak.iter().map(|b| b.id).collect();
    assert_eq!(ids, [9, 17, 18]);
    assert_eq!(d.timeline.series, [BEFORE_HISTORY, "small", "large"]);
    assert_eq!(d.markers.len(), 2);
}

/// The report of a live manager's own snapshot: the peak and who was live there come
/// from the recorded history, the chunk map and leaks from the pools.
#[test]
fn a_managers_own_snapshot_gives_its_peak_chunks_and_leaks() {
    use bitnet_memory::{MemoryConfig, MemoryManager};
    use std::alloc::Layout;
    let mut config = MemoryConfig::default()
        .min_chunk(8 << 20)
        .max_chunk(8 << 20);
    config.cleanup.background = false;
    let mm = MemoryManager::new(config).unwrap();
    mm.record_history(1000).unwrap();
    let l = |n| Layout::from_size_align(n, 64).unwrap();
    let kept = mm.allocate(l(100_000));
    let big = mm.allocate(l(3 << 20));
    let small: Vec<_> = (0..10).map(|_| mm.allocate(l(512))).collect();
    let peak = 100_000 + (3 << 20) + 10 * 512;
    drop(big);
    drop(small);
    mm.trim();
    let snap = mm.snapshot();
    let d = ReportData::from_snapshot(&snap, &ReportOptions::default()).expect("report");
    let p = d.peak.expect("peak");
    assert_eq!(p.bytes, peak as u64);
    assert_eq!(d.live_at_peak.len(), 12);
    assert_eq!(d.live_at_peak[0].size, 3 << 20, "largest first");
    assert!(d.live_at_peak[0]
        .site
        .as_deref()
        .unwrap()
        .contains("snapshot_report.rs"));
    assert!(d.markers.iter().any(|m| m.kind == MarkerKind::Trim));
    assert!(!d.chunks.is_empty());
    let live_in_chunks: u64 = d
        .chunks
        .iter()
        .flat_map(|c| &c.blocks)
        .filter(|b| b.live)
        .map(|b| b.size)
        .sum();
    assert!(
        live_in_chunks >= 100_000,
        "the kept block is in the chunk map"
    );
    assert_eq!(d.leaks.len(), 1, "{:?}", d.leaks);
    assert_eq!(d.leaks[0].count, 1);
    let html = bitnet_report::render_html(&d);
    assert!(html.contains("peak-label"));
    drop(kept);
}
