//! Results: one [`Row`] per workload, allocator and thread count; a table for people and a
//! JSON document (`{"results": [...]}`, with room for sections beside `results`).

use serde::{Deserialize, Serialize};
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
    /// bitnet-memory only: peak reserved bytes by its own metrics (chunks held, touched or not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_peak_reserved_bytes: Option<u64>,
    /// bitnet-memory only: peak live bytes by its own metrics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_peak_live_bytes: Option<u64>,
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
        "{:<16} {:<13} {:>3} {:>8} {:>10} {:>10} {:>10} {:>8} {:>10} {:>10} {:>8}",
        "workload",
        "allocator",
        "thr",
        "pairs",
        "median ns",
        "min ns",
        "max ns",
        "vs ours",
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
            "{:<16} {:<13} {:>3} {:>8} {:>10} {:>10} {:>10} {:>8} {:>10} {:>10} {:>8}",
            r.workload,
            r.allocator,
            r.threads,
            r.pairs,
            ns(r.median_ns_per_pair),
            ns(r.min_ns_per_pair),
            ns(r.max_ns_per_pair),
            vs,
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
         run in a fresh process; res/live: peak res / peak live.\n",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_stable_shape_and_room_for_sections() {
        let row = Row {
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
        };
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

    #[test]
    fn units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(300 << 20), "300 MiB");
        assert_eq!(ns(12.34), "12.3");
        assert_eq!(ns(2_500_000.0), "2.50 ms");
    }
}
