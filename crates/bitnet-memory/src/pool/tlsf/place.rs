//! Where TLSF places a request: in resident free memory first (the fewest fresh pages),
//! else by best fit.
#![deny(unsafe_code)]

use super::bins::{mapping_insert, FL_COUNT};
use super::blocks::clip;
use super::{Tlsf, GRANULE, NIL};
use crate::pool::strategy::Fresh;

/// Where a block goes: free block `idx`, `pad` bytes in, faulting in `fresh` bytes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Carve {
    /// The free block.
    pub(super) idx: u32,
    /// Bytes from its start to the request.
    pub(super) pad: usize,
    /// Bytes of pages the request would fault in.
    fresh: usize,
}

/// Free blocks [`Tlsf::find_resident`] looks at, at most, per request.
const RESIDENT_SCAN: usize = 32;

impl Tlsf {
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
    pub(super) fn find_resident(
        &self,
        size: usize,
        align: usize,
        fresh: Option<Fresh<'_>>,
    ) -> Option<Carve> {
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
    pub(super) fn best_fit(&self, size: usize, align: usize) -> Option<u32> {
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
            _ => self
                .find_suitable(size.checked_add(align - GRANULE)?)
                .or_else(|| self.fitting_head(size, fits)),
        }
    }

    /// The worst-case search asks for `align - GRANULE` bytes of padding, more than a
    /// page-aligned chunk sized for the request holds (`chunk_request` counts only the
    /// padding a page-aligned base can need): so for an alignment far above the block
    /// size (1 GiB for 64 bytes) neither O(1) search finds the fresh chunk. Looks at the
    /// first blocks of every non-empty bin that may hold `size`, where a fresh chunk's
    /// block sits (at its bin's head). Runs only when both searches failed, before the
    /// pool grows or gives up.
    #[cold]
    fn fitting_head(&self, size: usize, fits: impl Fn(&Self, u32) -> bool) -> Option<u32> {
        let (fl, sl) = mapping_insert(size);
        if fl >= FL_COUNT {
            return None;
        }
        let mut bin = if self.heads[fl][sl] != NIL {
            Some((fl, sl))
        } else {
            self.next_bin(fl, sl)
        };
        while let Some((fl, sl)) = bin {
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
            bin = self.next_bin(fl, sl);
        }
        None
    }
}
