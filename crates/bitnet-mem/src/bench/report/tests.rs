//! Tests of the results: the JSON shape, the table, the verdicts, the units.

use super::*;

/// A row of glibc on small-mix, one thread, with made-up figures.
fn sample_row() -> Row {
    Row {
        workload: "small-mix".into(),
        allocator: "glibc".into(),
        threads: 1,
        pairs: 10,
        median_ns_per_pair: 2.0,
        min_ns_per_pair: 1.0,
        max_ns_per_pair: 3.0,
        peak_live_bytes: 100,
        peak_reserved_bytes: 200,
        repeats: 3,
        pairs_per_sec: 5e8,
        events: 20,
        median_ns_per_event: 1.0,
        time_vs_bitnet_memory: Some(1.5),
        reserved_over_live: 2.0,
        resident_measured: true,
        metrics_peak_reserved_bytes: None,
        metrics_peak_live_bytes: None,
        cold_ns_per_event: None,
        faults_per_run: None,
        cold_faults: None,
        refused: None,
    }
}

#[test]
fn json_has_the_stable_shape_and_room_for_sections() {
    let row = sample_row();
    let mut r = Report {
        results: vec![row],
        ..Report::default()
    };
    r.add_section("tracking", serde_json::json!({"overhead": 0.01}))
        .unwrap();
    let v: serde_json::Value = serde_json::to_value(&r).unwrap();
    let row = &v["results"][0];
    for key in [
        "workload",
        "allocator",
        "threads",
        "pairs",
        "median_ns_per_pair",
        "min_ns_per_pair",
        "max_ns_per_pair",
        "peak_live_bytes",
        "peak_reserved_bytes",
    ] {
        assert!(row.get(key).is_some(), "missing {key}");
    }
    assert_eq!(row["allocator"], "glibc");
    assert_eq!(v["tracking"]["overhead"], 0.01);
    let back: Report = serde_json::from_value(v).unwrap();
    assert_eq!(back.results, r.results);
    assert!(back.sections.contains_key("tracking"));
}

fn row(workload: &str, allocator: &str, threads: usize, ratio: f64) -> Row {
    Row {
        workload: workload.into(),
        allocator: allocator.into(),
        threads,
        pairs: 10,
        median_ns_per_pair: 1.0,
        min_ns_per_pair: 1.0,
        max_ns_per_pair: 1.0,
        peak_live_bytes: 1000,
        peak_reserved_bytes: (ratio * 1000.0) as u64,
        repeats: 1,
        pairs_per_sec: 1.0,
        events: 20,
        median_ns_per_event: 0.5,
        time_vs_bitnet_memory: None,
        reserved_over_live: ratio,
        resident_measured: true,
        metrics_peak_reserved_bytes: (allocator == "bitnet-memory").then_some(1500),
        metrics_peak_live_bytes: None,
        cold_ns_per_event: None,
        faults_per_run: None,
        cold_faults: None,
        refused: None,
    }
}

/// A replay row: warm and cold ns per event, resident growth / live peak.
fn replay_row(allocator: &str, warm: f64, cold: f64, ratio: f64) -> Row {
    Row {
        median_ns_per_event: warm,
        cold_ns_per_event: Some(cold),
        ..row("replay", allocator, 1, ratio)
    }
}

#[test]
fn trace_verdicts() {
    let peers = || {
        vec![
            replay_row("glibc", 4000.0, 3500.0, 1.25),
            replay_row("mimalloc", 650.0, 2200.0, 1.65),
            replay_row("limit", 400.0, 400.0, 3.26),
        ]
    };
    let with = |ours: Row| {
        let mut rows = peers();
        rows.insert(0, ours);
        trace_verdict(&rows).expect("ours and peers measured")
    };
    let v = with(replay_row("bitnet-memory", 600.0, 1200.0, 1.06));
    assert!(v.met, "{}", v.verdict);
    assert_eq!(v.peers, ["glibc", "mimalloc"], "the limit is not a peer");
    assert!(v.verdict.starts_with("met (ours 1.06"), "{}", v.verdict);

    let v = with(replay_row("bitnet-memory", 600.0, 1200.0, 1.11));
    assert!(!v.met);
    assert!(v.verdict.contains("ours 1.11 > 1.10"), "{}", v.verdict);

    // A tie is not faster; warm and cold are judged apart.
    let v = with(replay_row("bitnet-memory", 650.0, 1200.0, 1.06));
    assert!(!v.met);
    assert!(v.verdict.contains("warm: mimalloc 650"), "{}", v.verdict);
    assert!(!v.verdict.contains("cold"), "{}", v.verdict);
    let v = with(replay_row("bitnet-memory", 600.0, 2500.0, 1.06));
    assert!(v.verdict.contains("cold: mimalloc"), "{}", v.verdict);
    assert!(!v.verdict.contains("glibc"), "{}", v.verdict);

    // Nothing to judge by: no peer, or no fresh processes.
    let ours = replay_row("bitnet-memory", 600.0, 1200.0, 1.06);
    assert!(trace_verdict(std::slice::from_ref(&ours)).is_none());
    let mut no_children = peers();
    no_children.push(Row {
        resident_measured: false,
        ..ours
    });
    assert!(trace_verdict(&no_children).is_none());
}

#[test]
fn ratio_verdicts() {
    let mut rows = vec![
        // churn: met.
        row("churn", "bitnet-memory", 1, 1.05),
        row("churn", "glibc", 1, 1.2),
        row("churn", "mimalloc", 1, 1.7),
        row("churn", "jemalloc", 1, 1.4),
        row("churn", "limit", 1, 1.0),
        // tensor-mix: over the target, and glibc is lower.
        row("tensor-mix", "bitnet-memory", 1, 1.3),
        row("tensor-mix", "glibc", 1, 1.01),
        row("tensor-mix", "jemalloc", 1, 1.5),
        // bitnet-inference: under the target but a peer ties.
        row("bitnet-inference", "bitnet-memory", 1, 1.08),
        row("bitnet-inference", "jemalloc", 1, 1.08),
        // Two-thread rows and other workloads are not in the section.
        row("churn", "bitnet-memory", 2, 3.0),
        row("small-mix", "bitnet-memory", 1, 3.0),
    ];
    let r = ratio_rows(&rows);
    let names: Vec<&str> = r.iter().map(|r| r.workload.as_str()).collect();
    assert_eq!(names, ["tensor-mix", "bitnet-inference", "churn"]);
    assert_eq!(r[2].met, Some(true), "{}", r[2].verdict);
    assert_eq!(r[2].verdict, "met");
    assert_eq!(r[2].reserved_over_live["limit"], 1.0);
    assert_eq!(r[2].ours_metrics_reserved_over_live, Some(1.5));
    assert_eq!(r[0].met, Some(false));
    assert!(
        r[0].verdict.contains("ours 1.30 > 1.10"),
        "{}",
        r[0].verdict
    );
    assert!(r[0].verdict.contains("glibc 1.01"), "{}", r[0].verdict);
    assert!(!r[0].verdict.contains("jemalloc"), "{}", r[0].verdict);
    assert_eq!(r[1].met, Some(false), "a tie is not lower");
    assert!(r[1].verdict.contains("jemalloc 1.08"), "{}", r[1].verdict);
    // The limit does not count: ours above it is still met.
    assert!(!r[2].verdict.contains("limit"));
    let text = ratio_table(
        &r,
        &["bitnet-memory", "glibc", "mimalloc", "jemalloc", "limit"],
    );
    assert!(text.contains("churn"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("tensor-mix") && l.contains(" - ")),
        "{text}"
    );
    // Without resident figures there is no verdict.
    for x in &mut rows {
        x.resident_measured = false;
    }
    assert!(ratio_rows(&rows)
        .iter()
        .all(|r| r.met.is_none() && r.verdict == "n/a"));
    assert!(ratio_rows(&[]).is_empty());
}

#[test]
fn the_table_shows_faults_where_counted() {
    let row = |allocator: &str, faults: Option<u64>, cold: Option<u64>| Row {
        allocator: allocator.into(),
        time_vs_bitnet_memory: None,
        faults_per_run: faults,
        cold_faults: cold,
        ..sample_row()
    };
    let t = table(&[
        row("ours", Some(1831), Some(16826)),
        row("peer", None, None),
    ]);
    let lines: Vec<&str> = t.lines().collect();
    assert!(lines[0].contains("vs ours faults cold faults"), "{t}");
    // workload, allocator, thr, pairs, three times, vs ours, then the two fault columns.
    let ours: Vec<&str> = lines[1].split_whitespace().collect();
    let peer: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!((ours[8], ours[9]), ("1831", "16826"));
    assert_eq!((peer[8], peer[9]), ("-", "-"));
    assert!(notes(&[]).contains("cold faults: of the cold run"));
    // Columns line up: each figure ends where its header does (right-aligned).
    let end = |line: &str, word: &str| line.find(word).map(|i| i + word.len());
    assert_eq!(end(lines[0], "faults"), end(lines[1], "1831"), "{t}");
}

#[test]
fn a_refused_row_says_refused_and_why() {
    let refused = Row {
        allocator: "glibc".into(),
        refused: Some("at event 2: refused 1099511627776 B (1.0 TiB)".into()),
        ..sample_row()
    };
    let rows = [sample_row(), refused];
    let t = table(&rows);
    let row = t.lines().nth(2).expect("two rows");
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[1], "glibc", "{t}");
    assert_eq!(cells[4], REFUSED, "{t}");
    assert!(!t.contains("NaN") && !t.contains("inf"), "{t}");
    let why = refusals(&rows);
    assert_eq!(why.lines().count(), 1, "{why}");
    assert!(
        why.starts_with("glibc could not run ") && why.contains("at event 2: refused"),
        "{why}"
    );
}

#[test]
fn units() {
    assert_eq!(bytes(512), "512 B");
    assert_eq!(bytes(1536), "1.5 KiB");
    assert_eq!(bytes(300 << 20), "300 MiB");
    assert_eq!(ns(12.34), "12.3");
    assert_eq!(ns(2_500_000.0), "2.50 ms");
}
