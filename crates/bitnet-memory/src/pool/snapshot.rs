//! The pool's state as snapshot data: slabs of the small pool and chunks of the large
//! pool, each with its blocks. The pool copies what it needs under its locks (on the
//! system allocator); this module builds the snapshot from the copies, without locks.
//! The rows are the pool's own types; `crate::snapshot` puts them into a `Snapshot` and
//! re-exports them under the same names.
#![deny(unsafe_code)]

use super::central::Slab;
use super::large::LargeLayout;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Names the allocation owning a live block by its address: id and site, where known.
pub(crate) type Owner<'a> = &'a dyn Fn(usize) -> (Option<u64>, Option<String>);

/// One pool of a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSnapshot {
    /// `"small"` (size classes) or `"large"` (TLSF / buddy / best fit).
    pub pool: String,
    /// Strategy name of the pool, if it has one (e.g. `"tlsf"`).
    #[serde(default)]
    pub strategy: Option<String>,
    /// Chunks (slabs of the small pool, chunks of the large pool).
    pub chunks: Vec<ChunkSnapshot>,
}

/// One chunk and its blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkSnapshot {
    /// Index of the chunk inside its pool.
    pub index: u64,
    /// Offset of the chunk in the device's address space (an address on the CPU).
    pub base_offset: u64,
    /// Chunk size.
    pub size: u64,
    /// Blocks by increasing offset, not overlapping, inside the chunk. Bytes covered
    /// by no block (e.g. not yet carved from a slab) may be left out.
    pub blocks: Vec<BlockSnapshot>,
}

/// One block of a chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockSnapshot {
    /// Offset inside the chunk.
    pub offset: u64,
    /// Block size (the class size or the strategy's rounded size).
    pub size: u64,
    /// Owned by an allocation; `false` for free and thread-cached blocks.
    pub live: bool,
    /// Size class of the block (small pool only).
    #[serde(default)]
    pub size_class: Option<u64>,
    /// Allocation id, when the block is live and tracked.
    #[serde(default)]
    pub allocation_id: Option<u64>,
    /// Allocation site (`file:line`), when tracked.
    #[serde(default)]
    pub site: Option<String>,
}

fn block(
    offset: usize,
    size: usize,
    live: bool,
    class: Option<usize>,
    addr: usize,
    owner: Owner<'_>,
) -> BlockSnapshot {
    let (allocation_id, site) = if live { owner(addr) } else { (None, None) };
    BlockSnapshot {
        offset: offset as u64,
        size: size as u64,
        live,
        size_class: class.map(|c| c as u64),
        allocation_id,
        site,
    }
}

/// Builds the small pool: one chunk per slab, blocks carved so far (the uncarved tail of
/// the newest slab of a class is left out).
pub(crate) struct SmallPoolBuilder<'a> {
    cached: &'a HashSet<usize>,
    owner: Owner<'a>,
    chunks: Vec<ChunkSnapshot>,
}

impl<'a> SmallPoolBuilder<'a> {
    /// `cached`: addresses in threads' caches (free, not live).
    pub fn new(cached: &'a HashSet<usize>, owner: Owner<'a>) -> Self {
        Self {
            cached,
            owner,
            chunks: Vec::new(),
        }
    }

    /// Adds the slabs of a class of `class_size` bytes, whose central free list is `free`
    /// and whose newest slab is carved up to `uncarved.0`.
    pub fn add_class(
        &mut self,
        class_size: usize,
        slabs: &[Slab],
        free: &[usize],
        uncarved: (usize, usize),
    ) {
        let free: HashSet<usize> = free.iter().copied().collect();
        for slab in slabs {
            let base = slab.block.addr;
            let mut end = base + slab.size;
            if (base..end).contains(&uncarved.0) && uncarved.0 < uncarved.1 {
                end = uncarved.0;
            }
            let blocks = (base..end)
                .step_by(class_size)
                .map(|a| {
                    let live = !free.contains(&a) && !self.cached.contains(&a);
                    block(a - base, class_size, live, Some(class_size), a, self.owner)
                })
                .collect();
            self.chunks.push(ChunkSnapshot {
                index: self.chunks.len() as u64,
                base_offset: base as u64,
                size: slab.block.size as u64,
                blocks,
            });
        }
    }

    /// The pool, slabs by address.
    pub fn finish(mut self) -> PoolSnapshot {
        self.chunks.sort_by_key(|c| c.base_offset);
        for (i, c) in self.chunks.iter_mut().enumerate() {
            c.index = i as u64;
        }
        PoolSnapshot {
            pool: "small".into(),
            strategy: None,
            chunks: self.chunks,
        }
    }
}

/// The large pool from its layout: user blocks (live unless in `cached`, which holds
/// the pending frees of a fenced device), one-block slabs of the big size classes (live
/// unless in a thread cache or pending), free blocks. Slabs lent to the small pool
/// are left out: they are the small pool's chunks.
pub(crate) fn large_pool(
    strategy: &str,
    layout: &LargeLayout,
    cached: &HashSet<usize>,
    owner: Owner<'_>,
) -> PoolSnapshot {
    let mut chunks: Vec<ChunkSnapshot> = layout
        .chunks
        .iter()
        .map(|&(id, base, size)| ChunkSnapshot {
            index: u64::from(id),
            base_offset: base as u64,
            size: size as u64,
            blocks: Vec::new(),
        })
        .collect();
    chunks.sort_by_key(|c| c.base_offset);
    let spans = layout
        .user
        .iter()
        .map(|&(a, s)| (a, s, !cached.contains(&a), None))
        .chain(
            layout
                .singles
                .iter()
                .map(|&(a, s)| (a, s, !cached.contains(&a), Some(s))),
        )
        .chain(layout.free.iter().map(|&(a, s)| (a, s, false, None)));
    for (addr, size, live, class) in spans {
        // The chunk holding `addr`: the last one starting at or below it.
        let at = chunks.partition_point(|c| c.base_offset <= addr as u64);
        let Some(chunk) = at.checked_sub(1).map(|i| &mut chunks[i]) else {
            continue;
        };
        let offset = addr - chunk.base_offset as usize;
        chunk
            .blocks
            .push(block(offset, size, live, class, addr, owner));
    }
    for c in &mut chunks {
        c.blocks.sort_by_key(|b| b.offset);
    }
    PoolSnapshot {
        pool: "large".into(),
        strategy: Some(strategy.to_string()),
        chunks,
    }
}
