//! Exact counts of live pool blocks per device and size class.

use super::BlockKey;
use super::LeakCx;
use crate::pool::size_class;
use std::collections::BTreeMap;

/// Live blocks per (device, class) and live requested bytes, from the pool's own counters.
///
/// Exact when no other thread is allocating or freeing on the manager while they are
/// read (each thread's cache counters are read with relaxed loads); threads that were
/// joined are always counted exactly.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Counts {
    pub blocks: BTreeMap<BlockKey, usize>,
    pub live_bytes: usize,
}

impl Counts {
    pub fn now(cx: &LeakCx<'_>) -> Self {
        let mut c = Counts::default();
        for d in cx.devices {
            let m = d.metrics();
            c.live_bytes += m.live_bytes;
            for cm in &m.small.classes {
                if cm.live_blocks > 0 {
                    let class = size_class::class_of(cm.block_size) as u16;
                    c.blocks.insert(
                        BlockKey {
                            device: d.id,
                            class: Some(class),
                        },
                        cm.live_blocks,
                    );
                }
            }
            if m.large.live_blocks > 0 {
                c.blocks.insert(
                    BlockKey {
                        device: d.id,
                        class: None,
                    },
                    m.large.live_blocks,
                );
            }
        }
        c
    }

    /// Counts that include their own storage: a baseline that stays live while the pool
    /// it counts serves it (a whole-heap check through `PoolAlloc`, where this map's nodes
    /// are pool blocks). [`now`](Self::now) allocates the map after reading the pool, so
    /// its own nodes are missing from it, and a later count would show them as left
    /// behind. Here the map is read again while it is live and the new figures are
    /// written into it in place (no allocation, once it has every key the second reading
    /// has). With any other allocator serving the map, this equals `now`.
    pub fn now_including_self(cx: &LeakCx<'_>) -> Self {
        let mut base = Self::now(cx);
        // Each round only adds keys; a handful of size classes at most can appear.
        for _ in 0..8 {
            let again = Self::now(cx);
            if again.blocks.keys().all(|k| base.blocks.contains_key(k)) {
                for (k, v) in base.blocks.iter_mut() {
                    *v = again.get(k);
                }
                base.live_bytes = again.live_bytes;
                return base;
            }
            for k in again.blocks.keys() {
                base.blocks.entry(*k).or_insert(0);
            }
        }
        base
    }

    pub fn get(&self, k: &BlockKey) -> usize {
        self.blocks.get(k).copied().unwrap_or(0)
    }
}
