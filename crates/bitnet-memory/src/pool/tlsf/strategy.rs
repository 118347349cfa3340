//! TLSF as a [`BlockStrategy`]: allocation and free with merging, chunks added and
//! removed, purges of free blocks' pages, and the checks of its invariants.
#![deny(unsafe_code)]

use super::bins::{bin_lower_bound, mapping_insert, mapping_search, FL_COUNT, SL_COUNT};
use super::blocks::hull;
use super::{ChunkSlot, Node, State, Tlsf, GRANULE, NIL};
use crate::pool::strategy::{Block, BlockStrategy, Fresh, SysVec};
use std::alloc::System;

impl BlockStrategy for Tlsf {
    fn name(&self) -> &'static str {
        "best-fit (TLSF)"
    }

    fn chunk_fence(&mut self) -> Option<&mut dyn crate::pool::large::compact::ChunkFence> {
        Some(self)
    }

    fn add_chunk(&mut self, chunk: u32, base: usize, size: usize) {
        let size = size / GRANULE * GRANULE;
        assert!(size >= GRANULE, "chunk too small");
        let idx = self.new_node(Node {
            chunk,
            offset: 0,
            size,
            prev_phys: NIL,
            next_phys: NIL,
            prev_free: NIL,
            next_free: NIL,
            state: State::Used,
            // Fresh device memory is not resident until touched.
            dirty: 0,
            dirty_off: 0,
            freed_at: 0,
            freed_seq: 0,
        });
        let slot = chunk as usize;
        if self.chunks.len() <= slot {
            self.chunks.resize(slot + 1, None);
        }
        assert!(
            self.chunks[slot].is_none(),
            "chunk id {chunk} reused while live"
        );
        self.chunks[slot] = Some(ChunkSlot {
            base,
            size,
            first: idx,
        });
        self.insert_free(idx);
    }

    fn allocate(&mut self, size: usize, align: usize) -> Option<Block> {
        self.allocate_placed(size, align, None)
    }

    fn allocate_placed(
        &mut self,
        size: usize,
        align: usize,
        fresh: Option<Fresh<'_>>,
    ) -> Option<Block> {
        let size = size.max(GRANULE).checked_next_multiple_of(GRANULE)?;
        let align = align.max(GRANULE);
        // A block picked for its resident pages is carved where they are, so the resident
        // set grows the least.
        let (idx, pad) = match self.find_resident(size, align, fresh) {
            Some(c) => (c.idx, c.pad),
            None => {
                let idx = self.best_fit(size, align)?;
                let addr = self.addr(idx);
                // Carved at the front, as best fit does.
                (idx, addr.next_multiple_of(align) - addr)
            }
        };
        self.remove_free(idx);
        let addr = self.addr(idx);
        let idx = if pad > 0 {
            self.split_head(idx, pad)
        } else {
            idx
        };
        self.split_tail(idx, size);
        let n = self.nodes[idx as usize];
        Some(Block {
            token: u64::from(idx),
            chunk: n.chunk,
            addr: addr + pad,
            size: n.size,
        })
    }

    fn grow_in_place(&mut self, token: u64, size: usize) -> Option<Block> {
        self.grow_used(token, size)
    }

    fn free(&mut self, token: u64) -> usize {
        let mut idx = token as u32;
        let freed = self.nodes[idx as usize].size;
        assert_eq!(
            self.nodes[idx as usize].state,
            State::Used,
            "TLSF: free of a block that is not in use"
        );
        // The owner touched it: all of it may be resident now.
        let node = &mut self.nodes[idx as usize];
        node.dirty = node.size;
        node.dirty_off = 0;
        node.freed_at = self.now;
        self.frees += 1;
        node.freed_seq = self.frees;
        let prev = self.nodes[idx as usize].prev_phys;
        if prev != NIL && self.nodes[prev as usize].state == State::Free {
            self.remove_free(prev);
            let n = self.nodes[idx as usize];
            let p = &mut self.nodes[prev as usize];
            (p.dirty_off, p.dirty) = hull((p.dirty_off, p.dirty), (p.size, n.size));
            p.size += n.size;
            p.next_phys = n.next_phys;
            p.freed_at = n.freed_at;
            p.freed_seq = n.freed_seq;
            if n.next_phys != NIL {
                self.nodes[n.next_phys as usize].prev_phys = prev;
            }
            self.vacate(idx);
            idx = prev;
        }
        let next = self.nodes[idx as usize].next_phys;
        if next != NIL && self.nodes[next as usize].state == State::Free {
            self.absorb_next(idx);
        }
        self.insert_free(idx);
        freed
    }

    fn chunk_request(&self, size: usize, align: usize, growth: usize) -> (usize, usize) {
        // Room for the block plus worst-case padding (chunks are page aligned), rounded up
        // to the lower bound of the bin a search for it looks in (a search skips blocks
        // of its own bin, which may be smaller), then to whole pages.
        let need = size.max(GRANULE).next_multiple_of(GRANULE) + align.saturating_sub(4096);
        let (fl, sl) = mapping_search(need);
        let size = bin_lower_bound(fl, sl).max(growth).next_multiple_of(4096);
        (size, 4096)
    }

    fn set_now(&mut self, now_ms: u64) {
        self.now = now_ms;
    }

    fn set_prefer_resident(&mut self, on: bool) {
        self.prefer_resident = on;
    }

    fn purge_freed_before(
        &mut self,
        before: u64,
        decommit: &mut dyn FnMut(u32, usize, usize, usize) -> usize,
    ) -> usize {
        let mut purged = 0;
        for c in 0..self.chunks.len() {
            let Some(slot) = self.chunks[c] else { continue };
            let mut i = slot.first;
            while i != NIL {
                let n = self.nodes[i as usize];
                if n.state == State::Free && n.dirty > 0 && n.freed_at < before {
                    purged += decommit(n.chunk, n.offset, n.size, usize::MAX);
                    self.nodes[i as usize].dirty = 0;
                    self.nodes[i as usize].dirty_off = 0;
                    self.dirty_bytes -= n.dirty;
                }
                i = n.next_phys;
            }
        }
        purged
    }

    fn remove_empty_chunks(&mut self, out: &mut SysVec<u32>, idle_before: u64) {
        for c in 0..self.chunks.len() {
            let Some(slot) = self.chunks[c] else { continue };
            let first = self.nodes[slot.first as usize];
            if first.state == State::Free && first.size == slot.size && first.freed_at < idle_before
            {
                self.remove_free(slot.first);
                self.vacate(slot.first);
                self.chunks[c] = None;
                out.push(c as u32);
            }
        }
    }

    fn free_bytes(&self) -> usize {
        self.free_bytes
    }

    fn purge(
        &mut self,
        excess: usize,
        decommit: &mut dyn FnMut(u32, usize, usize, usize) -> (usize, bool),
    ) -> usize {
        if excess == 0 || self.dirty_bytes == 0 {
            return 0;
        }
        // Oldest frees first: the blocks least likely to be asked for again soon.
        let mut dirty: SysVec<(u64, u32)> = SysVec::new_in(System);
        for slot in self.chunks.iter().flatten() {
            let mut i = slot.first;
            while i != NIL {
                let n = &self.nodes[i as usize];
                if n.state == State::Free && n.dirty > 0 {
                    dirty.push((n.freed_seq, i));
                }
                i = n.next_phys;
            }
        }
        dirty.sort_unstable();
        let mut purged = 0;
        for (_, i) in dirty {
            if purged >= excess {
                break;
            }
            let n = self.nodes[i as usize];
            // The whole block is offered: the pool's page map skips what is not resident.
            let want = excess - purged;
            let (got, left) = decommit(n.chunk, n.offset, n.size, want);
            purged += got;
            if !left {
                self.nodes[i as usize].dirty = 0;
                self.nodes[i as usize].dirty_off = 0;
                self.dirty_bytes -= n.dirty;
            }
        }
        purged
    }

    fn largest_free(&self) -> usize {
        if self.fl_bitmap == 0 {
            return 0;
        }
        let fl = 63 - self.fl_bitmap.leading_zeros() as usize;
        let sl = 31 - self.sl_bitmap[fl].leading_zeros() as usize;
        let mut best = 0;
        let mut i = self.heads[fl][sl];
        while i != NIL {
            best = best.max(self.nodes[i as usize].size);
            i = self.nodes[i as usize].next_free;
        }
        best
    }

    fn free_block_sizes(&self, out: &mut SysVec<usize>) {
        for slot in self.chunks.iter().flatten() {
            let mut i = slot.first;
            while i != NIL {
                let n = &self.nodes[i as usize];
                if n.state == State::Free {
                    out.push(n.size);
                }
                i = n.next_phys;
            }
        }
    }

    fn free_block_spans(&self, out: &mut SysVec<(usize, usize)>) {
        for slot in self.chunks.iter().flatten() {
            let mut i = slot.first;
            while i != NIL {
                let n = &self.nodes[i as usize];
                if n.state == State::Free {
                    out.push((slot.base + n.offset, n.size));
                }
                i = n.next_phys;
            }
        }
    }

    fn check_invariants(&self) {
        let mut free_total = 0;
        let mut free_count = 0;
        let mut dirty_total = 0;
        for (c, slot) in self.chunks.iter().enumerate() {
            let Some(slot) = slot else { continue };
            let mut i = slot.first;
            let mut offset = 0;
            let mut prev = NIL;
            let mut prev_free = false;
            while i != NIL {
                let n = &self.nodes[i as usize];
                assert_eq!(n.chunk as usize, c, "node in wrong chunk");
                assert_eq!(n.offset, offset, "hole or overlap in chunk {c}");
                assert_eq!(n.prev_phys, prev, "broken physical link");
                assert!(
                    n.size >= GRANULE && n.size.is_multiple_of(GRANULE),
                    "bad size"
                );
                assert_ne!(n.state, State::Vacant, "vacant node linked");
                let is_free = n.state == State::Free;
                assert!(!(is_free && prev_free), "two free neighbours not merged");
                if is_free {
                    free_total += n.size;
                    free_count += 1;
                    assert!(
                        n.dirty_off + n.dirty <= n.size,
                        "dirty range outside the block"
                    );
                    dirty_total += n.dirty;
                }
                prev_free = is_free;
                offset += n.size;
                prev = i;
                i = n.next_phys;
            }
            assert_eq!(offset, slot.size, "chunk {c} not fully covered");
        }
        let mut listed = 0;
        for fl in 0..FL_COUNT {
            for sl in 0..SL_COUNT {
                let mut i = self.heads[fl][sl];
                let has = self.sl_bitmap[fl] & (1 << sl) != 0;
                assert_eq!(has, i != NIL, "bitmap out of sync at ({fl}, {sl})");
                let mut prev = NIL;
                while i != NIL {
                    let n = &self.nodes[i as usize];
                    assert_eq!(n.state, State::Free, "used block in a free list");
                    assert_eq!(mapping_insert(n.size), (fl, sl), "block in wrong bin");
                    assert_eq!(n.prev_free, prev, "broken free link");
                    listed += 1;
                    prev = i;
                    i = n.next_free;
                }
            }
            assert_eq!(self.fl_bitmap & (1 << fl) != 0, self.sl_bitmap[fl] != 0);
        }
        assert_eq!(listed, free_count, "free blocks missing from lists");
        assert_eq!(dirty_total, self.dirty_bytes, "dirty byte count drifted");
        assert_eq!(free_total, self.free_bytes, "free byte count drifted");
    }
}
