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

    pub fn get(&self, k: &BlockKey) -> usize {
        self.blocks.get(k).copied().unwrap_or(0)
    }
}
