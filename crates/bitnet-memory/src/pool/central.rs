//! The central free list of one size class: blocks carved from slabs, shared by all
//! threads behind a lock that thread caches take once per batch.
#![deny(unsafe_code)]

use super::strategy::Block;
use std::alloc::System;

type SysVec<T> = allocator_api2::vec::Vec<T, System>;

/// A slab: one block of the large pool cut into blocks of one class.
#[derive(Debug, Clone, Copy)]
pub struct Slab {
    /// The large-pool block holding the slab.
    pub block: Block,
    /// Bytes of the slab used for class blocks (a whole number of blocks).
    pub size: usize,
}

/// Central state of one class.
#[derive(Debug)]
pub struct Central {
    block: usize,
    free: SysVec<usize>,
    /// Not yet carved part of the newest slab: `[bump, bump_end)`.
    bump: usize,
    bump_end: usize,
    slabs: SysVec<Slab>,
    /// Blocks handed to threads and not returned (live or in thread caches).
    pub handed_out: usize,
}

impl Central {
    /// Empty central list for blocks of `block` bytes.
    pub fn new(block: usize) -> Self {
        Self {
            block,
            free: SysVec::new_in(System),
            bump: 0,
            bump_end: 0,
            slabs: SysVec::new_in(System),
            handed_out: 0,
        }
    }

    /// Takes up to `n` blocks (most recently freed first, then fresh ones) and gives them
    /// to `sink`; returns how many it gave.
    pub fn take(&mut self, n: usize, mut sink: impl FnMut(usize)) -> usize {
        let mut got = 0;
        while got < n {
            if let Some(a) = self.free.pop() {
                sink(a);
            } else if self.bump < self.bump_end {
                sink(self.bump);
                self.bump += self.block;
            } else {
                break;
            }
            got += 1;
        }
        self.handed_out += got;
        got
    }

    /// Returns a block.
    pub fn put(&mut self, addr: usize) {
        debug_assert!(self.handed_out > 0);
        self.handed_out -= 1;
        self.free.push(addr);
    }

    /// Adds a fresh slab whose blocks are carved on demand.
    pub fn add_slab(&mut self, block: Block, size: usize) {
        debug_assert!(self.bump == self.bump_end, "previous slab fully carved");
        self.slabs.push(Slab { block, size });
        self.bump = block.addr;
        self.bump_end = block.addr + size;
    }

    /// Blocks free here (listed or not yet carved).
    pub fn free_blocks(&self) -> usize {
        self.free.len() + (self.bump_end - self.bump) / self.block
    }

    /// Bytes of all slabs.
    pub fn slab_bytes(&self) -> usize {
        self.slabs.iter().map(|s| s.block.size).sum()
    }

    /// Number of slabs.
    pub fn slab_count(&self) -> usize {
        self.slabs.len()
    }

    /// Block size of the class in bytes.
    pub fn block_size(&self) -> usize {
        self.block
    }

    /// The central free list (most recently freed last).
    pub fn free_list(&self) -> &[usize] {
        &self.free
    }

    /// The not yet carved range `[start, end)` of the newest slab.
    pub fn uncarved(&self) -> (usize, usize) {
        (self.bump, self.bump_end)
    }

    /// The slabs of the class.
    pub fn slabs(&self) -> &[Slab] {
        &self.slabs
    }

    /// Removes every slab all of whose blocks are free here and hands it to `sink`.
    /// Blocks held by threads (live or cached) keep their slab.
    pub fn release_empty_slabs(&mut self, mut sink: impl FnMut(Slab)) {
        if self.slabs.is_empty() {
            return;
        }
        self.free.sort_unstable();
        let mut released = SysVec::new_in(System);
        let block = self.block;
        let (bump, bump_end) = (self.bump, self.bump_end);
        let free = &self.free;
        self.slabs.retain(|s| {
            let start = s.block.addr;
            let end = start + s.size;
            let listed = free.partition_point(|&a| a < end) - free.partition_point(|&a| a < start);
            let uncarved = if bump >= start && bump_end <= end {
                (bump_end - bump) / block
            } else {
                0
            };
            let empty = (listed + uncarved) * block == s.size;
            if empty {
                released.push(*s);
            }
            !empty
        });
        if released.is_empty() {
            return;
        }
        self.free.retain(|a| {
            !released
                .iter()
                .any(|s| *a >= s.block.addr && *a < s.block.addr + s.size)
        });
        if released
            .iter()
            .any(|s| self.bump >= s.block.addr && self.bump_end <= s.block.addr + s.size)
        {
            self.bump = 0;
            self.bump_end = 0;
        }
        for s in released {
            sink(s);
        }
    }

    /// Checks that every free block lies on the class grid of one slab, once.
    pub fn check_invariants(&self, cached: &[usize]) {
        let mut all: Vec<usize> = self
            .free
            .iter()
            .copied()
            .chain(cached.iter().copied())
            .collect();
        all.sort_unstable();
        for w in all.windows(2) {
            assert_ne!(w[0], w[1], "block {:#x} free twice", w[0]);
        }
        if self.slabs.is_empty() && self.free.is_empty() {
            // One-block slabs (or an untouched class): cached blocks belong to the large
            // pool, which checks them; nothing may be listed here.
            assert_eq!(self.bump, self.bump_end, "uncarved range without a slab");
            return;
        }
        for &a in &all {
            let slab = self
                .slabs
                .iter()
                .find(|s| a >= s.block.addr && a < s.block.addr + s.size)
                .unwrap_or_else(|| panic!("free block {a:#x} in no slab"));
            assert_eq!(
                (a - slab.block.addr) % self.block,
                0,
                "block off the class grid"
            );
            assert!(
                !(a >= self.bump && a < self.bump_end),
                "free block {a:#x} in the uncarved range"
            );
        }
        let capacity: usize = self.slabs.iter().map(|s| s.size / self.block).sum();
        assert_eq!(
            self.handed_out + self.free_blocks(),
            capacity,
            "blocks lost or invented"
        );
    }
}
