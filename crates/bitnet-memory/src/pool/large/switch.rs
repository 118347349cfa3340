//! Switching the large-block strategy of a live pool: [`Switchable`] holds the active
//! strategy and the retiring ones, each a generation.
//!
//! - New chunks go to the active strategy. A retiring strategy keeps the chunks it has
//!   until they are wholly free and released (a trim, decay, compaction); blocks in them
//!   stay where they are, so a switch never moves or copies anything. A retiring
//!   strategy with no chunk left is dropped.
//! - Requests go to the active strategy, which grows by new chunks; the retiring ones
//!   serve only what the pool cannot grow for (the budget, the device), newest first. So
//!   their chunks drain and go back, and the active strategy's figures are its own.
//! - A block's token carries its generation in bits 56..63 (generation 0: the token as
//!   the strategy made it); bit 63 stays clear (the hybrid pool's small-block mark).
//! - Each generation counts what it served: requested bytes, block bytes (the
//!   strategy's rounding), operations: the measured figures the optimizer compares
//!   strategies by, with the pool's timing.
#![deny(unsafe_code)]

use crate::pool::large::compact::ChunkFence;
use crate::pool::strategy::{Block, BlockStrategy, Fresh, SysVec};
use std::alloc::System;

const GEN_SHIFT: u32 = 56;
const GEN_MASK: u64 = 0x7f;
const MAX_GENS: usize = 127;
const NO_GEN: u16 = u16::MAX;

/// What one generation served since it became active.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GenStats {
    /// The strategy's name.
    pub name: &'static str,
    /// Bytes requested of it.
    pub requested: u64,
    /// Bytes of the blocks it handed out for them.
    pub block_bytes: u64,
    /// Blocks it handed out.
    pub allocations: u64,
    /// Bytes of the chunks it holds now.
    pub chunk_bytes: usize,
    /// Its free bytes now.
    pub free_bytes: usize,
    /// Its largest free block now.
    pub largest_free: usize,
    /// Whether it is the active one.
    pub active: bool,
}

struct Gen {
    s: Box<dyn BlockStrategy>,
    requested: u64,
    block_bytes: u64,
    allocations: u64,
    chunk_bytes: usize,
    chunks: usize,
}

/// The active strategy and the retiring ones of one large pool.
pub struct Switchable {
    gens: SysVec<Option<Gen>>,
    active: usize,
    /// Generation, base and size of each chunk id.
    chunk: SysVec<(u16, usize, usize)>,
}

fn tag(gen: usize, token: u64) -> u64 {
    debug_assert!(
        token >> GEN_SHIFT == 0,
        "a strategy token uses the top byte"
    );
    token | ((gen as u64) << GEN_SHIFT)
}

fn untag(token: u64) -> (usize, u64) {
    (
        ((token >> GEN_SHIFT) & GEN_MASK) as usize,
        token & ((1 << GEN_SHIFT) - 1),
    )
}

impl Switchable {
    /// Wraps `s` as generation 0.
    pub fn new(s: Box<dyn BlockStrategy>) -> Self {
        let mut gens = SysVec::new_in(System);
        gens.push(Some(Gen {
            s,
            requested: 0,
            block_bytes: 0,
            allocations: 0,
            chunk_bytes: 0,
            chunks: 0,
        }));
        Self {
            gens,
            active: 0,
            chunk: SysVec::new_in(System),
        }
    }

    fn gen(&mut self, g: usize) -> &mut Gen {
        self.gens[g].as_mut().expect("a live generation")
    }

    fn live(&mut self) -> impl Iterator<Item = (usize, &mut Gen)> {
        self.gens
            .iter_mut()
            .enumerate()
            .filter_map(|(i, g)| g.as_mut().map(|g| (i, g)))
    }

    /// Makes `s` the active strategy: new chunks go to it from now on. `false` (and
    /// nothing changes) when every generation slot is taken.
    pub fn switch_to(&mut self, s: Box<dyn BlockStrategy>) -> bool {
        let slot = match self.gens.iter().position(Option::is_none) {
            Some(i) => i,
            None if self.gens.len() < MAX_GENS => {
                self.gens.push(None);
                self.gens.len() - 1
            }
            None => return false,
        };
        self.gens[slot] = Some(Gen {
            s,
            requested: 0,
            block_bytes: 0,
            allocations: 0,
            chunk_bytes: 0,
            chunks: 0,
        });
        let old = self.active;
        self.active = slot;
        self.drop_if_empty(old);
        true
    }

    fn drop_if_empty(&mut self, g: usize) {
        if g != self.active && self.gens[g].as_ref().is_some_and(|x| x.chunks == 0) {
            self.gens[g] = None;
        }
    }

    /// The figures of every live generation.
    pub fn stats(&self) -> SysVec<GenStats> {
        let mut out = SysVec::new_in(System);
        for (i, g) in self.gens.iter().enumerate() {
            if let Some(g) = g {
                out.push(GenStats {
                    name: g.s.name(),
                    requested: g.requested,
                    block_bytes: g.block_bytes,
                    allocations: g.allocations,
                    chunk_bytes: g.chunk_bytes,
                    free_bytes: g.s.free_bytes(),
                    largest_free: g.s.largest_free(),
                    active: i == self.active,
                });
            }
        }
        out
    }

    fn served(&mut self, g: usize, size: usize, b: Block) -> Block {
        let gen = self.gen(g);
        gen.requested += size as u64;
        gen.block_bytes += b.size as u64;
        gen.allocations += 1;
        Block {
            token: tag(g, b.token),
            ..b
        }
    }

    /// Forgets chunk ids removed from generation `g`.
    fn removed(&mut self, g: usize, ids: &[u32]) {
        for &id in ids {
            let (cg, _, size) = self.chunk[id as usize];
            debug_assert_eq!(cg as usize, g);
            self.chunk[id as usize] = (NO_GEN, 0, 0);
            let gen = self.gen(g);
            gen.chunks -= 1;
            gen.chunk_bytes -= size;
        }
        self.drop_if_empty(g);
    }

    /// A block from a retiring strategy, newest first: for a request the pool could not
    /// grow for.
    pub fn allocate_retiring(&mut self, size: usize, align: usize) -> Option<Block> {
        for g in (0..self.gens.len()).rev() {
            if g == self.active || self.gens[g].is_none() {
                continue;
            }
            if let Some(b) = self.gen(g).s.allocate(size, align) {
                return Some(self.served(g, size, b));
            }
        }
        None
    }
}

impl BlockStrategy for Switchable {
    fn name(&self) -> &'static str {
        self.gens[self.active]
            .as_ref()
            .map_or("none", |g| g.s.name())
    }
    fn add_chunk(&mut self, chunk: u32, base: usize, size: usize) {
        let a = self.active;
        self.gen(a).s.add_chunk(chunk, base, size);
        let gen = self.gen(a);
        gen.chunks += 1;
        gen.chunk_bytes += size;
        let i = chunk as usize;
        if self.chunk.len() <= i {
            self.chunk.resize(i + 1, (NO_GEN, 0, 0));
        }
        self.chunk[i] = (a as u16, base, size);
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
        let a = self.active;
        let b = self.gen(a).s.allocate_placed(size, align, fresh)?;
        Some(self.served(a, size, b))
    }
    fn free(&mut self, token: u64) -> usize {
        let (g, t) = untag(token);
        self.gen(g).s.free(t)
    }
    fn grow_in_place(&mut self, token: u64, size: usize) -> Option<Block> {
        // The block stays in the strategy that served it (retiring or not); its figures
        // count allocations, not resizes.
        let (g, t) = untag(token);
        let b = self.gen(g).s.grow_in_place(t, size)?;
        Some(Block {
            token: tag(g, b.token),
            ..b
        })
    }
    fn chunk_request(&self, size: usize, align: usize, growth: usize) -> (usize, usize) {
        self.gens[self.active]
            .as_ref()
            .expect("the active generation")
            .s
            .chunk_request(size, align, growth)
    }
    fn remove_empty_chunks(&mut self, out: &mut SysVec<u32>, idle_before: u64) {
        for g in 0..self.gens.len() {
            if self.gens[g].is_none() {
                continue;
            }
            let start = out.len();
            self.gen(g).s.remove_empty_chunks(out, idle_before);
            let ids: SysVec<u32> = {
                let mut v = SysVec::new_in(System);
                v.extend_from_slice(&out[start..]);
                v
            };
            self.removed(g, &ids);
        }
    }
    fn set_now(&mut self, now_ms: u64) {
        for (_, g) in self.live() {
            g.s.set_now(now_ms);
        }
    }
    fn set_prefer_resident(&mut self, on: bool) {
        for (_, g) in self.live() {
            g.s.set_prefer_resident(on);
        }
    }
    fn purge_freed_before(
        &mut self,
        before: u64,
        decommit: &mut dyn FnMut(u32, usize, usize, usize) -> usize,
    ) -> usize {
        self.live()
            .map(|(_, g)| g.s.purge_freed_before(before, decommit))
            .sum()
    }
    fn free_bytes(&self) -> usize {
        self.gens.iter().flatten().map(|g| g.s.free_bytes()).sum()
    }
    fn purge(
        &mut self,
        excess: usize,
        decommit: &mut dyn FnMut(u32, usize, usize, usize) -> (usize, bool),
    ) -> usize {
        let mut got = 0;
        for (_, g) in self.live() {
            if got >= excess {
                break;
            }
            got += g.s.purge(excess - got, decommit);
        }
        got
    }
    fn largest_free(&self) -> usize {
        self.gens
            .iter()
            .flatten()
            .map(|g| g.s.largest_free())
            .max()
            .unwrap_or(0)
    }
    fn free_block_sizes(&self, out: &mut SysVec<usize>) {
        for g in self.gens.iter().flatten() {
            g.s.free_block_sizes(out);
        }
    }
    fn free_block_spans(&self, out: &mut SysVec<(usize, usize)>) {
        for g in self.gens.iter().flatten() {
            g.s.free_block_spans(out);
        }
    }
    fn check_invariants(&self) {
        assert!(self.gens[self.active].is_some(), "no active strategy");
        for (i, g) in self.gens.iter().enumerate() {
            let Some(g) = g else { continue };
            g.s.check_invariants();
            let mine: Vec<usize> = self
                .chunk
                .iter()
                .filter(|c| c.0 as usize == i)
                .map(|c| c.2)
                .collect();
            assert_eq!(
                mine.len(),
                g.chunks,
                "chunk count of generation {i} drifted"
            );
            assert_eq!(
                mine.iter().sum::<usize>(),
                g.chunk_bytes,
                "chunk bytes of generation {i} drifted"
            );
            assert!(
                i == self.active || g.chunks > 0,
                "an empty retiring generation kept"
            );
        }
    }
    fn chunk_fence(&mut self) -> Option<&mut dyn ChunkFence> {
        // Compaction works chunk by chunk: only when every generation can fence.
        let all = (0..self.gens.len()).all(|g| {
            self.gens[g]
                .as_mut()
                .is_none_or(|x| x.s.chunk_fence().is_some())
        });
        if all {
            Some(self)
        } else {
            None
        }
    }
}

impl Switchable {
    fn fence_of(&mut self, chunk: u32) -> (usize, &mut dyn ChunkFence) {
        let g = self.chunk[chunk as usize].0 as usize;
        let f = self.gens[g]
            .as_mut()
            .and_then(|x| x.s.chunk_fence())
            .expect("checked by chunk_fence");
        (g, f)
    }
}

impl ChunkFence for Switchable {
    fn chunk_used_bytes(&self, chunk: u32) -> usize {
        self.chunk[chunk as usize].2 - self.chunk_free_bytes(chunk)
    }
    fn chunk_free_bytes(&self, chunk: u32) -> usize {
        // The generation's own fence needs `&mut`; every strategy reports its free spans,
        // and the chunk's are those inside its range (compaction only: not a hot path).
        let (g, base, size) = self.chunk[chunk as usize];
        let Some(gen) = self.gens.get(g as usize).and_then(Option::as_ref) else {
            return 0;
        };
        let mut spans = SysVec::new_in(System);
        gen.s.free_block_spans(&mut spans);
        spans
            .iter()
            .filter(|&&(a, _)| a >= base && a < base + size)
            .map(|&(_, n)| n)
            .sum()
    }
    fn fence(&mut self, chunk: u32, out: &mut SysVec<u64>) {
        let start = out.len();
        let (g, f) = self.fence_of(chunk);
        f.fence(chunk, out);
        for t in &mut out[start..] {
            *t = tag(g, *t);
        }
    }
    fn unfence(&mut self, fenced: &[u64]) {
        for g in 0..self.gens.len() {
            let mine: SysVec<u64> = {
                let mut v = SysVec::new_in(System);
                v.extend(
                    fenced
                        .iter()
                        .map(|&t| untag(t))
                        .filter(|&(tg, _)| tg == g)
                        .map(|(_, t)| t),
                );
                v
            };
            if !mine.is_empty() {
                if let Some(f) = self.gens[g].as_mut().and_then(|x| x.s.chunk_fence()) {
                    f.unfence(&mine);
                }
            }
        }
    }
    fn take_empty_chunk(&mut self, chunk: u32) -> bool {
        let (g, f) = self.fence_of(chunk);
        let taken = f.take_empty_chunk(chunk);
        if taken {
            self.removed(g, &[chunk]);
        }
        taken
    }
}

impl super::LargePool {
    /// Makes `s` the large-block strategy from now on (see [`Switchable`]); `false` when
    /// no generation slot is left.
    pub fn switch_strategy(&mut self, s: Box<dyn BlockStrategy>) -> bool {
        self.strategy.switch_to(s)
    }

    /// The figures of every live strategy generation.
    pub fn strategy_stats(&self) -> SysVec<GenStats> {
        self.strategy.stats()
    }
}
