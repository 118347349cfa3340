//! Results: one [`Row`] per workload, allocator and thread count; a table for people and a
//! JSON document (`{"results": [...]}`, with room for sections beside `results`).

use crate::bench::contenders::Kind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// One allocator on one workload at one thread count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Workload name.
    pub workload: String,
    /// Allocator name.
    pub allocator: String,
    /// Threads (each with its own stream; cross-thread: producer/consumer pairs).
    pub threads: usize,
    /// Alloc+free pairs of one run, all threads together.
    pub pairs: u64,
    /// Median over repeats of wall time / pairs.
    pub median_ns_per_pair: f64,
    /// Fastest repeat.
    pub min_ns_per_pair: f64,
    /// Slowest repeat.
    pub max_ns_per_pair: f64,
    /// Highest live requested bytes (sum over threads of each stream's peak).
    pub peak_live_bytes: u64,
    /// Growth of the resident high-water mark over one run in a fresh process.
    pub peak_reserved_bytes: u64,
    /// Timed repeats.
    pub repeats: usize,
    /// Pairs per second at the median.
    pub pairs_per_sec: f64,
    /// Timed operations (allocations and frees) of one run.
    pub events: u64,
    /// Median wall time / events.
    pub median_ns_per_event: f64,
    /// This allocator's median time over bitnet-memory's (> 1: we are faster).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_vs_bitnet_memory: Option<f64>,
    /// `peak_reserved_bytes / peak_live_bytes`.
    pub reserved_over_live: f64,
    /// Whether `peak_reserved_bytes` was measured (`--no-resident` turns it off).
    pub resident_measured: bool,
    /// bitnet-memory only: peak reserved bytes by its own metrics (pages under the blocks it
    /// handed out, less those handed back).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_peak_reserved_bytes: Option<u64>,
    /// bitnet-memory only: peak live bytes by its own metrics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_peak_live_bytes: Option<u64>,
    /// Wall time / events of the resident-memory run: one cold run in a fresh process,
    /// where every page is faulted in (the timed repeats run warm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_ns_per_event: Option<f64>,
    /// Page faults of one timed (warm) run, all threads: the median over the repeats.
    /// A fault is a page the allocator hands out that the process did not have resident
    /// (first touched, or touched again after the allocator gave it back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults_per_run: Option<u64>,
    /// Page faults of the cold run in a fresh process (the median over the children).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_faults: Option<u64>,
}

/// The JSON document: `results` plus any sections later tools add beside it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// The benchmark rows.
    pub results: Vec<Row>,
    /// Other top-level sections, by name.
    #[serde(flatten)]
    pub sections: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    /// Adds (or replaces) a top-level section beside `results`.
    pub fn add_section(&mut self, name: &str, value: impl Serialize) -> serde_json::Result<()> {
        self.sections
            .insert(name.to_string(), serde_json::to_value(value)?);
        Ok(())
    }

    /// Writes the document, pretty-printed.
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, text + "\n")
    }
}

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

/// The workloads of the peak reserved / peak live section, in table order.
pub const RATIO_WORKLOADS: [&str; 3] = ["tensor-mix", "bitnet-inference", "churn"];
/// The allocators ours must be lower than (the `limit` row is shown but not compared: it
/// is a speed floor that pre-fills every size class, not an allocator).
pub const RATIO_PEERS: [&str; 3] = ["glibc", "mimalloc", "jemalloc"];
/// Ours' target for peak reserved / peak live.
pub const RATIO_TARGET: f64 = 1.10;

/// One workload of the peak reserved / peak live section (one thread, where the peak of
/// live bytes is exact).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatioRow {
    /// Workload name.
    pub workload: String,
    /// Threads of the rows it comes from (1).
    pub threads: usize,
    /// Peak live requested bytes.
    pub peak_live_bytes: u64,
    /// Per allocator that was measured: peak reserved (growth of VmHWM in a fresh
    /// process) / peak live; the `reserved_over_live` of its row.
    pub reserved_over_live: BTreeMap<String, f64>,
    /// bitnet-memory's own metrics: peak reserved bytes (pages handed out) / peak live.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ours_metrics_reserved_over_live: Option<f64>,
    /// The target ours must not exceed.
    pub target: f64,
    /// Ours at most `target` and lower than every peer measured; `None` when ours was not
    /// measured.
    pub met: Option<bool>,
    /// `met`, `missed (...)` with the reasons, or `n/a`.
    pub verdict: String,
}

/// Why ours' peak reserved / peak live misses [`RATIO_TARGET`], if it does.
fn over_target(ours: f64) -> Option<String> {
    (ours > RATIO_TARGET).then(|| format!("ours {ours:.2} > {RATIO_TARGET:.2}"))
}

/// A verdict from the reasons for a miss: `(true, met)` when there are none, else
/// `(false, "missed (reason; ...)")`.
fn judge(why: &[String], met: String) -> (bool, String) {
    if why.is_empty() {
        (true, met)
    } else {
        (false, format!("missed ({})", why.join("; ")))
    }
}

/// The peak reserved / peak live section from the 1-thread rows of [`RATIO_WORKLOADS`].
pub fn ratio_rows(rows: &[Row]) -> Vec<RatioRow> {
    let ours_name = Kind::BitnetMemory.name();
    let mut out = Vec::new();
    for w in RATIO_WORKLOADS {
        let rs: Vec<&Row> = rows
            .iter()
            .filter(|r| r.workload == w && r.threads == 1)
            .collect();
        let Some(first) = rs.first() else {
            continue;
        };
        let ratios: BTreeMap<String, f64> = rs
            .iter()
            .filter(|r| r.resident_measured)
            .map(|r| (r.allocator.clone(), r.reserved_over_live))
            .collect();
        let ours_row = rs.iter().find(|r| r.allocator == ours_name);
        let metrics = ours_row.and_then(|r| {
            let m = r.metrics_peak_reserved_bytes?;
            (r.peak_live_bytes > 0).then(|| m as f64 / r.peak_live_bytes as f64)
        });
        let (met, verdict) = match ratios.get(ours_name) {
            None => (None, "n/a".to_string()),
            Some(&ours) => {
                let mut why: Vec<String> = over_target(ours).into_iter().collect();
                let lower: Vec<String> = RATIO_PEERS
                    .iter()
                    .filter_map(|p| ratios.get(*p).map(|&v| (p, v)))
                    .filter(|&(_, v)| v <= ours)
                    .map(|(p, v)| format!("{p} {v:.2}"))
                    .collect();
                if !lower.is_empty() {
                    why.push(format!("peers <= ours: {}", lower.join(", ")));
                }
                let (met, verdict) = judge(&why, "met".to_string());
                (Some(met), verdict)
            }
        };
        out.push(RatioRow {
            workload: w.to_string(),
            threads: 1,
            peak_live_bytes: first.peak_live_bytes,
            reserved_over_live: ratios,
            ours_metrics_reserved_over_live: metrics,
            target: RATIO_TARGET,
            met,
            verdict,
        });
    }
    out
}

/// The trace target: ours at most [`RATIO_TARGET`] resident growth over the live peak, and
/// faster per event than every peer measured ([`RATIO_PEERS`]), warm and cold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceVerdict {
    /// The bound on ours' resident growth / live peak.
    pub target: f64,
    /// Ours' resident growth / live peak.
    pub reserved_over_live: f64,
    /// The peers ours was compared with.
    pub peers: Vec<String>,
    /// Whether every part holds.
    pub met: bool,
    /// `met (...)` or `missed (...)`, with each figure that decided it.
    pub verdict: String,
}

/// The trace target over the rows of one `replay`; `None` without ours, without a peer, or
/// without the fresh processes (no resident or cold figure to judge by).
pub fn trace_verdict(rows: &[Row]) -> Option<TraceVerdict> {
    let ours = rows
        .iter()
        .find(|r| r.allocator == Kind::BitnetMemory.name())?;
    let ours_cold = ours.cold_ns_per_event.filter(|_| ours.resident_measured)?;
    let peers: Vec<&Row> = rows
        .iter()
        .filter(|r| RATIO_PEERS.contains(&r.allocator.as_str()))
        .collect();
    if peers.is_empty() {
        return None;
    }
    let mut why: Vec<String> = over_target(ours.reserved_over_live).into_iter().collect();
    for p in &peers {
        if p.median_ns_per_event <= ours.median_ns_per_event {
            why.push(format!(
                "warm: {} {} <= ours {} ns/event",
                p.allocator,
                ns(p.median_ns_per_event),
                ns(ours.median_ns_per_event)
            ));
        }
        if let Some(c) = p.cold_ns_per_event.filter(|&c| c <= ours_cold) {
            why.push(format!(
                "cold: {} {} <= ours {} ns/event",
                p.allocator,
                ns(c),
                ns(ours_cold)
            ));
        }
    }
    let names: Vec<String> = peers.iter().map(|p| p.allocator.clone()).collect();
    let (met, verdict) = judge(
        &why,
        format!(
            "met (ours {:.2}; faster per event than {}, warm and cold)",
            ours.reserved_over_live,
            names.join(", ")
        ),
    );
    Some(TraceVerdict {
        target: RATIO_TARGET,
        reserved_over_live: ours.reserved_over_live,
        peers: names,
        met,
        verdict,
    })
}

/// The peak reserved / peak live section as text: a column per allocator in `allocators`
/// order (those with no figure on a workload read `-`).
pub fn ratio_table(rows: &[RatioRow], allocators: &[&str]) -> String {
    let mut out = format!(
        "\npeak reserved / peak live (1 thread; reserved = growth of VmHWM in a fresh process; \
         target: bitnet-memory <= {RATIO_TARGET:.2} and lower than {}):\n",
        RATIO_PEERS.join(", ")
    );
    if rows.is_empty() {
        out += "  (no 1-thread run of tensor-mix, bitnet-inference or churn)\n";
        return out;
    }
    let _ = write!(out, "{:<16} {:>10}", "workload", "peak live");
    for a in allocators {
        let _ = write!(out, " {a:>13}");
    }
    let _ = writeln!(out, " {:>13}  verdict", "ours metrics");
    for r in rows {
        let _ = write!(out, "{:<16} {:>10}", r.workload, bytes(r.peak_live_bytes));
        for a in allocators {
            let v = r
                .reserved_over_live
                .get(*a)
                .map_or("-".to_string(), |v| format!("{v:.2}"));
            let _ = write!(out, " {v:>13}");
        }
        let m = r
            .ours_metrics_reserved_over_live
            .map_or("-".to_string(), |v| format!("{v:.2}"));
        let _ = writeln!(out, " {m:>13}  {}", r.verdict);
    }
    out += "ours metrics: bitnet-memory's own peak reserved bytes (pages under the blocks it \
            handed out, less those handed back) / peak live; limit: pre-filled size classes, \
            shown, not compared.\n";
    out
}

#[cfg(test)]
mod tests {
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
        assert!(lines[0].contains("vs ours   faults cold faults"));
        // workload, allocator, thr, pairs, three times, vs ours, then the two fault columns.
        let ours: Vec<&str> = lines[1].split_whitespace().collect();
        let peer: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!((ours[8], ours[9]), ("1831", "16826"));
        assert_eq!((peer[8], peer[9]), ("-", "-"));
        assert!(notes(&[]).contains("cold faults: of the cold run"));
    }

    #[test]
    fn units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(300 << 20), "300 MiB");
        assert_eq!(ns(12.34), "12.3");
        assert_eq!(ns(2_500_000.0), "2.50 ms");
    }
}
