//! The resident pages of the large pool: which pages of its chunks count as committed,
//! and handing pages of free blocks back to the device (or moving them into a request's
//! fresh pages) under the resident limit, on request, or once they have been idle.
#![deny(unsafe_code)]

use super::{Grant, LargePool};
use crate::device::{Chunk, DeviceBackend, HUGE_PAGE};
use crate::pool::strategy::BlockStrategy as _;
use crate::pool::strategy::{Block, SysVec};
use std::alloc::System;

/// Shortest run of pages worth a move rather than a hand-back and a fault: on the
/// machines here a move of one page costs about as much as the fault it saves, of four
/// pages a third (measured in C: 2.5 us and 0.9 us per page against 4 us).
const MIN_MOVE: usize = 4 * 4096;

impl LargePool {
    /// Counts the pages under `[addr, addr + len)` of block `b` (in use) as resident,
    /// first handing back pages of free blocks if the fresh ones would take the
    /// committed bytes past the resident limit.
    pub fn take_pages(&mut self, b: &Block, addr: usize, len: usize, g: &Grant<'_>) {
        let backend = g.backend;
        let offset = addr - self.chunks[b.chunk as usize].expect("live chunk").base;
        let fresh = self.resident.untouched(b.chunk, offset, len);
        let committed = self.committed();
        if fresh > 0 && committed + fresh > g.resident_limit {
            // What cannot be handed back (the fresh pages included), plus `keep_free`, may
            // pass the limit (a walk of the free blocks, on a path that is about to fault
            // pages in anyway).
            let held = committed - self.resident_free_bytes() + fresh;
            let limit = g.resident_limit.max(held + self.keep_free);
            // Just what is over: handing back more in a batch was measured to cost more
            // refaults than the purge calls it saves (numpy-serving: 85 MiB purged
            // against 98 with 512 KiB batches, 161 with 2 MiB).
            if committed + fresh > limit {
                let into = (b.chunk, offset, len);
                self.purge_excess(committed + fresh - limit, Some(into), backend);
            }
        }
        if self.huge_pages && fresh >= HUGE_PAGE {
            // The whole huge pages inside the range: one fault each instead of 512.
            let c = self.chunks[b.chunk as usize].as_ref().expect("live chunk");
            let start = addr.next_multiple_of(HUGE_PAGE);
            let end = (addr + len) & !(HUGE_PAGE - 1);
            if end > start
                && self
                    .resident
                    .untouched(b.chunk, start - c.base, end - start)
                    > 0
            {
                if let Some(h) = backend.huge_pages() {
                    h.fault_in_huge(&c.chunk, start - c.base, end - start);
                }
            }
        }
        self.count_pages(b.chunk, offset, len);
    }

    /// Counts the pages under the first `touch` bytes of a block just handed out as
    /// resident (its owner may touch all of them), with no limit (compaction's moves).
    pub(crate) fn mark_resident(&mut self, b: &Block, touch: usize) {
        let base = self.chunks[b.chunk as usize].expect("live chunk").base;
        self.count_pages(b.chunk, b.addr - base, touch);
    }

    /// Counts `[offset, offset + len)` of `chunk` as resident and keeps the peak.
    fn count_pages(&mut self, chunk: u32, offset: usize, len: usize) {
        self.resident.touch(chunk, offset, len);
        self.peak_committed = self.peak_committed.max(self.committed());
    }

    /// Bytes of chunk memory that may be resident: the pages blocks were handed out over,
    /// less those handed back since.
    pub fn committed(&self) -> usize {
        self.resident.bytes()
    }

    /// Hands back pages of free blocks until at most `limit` bytes are committed (or no
    /// dirty free block is left); returns the bytes handed back.
    pub fn purge_to(&mut self, limit: usize, backend: &dyn DeviceBackend) -> usize {
        let excess = self.committed().saturating_sub(limit);
        self.purge_excess(excess, None, backend)
    }

    /// Takes at least `excess` bytes of free blocks' resident pages off the pool, if there
    /// are that many; returns the bytes taken. The strategy offers its dirty free blocks,
    /// oldest frees first; if that is not enough (or the strategy does not age its blocks),
    /// every free block is swept in address order.
    ///
    /// With `into`, the `(chunk, offset, len)` of a request about to take fresh pages, and
    /// a backend that moves pages, the pages taken move into the request's fresh pages in
    /// runs of at least [`MIN_MOVE`] bytes: no page is zeroed, none faults. Everything
    /// else is handed back; a run the backend cannot hand back stays counted.
    fn purge_excess(
        &mut self,
        excess: usize,
        into: Option<(u32, usize, usize)>,
        backend: &dyn DeviceBackend,
    ) -> usize {
        // The request's fresh runs, before any page is taken (its block is not free).
        let mut fresh: SysVec<(usize, usize)> = SysVec::new_in(System);
        let mut dst = None;
        let (mover, decommit) = (backend.page_mover(), backend.decommit());
        if mover.is_none() && decommit.is_none() {
            // Nothing can take pages off this device's chunks: they all stay counted.
            return 0;
        }
        if let Some((chunk, offset, len)) = into.filter(|_| mover.is_some()) {
            dst = Some(self.chunks[chunk as usize].expect("live chunk"));
            self.resident
                .untouched_runs(chunk, offset, len, &mut |o, l| fresh.push((o, l)));
        }
        let mut moved: SysVec<(usize, usize)> = SysVec::new_in(System);
        let (mut f, mut purged) = (0, 0);
        let taken = self.take_free_pages(excess, &mut |src, mut o, l| {
            let mut left = l;
            if let (Some(dst), Some(mover)) = (dst.as_ref(), mover) {
                while left >= MIN_MOVE {
                    while f < fresh.len() && fresh[f].1 < MIN_MOVE {
                        f += 1;
                    }
                    let Some(&(to, room)) = fresh.get(f) else {
                        break;
                    };
                    let piece = left.min(room);
                    if !mover.move_pages(src, o, &dst.chunk, to, piece) {
                        // Partly moved, perhaps: the rest goes back, and this run faults in.
                        f += 1;
                        break;
                    }
                    moved.push((to, piece));
                    fresh[f] = (to + piece, room - piece);
                    o += piece;
                    left -= piece;
                }
            }
            if left == 0 {
                return true;
            }
            let back = decommit.is_some_and(|d| d.decommit_range(src, o, left) > 0);
            if back {
                purged += left;
            }
            back
        });
        if let Some((chunk, ..)) = into {
            for &(to, piece) in moved.iter() {
                self.resident.touch(chunk, to, piece);
                self.moved_total += piece;
            }
        }
        self.purged_total += purged;
        taken
    }

    /// Takes at least `excess` bytes of free blocks' resident pages off the page map (see
    /// [`purge_excess`](Self::purge_excess)), each run through `hand(chunk, offset, len)`,
    /// which passes it on and says whether it did (a run it keeps stays counted); returns
    /// the bytes taken.
    fn take_free_pages(
        &mut self,
        excess: usize,
        hand: &mut dyn FnMut(&Chunk, usize, usize) -> bool,
    ) -> usize {
        if excess == 0 {
            return 0;
        }
        let (chunks, resident) = (&self.chunks, &mut self.resident);
        let mut taken = self
            .strategy
            .purge(excess, &mut |chunk, offset, len, want| {
                let c = chunks[chunk as usize].as_ref().expect("live chunk");
                let got =
                    resident.purge(chunk, (offset, len), want, &mut |o, l| hand(&c.chunk, o, l));
                (got, resident.resident_in(chunk, offset, len) > 0)
            });
        for (c, id, offset, len) in self.free_spans() {
            if taken >= excess {
                break;
            }
            taken += self
                .resident
                .purge(id, (offset, len), excess - taken, &mut |o, l| {
                    hand(&c.chunk, o, l)
                });
        }
        taken
    }

    /// Bytes of resident pages wholly inside free blocks (not a hot path: it walks them).
    pub fn resident_free_bytes(&self) -> usize {
        self.free_spans()
            .into_iter()
            .map(|(_, id, offset, len)| self.resident.resident_in(id, offset, len))
            .sum()
    }

    /// Hands back the pages of free blocks freed before `before` (ms).
    pub fn purge_idle(&mut self, before: u64, backend: &dyn DeviceBackend) -> usize {
        let Some(decommit) = backend.decommit() else {
            return 0; // the device cannot take pages back: they stay counted
        };
        let (chunks, resident) = (&self.chunks, &mut self.resident);
        let purged = self
            .strategy
            .purge_freed_before(before, &mut |chunk, offset, len, want| {
                let c = chunks[chunk as usize].as_ref().expect("live chunk");
                resident.purge(chunk, (offset, len), want, &mut |o, l| {
                    decommit.decommit_range(&c.chunk, o, l) > 0
                })
            });
        self.purged_total += purged;
        purged
    }
}
