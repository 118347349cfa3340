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
    /// End of the pages of the newest slab counted resident so far (a slab's pages are
    /// counted as blocks are carved from them, not when the slab is taken).
    counted: usize,
    slabs: SysVec<Slab>,
    /// Blocks handed to threads and not returned (live or in thread caches).
    pub handed_out: usize,
    /// Times a thread took blocks from this list (each under its lock).
    pub takes: u64,
    /// Times a thread gave blocks back to this list (each under its lock).
    pub puts: u64,
}

impl Central {
    /// Empty central list for blocks of `block` bytes.
    pub fn new(block: usize) -> Self {
        Self {
            block,
            free: SysVec::new_in(System),
            bump: 0,
            bump_end: 0,
            counted: 0,
            slabs: SysVec::new_in(System),
            handed_out: 0,
            takes: 0,
            puts: 0,
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
        self.counted = block.addr;
    }

    /// The newest slab's block and the range `[from, to)` of it carved since the last
    /// call, widened to whole pages (`page` bytes): pages the pool must now count as
    /// resident. `None` when no new page was carved into.
    pub fn newly_carved(&mut self, page: usize) -> Option<(Block, usize, usize)> {
        if self.bump <= self.counted {
            return None;
        }
        let slab = self.slabs.last().expect("carved from a slab");
        let end = self
            .bump
            .next_multiple_of(page)
            .min(slab.block.addr + slab.block.size);
        let from = self.counted;
        self.counted = end;
        Some((slab.block, from, end))
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
            self.pack();
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
        self.pack();
    }

    /// Orders the free list so that blocks of the fullest slabs are handed out first (the
    /// list is taken from its end) and blocks of the emptiest ones last: partly used slabs
    /// then drain instead of all staying half full, and a drained slab can be released.
    /// Runs on the system allocator: it is called under the class lock.
    fn pack(&mut self) {
        if self.slabs.len() < 2 || self.free.len() < 2 {
            return;
        }
        let mut spans: SysVec<(usize, usize, usize)> = SysVec::new_in(System);
        spans.extend(
            self.slabs
                .iter()
                .map(|s| (s.block.addr, s.block.addr + s.size, 0)),
        );
        spans.sort_unstable();
        let slab_of = |spans: &[(usize, usize, usize)], a: usize| {
            spans.partition_point(|s| s.0 <= a).checked_sub(1)
        };
        for &a in &self.free {
            if let Some(i) = slab_of(&spans, a) {
                spans[i].2 += 1;
            }
        }
        let mut keyed: SysVec<(usize, usize)> = SysVec::new_in(System);
        keyed.extend(self.free.iter().map(|&a| {
            let free_in_slab = slab_of(&spans, a).map_or(0, |i| spans[i].2);
            (free_in_slab, a)
        }));
        // Most free blocks first (taken last); by address within a slab.
        keyed.sort_unstable_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
        self.free.clear();
        self.free.extend(keyed.iter().map(|k| k.1));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn slab(addr: usize) -> Block {
        Block {
            token: 0,
            chunk: 0,
            addr,
            size: 4096,
        }
    }

    #[test]
    fn blocks_of_the_fullest_slabs_go_out_first_so_the_emptiest_drain() {
        // Two slabs of four 1 KiB blocks, every block handed out.
        let mut c = Central::new(1024);
        c.add_slab(slab(0x10000), 4096);
        assert_eq!(c.take(4, |_| {}), 4);
        c.add_slab(slab(0x20000), 4096);
        assert_eq!(c.take(4, |_| {}), 4);
        // Three of the second slab come back, then one of the first.
        for a in [0x20000, 0x20400, 0x20800, 0x10c00] {
            c.put(a);
        }
        c.release_empty_slabs(|_| panic!("no slab is empty"));
        let mut got = Vec::new();
        c.take(1, |a| got.push(a));
        assert_eq!(
            got,
            vec![0x10c00],
            "the first slab has one free block: refill it"
        );
        // The second slab drains: its last live block comes back and it is released.
        c.put(0x20c00);
        let mut released = Vec::new();
        c.release_empty_slabs(|s| released.push(s.block.addr));
        assert_eq!(released, vec![0x20000]);
        c.check_invariants(&[]);
    }
}
