//! Compaction of movable blocks: the large pool moves unpinned movable blocks out of its
//! least-used chunks into holes of other chunks, then gives the chunks it emptied back to
//! the device.
//!
//! Safe code, like the rest of the pool: the pool decides where blocks go and keeps its
//! books; the bytes are copied by a callback of the layer that may touch memory.
//!
//! # The pin protocol
//!
//! Every movable block has a [`MoveCell`]: its address, its strategy token and one state
//! word holding a pin count and a `MOVING` bit. A reader pins with a CAS that adds one to
//! the count and waits while `MOVING` is set; the compactor claims a block with a CAS from
//! 0 (no pin) to `MOVING`, copies it, stores the new address and clears `MOVING` with
//! `Release`, so that a pin that follows (`Acquire`) sees the new address and the copied
//! bytes. A block whose count is not 0 is never claimed, hence never moved.
//!
//! # What moves where
//!
//! Only chunks whose every used byte is a movable block are evacuated (slabs and ordinary
//! blocks never move, so a chunk holding one could not be released), least-used first,
//! and only when the free bytes of the other chunks could hold them. While a chunk is
//! evacuated its free blocks are fenced out of the strategy ([`ChunkFence`]), so the best
//! fit finds holes in other chunks only; a chunk that received blocks is not evacuated in
//! the same run. Compaction never grows the pool. The whole run holds the large-pool lock,
//! copies included.

use super::LargePool;
use crate::device::DeviceBackend;
use crate::pool::strategy::BlockStrategy as _;
use crate::pool::strategy::SysVec;
use std::alloc::System;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// The `MOVING` bit of a [`MoveCell`]'s state; the bits below it count pins.
const MOVING: u32 = 1 << 31;

/// The shared state of one movable block: address, token, and the pin word.
#[derive(Debug)]
pub struct MoveCell {
    state: AtomicU32,
    addr: AtomicUsize,
    token: AtomicU64,
    /// Requested bytes (what a move copies).
    len: usize,
    /// Requested alignment (what a move asks of the new block).
    align: usize,
}

impl MoveCell {
    /// A cell for the block `(addr, token)` of `len` bytes aligned to `align`.
    pub fn new(addr: usize, token: u64, len: usize, align: usize) -> Self {
        Self {
            state: AtomicU32::new(0),
            addr: AtomicUsize::new(addr),
            token: AtomicU64::new(token),
            len,
            align,
        }
    }

    /// Pins the block: waits while it is being moved, then returns its address, which
    /// stays valid until the matching [`unpin`](Self::unpin).
    pub fn pin(&self) -> usize {
        let mut s = self.state.load(Ordering::Relaxed);
        let mut spins = 0u32;
        loop {
            if s & MOVING != 0 {
                // A move copies one block: short, but it may be megabytes.
                if spins < 64 {
                    std::hint::spin_loop();
                    spins += 1;
                } else {
                    std::thread::yield_now();
                }
                s = self.state.load(Ordering::Relaxed);
                continue;
            }
            assert!(s + 1 < MOVING, "too many pins of one movable block");
            // Acquire: pairs with the Release that cleared MOVING after a move, so the new
            // address and the copied bytes are visible.
            match self
                .state
                .compare_exchange_weak(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return self.addr.load(Ordering::Relaxed),
                Err(now) => s = now,
            }
        }
    }

    /// Drops one pin. Release: what the pin holder wrote is visible to a move that
    /// claims the block afterwards.
    pub fn unpin(&self) {
        let old = self.state.fetch_sub(1, Ordering::Release);
        debug_assert!(old & !MOVING > 0, "unpin without a pin");
    }

    /// Whether a pin is held now (a racy hint unless the caller excludes pinning).
    pub fn is_pinned(&self) -> bool {
        self.state.load(Ordering::Relaxed) & !MOVING != 0
    }

    /// Whether a move holds the block now (a racy hint).
    pub fn is_moving(&self) -> bool {
        self.state.load(Ordering::Relaxed) & MOVING != 0
    }

    /// Current address. Exact while pinned, or while the caller holds what excludes
    /// compaction (the manager's registry lock).
    pub fn addr(&self) -> usize {
        self.addr.load(Ordering::Relaxed)
    }

    /// Current strategy token; exact under the same conditions as [`addr`](Self::addr).
    pub fn token(&self) -> u64 {
        self.token.load(Ordering::Relaxed)
    }

    /// Claims the block for a move: only when no pin is held.
    fn try_claim(&self) -> bool {
        // Acquire: pairs with the Release of the last unpin, so the copy reads what pin
        // holders wrote.
        self.state
            .compare_exchange(0, MOVING, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Ends a claim without moving.
    fn unclaim(&self) {
        self.state.store(0, Ordering::Release);
    }

    /// Publishes the new place of a claimed block and ends the claim.
    fn publish(&self, addr: usize, token: u64) {
        self.addr.store(addr, Ordering::Relaxed);
        self.token.store(token, Ordering::Relaxed);
        // Release: the address above and the bytes copied before are visible to the next
        // pin (whose Acquire CAS reads this value or a later one of its release sequence).
        self.state.store(0, Ordering::Release);
    }
}

/// What a strategy offers compaction: per-chunk usage, and fencing a chunk's free blocks
/// out of its free lists for the length of a run.
pub trait ChunkFence {
    /// Bytes of `chunk` in blocks that are not free (used blocks, including slabs).
    fn chunk_used_bytes(&self, chunk: u32) -> usize;
    /// Free bytes of `chunk`.
    fn chunk_free_bytes(&self, chunk: u32) -> usize;
    /// Takes every free block of `chunk` out of the free lists (allocations cannot land
    /// in the chunk any more) and appends their handles to `out`. Until
    /// [`unfence`](Self::unfence), no block of the chunk may be freed.
    fn fence(&mut self, chunk: u32, out: &mut SysVec<u64>);
    /// Puts fenced free blocks back, as they were.
    fn unfence(&mut self, fenced: &[u64]);
    /// Removes `chunk` from the strategy if it is wholly free; says whether it did.
    fn take_empty_chunk(&mut self, chunk: u32) -> bool;
}

/// What one compaction run of one pool did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CompactStats {
    /// Blocks moved.
    pub blocks_moved: usize,
    /// Bytes copied (requested sizes of the moved blocks).
    pub bytes_moved: usize,
    /// Chunks emptied and given back to the device.
    pub chunks_released: usize,
    /// Their bytes.
    pub bytes_released: usize,
    /// Movable blocks left in place because they were pinned.
    pub pinned_skipped: usize,
}

impl std::ops::AddAssign for CompactStats {
    fn add_assign(&mut self, o: Self) {
        self.blocks_moved += o.blocks_moved;
        self.bytes_moved += o.bytes_moved;
        self.chunks_released += o.chunks_released;
        self.bytes_released += o.bytes_released;
        self.pinned_skipped += o.pinned_skipped;
    }
}

/// A chunk that may be evacuated: every used byte of it is a movable block.
struct Candidate {
    chunk: u32,
    used: usize,
    /// Range of its blocks in the sorted block list.
    blocks: std::ops::Range<usize>,
}

impl LargePool {
    /// Moves unpinned movable blocks out of the least-used chunks into holes of others,
    /// then releases the chunks it emptied (see the module docs). `blocks` are every
    /// movable block of this pool; nothing may free, pin-free move or re-register them
    /// during the call (the manager holds its registry lock). `copy(from, to, len)` copies
    /// the bytes of a block; it is called only for claimed blocks, into a block no one
    /// else holds.
    pub fn compact(
        &mut self,
        blocks: &[&MoveCell],
        backend: &dyn DeviceBackend,
        copy: &mut dyn FnMut(usize, usize, usize),
    ) -> CompactStats {
        let mut stats = CompactStats::default();
        if blocks.is_empty() || self.strategy.chunk_fence().is_none() {
            return stats;
        }
        // Chunks by base address, to find the chunk of a block.
        let mut spans: SysVec<(usize, usize, u32)> = SysVec::new_in(System);
        for (id, c) in self.chunks.iter().enumerate() {
            if let Some(c) = c {
                spans.push((c.base, c.base + c.size, id as u32));
            }
        }
        spans.sort_unstable();
        let chunk_of = |addr: usize| -> u32 {
            let i = spans.partition_point(|s| s.0 <= addr);
            let (base, end, id) = spans[i.checked_sub(1).expect("block below every chunk")];
            assert!(
                base <= addr && addr < end,
                "movable block outside every chunk"
            );
            id
        };
        // (chunk, block size, index): grouped by chunk, largest blocks first (they are the
        // hardest to place; the small ones fill what is left).
        let mut order: SysVec<(u32, usize, usize)> = SysVec::new_in(System);
        for (i, cell) in blocks.iter().enumerate() {
            let addr = cell.addr();
            let &(token, size) = self
                .user
                .get(&addr)
                .expect("a movable block is a user block");
            debug_assert_eq!(token, cell.token());
            if self.dedicated_at(addr).is_some() {
                // Alone in its chunk, outside the strategy: nothing to move it out of.
                continue;
            }
            order.push((chunk_of(addr), size, i));
        }
        order.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut candidates: SysVec<Candidate> = SysVec::new_in(System);
        let mut start = 0;
        while start < order.len() {
            let chunk = order[start].0;
            let end = start + order[start..].partition_point(|e| e.0 == chunk);
            let movable: usize = order[start..end].iter().map(|e| e.1).sum();
            let fence = self.strategy.chunk_fence().expect("checked above");
            let used = fence.chunk_used_bytes(chunk);
            if used == movable {
                let pinned = order[start..end]
                    .iter()
                    .filter(|e| blocks[e.2].is_pinned())
                    .count();
                if pinned == 0 {
                    candidates.push(Candidate {
                        chunk,
                        used,
                        blocks: start..end,
                    });
                } else {
                    stats.pinned_skipped += pinned;
                }
            }
            start = end;
        }
        candidates.sort_unstable_by_key(|c| (c.used, c.chunk));

        let mut received: SysVec<bool> = SysVec::new_in(System);
        received.resize(self.chunks.len(), false);
        let mut fenced: SysVec<u64> = SysVec::new_in(System);
        let mut old_tokens: SysVec<u64> = SysVec::new_in(System);
        let mut emptied: SysVec<u32> = SysVec::new_in(System);
        for cand in candidates.iter() {
            if received[cand.chunk as usize] {
                continue;
            }
            let fence = self.strategy.chunk_fence().expect("checked above");
            let own_free = fence.chunk_free_bytes(cand.chunk);
            if self.strategy.free_bytes() - own_free < cand.used {
                continue;
            }
            let fence = self.strategy.chunk_fence().expect("checked above");
            fence.fence(cand.chunk, &mut fenced);
            let mut all_moved = true;
            for &(_, _, i) in &order[cand.blocks.clone()] {
                let cell = blocks[i];
                if !cell.try_claim() {
                    stats.pinned_skipped += 1;
                    all_moved = false;
                    break;
                }
                let Some(dst) = self.strategy.allocate(cell.len, cell.align) else {
                    cell.unclaim();
                    all_moved = false;
                    break;
                };
                debug_assert_ne!(dst.chunk, cand.chunk, "allocated in a fenced chunk");
                received[dst.chunk as usize] = true;
                self.mark_resident(&dst, cell.len);
                let from = cell.addr();
                copy(from, dst.addr, cell.len);
                let (token, size) = self.user.remove(&from).expect("live user block");
                self.user.insert(dst.addr, (dst.token, dst.size));
                self.user_bytes = self.user_bytes - size + dst.size;
                cell.publish(dst.addr, dst.token);
                old_tokens.push(token);
                stats.blocks_moved += 1;
                stats.bytes_moved += cell.len;
            }
            if all_moved {
                emptied.push(cand.chunk);
            }
        }
        if fenced.is_empty() && old_tokens.is_empty() {
            return stats;
        }
        self.strategy
            .chunk_fence()
            .expect("checked above")
            .unfence(&fenced);
        self.tick();
        for &t in old_tokens.iter() {
            self.strategy.free(t);
        }
        for &id in emptied.iter() {
            let fence = self.strategy.chunk_fence().expect("checked above");
            if fence.take_empty_chunk(id) {
                let chunk = self.forget_chunk(id);
                stats.chunks_released += 1;
                stats.bytes_released += chunk.size;
                backend.release_chunk(chunk);
            }
        }
        stats
    }
}

#[cfg(test)]
mod tests;
