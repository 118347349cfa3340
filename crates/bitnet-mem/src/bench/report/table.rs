//! The main table of `bench` for people, its notes, and the units both it and `replay`
//! print in.

use super::Row;
use std::fmt::Write as _;

/// Bytes with a binary unit, three significant digits (the library's formatter).
pub fn bytes(b: u64) -> String {
    bitnet_memory::metrics::fmt_bytes(b as usize)
}

/// Nanoseconds, readable at any size.
pub fn ns(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} ms", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1} us", v / 1e3)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The table of `rows`, grouped as given.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:<13} {:>3} {:>8} {:>10} {:>10} {:>10} {:>8} {:>8} {:>11} {:>10} {:>10} {:>8}",
        "workload",
        "allocator",
        "thr",
        "pairs",
        "median ns",
        "min ns",
        "max ns",
        "vs ours",
        "faults",
        "cold faults",
        "peak live",
        "peak res",
        "res/live"
    );
    let mut last = None;
    for r in rows {
        if last.is_some() && last != Some((&r.workload, r.threads)) {
            out.push('\n');
        }
        last = Some((&r.workload, r.threads));
        let vs = r
            .time_vs_bitnet_memory
            .map_or("-".to_string(), |v| format!("{v:.2}x"));
        let (res, ratio) = if r.resident_measured {
            (
                bytes(r.peak_reserved_bytes),
                format!("{:.2}", r.reserved_over_live),
            )
        } else {
            ("-".into(), "-".into())
        };
        let _ = writeln!(
            out,
            "{:<16} {:<13} {:>3} {:>8} {:>10} {:>10} {:>10} {:>8} {:>8} {:>11} {:>10} {:>10} {:>8}",
            r.workload,
            r.allocator,
            r.threads,
            r.pairs,
            ns(r.median_ns_per_pair),
            ns(r.min_ns_per_pair),
            ns(r.max_ns_per_pair),
            vs,
            r.faults_per_run.map_or("-".into(), |f| f.to_string()),
            r.cold_faults.map_or("-".into(), |f| f.to_string()),
            bytes(r.peak_live_bytes),
            res,
            ratio
        );
    }
    out
}

/// Notes under the table: what the columns mean and bitnet-memory's own reserved figure.
pub fn notes(rows: &[Row]) -> String {
    let mut out = String::from(
        "ns: wall time per alloc+free pair (all threads); vs ours: median time over \
         bitnet-memory's (>1: bitnet-memory is faster);\npeak res: growth of VmHWM over one \
         run in a fresh process (the median over --cold-runs processes); res/live: peak res / \
         peak live.\nfaults: page faults of one timed run (median over the repeats), each a page \
         first touched or touched again after the allocator handed it back; cold faults: of the \
         cold run.\n",
    );
    for r in rows {
        if let Some(m) = r.metrics_peak_reserved_bytes {
            let _ = writeln!(
                out,
                "bitnet-memory {} x{}: metrics peak reserved {} (resident growth {})",
                r.workload,
                r.threads,
                bytes(m),
                bytes(r.peak_reserved_bytes)
            );
        }
    }
    out
}
