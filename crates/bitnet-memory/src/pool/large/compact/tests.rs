//! The pin protocol and the pool side of compaction, without touching memory (the copy is
//! a callback); small enough for Miri.

use super::{LargePool, MoveCell};
use crate::device::CpuBackend;
use crate::pool::buddy::Buddy;
use crate::pool::large::Grant;
use crate::pool::strategy::{BlockStrategy, SysVec};
use crate::pool::tlsf::Tlsf;
use std::alloc::System;

const CHUNK: usize = 64 << 10;
const BLOCK: usize = 4 << 10;
const PER_CHUNK: usize = CHUNK / BLOCK;

type MakeStrategy = fn() -> Box<dyn BlockStrategy>;

fn strategies() -> [(&'static str, MakeStrategy); 2] {
    [
        ("tlsf", || Box::new(Tlsf::new())),
        ("buddy", || Box::new(Buddy::new())),
    ]
}

/// Two full chunks of movable blocks, then every other block freed: 8 blocks per chunk.
fn half_full(pool: &mut LargePool, backend: &CpuBackend) -> Vec<MoveCell> {
    let blocks: Vec<_> = (0..2 * PER_CHUNK)
        .map(|_| {
            pool.allocate_user(BLOCK, 16, &Grant::unlimited(backend))
                .unwrap()
        })
        .collect();
    let mut cells = Vec::new();
    for (i, b) in blocks.into_iter().enumerate() {
        if i % 2 == 0 {
            pool.free_user_token(b.addr, b.token, backend);
        } else {
            cells.push(MoveCell::new(b.addr, b.token, BLOCK, 16));
        }
    }
    assert_eq!(pool.chunk_count(), 2);
    pool.check_invariants();
    cells
}

#[test]
fn a_pin_excludes_a_claim_and_a_claim_holds_pins_until_published() {
    let c = MoveCell::new(4096, 1, 8, 8);
    assert_eq!(c.pin(), 4096);
    assert_eq!(c.pin(), 4096);
    assert!(!c.try_claim(), "claimed a pinned block");
    c.unpin();
    assert!(!c.try_claim(), "claimed a block still pinned once");
    c.unpin();
    assert!(c.try_claim());
    assert!(c.is_moving() && !c.is_pinned());
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            let a = c.pin();
            c.unpin();
            a
        });
        std::thread::yield_now();
        c.publish(8192, 2);
        assert_eq!(h.join().unwrap(), 8192, "a pin saw the old address");
    });
    assert_eq!((c.addr(), c.token()), (8192, 2));
    assert!(!c.is_moving() && !c.is_pinned());
}

#[test]
fn compaction_empties_the_least_used_chunk() {
    for (name, make) in strategies() {
        let backend = CpuBackend::new();
        let mut pool = LargePool::new(make(), CHUNK, CHUNK);
        let cells = half_full(&mut pool, &backend);
        let refs: Vec<&MoveCell> = cells.iter().collect();
        let mut copies = Vec::new();
        let s = pool.compact(&refs, &backend, &mut |from, to, len| {
            copies.push((from, to, len))
        });
        pool.check_invariants();
        assert_eq!(s.blocks_moved, PER_CHUNK / 2, "{name}: {s:?}");
        assert_eq!(s.bytes_moved, PER_CHUNK / 2 * BLOCK);
        assert_eq!((s.chunks_released, s.bytes_released), (1, CHUNK), "{name}");
        assert_eq!(pool.chunk_count(), 1);
        assert_eq!(pool.reserved, CHUNK);
        assert_eq!(pool.free_bytes(), 0, "{name}: the chunk left is full");
        // Every copy went from a block's old place to where its cell says it is now.
        assert_eq!(copies.len(), s.blocks_moved);
        for &(from, to, len) in &copies {
            assert_eq!(len, BLOCK);
            assert!(cells.iter().any(|c| c.addr() == to));
            assert!(cells.iter().all(|c| c.addr() != from));
        }
        for c in &cells {
            pool.free_user_token(c.addr(), c.token(), &backend);
        }
        pool.check_invariants();
        assert_eq!(pool.release_empty(&backend).chunks, 1);
    }
}

#[test]
fn a_block_pinned_during_the_run_is_not_moved() {
    for (name, make) in strategies() {
        let backend = CpuBackend::new();
        let mut pool = LargePool::new(make(), CHUNK, CHUNK);
        let cells = half_full(&mut pool, &backend);
        let refs: Vec<&MoveCell> = cells.iter().collect();
        let before: Vec<usize> = cells.iter().map(|c| c.addr()).collect();
        // The first copy pins every other block (after planning, before their claims).
        let mut pinned = Vec::new();
        let s = pool.compact(&refs, &backend, &mut |from, _, _| {
            if pinned.is_empty() {
                for (i, c) in cells.iter().enumerate() {
                    if c.addr() != from {
                        c.pin();
                        pinned.push(i);
                    }
                }
            }
        });
        pool.check_invariants();
        assert_eq!(s.blocks_moved, 1, "{name}: {s:?}");
        assert_eq!(s.pinned_skipped, 1, "{name}");
        assert_eq!(
            s.chunks_released, 0,
            "{name}: a chunk holding a pinned block went"
        );
        for &i in &pinned {
            assert_eq!(cells[i].addr(), before[i], "{name}: a pinned block moved");
            cells[i].unpin();
        }
        for c in &cells {
            pool.free_user_token(c.addr(), c.token(), &backend);
        }
        pool.check_invariants();
        assert_eq!(pool.release_empty(&backend).chunks, 2);
    }
}

#[test]
fn fencing_keeps_allocations_out_and_unfencing_restores_the_chunk() {
    for (name, make) in strategies() {
        let mut s = make();
        s.add_chunk(0, CHUNK, CHUNK);
        let blocks: Vec<_> = (0..PER_CHUNK)
            .map(|_| s.allocate(BLOCK, 16).unwrap())
            .collect();
        s.add_chunk(1, 4 * CHUNK, CHUNK);
        let mut live = Vec::new();
        for (i, b) in blocks.into_iter().enumerate() {
            assert_eq!(b.chunk, 0);
            if i % 3 == 0 {
                live.push(b);
            } else {
                s.free(b.token);
            }
        }
        let free = s.free_bytes();
        let mut sizes = SysVec::new_in(System);
        s.free_block_sizes(&mut sizes);
        let f = s.chunk_fence().unwrap();
        let (used0, free0) = (f.chunk_used_bytes(0), f.chunk_free_bytes(0));
        assert_eq!(used0 + free0, CHUNK, "{name}");
        assert_eq!(used0, live.len() * BLOCK);
        let mut fenced = SysVec::new_in(System);
        f.fence(0, &mut fenced);
        assert_eq!(s.free_bytes(), free - free0, "{name}");
        let b = s.allocate(BLOCK, 16).unwrap();
        assert_eq!(b.chunk, 1, "{name}: allocated in a fenced chunk");
        s.free(b.token);
        s.chunk_fence().unwrap().unfence(&fenced);
        s.check_invariants();
        assert_eq!(s.free_bytes(), free, "{name}");
        let mut after = SysVec::new_in(System);
        s.free_block_sizes(&mut after);
        after.sort_unstable();
        sizes.sort_unstable();
        assert_eq!(after, sizes, "{name}");
        let f = s.chunk_fence().unwrap();
        assert!(
            !f.take_empty_chunk(0),
            "{name}: took a chunk with live blocks"
        );
        assert!(f.take_empty_chunk(1), "{name}");
        for b in live {
            s.free(b.token);
        }
        assert!(s.chunk_fence().unwrap().take_empty_chunk(0));
        assert_eq!(s.free_bytes(), 0);
        s.check_invariants();
    }
}
