//! The main table of `bench` for people, its notes, and the units both it and `replay`
//! print in.

use super::Row;
use comfy_table::{CellAlignment, ContentArrangement, Table};
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

/// A table for people, drawn by comfy-table without borders (columns split by spaces,
/// so that tools and tests can still split a line on white space): the first `left`
/// columns are aligned left (names), the others right (figures).
pub fn grid(header: &[&str], left: usize) -> Table {
    let mut t = Table::new();
    t.load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().copied());
    for i in 0..header.len() {
        if let Some(c) = t.column_mut(i) {
            c.set_padding((0, 1));
            if i >= left {
                c.set_cell_alignment(CellAlignment::Right);
            }
        }
    }
    t
}

/// A table as text, each line without trailing spaces, ending in a newline.
pub fn render(t: &Table) -> String {
    let mut out = String::new();
    for line in t.lines() {
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// What a refused row shows in its figure columns.
pub const REFUSED: &str = "refused";

/// The table of `rows`, grouped as given (a blank line between workloads); a row whose
/// allocator refused the workload shows `refused`, and [`refusals`] says why.
pub fn table(rows: &[Row]) -> String {
    let mut t = grid(
        &[
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
            "res/live",
        ],
        2,
    );
    let mut last = None;
    for r in rows {
        if last.is_some() && last != Some((&r.workload, r.threads)) {
            t.add_row(Vec::<String>::new());
        }
        last = Some((&r.workload, r.threads));
        let head = [
            r.workload.clone(),
            r.allocator.clone(),
            r.threads.to_string(),
            r.pairs.to_string(),
        ];
        if r.refused.is_some() {
            let mut cells = head.to_vec();
            cells.push(REFUSED.into());
            cells.extend(std::iter::repeat_n("-".to_string(), 5));
            cells.push(bytes(r.peak_live_bytes));
            cells.extend(std::iter::repeat_n("-".to_string(), 2));
            t.add_row(cells);
            continue;
        }
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
        let mut cells = head.to_vec();
        cells.extend([
            ns(r.median_ns_per_pair),
            ns(r.min_ns_per_pair),
            ns(r.max_ns_per_pair),
            vs,
            r.faults_per_run.map_or("-".into(), |f| f.to_string()),
            r.cold_faults.map_or("-".into(), |f| f.to_string()),
            bytes(r.peak_live_bytes),
            res,
            ratio,
        ]);
        t.add_row(cells);
    }
    render(&t)
}

/// One line per refused row: which allocator, on what, and its own words.
pub fn refusals(rows: &[Row]) -> String {
    let mut out = String::new();
    for r in rows {
        if let Some(why) = &r.refused {
            let _ = writeln!(
                out,
                "{} could not run {} x{}: {why}",
                r.allocator, r.workload, r.threads
            );
        }
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
