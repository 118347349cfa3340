//! Best fit as a two-level segregated fit (TLSF): O(1) allocate and free over chunks.
//!
//! Blocks are described out of band (a node arena indexed by `u32`), never by headers in
//! the memory itself, so the same code can sub-allocate device memory. Physical neighbours
//! are linked so that a freed block merges with free neighbours in O(1); free blocks sit in
//! LIFO lists per (first level = power of two, second level = 16 sub-ranges), found with
//! two bitmap scans.
#![deny(unsafe_code)]

use crate::pool::strategy::{Block, BlockStrategy, Fresh, SysVec};
use std::alloc::System;

const NIL: u32 = u32::MAX;
/// Every block size and offset is a multiple of this.
pub const GRANULE: usize = 16;
const SL_BITS: u32 = 4;
const SL_COUNT: usize = 1 << SL_BITS;
const FL_COUNT: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    Used,
    Vacant,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    chunk: u32,
    offset: usize,
    size: usize,
    prev_phys: u32,
    next_phys: u32,
    prev_free: u32,
    next_free: u32,
    state: State,
    /// For a free block: bytes that may be resident (freed by an owner since the last
    /// purge): the range `[dirty_off, dirty_off + dirty)` of the block. Where blocks
    /// merged it is the hull of their ranges, so it may count a clean gap between them
    /// (purging that is harmless). The rest was never touched or was purged.
    dirty: usize,
    /// Start of the dirty range, from the block's start.
    dirty_off: usize,
    /// For a free block: when it was freed (ms on the pool's clock), for decay.
    freed_at: u64,
    /// For a free block: which free made it (a counter), for oldest-first purging (the
    /// ms clock is too coarse to order frees, and would make the order depend on timing).
    freed_seq: u64,
}

#[derive(Debug, Clone, Copy)]
struct ChunkSlot {
    base: usize,
    size: usize,
    first: u32,
}

/// The TLSF strategy.
pub struct Tlsf {
    nodes: SysVec<Node>,
    vacant: u32,
    fl_bitmap: u64,
    sl_bitmap: [u32; FL_COUNT],
    heads: [[u32; SL_COUNT]; FL_COUNT],
    chunks: SysVec<Option<ChunkSlot>>,
    free_bytes: usize,
    /// Free bytes that may be resident: the sum of the free blocks' `dirty`.
    dirty_bytes: usize,
    /// The clock (ms) stamped on blocks as they are freed.
    now: u64,
    /// Whether requests look for resident free memory first.
    prefer_resident: bool,
    /// Frees so far (stamps `freed_seq`).
    frees: u64,
}

impl Default for Tlsf {
    fn default() -> Self {
        Self::new()
    }
}

#[inline]
/// The part of the range `(off, len)` that lies in `[from, to)`, as `(off, len)` from
/// `from`; `(0, 0)` when none does.
fn clip(off: usize, len: usize, from: usize, to: usize) -> (usize, usize) {
    let (lo, hi) = (off.max(from), (off + len).min(to));
    if len > 0 && hi > lo {
        (lo - from, hi - lo)
    } else {
        (0, 0)
    }
}

/// The smallest range `(off, len)` covering both (an empty range covers nothing).
fn hull(a: (usize, usize), b: (usize, usize)) -> (usize, usize) {
    match (a.1 > 0, b.1 > 0) {
        (false, false) => (0, 0),
        (true, false) => a,
        (false, true) => b,
        (true, true) => {
            let lo = a.0.min(b.0);
            (lo, (a.0 + a.1).max(b.0 + b.1) - lo)
        }
    }
}

/// Where a block goes: free block `idx`, `pad` bytes in, faulting in `fresh` bytes.
#[derive(Debug, Clone, Copy)]
struct Carve {
    idx: u32,
    pad: usize,
    fresh: usize,
}

/// Free blocks [`Tlsf::find_resident`] looks at, at most, per request.
const RESIDENT_SCAN: usize = 32;

fn log2(x: usize) -> u32 {
    usize::BITS - 1 - x.leading_zeros()
}

/// Bin of a free block of `size` bytes (rounding down: every block in the bin is at least
/// the bin's lower bound).
#[inline]
fn mapping_insert(size: usize) -> (usize, usize) {
    let u = size / GRANULE;
    if u < SL_COUNT {
        (0, u)
    } else {
        let l = log2(u);
        let fl = (l - SL_BITS + 1) as usize;
        let sl = (u >> (l - SL_BITS)) - SL_COUNT;
        (fl, sl)
    }
}

/// First bin whose every block can serve `size` bytes (rounding up).
#[inline]
fn mapping_search(size: usize) -> (usize, usize) {
    let u = size / GRANULE;
    if u < SL_COUNT {
        (0, u)
    } else {
        let r = u + (1 << (log2(u) - SL_BITS)) - 1;
        mapping_insert(r * GRANULE)
    }
}

/// Smallest block size that maps to bin `(fl, sl)`.
fn bin_lower_bound(fl: usize, sl: usize) -> usize {
    if fl == 0 {
        sl * GRANULE
    } else {
        ((SL_COUNT + sl) << (fl - 1)) * GRANULE
    }
}

impl Tlsf {
    /// An empty TLSF with no chunks.
    pub fn new() -> Self {
        Self {
            nodes: SysVec::new_in(System),
            vacant: NIL,
            fl_bitmap: 0,
            sl_bitmap: [0; FL_COUNT],
            heads: [[NIL; SL_COUNT]; FL_COUNT],
            chunks: SysVec::new_in(System),
            free_bytes: 0,
            dirty_bytes: 0,
            prefer_resident: true,
            now: 0,
            frees: 0,
        }
    }

    fn new_node(&mut self, node: Node) -> u32 {
        if self.vacant != NIL {
            let idx = self.vacant;
            self.vacant = self.nodes[idx as usize].next_free;
            self.nodes[idx as usize] = node;
            idx
        } else {
            let idx = u32::try_from(self.nodes.len()).expect("fewer than 2^32 blocks");
            assert!(idx != NIL, "fewer than 2^32 - 1 blocks");
            self.nodes.push(node);
            idx
        }
    }

    fn vacate(&mut self, idx: u32) {
        let n = &mut self.nodes[idx as usize];
        n.state = State::Vacant;
        n.next_free = self.vacant;
        self.vacant = idx;
    }

    fn insert_free(&mut self, idx: u32) {
        let size = self.nodes[idx as usize].size;
        let (fl, sl) = mapping_insert(size);
        let head = self.heads[fl][sl];
        {
            let n = &mut self.nodes[idx as usize];
            n.state = State::Free;
            n.prev_free = NIL;
            n.next_free = head;
        }
        if head != NIL {
            self.nodes[head as usize].prev_free = idx;
        }
        self.heads[fl][sl] = idx;
        self.sl_bitmap[fl] |= 1 << sl;
        self.fl_bitmap |= 1 << fl;
        self.free_bytes += size;
        self.dirty_bytes += self.nodes[idx as usize].dirty;
    }

    fn remove_free(&mut self, idx: u32) {
        let Node {
            size,
            prev_free,
            next_free,
            ..
        } = self.nodes[idx as usize];
        debug_assert_eq!(self.nodes[idx as usize].state, State::Free);
        if prev_free != NIL {
            self.nodes[prev_free as usize].next_free = next_free;
        } else {
            let (fl, sl) = mapping_insert(size);
            self.heads[fl][sl] = next_free;
            if next_free == NIL {
                self.sl_bitmap[fl] &= !(1 << sl);
                if self.sl_bitmap[fl] == 0 {
                    self.fl_bitmap &= !(1 << fl);
                }
            }
        }
        if next_free != NIL {
            self.nodes[next_free as usize].prev_free = prev_free;
        }
        self.nodes[idx as usize].state = State::Used;
        self.free_bytes -= size;
        self.dirty_bytes -= self.nodes[idx as usize].dirty;
    }

    fn find_suitable(&self, size: usize) -> Option<u32> {
        let (fl, sl) = mapping_search(size);
        if fl >= FL_COUNT {
            return None;
        }
        let sl_map = self.sl_bitmap[fl] & (u32::MAX << sl);
        let (fl, sl_map) = if sl_map != 0 {
            (fl, sl_map)
        } else {
            let fl_map = if fl + 1 >= FL_COUNT {
                0
            } else {
                self.fl_bitmap & (u64::MAX << (fl + 1))
            };
            if fl_map == 0 {
                return None;
            }
            let fl = fl_map.trailing_zeros() as usize;
            (fl, self.sl_bitmap[fl])
        };
        let sl = sl_map.trailing_zeros() as usize;
        let idx = self.heads[fl][sl];
        debug_assert!(idx != NIL);
        Some(idx)
    }

    /// Splits `size` bytes off the front of used node `idx`; the rest becomes free.
    fn split_tail(&mut self, idx: u32, size: usize) {
        let n = self.nodes[idx as usize];
        let rest = n.size - size;
        if rest < GRANULE {
            return;
        }
        let tail = self.new_node(Node {
            chunk: n.chunk,
            offset: n.offset + size,
            size: rest,
            prev_phys: idx,
            next_phys: n.next_phys,
            prev_free: NIL,
            next_free: NIL,
            state: State::Used,
            dirty: 0,
            dirty_off: 0,
            freed_at: n.freed_at,
            freed_seq: n.freed_seq,
        });
        let (off, len) = clip(n.dirty_off, n.dirty, size, n.size);
        self.nodes[tail as usize].dirty = len;
        self.nodes[tail as usize].dirty_off = off;
        if n.next_phys != NIL {
            self.nodes[n.next_phys as usize].prev_phys = tail;
        }
        let node = &mut self.nodes[idx as usize];
        node.size = size;
        node.next_phys = tail;
        self.insert_free(tail);
    }

    /// Splits `pad` bytes off the front of used node `idx` as a free block; returns the
    /// node that now holds the rest.
    fn split_head(&mut self, idx: u32, pad: usize) -> u32 {
        let n = self.nodes[idx as usize];
        let rest = self.new_node(Node {
            chunk: n.chunk,
            offset: n.offset + pad,
            size: n.size - pad,
            prev_phys: idx,
            next_phys: n.next_phys,
            prev_free: NIL,
            next_free: NIL,
            state: State::Used,
            dirty: 0,
            dirty_off: 0,
            freed_at: n.freed_at,
            freed_seq: n.freed_seq,
        });
        let (off, len) = clip(n.dirty_off, n.dirty, pad, n.size);
        self.nodes[rest as usize].dirty = len;
        self.nodes[rest as usize].dirty_off = off;
        let (head_off, head_len) = clip(n.dirty_off, n.dirty, 0, pad);
        if n.next_phys != NIL {
            self.nodes[n.next_phys as usize].prev_phys = rest;
        }
        let head = &mut self.nodes[idx as usize];
        head.size = pad;
        head.dirty = head_len;
        head.dirty_off = head_off;
        head.next_phys = rest;
        // The head's physical predecessor is used (free neighbours never touch), so the
        // head goes straight into a free list.
        self.insert_free(idx);
        rest
    }

    /// The next non-empty bin after `(fl, sl)`.
    fn next_bin(&self, fl: usize, sl: usize) -> Option<(usize, usize)> {
        let sl_map = if sl + 1 < SL_COUNT {
            self.sl_bitmap[fl] & (u32::MAX << (sl + 1))
        } else {
            0
        };
        if sl_map != 0 {
            return Some((fl, sl_map.trailing_zeros() as usize));
        }
        let fl_map = if fl + 1 < FL_COUNT {
            self.fl_bitmap & (u64::MAX << (fl + 1))
        } else {
            0
        };
        if fl_map == 0 {
            return None;
        }
        let fl = fl_map.trailing_zeros() as usize;
        Some((fl, self.sl_bitmap[fl].trailing_zeros() as usize))
    }

    /// Where `size` bytes at `align` fault in the fewest fresh pages: among the free
    /// blocks from the request's own bin upwards that hold resident pages, looking at no
    /// more than [`RESIDENT_SCAN`] of them (so a search stays O(1)), the first place that
    /// needs no fresh page, else the one that needs the fewest, if at most half of its
    /// bytes are fresh. `None` otherwise (then best fit places the block: compact, and the
    /// fresh range more likely holds whole huge pages), and while the pool has no room to
    /// grow (best fit alone then keeps big free blocks whole).
    ///
    /// `fresh(chunk, offset, len)` gives the bytes of pages a touch of a range would
    /// fault in (the pool's page map); without it, the block's dirty range estimates them
    /// (it may count a purged gap between merged blocks as resident). On
    /// `numpy-serving.csv` placing by the page map (with the half rule) cut the page
    /// faults of a run by a fifth against placing by whole dirty ranges (docs/resident.md).
    fn find_resident(&self, size: usize, align: usize, fresh: Option<Fresh<'_>>) -> Option<Carve> {
        if !self.prefer_resident || self.dirty_bytes.saturating_mul(2) < size {
            return None;
        }
        let (fl, sl) = mapping_insert(size);
        if fl >= FL_COUNT {
            return None;
        }
        let mut bin = if self.heads[fl][sl] != NIL {
            Some((fl, sl))
        } else {
            self.next_bin(fl, sl)
        };
        let mut budget = RESIDENT_SCAN;
        let mut best: Option<Carve> = None;
        while let Some((fl, sl)) = bin {
            let mut i = self.heads[fl][sl];
            while i != NIL {
                if budget == 0 {
                    return best;
                }
                budget -= 1;
                let n = &self.nodes[i as usize];
                if n.dirty > 0 {
                    for pad in self.carves(i, size, align).into_iter().flatten() {
                        let f = match fresh {
                            Some(f) => f(n.chunk, n.offset + pad, size),
                            None => size - clip(n.dirty_off, n.dirty, pad, pad + size).1,
                        };
                        if f == 0 {
                            return Some(Carve {
                                idx: i,
                                pad,
                                fresh: 0,
                            });
                        }
                        if f * 2 <= size && best.is_none_or(|b| f < b.fresh) {
                            best = Some(Carve {
                                idx: i,
                                pad,
                                fresh: f,
                            });
                        }
                    }
                }
                i = n.next_free;
            }
            bin = self.next_bin(fl, sl);
        }
        best
    }

    /// Offsets in free block `i` worth trying for `size` bytes at `align`, best first
    /// where all are as resident: flush with the block's end when its dirty range reaches
    /// it (one clean head is left, no sliver), else where the dirty range starts; then
    /// flush with the dirty range's end (the most of a short dirty range); then the
    /// block's two ends. `None` where a slot repeats one before it or the block is too
    /// small.
    fn carves(&self, i: u32, size: usize, align: usize) -> [Option<usize>; 4] {
        let n = &self.nodes[i as usize];
        let addr = self.addr(i);
        let lo = addr.next_multiple_of(align) - addr;
        if n.size < size || lo > n.size - size {
            return [None; 4];
        }
        // The last aligned offset the block holds `size` bytes from.
        let hi = ((addr + n.size - size) & !(align - 1)) - addr;
        let at = |off: usize| off.clamp(lo, hi);
        let down = |off: usize| ((addr + off) & !(align - 1)) - addr;
        let dirty_end = n.dirty_off + n.dirty;
        let first = if dirty_end == n.size && n.dirty_off > 0 {
            hi
        } else {
            at((addr + n.dirty_off).next_multiple_of(align) - addr)
        };
        let flush_dirty_end = at(down(dirty_end.saturating_sub(size).max(lo)));
        let mut out = [Some(first), Some(flush_dirty_end), Some(lo), Some(hi)];
        for k in 1..4 {
            if out[..k].contains(&out[k]) {
                out[k] = None;
            }
        }
        out
    }

    /// Best fit proper: a free block that holds `size` bytes at `align`. First a few
    /// blocks into the bin the size itself falls in (a block freed by an earlier request
    /// of the same size sits there and fits exactly; the O(1) search skips that bin, which
    /// may hold smaller blocks), then the O(1) search.
    fn best_fit(&self, size: usize, align: usize) -> Option<u32> {
        // A block found for the plain size often needs no padding (fresh chunks are page
        // aligned); only when it does not fit with its padding, search with the worst case.
        let fits = |t: &Self, i: u32| {
            let a = t.addr(i);
            t.nodes[i as usize].size >= size + (a.next_multiple_of(align) - a)
        };
        let (fl, sl) = mapping_insert(size);
        if fl < FL_COUNT {
            let mut i = self.heads[fl][sl];
            for _ in 0..8 {
                if i == NIL {
                    break;
                }
                if fits(self, i) {
                    return Some(i);
                }
                i = self.nodes[i as usize].next_free;
            }
        }
        match self.find_suitable(size) {
            Some(i) if fits(self, i) => Some(i),
            _ => self.find_suitable(size.checked_add(align - GRANULE)?),
        }
    }

    /// Free bytes that may be resident: the sum of the free blocks' dirty ranges (which
    /// guide placement and purging; the pool's page map has the exact count).
    #[cfg(test)]
    pub fn dirty_free_bytes(&self) -> usize {
        self.dirty_bytes
    }

    fn addr(&self, idx: u32) -> usize {
        let n = &self.nodes[idx as usize];
        self.chunks[n.chunk as usize].expect("live chunk").base + n.offset
    }
}

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
            self.remove_free(next);
            let nx = self.nodes[next as usize];
            let n = &mut self.nodes[idx as usize];
            let next_range = (n.size + nx.dirty_off, nx.dirty);
            (n.dirty_off, n.dirty) = hull((n.dirty_off, n.dirty), next_range);
            n.size += nx.size;
            n.next_phys = nx.next_phys;
            if nx.next_phys != NIL {
                self.nodes[nx.next_phys as usize].prev_phys = idx;
            }
            self.vacate(next);
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

mod fence;

#[cfg(test)]
mod tests;
