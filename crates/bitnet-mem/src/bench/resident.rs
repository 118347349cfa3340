//! Resident memory, measured the same way for every allocator: the growth of the resident
//! high-water mark (`VmHWM` in `/proc/self/status`) over one run of the workload, in a fresh
//! child process per allocator (the current executable re-run with a hidden subcommand).
//!
//! The child builds the streams first and maps in every page of the process's file-backed
//! mappings (code and read-only data: [`populate_file_mappings`]), so that code an
//! allocator runs for the first time does not count as memory it reserved. (glibc's code is
//! resident from the start; ours, mimalloc's and jemalloc's is in this executable and would
//! otherwise fault in during the run: about 0.65 MiB more for ours than for glibc on
//! bitnet-inference.) Then it resets the high-water mark to the current resident size
//! (`echo 5 > /proc/self/clear_refs`; where that is refused, the mark as it stands is the
//! baseline), creates the allocator, runs the workload once (timed: the cold run) and reads
//! the mark again. Ours also reports its own peak reserved bytes from its metrics.

use crate::bench::contenders::{Kind, Limit};
use crate::bench::engine::{run_once, Spec, Work};
use bitnet_memory::{MemoryConfig, MemoryManager};
use serde::{Deserialize, Serialize};
use std::process::Command;

/// Name of the hidden subcommand a child runs.
pub const CHILD_COMMAND: &str = "__resident";

/// What a child measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resident {
    /// `VmHWM` after the run minus the baseline, in bytes.
    pub hwm_growth_bytes: u64,
    /// Resident bytes when the mark was reset (or the mark, if it could not be).
    pub baseline_bytes: u64,
    /// Whether the mark could be reset.
    pub hwm_reset: bool,
    /// bitnet-memory only: its metrics' peak reserved bytes.
    pub metrics_peak_reserved_bytes: Option<u64>,
    /// bitnet-memory only: its metrics' peak live bytes.
    pub metrics_peak_live_bytes: Option<u64>,
    /// Wall time of the measured run: the workload once, cold, in a fresh process (every
    /// page the allocator uses is faulted in during this run).
    #[serde(default)]
    pub cold_wall_ns: u64,
    /// Page faults the measured run took (`None`: not counted on this system).
    #[serde(default)]
    pub cold_faults: Option<u64>,
}

pub use bitnet_memory::stats::lower_median;

impl Resident {
    /// Each figure's median over several children (the lower middle for an even count);
    /// `None` for none.
    pub fn median(runs: &[Resident]) -> Option<Resident> {
        runs.first()?;
        let mid = |mut v: Vec<u64>| lower_median(&mut v).expect("at least one run");
        let opt = |f: fn(&Resident) -> Option<u64>| {
            runs.iter()
                .map(f)
                .collect::<Option<Vec<_>>>()
                .and_then(|mut v| lower_median(&mut v))
        };
        Some(Resident {
            hwm_growth_bytes: mid(runs.iter().map(|r| r.hwm_growth_bytes).collect()),
            baseline_bytes: mid(runs.iter().map(|r| r.baseline_bytes).collect()),
            hwm_reset: runs.iter().all(|r| r.hwm_reset),
            metrics_peak_reserved_bytes: opt(|r| r.metrics_peak_reserved_bytes),
            metrics_peak_live_bytes: opt(|r| r.metrics_peak_live_bytes),
            cold_wall_ns: mid(runs.iter().map(|r| r.cold_wall_ns).collect()),
            cold_faults: opt(|r| r.cold_faults),
        })
    }
}

pub use bitnet_memory::procfs::status_bytes;

/// Maps in every page of the process's file-backed mappings (code, read-only data) with
/// `MADV_POPULATE_READ`, so that code an allocator runs for the first time does not count as
/// memory it reserved. Returns the bytes of the mappings it populated.
pub fn populate_file_mappings() -> usize {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return 0;
    };
    let mut done = 0;
    for line in maps.lines() {
        // address perms offset dev inode path
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || !f[5].starts_with('/') || !f[1].starts_with('r') {
            continue;
        }
        let Some((a, b)) = f[0].split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        else {
            continue;
        };
        let ptr = std::ptr::with_exposed_provenance_mut::<libc::c_void>(start);
        // SAFETY: `[start, end)` is a readable mapping of this process, as listed by the
        // kernel a moment ago; MADV_POPULATE_READ only faults its pages in for reading and
        // changes no memory. A failure (the mapping changed, an old kernel) is harmless.
        if unsafe { libc::madvise(ptr, end - start, libc::MADV_POPULATE_READ) } == 0 {
            done += end - start;
        }
    }
    done
}

/// Runs in the child: builds the work, measures one run of `kind`.
pub fn measure_here(spec: &Spec, kind: Kind) -> Result<Resident, String> {
    let work = Work::build(spec)?;
    // Peers and the limit get an unused manager (`run_once` takes one for every kind),
    // made before the baseline; ours makes its manager inside the measured span (through
    // `PoolAlloc`, lazily at its first allocation: the spare only names the preset).
    let spare = match kind {
        Kind::BitnetMemory => None,
        Kind::PoolAlloc => {
            Some(MemoryManager::new(spec.preset.config()).map_err(|e| e.to_string())?)
        }
        _ => Some(MemoryManager::new(MemoryConfig::default()).map_err(|e| e.to_string())?),
    };
    populate_file_mappings();
    let hwm_reset = bitnet_memory::procfs::reset_peak_resident();
    let baseline = if hwm_reset {
        status_bytes("VmRSS")
    } else {
        status_bytes("VmHWM")
    }
    .ok_or("cannot read /proc/self/status")?;
    let mut r = Resident {
        hwm_growth_bytes: 0,
        baseline_bytes: baseline,
        hwm_reset,
        metrics_peak_reserved_bytes: None,
        metrics_peak_live_bytes: None,
        cold_wall_ns: 0,
        cold_faults: None,
    };
    let run = match kind {
        Kind::BitnetMemory => {
            let mm = MemoryManager::new(spec.preset.config()).map_err(|e| e.to_string())?;
            let o = run_once(kind, &work, &mm, None).map_err(|e| e.to_string())?;
            let m = mm.metrics();
            r.metrics_peak_reserved_bytes = Some(m.peak_reserved_bytes() as u64);
            r.metrics_peak_live_bytes = Some(m.peak_live_bytes() as u64);
            o
        }
        Kind::Limit => {
            let Work::Streams(s) = &work else {
                return Err("the limit row runs single-stream work only".into());
            };
            let mut l = Limit::for_stream(&s[0]).map_err(|e| e.to_string())?;
            let spare = spare.as_ref().expect("made above");
            run_once(kind, &work, spare, Some(&mut l)).map_err(|e| e.to_string())?
        }
        _ => run_once(kind, &work, spare.as_ref().expect("made above"), None)
            .map_err(|e| e.to_string())?,
    };
    r.cold_wall_ns = run.wall.as_nanos() as u64;
    r.cold_faults = run.faults;
    let after = status_bytes("VmHWM").ok_or("cannot read VmHWM")?;
    r.hwm_growth_bytes = after.saturating_sub(baseline);
    Ok(r)
}

/// Runs a child process that measures `kind` on `spec`.
pub fn measure_in_child(spec: &Spec, kind: Kind) -> Result<Resident, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current executable: {e}"))?;
    let spec_json = serde_json::to_string(spec).map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .arg(CHILD_COMMAND)
        .arg("--spec")
        .arg(&spec_json)
        .arg("--allocator")
        .arg(kind.name())
        .output()
        .map_err(|e| format!("starting the resident-memory child: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "resident-memory child for {} on {} failed ({}): {}",
            kind.name(),
            spec.workload.name(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("child output: {e}"))
}

#[cfg(test)]
mod tests {
    use super::Resident;

    fn run(hwm: u64, cold: u64, ours: Option<u64>) -> Resident {
        Resident {
            hwm_growth_bytes: hwm,
            baseline_bytes: 1,
            hwm_reset: true,
            metrics_peak_reserved_bytes: ours,
            metrics_peak_live_bytes: ours,
            cold_wall_ns: cold,
            cold_faults: ours,
        }
    }

    #[test]
    fn file_mappings_are_populated() {
        // The test binary itself is a readable file mapping.
        let done = super::populate_file_mappings();
        assert!(done > 0, "nothing populated");
        let file = super::status_bytes("RssFile").expect("RssFile");
        assert!(file > 0);
    }

    #[test]
    fn median_takes_each_figure_on_its_own() {
        assert_eq!(Resident::median(&[]), None);
        let m = Resident::median(&[
            run(30, 1, Some(5)),
            run(10, 9, Some(7)),
            run(20, 4, Some(6)),
        ])
        .expect("three runs");
        assert_eq!((m.hwm_growth_bytes, m.cold_wall_ns), (20, 4));
        assert_eq!(m.metrics_peak_reserved_bytes, Some(6));
        assert_eq!(m.cold_faults, Some(6));
        // An even count takes the lower middle; a figure some run lacks is dropped.
        let m = Resident::median(&[run(4, 8, None), run(2, 6, Some(1))]).expect("two runs");
        assert_eq!((m.hwm_growth_bytes, m.cold_wall_ns), (2, 6));
        assert_eq!(m.metrics_peak_reserved_bytes, None);
    }
}
