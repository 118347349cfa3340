//! The large-block pool of one device: a [`BlockStrategy`] over chunks, the chunk table,
//! growth and the budget. Lives behind one mutex: large requests are rare next to small
//! ones, and the strategies are O(1) (TLSF) or close to it (buddy).
//!
//! Here: the pool's types and the calls that serve and take back blocks; the chunk table
//! and growth are in `chunks`, the resident pages and their hand-back in `pages`.
#![deny(unsafe_code)]

mod chunks;
pub(crate) mod compact;
mod dedicated;
mod pages;
pub(crate) mod switch;
mod timing;

use crate::device::{Chunk, DeviceBackend, DeviceError};
use crate::pool::resident::ResidentPages;
use crate::pool::strategy::{Block, BlockStrategy, SysVec};
use chunks::SYNTHETIC_BASE;
use hashbrown::{DefaultHashBuilder, HashMap};
use std::alloc::System;

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
    /// The request is above a limit of the device: it never fits.
    TooLarge {
        /// The limit in bytes.
        limit: usize,
        /// The device's name for it.
        name: &'static str,
    },
}

impl GrowError {
    /// Whether no trim or retry can help: the request is above a device limit, or the
    /// device is gone.
    pub fn is_final(&self) -> bool {
        match self {
            GrowError::Budget { .. } => false,
            GrowError::Device(e) => e.lost,
            GrowError::TooLarge { .. } => true,
        }
    }
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
    /// A chunk of one user block, outside the strategy (see `dedicated`): released when
    /// that block is freed.
    pub(crate) dedicated: bool,
}

/// Large-block state of one device.
pub struct LargePool {
    strategy: switch::Switchable,
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
    /// Chunks given back to the device so far (trims, decay, compaction, dedicated
    /// chunks, empty chunks released at a free), and their bytes.
    pub released_total: (usize, usize),
    /// Bytes of chunks taken from the device so far: with `released_total`, what lets a
    /// cleanup be checked against the mapped bytes before and after it
    /// (`mapped_before + grown - released == mapped_after`).
    pub grown_total: usize,
    /// Bytes of dedicated chunks held (part of `reserved`).
    pub dedicated_bytes: usize,
    /// Requests of at least this many bytes get a dedicated chunk of their own, released
    /// when the block is freed (`usize::MAX`: never; devices that cannot decommit).
    pub dedicated_threshold: usize,
    /// Give chunks that become wholly free back to the device at once, at the free that
    /// emptied them (devices that cannot decommit, whose free chunk bytes stay held).
    pub release_on_empty: bool,
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
    /// Largest chunk the device can make (`usize::MAX`: no limit) and its name: growth
    /// never asks for more, a request that needs more is too large.
    pub(crate) chunk_limit: (usize, &'static str),
    epoch: std::time::Instant,
    /// User operations so far (the timing samples one in eight).
    ops: u64,
    /// Measured cost per strategy used.
    timing: SysVec<(&'static str, u64, u64)>,
}

impl LargePool {
    /// A pool using `strategy`, growing by chunks between the two sizes.
    pub fn new(strategy: Box<dyn BlockStrategy>, min_chunk: usize, max_chunk: usize) -> Self {
        Self {
            strategy: switch::Switchable::new(strategy),
            chunks: SysVec::new_in(System),
            next_synthetic: SYNTHETIC_BASE,
            by_base: SysVec::new_in(System),
            free_ids: SysVec::new_in(System),
            reserved: 0,
            peak_committed: 0,
            purged_total: 0,
            released_total: (0, 0),
            grown_total: 0,
            dedicated_bytes: 0,
            dedicated_threshold: usize::MAX,
            release_on_empty: false,
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
            chunk_limit: (usize::MAX, "none"),
            epoch: std::time::Instant::now(),
            ops: 0,
            timing: SysVec::new_in(System),
        }
    }

    /// Name of the strategy.
    pub fn strategy_name(&self) -> &'static str {
        self.strategy.name()
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
            None => match self.grow(size, align, g) {
                Ok(()) => self
                    .strategy
                    .allocate(size, align)
                    .expect("a fresh chunk serves the request it was sized for"),
                // A strategy switched away from may still have room.
                Err(e) => self.strategy.allocate_retiring(size, align).ok_or(e)?,
            },
        };
        // The block is out of the free lists: a purge now cannot take its pages.
        self.take_pages(&b, b.addr, touch.min(b.size), g);
        Ok(b)
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
    pub fn free_single(&mut self, addr: usize, backend: &dyn DeviceBackend) {
        let (token, size) = self.singles.remove(&addr).expect("a live one-block slab");
        self.slab_bytes -= size;
        self.tick();
        self.strategy.free(token);
        self.after_free(backend);
    }

    /// Allocates a block for the user and records it by address.
    pub fn allocate_user(
        &mut self,
        size: usize,
        align: usize,
        g: &Grant<'_>,
    ) -> Result<Block, GrowError> {
        // The owner's slice is `size` bytes long: the rest of the block stays untouched.
        let b = self.timed(|p| {
            if size >= p.dedicated_threshold {
                p.allocate_dedicated(size, align, g)
            } else {
                p.allocate((size, align, size), g)
            }
        })?;
        self.user.insert(b.addr, (b.token, b.size));
        self.user_bytes += b.size;
        Ok(b)
    }

    /// Grows the user block at `addr` to at least `size` bytes where it lies (its owner
    /// will touch `size` bytes): the new block size, or `None` (nothing changed) when no
    /// user block starts there, it has a chunk of its own, or the memory after it is not
    /// free.
    pub fn grow_user(&mut self, addr: usize, size: usize, g: &Grant<'_>) -> Option<usize> {
        let (token, old) = *self.user.get(&addr)?;
        if old >= size {
            return Some(old);
        }
        if self.dedicated_at(addr).is_some() {
            return None;
        }
        let b = self.strategy.grow_in_place(token, size)?;
        debug_assert_eq!(b.addr, addr);
        self.user.insert(addr, (token, b.size));
        self.user_bytes += b.size - old;
        // The block's new bytes are out of the free lists now: count the pages the owner
        // will touch.
        self.take_pages(&b, addr + old, size - old, g);
        Some(b.size)
    }

    /// Frees a user block by address; `None` if no user block starts there. A dedicated
    /// chunk goes back to `backend` with it.
    pub fn free_user(&mut self, addr: usize, backend: &dyn DeviceBackend) -> Option<usize> {
        let (token, size) = self.user.remove(&addr)?;
        self.user_bytes -= size;
        self.timed(|p| p.release_block(addr, token, backend));
        Some(size)
    }

    /// Frees a user block whose token is known. A dedicated chunk goes back to `backend`
    /// with it.
    pub fn free_user_token(&mut self, addr: usize, token: u64, backend: &dyn DeviceBackend) {
        let (t, size) = self.user.remove(&addr).expect("live user block");
        debug_assert_eq!(t, token);
        self.user_bytes -= size;
        self.timed(|p| p.release_block(addr, token, backend));
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

    /// Whether a live one-block slab starts at `addr`.
    pub fn holds_single(&self, addr: usize) -> bool {
        self.singles.contains_key(&addr)
    }

    /// Token and block size of the user block at `addr`, if one starts there.
    pub fn user_block(&self, addr: usize) -> Option<(u64, usize)> {
        self.user.get(&addr).copied()
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
        let dedicated: usize = self
            .chunks
            .iter()
            .flatten()
            .filter(|c| c.dedicated)
            .map(|c| {
                let (_, size) = self.user[&c.base];
                assert_eq!(size, c.size, "a dedicated chunk holds one user block");
                c.size
            })
            .sum();
        assert_eq!(dedicated, self.dedicated_bytes, "dedicated bytes drifted");
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
