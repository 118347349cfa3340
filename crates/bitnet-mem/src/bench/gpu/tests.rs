//! The GPU bench's arithmetic and verdicts, on rows and a pretend contender (no device).

use super::*;
use crate::bench::workload::StreamBuilder;

fn row(workload: &str, allocator: &str, ns: f64, device: u64, live: u64) -> GpuRow {
    GpuRow {
        workload: workload.into(),
        allocator: allocator.into(),
        pairs: 10,
        median_ns_per_pair: ns,
        min_ns_per_pair: ns,
        max_ns_per_pair: ns,
        peak_live_bytes: live,
        peak_device_bytes: device,
        device_over_live: device as f64 / live as f64,
    }
}

#[test]
fn the_verdict_needs_both_goals() {
    let w = "tensor-mix";
    let met = [
        row(w, Ours::NAME, 100.0, 105, 100),
        row(w, "create-drop", 2_500.0, 100, 100),
    ];
    let v = verdict(w, &met);
    assert!(v.met, "{v:?}");
    assert_eq!(v.speedup_over_create_drop, Some(25.0));
    assert!(verdict_line(&v).contains("met (25.0x"));

    let slow = [
        row(w, Ours::NAME, 100.0, 105, 100),
        row(w, "create-drop", 1_500.0, 100, 100),
    ];
    let v = verdict(w, &slow);
    assert!(!v.met);
    assert!(
        verdict_line(&v).contains("missed (15.0x"),
        "{}",
        verdict_line(&v)
    );
    assert!(
        verdict_line(&v).contains("25% short"),
        "{}",
        verdict_line(&v)
    );

    let fat = [
        row(w, Ours::NAME, 100.0, 120, 100),
        row(w, "create-drop", 2_500.0, 100, 100),
    ];
    let v = verdict(w, &fat);
    assert!(!v.met);
    assert!(
        verdict_line(&v).contains("missed (1.200"),
        "{}",
        verdict_line(&v)
    );

    // A tie with the goal meets it; no create-drop row is no verdict.
    let edge = [
        row(w, Ours::NAME, 100.0, 110, 100),
        row(w, "create-drop", 2_000.0, 100, 100),
    ];
    assert!(verdict(w, &edge).met);
    let v = verdict(w, &edge[..1]);
    assert!(!v.met && v.speedup_over_create_drop.is_none());
    assert!(verdict_line(&v).contains("not measured"));
}

#[test]
fn device_bytes_keep_the_peak_since_the_reset() {
    let mut d = DeviceBytes::default();
    d.add(100);
    d.add(50);
    d.sub(120);
    assert_eq!((d.now(), d.peak()), (30, 150));
    d.reset_peak();
    assert_eq!(d.peak(), 30);
    d.add(10);
    assert_eq!(d.peak(), 40);
}

/// A contender that only counts what it is asked.
#[derive(Default)]
struct Pretend {
    allocs: u64,
    frees: u64,
    submits: u64,
    bytes: DeviceBytes,
    fail_at: Option<u64>,
    released: bool,
}

impl GpuContender for Pretend {
    fn name(&self) -> &'static str {
        "pretend"
    }
    fn alloc(&mut self, _slot: u32, size: usize) -> Result<(), String> {
        self.allocs += 1;
        if self.fail_at == Some(self.allocs) {
            return Err("refused".into());
        }
        self.bytes.add(size as u64);
        Ok(())
    }
    fn free(&mut self, _slot: u32) {
        self.frees += 1;
    }
    fn submit(&mut self) {
        self.submits += 1;
    }
    fn device_bytes(&mut self) -> &mut DeviceBytes {
        &mut self.bytes
    }
    fn release_all(&mut self) {
        self.released = true;
    }
}

fn stream(pairs: usize) -> Stream {
    let mut b = StreamBuilder::new();
    for i in 0..pairs {
        let s = b.alloc(100 + i, 64);
        b.free(s);
    }
    b.finish()
}

#[test]
fn a_run_does_every_operation_and_submits_on_schedule() {
    let s = stream(100); // 200 operations
    let mut p = Pretend::default();
    run_once(&mut p, &s, SUBMIT_EVERY).unwrap();
    assert_eq!((p.allocs, p.frees), (100, 100));
    assert_eq!(
        p.submits,
        200 / SUBMIT_EVERY as u64 + 1,
        "every 64 ops and at the end"
    );
}

#[test]
fn a_refused_allocation_stops_the_run_with_the_contender_named() {
    let s = stream(10);
    let mut p = Pretend {
        fail_at: Some(3),
        ..Pretend::default()
    };
    let e = run_once(&mut p, &s, SUBMIT_EVERY).unwrap_err();
    assert!(e.starts_with("pretend: refused"), "{e}");
    assert!(p.released, "what it held is given back");
}

#[test]
fn measure_takes_medians_per_pair_and_the_peak_of_the_timed_runs() {
    let s = stream(10);
    let mut a = Pretend::default();
    let mut b = Pretend::default();
    let rows = measure("w", &s, &mut [&mut a, &mut b], 1, 3, SUBMIT_EVERY).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(a.allocs, 40, "one warm-up and three timed runs");
    let r = &rows[0];
    assert_eq!(r.pairs, 10);
    assert!(r.min_ns_per_pair <= r.median_ns_per_pair && r.median_ns_per_pair <= r.max_ns_per_pair);
    // Pretend never frees bytes: its peak after the warm-up is what the three runs added.
    let added: u64 = (0..10).map(|i| 100 + i as u64).sum();
    assert_eq!(r.peak_device_bytes, 4 * added);
    assert_eq!(r.peak_live_bytes, s.peak_live);
}

#[test]
fn the_fence_floor_counts_frees_since_the_last_submission() {
    use crate::bench::workload::Op;
    let op = |slot, size, free| Op {
        size,
        slot,
        align_log2: 2,
        free,
    };
    // a(100) f(0) a(100): the first block is pending while the second is allocated,
    // unless a submission came between them.
    let stream = Stream {
        ops: vec![op(0, 100, false), op(0, 0, true), op(1, 100, false)],
        slots: 2,
        ..Stream::default()
    };
    assert_eq!(fence_floor(&stream, 64), 200);
    assert_eq!(fence_floor(&stream, 2), 100, "submitted after the free");
    assert_eq!(fence_floor(&stream, 1), 100);
    let v = GpuVerdict {
        fence_floor_over_live: Some(1.5),
        ..verdict("tensor-mix", &[])
    };
    assert!(
        verdict_line(&v).contains("needs >= 1.500"),
        "{}",
        verdict_line(&v)
    );
}
