//! The large-block pool of one device: a [`BlockStrategy`] over chunks, the chunk table,
//! growth and the budget. Lives behind one mutex: large requests are rare next to small
//! ones, and the strategies are O(1) (TLSF) or close to it (buddy).
#![deny(unsafe_code)]

use crate::device::{Chunk, DeviceBackend, DeviceError, HUGE_PAGE};
use crate::pool::resident::ResidentPages;
use crate::pool::strategy::{Block, BlockStrategy, SysVec};
use hashbrown::{DefaultHashBuilder, HashMap};
use std::alloc::System;

/// Where the pool's own address space for chunks without a host address starts: above
/// every user-space host address of x86-64 and aarch64 (48-bit), so a synthetic block
/// address never equals a host one in tables keyed by address.
const SYNTHETIC_BASE: usize = 1 << 48;

/// Shortest run of pages worth a move rather than a hand-back and a fault: on the
/// machines here a move of one page costs about as much as the fault it saves, of four
/// pages a third (measured in C: 2.5 us and 0.9 us per page against 4 us).
const MIN_MOVE: usize = 4 * 4096;

pub(crate) mod compact;

/// Why the pool could not grow.
#[derive(Debug)]
pub enum GrowError {
    /// A new chunk of `needed` bytes would pass the budget.
    Budget {
        /// Bytes the smallest sufficient chunk would add.
        needed: usize,
    },
    /// The device refused.
    Device(DeviceError),
}

/// What a request may take from the device: the backend chunks come from, the budget of
/// mapped bytes, and the resident limit (committed bytes a request may not take the pool
/// past while free blocks hold resident pages: before it takes fresh pages past the limit,
/// pages of free blocks are handed back, oldest frees first; `usize::MAX`: no limit). The
/// device pool works the limit out for each request, from the live bytes with the
/// request's own counted in.
#[derive(Clone, Copy)]
pub struct Grant<'a> {
    /// Where chunks come from and pages go back to.
    pub backend: &'a dyn DeviceBackend,
    /// Mapped bytes the pool may not grow past.
    pub budget: usize,
    /// See above.
    pub resident_limit: usize,
}

impl<'a> Grant<'a> {
    /// No budget and no resident limit.
    #[cfg(test)]
    pub fn unlimited(backend: &'a dyn DeviceBackend) -> Self {
        Self {
            backend,
            budget: usize::MAX,
            resident_limit: usize::MAX,
        }
    }
}

/// What releasing empty chunks gave back.
#[derive(Debug, Default, Clone, Copy)]
pub struct Released {
    /// Chunks given back to the device.
    pub chunks: usize,
    /// Their bytes.
    pub bytes: usize,
}

/// What [`LargePool::layout`] copies out (on the system allocator: it is taken under the
/// pool's lock): `(id, base, size)` of chunks, `(addr, size)` of blocks.
pub struct LargeLayout {
    /// Chunks held.
    pub chunks: SysVec<(u32, usize, usize)>,
    /// User blocks.
    pub user: SysVec<(usize, usize)>,
    /// One-block slabs of the big size classes (live, or in a thread cache).
    pub singles: SysVec<(usize, usize)>,
    /// Free blocks.
    pub free: SysVec<(usize, usize)>,
}

/// A chunk the pool holds: the backend's chunk and where it lies in the pool's address
/// space (`base`: its host address where it has one, else a synthetic one).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Held {
    /// The backend's chunk, handed back as is in every call.
    pub(crate) chunk: Chunk,
    /// First address of the chunk in the pool's address space.
    pub(crate) base: usize,
    /// Size in bytes.
    pub(crate) size: usize,
}

/// Large-block state of one device.
pub struct LargePool {
    strategy: Box<dyn BlockStrategy>,
    chunks: SysVec<Option<Held>>,
    /// Next free address of the synthetic address space (chunks without a host address).
    next_synthetic: usize,
    /// `(base, id)` of the live chunks, by base: which chunk holds an address.
    by_base: SysVec<(usize, u32)>,
    free_ids: SysVec<u32>,
    /// Bytes in chunks held from the device.
    pub reserved: usize,
    /// Highest `committed()` ever.
    pub peak_committed: usize,
    /// Bytes whose pages were handed back by purges so far.
    pub purged_total: usize,
    /// Bytes of free blocks' pages moved into requests' fresh pages instead of being
    /// handed back (and faulted in again) so far.
    pub moved_total: usize,
    /// Which pages of the chunks may be resident.
    resident: ResidentPages,
    /// Resident bytes of free blocks the pool may always keep, on top of what it cannot
    /// hand back (blocks in use, slab pages carved): where those alone pass the limit,
    /// handing back every free page at each request would only make the next ones fault.
    pub keep_free: usize,
    /// Ask the backend to fault the whole huge pages inside a request's fresh pages in at
    /// once ([`DeviceBackend::fault_in_huge`]).
    pub huge_pages: bool,
    /// User blocks served directly (not slabs) by address: token and block size.
    user: HashMap<usize, (u64, usize), DefaultHashBuilder, System>,
    /// One-block slabs of the big size classes by address: token and block size.
    singles: HashMap<usize, (u64, usize), DefaultHashBuilder, System>,
    /// Bytes of user blocks (block sizes).
    pub user_bytes: usize,
    /// Bytes of slabs lent to the small pool.
    pub slab_bytes: usize,
    min_chunk: usize,
    max_chunk: usize,
    epoch: std::time::Instant,
}

impl LargePool {
    /// A pool using `strategy`, growing by chunks between the two sizes.
    pub fn new(strategy: Box<dyn BlockStrategy>, min_chunk: usize, max_chunk: usize) -> Self {
        Self {
            strategy,
            chunks: SysVec::new_in(System),
            next_synthetic: SYNTHETIC_BASE,
            by_base: SysVec::new_in(System),
            free_ids: SysVec::new_in(System),
            reserved: 0,
            peak_committed: 0,
            purged_total: 0,
            moved_total: 0,
            resident: ResidentPages::new(),
            keep_free: 0,
            huge_pages: false,
            user: HashMap::with_hasher_in(DefaultHashBuilder::default(), System),
            singles: HashMap::with_hasher_in(DefaultHashBuilder::default(), System),
            user_bytes: 0,
            slab_bytes: 0,
            min_chunk,
            max_chunk,
            epoch: std::time::Instant::now(),
        }
    }

    /// Name of the strategy.
    pub fn strategy_name(&self) -> &'static str {
        self.strategy.name()
    }

    fn growth(&self) -> usize {
        (self.reserved / 8)
            .next_multiple_of(2 << 20)
            .clamp(self.min_chunk, self.max_chunk)
    }

    fn grow(&mut self, size: usize, align: usize, g: &Grant<'_>) -> Result<(), GrowError> {
        let budget = g.budget;
        let (mut csize, mut calign) = self.strategy.chunk_request(size, align, self.growth());
        if self.reserved.saturating_add(csize) > budget {
            // Shrink the growth to what this request needs before giving up.
            (csize, calign) = self.strategy.chunk_request(size, align, 0);
            if self.reserved.saturating_add(csize) > budget {
                return Err(GrowError::Budget { needed: csize });
            }
        }
        let chunk = g
            .backend
            .allocate_chunk(csize, calign)
            .map_err(GrowError::Device)?;
        let chunk = self.place(chunk, calign, g.backend)?;
        let id = match self.free_ids.pop() {
            Some(id) => id,
            None => {
                self.chunks.push(None);
                u32::try_from(self.chunks.len() - 1).expect("fewer than 2^32 chunks")
            }
        };
        self.chunks[id as usize] = Some(chunk);
        let at = self.by_base.partition_point(|&(b, _)| b < chunk.base);
        self.by_base.insert(at, (chunk.base, id));
        self.reserved += chunk.size;
        self.resident.add_chunk(id, chunk.size);
        self.strategy.add_chunk(id, chunk.base, chunk.size);
        Ok(())
    }

    /// Gives a fresh chunk its base in the pool's address space: its host address on a
    /// host-visible device (which must give one, aligned), else the next synthetic range
    /// aligned to `align`, never reused.
    fn place(
        &mut self,
        chunk: Chunk,
        align: usize,
        backend: &dyn DeviceBackend,
    ) -> Result<Held, GrowError> {
        let bad = |reason: &str| {
            GrowError::Device(DeviceError {
                size: chunk.size,
                align,
                reason: format!("{}: {reason}", backend.name()),
            })
        };
        let base = if backend.host_visible() {
            match chunk.host {
                Some(h) if h != 0 && h.is_multiple_of(align) => h,
                _ => {
                    backend.release_chunk(chunk);
                    return Err(bad(
                        "a host-visible backend gave a chunk without an aligned host address",
                    ));
                }
            }
        } else {
            let base = self.next_synthetic.next_multiple_of(align.max(4096));
            let Some(end) = base.checked_add(chunk.size) else {
                backend.release_chunk(chunk);
                return Err(bad("the pool's address space for device chunks is used up"));
            };
            self.next_synthetic = end;
            base
        };
        Ok(Held {
            chunk,
            base,
            size: chunk.size,
        })
    }

    /// Allocates a block, growing by one chunk if no free block fits. Its owner may touch
    /// its first `touch` bytes.
    pub fn allocate(
        &mut self,
        (size, align, touch): (usize, usize, usize),
        g: &Grant<'_>,
    ) -> Result<Block, GrowError> {
        // Resident-first placement cuts into big free blocks; near the budget they are
        // what a big request needs, so best fit alone decides there.
        let room = self.reserved.saturating_add(self.growth()) <= g.budget;
        self.strategy.set_prefer_resident(room);
        let resident = &self.resident;
        let fresh = |chunk: u32, offset: usize, len: usize| resident.untouched(chunk, offset, len);
        let b = match self.strategy.allocate_placed(size, align, Some(&fresh)) {
            Some(b) => b,
            None => {
                self.grow(size, align, g)?;
                self.strategy
                    .allocate(size, align)
                    .expect("a fresh chunk serves the request it was sized for")
            }
        };
        // The block is out of the free lists: a purge now cannot take its pages.
        self.take_pages(&b, b.addr, touch.min(b.size), g);
        Ok(b)
    }

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

    /// Every free block as `(chunk, chunk id, offset in the chunk, length)`, in address
    /// order within each chunk.
    fn free_spans(&self) -> SysVec<(Held, u32, usize, usize)> {
        let mut spans = SysVec::new_in(System);
        self.strategy.free_block_spans(&mut spans);
        let mut out = SysVec::with_capacity_in(spans.len(), System);
        for (addr, len) in spans {
            // The chunk holding `addr`: the last one starting at or before it.
            let i = self.by_base.partition_point(|&(b, _)| b <= addr);
            let id = self.by_base[i.checked_sub(1).expect("a free block in a chunk")].1;
            let c = self.chunks[id as usize].expect("live chunk");
            debug_assert!(addr < c.base + c.size, "a free block in a chunk");
            out.push((c, id, addr - c.base, len));
        }
        out
    }

    /// Takes chunk `id` out of the tables (its memory goes back to the device after).
    fn forget_chunk(&mut self, id: u32) -> Chunk {
        let held = self.chunks[id as usize].take().expect("live chunk");
        self.by_base.retain(|&(_, i)| i != id);
        self.free_ids.push(id);
        self.reserved -= held.size;
        self.resident.remove_chunk(id);
        held.chunk
    }

    /// Allocates a block that serves as a whole one-block slab of a size class, of which
    /// the first `touch` bytes may be touched (all of it where a thread cache may hand it
    /// out again).
    pub fn allocate_single(
        &mut self,
        (size, touch): (usize, usize),
        g: &Grant<'_>,
    ) -> Result<Block, GrowError> {
        let b = self.allocate((size, super::size_class::SLAB_ALIGN, touch), g)?;
        self.singles.insert(b.addr, (b.token, b.size));
        self.slab_bytes += b.size;
        Ok(b)
    }

    /// Takes back a one-block slab by address.
    pub fn free_single(&mut self, addr: usize) {
        let (token, size) = self.singles.remove(&addr).expect("a live one-block slab");
        self.slab_bytes -= size;
        self.tick();
        self.strategy.free(token);
    }

    /// Allocates a block for the user and records it by address.
    pub fn allocate_user(
        &mut self,
        size: usize,
        align: usize,
        g: &Grant<'_>,
    ) -> Result<Block, GrowError> {
        // The owner's slice is `size` bytes long: the rest of the block stays untouched.
        let b = self.allocate((size, align, size), g)?;
        self.user.insert(b.addr, (b.token, b.size));
        self.user_bytes += b.size;
        Ok(b)
    }

    /// Frees a user block by address; `None` if no user block starts there.
    pub fn free_user(&mut self, addr: usize) -> Option<usize> {
        let (token, size) = self.user.remove(&addr)?;
        self.user_bytes -= size;
        self.tick();
        self.strategy.free(token);
        Some(size)
    }

    /// Frees a user block whose token is known.
    pub fn free_user_token(&mut self, addr: usize, token: u64) {
        let (t, size) = self.user.remove(&addr).expect("live user block");
        debug_assert_eq!(t, token);
        self.user_bytes -= size;
        self.tick();
        self.strategy.free(token);
    }

    /// Lends a slab to the small pool. None of its pages counts as resident yet: the
    /// small pool reports them with [`take_pages`](Self::take_pages) as it carves blocks.
    pub fn allocate_slab(&mut self, size: usize, g: &Grant<'_>) -> Result<Block, GrowError> {
        let b = self.allocate((size, super::size_class::SLAB_ALIGN, 0), g)?;
        self.slab_bytes += b.size;
        Ok(b)
    }

    /// Takes a slab back.
    pub fn free_slab(&mut self, block: Block) {
        self.slab_bytes -= block.size;
        self.tick();
        self.strategy.free(block.token);
    }

    /// Gives every wholly free chunk back to the device.
    pub fn release_empty(&mut self, backend: &dyn DeviceBackend) -> Released {
        self.release_idle(backend, u64::MAX)
    }

    /// Gives back every wholly free chunk whose last block was freed before
    /// `idle_before` (ms on [`now_ms`](Self::now_ms)'s clock).
    pub fn release_idle(&mut self, backend: &dyn DeviceBackend, idle_before: u64) -> Released {
        let mut ids = SysVec::new_in(System);
        self.strategy.remove_empty_chunks(&mut ids, idle_before);
        let mut r = Released::default();
        for id in ids {
            let chunk = self.forget_chunk(id);
            r.chunks += 1;
            r.bytes += chunk.size;
            backend.release_chunk(chunk);
        }
        r
    }

    /// Gives every chunk back, owned or not. Only for the pool's own drop.
    pub fn release_all(&mut self, backend: &dyn DeviceBackend) {
        for c in self.chunks.iter_mut() {
            if let Some(held) = c.take() {
                backend.release_chunk(held.chunk);
            }
        }
        self.reserved = 0;
        self.by_base.clear();
    }

    /// Free bytes in chunks (not counting free blocks of slabs).
    pub fn free_bytes(&self) -> usize {
        self.strategy.free_bytes()
    }

    /// Largest free block.
    pub fn largest_free(&self) -> usize {
        self.strategy.largest_free()
    }

    /// Milliseconds since the pool was made: the clock blocks are stamped with when freed.
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
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

    /// Stamps the strategy's clock before a free.
    fn tick(&mut self) {
        let now = self.now_ms();
        self.strategy.set_now(now);
    }

    /// Sizes of all free blocks.
    pub fn free_block_sizes(&self, out: &mut SysVec<usize>) {
        self.strategy.free_block_sizes(out)
    }

    /// The layout of the chunks for a snapshot: chunks, blocks in use (user blocks and
    /// one-block slabs; slabs lent to the small pool are left out) and free blocks.
    pub fn layout(&self) -> LargeLayout {
        let mut l = LargeLayout {
            chunks: SysVec::new_in(System),
            user: SysVec::new_in(System),
            singles: SysVec::new_in(System),
            free: SysVec::new_in(System),
        };
        for (id, c) in self.chunks.iter().enumerate() {
            if let Some(c) = c {
                l.chunks.push((id as u32, c.base, c.size));
            }
        }
        l.user.extend(self.user.iter().map(|(&a, &(_, s))| (a, s)));
        l.singles
            .extend(self.singles.iter().map(|(&a, &(_, s))| (a, s)));
        self.strategy.free_block_spans(&mut l.free);
        l
    }

    /// Chunks held.
    pub fn chunk_count(&self) -> usize {
        self.chunks.iter().flatten().count()
    }

    /// Live user blocks.
    pub fn user_blocks(&self) -> usize {
        self.user.len()
    }

    /// Checks the strategy and the byte accounting.
    pub fn check_invariants(&self) {
        self.strategy.check_invariants();
        self.resident.check();
        assert!(
            self.committed() <= self.reserved,
            "more resident than mapped"
        );
        let chunk_bytes: usize = self.chunks.iter().flatten().map(|c| c.size).sum();
        assert_eq!(
            self.by_base.len(),
            self.chunk_count(),
            "chunk index drifted"
        );
        assert!(self.by_base.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(chunk_bytes, self.reserved, "reserved bytes drifted");
        let user: usize = self.user.values().map(|v| v.1).sum();
        assert_eq!(user, self.user_bytes, "user bytes drifted");
        // Chunks may be rounded down to the strategy's granule; allow that slack.
        let singles: usize = self.singles.values().map(|v| v.1).sum();
        assert!(
            singles <= self.slab_bytes,
            "one-block slabs not counted as slabs"
        );
        let accounted = self.user_bytes + self.slab_bytes + self.strategy.free_bytes();
        assert!(
            accounted <= self.reserved
                && self.reserved - accounted < 4096 * (self.chunk_count() + 1),
            "blocks do not add up: user {} + slabs {} + free {} vs reserved {}",
            self.user_bytes,
            self.slab_bytes,
            self.strategy.free_bytes(),
            self.reserved
        );
    }
}

#[cfg(test)]
mod tests;
