//! Reports of snapshots: the schema parses back, the history gives the timeline and the
//! exact peak, the pools give the chunk map and leaks, bad files name the field.

use bitnet_report::snapshot::{HistoryKind, Snapshot};
use bitnet_report::{
    MarkerKind, ReportData, ReportError, ReportOptions, SeriesKind, SourceKind, BEFORE_HISTORY,
};
use serde_json::{json, Value};

fn metrics(live: u64, reserved: u64) -> Value {
    json!({
        "live_bytes": live, "peak_live_bytes": 279000, "reserved_bytes": reserved,
        "peak_reserved_bytes": 2 << 20, "live_allocations": 4, "allocations": 6, "frees": 2,
        "free_bytes": 979456, "largest_free": 978432, "budget": null
    })
}

/// Before the history: id 1 (5000 B, large, freed at t = 400) and id 2 (3000 B, small,
/// still live). Running live bytes: 9000, 209000, 209000 (trim), 279000 (the peak, at
/// t = 350), 274000, 74000, 74000 (pressure), 74050.
fn sample() -> Value {
    let e = |t: u64,
             kind: &str,
             id: Option<u64>,
             size: u64,
             live: u64,
             pool: Option<&str>,
             site: Option<&str>| {
        json!({ "t_ns": t, "kind": kind, "id": id, "size": size, "live_bytes": live,
                "reserved_bytes": 2 << 20, "pool": pool, "site": site })
    };
    let mut pressure = e(600, "pressure", None, 0, 74000, None, None);
    pressure["detail"] = json!("high");
    json!({
        "version": 1,
        "t_ns": 800,
        "metrics": metrics(74050, 2 << 20),
        "devices": [{
            "device": 0,
            "backend": "cpu",
            "metrics": metrics(74050, 2 << 20),
            "pools": [
                { "pool": "small", "chunks": [{ "index": 0, "base_offset": 4096, "size": 65536, "blocks": [
                    { "offset": 0, "size": 1024, "live": true, "size_class": 1024, "allocation_id": 10, "site": "a.rs:1" },
                    { "offset": 1024, "size": 1024, "live": false, "size_class": 1024 },
                    { "offset": 4096, "size": 3072, "live": true, "size_class": 3072, "allocation_id": 2, "site": "d.rs:4" },
                    { "offset": 8192, "size": 64, "live": true, "size_class": 64, "allocation_id": 13 }
                ]}]},
                { "pool": "large", "strategy": "tlsf", "chunks": [{ "index": 0, "base_offset": 1048576, "size": 1048576, "blocks": [
                    { "offset": 0, "size": 70144, "live": true, "allocation_id": 12, "site": "c.rs:3" },
                    { "offset": 70144, "size": 978432, "live": false }
                ]}]}
            ]
        }],
        "history": [
            e(100, "alloc", Some(10), 1000, 9000, Some("small"), Some("a.rs:1")),
            e(200, "alloc", Some(11), 200000, 209000, Some("large"), Some("b.rs:2")),
            e(300, "trim", None, 4096, 209000, None, None),
            e(350, "alloc", Some(12), 70000, 279000, Some("large"), Some("c.rs:3")),
            e(400, "free", Some(1), 5000, 274000, Some("large"), None),
            e(500, "free", Some(11), 200000, 74000, Some("large"), None),
            pressure,
            e(700, "alloc", Some(13), 50, 74050, Some("small"), None)
        ],
        "history_dropped": 12
    })
}

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
