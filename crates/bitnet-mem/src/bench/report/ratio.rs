//! The peak reserved / peak live section of `bench`: ours against the target and the peers
//! on the workloads where footprint matters, one thread.

use super::target::{judge, over_target, RATIO_PEERS, RATIO_TARGET};
use super::{bytes, Row};
use crate::bench::contenders::Kind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The workloads of the peak reserved / peak live section, in table order.
pub const RATIO_WORKLOADS: [&str; 3] = ["tensor-mix", "bitnet-inference", "churn"];

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
    let mut header = vec!["workload", "peak live"];
    header.extend(allocators);
    header.extend(["ours metrics", "verdict"]);
    let mut t = super::grid(&header, 1);
    if let Some(c) = t.column_mut(header.len() - 1) {
        c.set_cell_alignment(comfy_table::CellAlignment::Left);
    }
    for r in rows {
        let mut cells = vec![r.workload.clone(), bytes(r.peak_live_bytes)];
        for a in allocators {
            cells.push(
                r.reserved_over_live
                    .get(*a)
                    .map_or("-".to_string(), |v| format!("{v:.2}")),
            );
        }
        cells.push(
            r.ours_metrics_reserved_over_live
                .map_or("-".to_string(), |v| format!("{v:.2}")),
        );
        cells.push(r.verdict.clone());
        t.add_row(cells);
    }
    out += &super::render(&t);
    out += "ours metrics: bitnet-memory's own peak reserved bytes (pages under the blocks it \
            handed out, less those handed back) / peak live; limit: pre-filled size classes, \
            shown, not compared.\n";
    out
}
