//! Resident memory, measured the same way for every allocator: the growth of the resident
//! high-water mark (`VmHWM` in `/proc/self/status`) over one run of the workload, in a fresh
//! child process per allocator (the current executable re-run with a hidden subcommand).
//!
//! The child builds the streams first, then resets the high-water mark to the current
//! resident size (`echo 5 > /proc/self/clear_refs`; where that is refused, the mark as it
//! stands is the baseline), creates the allocator, runs the workload once and reads the
//! mark again. Ours also reports its own peak reserved bytes from its metrics.

use crate::contenders::{Kind, Limit};
use crate::engine::{run_once, Spec, Work};
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
}

/// A field of `/proc/self/status` in bytes (the file gives kB).
pub fn status_bytes(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

fn reset_hwm() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Runs in the child: builds the work, measures one run of `kind`.
pub fn measure_here(spec: &Spec, kind: Kind) -> Result<Resident, String> {
    let work = Work::build(spec)?;
    // Peers and the limit get an unused manager (`run_once` takes one for every kind),
    // made before the baseline; ours makes its manager inside the measured span.
    let spare = match kind {
        Kind::BitnetMemory => None,
        _ => Some(MemoryManager::new(MemoryConfig::default()).map_err(|e| e.to_string())?),
    };
    let hwm_reset = reset_hwm();
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
    };
    let hwm = || status_bytes("VmHWM").ok_or("cannot read VmHWM");
    let after = match kind {
        Kind::BitnetMemory => {
            let mm = MemoryManager::new(spec.preset.config()).map_err(|e| e.to_string())?;
            run_once(kind, &work, &mm, None);
            let m = mm.metrics();
            r.metrics_peak_reserved_bytes = Some(m.peak_reserved_bytes() as u64);
            r.metrics_peak_live_bytes = Some(m.peak_live_bytes() as u64);
            hwm()?
        }
        Kind::Limit => {
            let Work::Streams(s) = &work else {
                return Err("the limit row runs single-stream work only".into());
            };
            let mut l = Limit::for_stream(&s[0]);
            run_once(
                kind,
                &work,
                spare.as_ref().expect("made above"),
                Some(&mut l),
            );
            hwm()?
        }
        _ => {
            run_once(kind, &work, spare.as_ref().expect("made above"), None);
            hwm()?
        }
    };
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
