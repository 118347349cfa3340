//! The pool optimizer as the cleanup engine runs it: each pool's figures, the
//! announcement of every compaction and strategy switch
//! ([`MemoryEvent::PoolOptimizationCompleted`]) with its figures before and after.
#![deny(unsafe_code)]

use crate::events::{EventKind, MemoryEvent, OptimizationFigures};
use crate::movable::CompactionReport;
use crate::pool::hybrid::DevicePool;
use crate::view::ManagerView;

/// A pool's figures now: its strategy, the measured ns per large-pool operation under
/// it, utilisation (live over mapped), the large pool's external fragmentation, mapped
/// bytes and the largest free block.
pub(crate) fn figures(d: &DevicePool) -> OptimizationFigures {
    let m = d.metrics();
    let timing = d.large_timing();
    let ns = timing
        .iter()
        .find(|t| t.strategy == m.large.strategy)
        .map_or(0.0, |t| t.ns_per_op());
    OptimizationFigures {
        strategy: m.large.strategy.clone(),
        ns_per_op: ns,
        utilisation: m.fragmentation.utilization,
        fragmentation: m.external_fragmentation(),
        mapped_bytes: m.mapped_bytes,
        largest_free: m.large.largest_free,
    }
}

/// Announces a compaction on every device it moved blocks or released chunks on.
pub(crate) fn announce_compaction(
    v: &ManagerView<'_>,
    before: &[OptimizationFigures],
    r: &CompactionReport,
) {
    if !v.bus.wants(EventKind::PoolOptimizationCompleted)
        || (r.blocks_moved == 0 && r.chunks_released == 0)
    {
        return;
    }
    for (d, b) in v.devices.iter().zip(before) {
        let after = figures(d);
        if after == *b {
            continue;
        }
        v.bus.emit(EventKind::PoolOptimizationCompleted, || {
            MemoryEvent::PoolOptimizationCompleted {
                device: d.id,
                action: "compaction".to_string(),
                before: b.clone(),
                after,
                reason: format!(
                    "moved {} block(s) ({} B), released {} chunk(s) ({} B)",
                    r.blocks_moved, r.bytes_moved, r.chunks_released, r.bytes_released
                ),
            }
        });
    }
}

/// One optimization of one pool: a switch of its large-block strategy or a compaction
/// run by the background consolidator.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolOptimization {
    /// Device.
    pub device: crate::device::DeviceId,
    /// `"strategy switch"` or `"compaction"`.
    pub action: &'static str,
    /// The pool's figures before.
    pub before: OptimizationFigures,
    /// And after.
    pub after: OptimizationFigures,
    /// Why, with the measured figures that decided it.
    pub reason: String,
}

/// One evaluation of the pool optimizer: each pool's large-block strategy (switched when
/// its measured figures say so, with hysteresis), then the consolidator: when a pool's
/// free large-pool memory is fragmented past `consolidate_above` (and at least 1 MiB is
/// free), movable blocks are compacted. Every switch and compaction is announced as
/// `PoolOptimizationCompleted` with its figures before and after.
pub(crate) fn optimize(
    host: &dyn super::engine::CleanupHost,
    consolidate_above: f64,
) -> Vec<PoolOptimization> {
    let v = host.view();
    let mut out = Vec::new();
    for d in v.devices {
        let before = figures(d);
        if let Some(s) = d.optimize_large() {
            let after = figures(d);
            let reason = format!("{} -> {}: {}", s.from.name, s.to, s.reason);
            v.bus.emit(EventKind::PoolOptimizationCompleted, || {
                MemoryEvent::PoolOptimizationCompleted {
                    device: d.id,
                    action: "strategy switch".to_string(),
                    before: before.clone(),
                    after: after.clone(),
                    reason: reason.clone(),
                }
            });
            out.push(PoolOptimization {
                device: d.id,
                action: "strategy switch",
                before,
                after,
                reason,
            });
        }
    }
    let fragmented: Vec<(usize, OptimizationFigures, usize)> = v
        .devices
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            let m = d.metrics();
            let f = figures(d);
            (m.large.free_bytes >= 1 << 20 && f.fragmentation > consolidate_above).then_some((
                i,
                f,
                m.released_bytes,
            ))
        })
        .collect();
    if !fragmented.is_empty() {
        host.compact_movable();
        for (i, before, released_before) in fragmented {
            let d = &v.devices[i];
            let after = figures(d);
            if after != before {
                let released = d.metrics().released_bytes - released_before;
                out.push(PoolOptimization {
                    device: d.id,
                    action: "compaction",
                    reason: format!(
                        "{:.0}% of the large pool's free memory fragmented (threshold {:.0}%); \
                         {released} B of chunks released",
                        100.0 * before.fragmentation,
                        100.0 * consolidate_above
                    ),
                    before,
                    after,
                });
            }
        }
    }
    out
}
