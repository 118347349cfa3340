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
