//! The trace verdict of `replay`: ours against the target and faster per event than every
//! peer, warm and cold.

use super::target::{judge, over_target, RATIO_PEERS, RATIO_TARGET};
use super::{ns, Row};
use crate::bench::contenders::Kind;
use serde::{Deserialize, Serialize};

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
