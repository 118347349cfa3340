//! The resident limit of the large pool: pages counted as owners may touch them, and free
//! blocks' pages handed back before a request takes fresh ones past the limit. Over a
//! backend of made-up addresses (the pool never touches memory) whose decommit always
//! succeeds, so every purge is counted and Miri can run it.

use super::{Grant, LargePool};
use crate::device::{
    Chunk, ChunkHandle, Decommit, DeviceBackend, DeviceError, HugePages, PageMover,
};
use crate::pool::buddy::Buddy;
use crate::pool::resident::PAGE;

use crate::pool::strategy::{Block, BlockStrategy};
use crate::pool::tlsf::Tlsf;
use proptest::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Chunks at made-up addresses; a decommit "hands back" whatever it is given and counts
/// it.
#[derive(Default)]
struct Pretend {
    next: AtomicUsize,
    decommitted: AtomicUsize,
    /// `fault_in_huge` calls: chunk offset and length.
    huge: std::sync::Mutex<Vec<(usize, usize)>>,
    /// Whether it moves pages.
    moving: bool,
    /// `move_pages` calls: source address, destination address, length.
    moved: std::sync::Mutex<Vec<(usize, usize, usize)>>,
    /// Keeps every page: refuses each move and hands nothing back (as the CPU device does
    /// with a chunk it took from the system allocator).
    stuck: bool,
}

impl DeviceBackend for Pretend {
    fn name(&self) -> &str {
        "pretend"
    }
    fn host_visible(&self) -> bool {
        true
    }
    fn allocate_chunk(&self, size: usize, align: usize) -> Result<Chunk, DeviceError> {
        let span = (size + align).next_multiple_of(1 << 30);
        let base = (1 << 40) + self.next.fetch_add(span, Relaxed);
        Ok(Chunk {
            handle: ChunkHandle(0),
            size,
            host: Some(base.next_multiple_of(align)),
        })
    }
    fn release_chunk(&self, _chunk: Chunk) {}
    fn decommit(&self) -> Option<&dyn Decommit> {
        Some(self)
    }
    fn page_mover(&self) -> Option<&dyn PageMover> {
        self.moving.then_some(self as &dyn PageMover)
    }
    fn huge_pages(&self) -> Option<&dyn HugePages> {
        Some(self)
    }
    fn capacity(&self) -> Option<usize> {
        None
    }
    fn available(&self) -> Option<usize> {
        None
    }
}

impl Decommit for Pretend {
    fn decommit_range(&self, _chunk: &Chunk, offset: usize, len: usize) -> usize {
        assert!(offset.is_multiple_of(PAGE) && len.is_multiple_of(PAGE) && len > 0);
        if self.stuck {
            return 0;
        }
        self.decommitted.fetch_add(len, Relaxed);
        len
    }
}

impl PageMover for Pretend {
    fn move_pages(&self, src: &Chunk, from: usize, dst: &Chunk, to: usize, len: usize) -> bool {
        assert!(from.is_multiple_of(PAGE) && to.is_multiple_of(PAGE) && len.is_multiple_of(PAGE));
        assert!(
            self.moving,
            "a move asked of a backend that does not move pages"
        );
        if self.stuck {
            return false;
        }
        self.moved
            .lock()
            .unwrap()
            .push((src.host.unwrap() + from, dst.host.unwrap() + to, len));
        true
    }
}

impl HugePages for Pretend {
    fn fault_in_huge(&self, chunk: &Chunk, offset: usize, len: usize) {
        let h = crate::device::HUGE_PAGE;
        let base = chunk.host.expect("a host address");
        assert!((base + offset).is_multiple_of(h) && len.is_multiple_of(h) && len > 0);
        self.huge.lock().unwrap().push((offset, len));
    }
}

const MIB: usize = 1 << 20;

/// A user block of `size` bytes (aligned to 64) with no budget and at most `limit`
/// committed bytes.
fn user(pool: &mut LargePool, backend: &Pretend, size: usize, limit: usize) -> Block {
    pool.allocate_user(size, 64, &within(backend, limit))
        .expect("no budget")
}

/// No budget, at most `limit` committed bytes.
fn within(backend: &Pretend, limit: usize) -> Grant<'_> {
    Grant {
        backend,
        budget: usize::MAX,
        resident_limit: limit,
    }
}

#[test]
fn a_request_that_needs_fresh_pages_first_hands_back_what_is_over_the_limit() {
    let backend = Pretend::default();
    let mut pool = LargePool::new(Box::new(Tlsf::new()), 64 * MIB, 64 * MIB);
    let mut limit = usize::MAX;
    let a = user(&mut pool, &backend, 8 * MIB, limit);
    let _b = user(&mut pool, &backend, 8 * MIB, limit);
    assert_eq!(pool.committed(), 16 * MIB, "what the owners may touch");
    pool.free_user_token(a.addr, a.token, &backend);
    assert_eq!(
        pool.committed(),
        16 * MIB,
        "a free hands nothing back by itself"
    );
    assert_eq!(pool.resident_free_bytes(), 8 * MIB);
    // 12 MiB do not fit in a's hole: they take fresh pages, and only 21 MiB may be
    // committed. So 7 MiB of a's pages go first, from the hole's end; 1 MiB stays.
    limit = 21 * MIB;
    let c = user(&mut pool, &backend, 12 * MIB, limit);
    assert_ne!(c.addr, a.addr);
    assert_eq!(pool.committed(), 21 * MIB);
    assert_eq!(pool.peak_committed, 21 * MIB, "never past the limit");
    assert_eq!(backend.decommitted.load(Relaxed), 7 * MIB);
    assert_eq!(pool.purged_total, 7 * MIB);
    assert_eq!(pool.resident_free_bytes(), MIB);
    // A request served from the resident part of the hole takes no fresh page.
    limit = 0;
    let d = user(&mut pool, &backend, MIB, limit);
    assert_eq!(d.addr, a.addr);
    assert_eq!(pool.committed(), 21 * MIB);
    assert_eq!(backend.decommitted.load(Relaxed), 7 * MIB);
    pool.check_invariants();
}

#[test]
fn where_blocks_in_use_alone_pass_the_limit_keep_free_bytes_of_free_pages_stay() {
    let backend = Pretend::default();
    let mut pool = LargePool::new(Box::new(Tlsf::new()), 64 * MIB, 64 * MIB);
    let mut limit = usize::MAX;
    pool.keep_free = 2 * MIB;
    let held = user(&mut pool, &backend, 10 * MIB, limit);
    let a = user(&mut pool, &backend, 4 * MIB, limit);
    let _b = user(&mut pool, &backend, MIB, limit);
    pool.free_user_token(a.addr, a.token, &backend);
    // The limit is under what is in use: handing back all of a's pages would only make
    // them fault again at the next request. 5 MiB do not fit in a's hole; 2 MiB of its
    // pages stay.
    limit = 8 * MIB;
    user(&mut pool, &backend, 5 * MIB, limit);
    assert_eq!(pool.resident_free_bytes(), 2 * MIB);
    assert_eq!(pool.committed(), 10 * MIB + MIB + 5 * MIB + 2 * MIB);
    assert_eq!(backend.decommitted.load(Relaxed), 2 * MIB);
    pool.free_user_token(held.addr, held.token, &backend);
    pool.check_invariants();
}

#[test]
fn only_the_bytes_an_owner_may_touch_count() {
    let backend = Pretend::default();
    let mut pool = LargePool::new(Box::new(Tlsf::new()), 64 * MIB, 64 * MIB);
    let limit = usize::MAX;
    user(&mut pool, &backend, MIB + 1, limit);
    assert_eq!(pool.committed(), MIB + PAGE, "the request, to whole pages");
    let slab = pool
        .allocate_slab(64 << 10, &within(&backend, limit))
        .unwrap();
    assert_eq!(
        pool.committed(),
        MIB + PAGE,
        "a slab counts as it is carved"
    );
    pool.take_pages(&slab, slab.addr, 100, &within(&backend, limit));
    assert_eq!(pool.committed(), MIB + 2 * PAGE);
    let single = pool
        .allocate_single((320 << 10, 300 << 10), &within(&backend, limit))
        .unwrap();
    assert_eq!(single.size, 320 << 10);
    assert_eq!(pool.committed(), MIB + 2 * PAGE + (300 << 10));
    pool.check_invariants();
}

#[derive(Debug, Clone)]
enum Op {
    Alloc(usize),
    Free(usize),
    Limit(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..3 * MIB).prop_map(Op::Alloc),
        3 => any::<usize>().prop_map(Op::Free),
        1 => (0usize..24 * MIB).prop_map(Op::Limit),
    ]
}

type MakeStrategy = fn() -> Box<dyn BlockStrategy>;

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    })]

    /// After every request: the committed bytes are within the limit, or free blocks
    /// hold no more than `keep_free` resident bytes. Purges never hand back pages of
    /// blocks in use.
    #[test]
    #[cfg_attr(miri, ignore = "safe code; proptest reads the file system, which Miri isolates")]
    fn the_limit_holds_while_free_blocks_hold_resident_pages(
        ops in proptest::collection::vec(op(), 1..80),
        buddy in any::<bool>(),
        keep_free in prop_oneof![Just(0usize), 0..2 * MIB],
    ) {
        let make: MakeStrategy = if buddy {
            || Box::new(Buddy::new())
        } else {
            || Box::new(Tlsf::new())
        };
        let backend = Pretend::default();
        let mut pool = LargePool::new(make(), 4 * MIB, 16 * MIB);
        let mut limit = usize::MAX;
        pool.keep_free = keep_free;
        let mut live: Vec<(usize, u64, usize)> = Vec::new();
        for op in ops {
            match op {
                Op::Alloc(size) => {
                    let before = pool.committed();
                    let b = user(&mut pool, &backend, size, limit);
                    let after = pool.committed();
                    prop_assert!(
                        after <= limit.max(before)
                            || pool.resident_free_bytes() <= pool.keep_free,
                        "committed {after} over the limit {} with {} resident free",
                        limit,
                        pool.resident_free_bytes()
                    );
                    live.push((b.addr, b.token, size));
                }
                Op::Free(i) if !live.is_empty() => {
                    let (addr, token, _) = live.swap_remove(i % live.len());
                    pool.free_user_token(addr, token, &backend);
                }
                Op::Free(_) => {}
                Op::Limit(l) => limit = l,
            }
            pool.check_invariants();
            // What is in use stays counted.
            let used: usize = live.iter().map(|&(_, _, s)| s).sum();
            prop_assert!(pool.committed() >= used);
        }
    }
}

#[test]
fn only_whole_huge_pages_of_fresh_pages_inside_the_request_are_faulted_in_at_once() {
    let backend = Pretend::default();
    let mut pool = LargePool::new(Box::new(Tlsf::new()), 64 * MIB, 64 * MIB);
    pool.huge_pages = true;
    let calls = |b: &Pretend| std::mem::take(&mut *b.huge.lock().unwrap());
    // At the chunk's start (huge page aligned): [0, 5 MiB) holds two whole huge pages.
    let a = user(&mut pool, &backend, 5 * MIB, usize::MAX);
    assert_eq!(calls(&backend), [(0, 4 * MIB)]);
    // Too small to hold one.
    let b = user(&mut pool, &backend, 1536 * 1024, usize::MAX);
    assert_eq!(calls(&backend), []);
    // [6.5 MiB, 11.5 MiB) holds [8, 10) and [10, 12) only partly: one.
    let c = user(&mut pool, &backend, 5 * MIB, usize::MAX);
    assert_eq!(c.addr - a.addr, 6 * MIB + 512 * 1024);
    assert_eq!(calls(&backend), [(8 * MIB, 2 * MIB)]);
    // Its pages are resident once freed: reusing them faults nothing in.
    pool.free_user_token(a.addr, a.token, &backend);
    let a2 = user(&mut pool, &backend, 5 * MIB, usize::MAX);
    assert_eq!(a2.addr, a.addr);
    assert_eq!(calls(&backend), []);
    // Off: never.
    pool.huge_pages = false;
    let _d = user(&mut pool, &backend, 8 * MIB, usize::MAX);
    assert_eq!(calls(&backend), []);
    let _ = (b, c);
}

/// The pool places by its page map, not by the strategy's estimate: a free block merged
/// around a purged hole (its dirty range spans the hole) loses to a block that is
/// resident throughout, so the request takes no fresh page.
#[test]
fn requests_are_placed_by_the_page_map() {
    let backend = Pretend::default();
    let mut pool = LargePool::new(Box::new(Tlsf::new()), 64 * MIB, 64 * MIB);
    let free = usize::MAX;
    let x = user(&mut pool, &backend, 2 * MIB, free);
    let y = user(&mut pool, &backend, 2 * MIB, free);
    let z = user(&mut pool, &backend, 2 * MIB, free);
    let _sep = user(&mut pool, &backend, MIB, free);
    let b = user(&mut pool, &backend, 8 * MIB, free);
    let _sep2 = user(&mut pool, &backend, MIB, free);
    pool.free_user_token(y.addr, y.token, &backend);
    let all = pool.committed();
    assert_eq!(pool.purge_to(all - 2 * MIB, &backend), 2 * MIB, "y's pages");
    pool.free_user_token(x.addr, x.token, &backend);
    pool.free_user_token(z.addr, z.token, &backend);
    pool.free_user_token(b.addr, b.token, &backend);
    pool.check_invariants();
    let committed = pool.committed();
    // x, y and z merged: 6 MiB, of which y's middle 2 MiB are clean. Every place for
    // 3 MiB there takes at least 1 MiB of fresh pages; b's block takes none.
    let c = user(&mut pool, &backend, 3 * MIB, free);
    assert_eq!(c.addr, b.addr);
    assert_eq!(pool.committed(), committed, "no fresh page");
    pool.check_invariants();
}

/// A TLSF pool of 64 MiB chunks holding an 8 MiB block (returned) and a 1 MiB block
/// after it, with no resident limit.
fn with_8mib_block(backend: &Pretend) -> (LargePool, Block) {
    let mut pool = LargePool::new(Box::new(Tlsf::new()), 64 * MIB, 64 * MIB);
    let a = user(&mut pool, backend, 8 * MIB, usize::MAX);
    let _sep = user(&mut pool, backend, MIB, usize::MAX);
    (pool, a)
}

/// With a backend that moves pages, the pages a request needs past the limit come from
/// free blocks by moving, in runs of at least 4 pages; shorter runs are handed back. The
/// books: the moved pages count once (at the request), the source pages are not
/// resident any more, and the limit holds.
#[test]
fn pages_over_the_limit_move_into_the_request() {
    let backend = Pretend {
        moving: true,
        ..Pretend::default()
    };
    let (mut pool, a) = with_8mib_block(&backend);
    let free = usize::MAX;
    let x = user(&mut pool, &backend, 2 * PAGE, free);
    let _sep2 = user(&mut pool, &backend, MIB, free);
    pool.free_user_token(a.addr, a.token, &backend);
    pool.free_user_token(x.addr, x.token, &backend);
    let before = pool.committed();
    // 12 MiB do not fit a's hole: 12 MiB of fresh pages, and the committed bytes may not
    // grow: every resident free page goes (a's 8 MiB move; x's two pages, a run too
    // short to move, are handed back).
    let c = user(&mut pool, &backend, 12 * MIB, before);
    assert_eq!(
        pool.committed(),
        before - 2 * PAGE + 4 * MIB,
        "held only what is in use"
    );
    assert_eq!(pool.moved_total, 8 * MIB);
    assert_eq!(pool.purged_total, 2 * PAGE);
    assert_eq!(backend.decommitted.load(Relaxed), 2 * PAGE);
    let moved = backend.moved.lock().unwrap().clone();
    let total: usize = moved.iter().map(|m| m.2).sum();
    assert_eq!(total, 8 * MIB);
    for &(src, dst, len) in &moved {
        assert!(
            src >= a.addr && src + len <= a.addr + 8 * MIB,
            "from a's hole"
        );
        assert!(
            dst >= c.addr && dst + len <= c.addr + 12 * MIB,
            "into the request"
        );
        assert!(len >= 4 * PAGE);
    }
    assert_eq!(pool.resident_free_bytes(), 0);
    pool.check_invariants();
}

/// Pages that neither move nor go back stay counted: the request takes fresh pages past
/// the limit and the free block keeps its pages, in the books as on the device.
#[test]
fn pages_that_cannot_move_or_go_back_stay_counted() {
    let backend = Pretend {
        moving: true,
        stuck: true,
        ..Pretend::default()
    };
    let (mut pool, a) = with_8mib_block(&backend);
    pool.free_user_token(a.addr, a.token, &backend);
    let before = pool.committed();
    let _c = user(&mut pool, &backend, 12 * MIB, before);
    assert_eq!(pool.committed(), before + 12 * MIB);
    assert_eq!(
        pool.resident_free_bytes(),
        8 * MIB,
        "a's pages are still there"
    );
    assert_eq!((pool.moved_total, pool.purged_total), (0, 0));
    assert!(backend.moved.lock().unwrap().is_empty());
    pool.check_invariants();
}

#[test]
fn after_a_switch_new_chunks_go_to_the_new_strategy_and_the_old_one_serves_only_past_the_budget() {
    let backend = Pretend::default();
    let mut pool = LargePool::new(Box::new(Buddy::new()), 4 * MIB, 4 * MIB);
    let kept = user(&mut pool, &backend, MIB + 4096, usize::MAX);
    assert_eq!(pool.strategy_name(), "buddy");
    assert!(pool.switch_strategy(Box::new(Tlsf::new())));
    assert_eq!(pool.strategy_name(), "best-fit (TLSF)");
    // Buddy's chunk has room, but the new strategy grows a chunk of its own.
    let fresh = user(&mut pool, &backend, MIB + 4096, usize::MAX);
    assert_eq!(pool.chunk_count(), 2);
    let stats = pool.strategy_stats();
    let tlsf = stats.iter().find(|g| g.active).expect("active");
    assert_eq!((tlsf.name, tlsf.allocations), ("best-fit (TLSF)", 1));
    assert_eq!(tlsf.requested, (MIB + 4096) as u64);
    // With the budget spent, the retiring buddy serves what fits in its chunk.
    let tight = Grant {
        backend: &backend,
        budget: pool.reserved,
        resident_limit: usize::MAX,
    };
    let fill = pool
        .allocate_user(2 * MIB + 4096, 64, &tight)
        .expect("TLSF's chunk has 2.9 MiB free");
    let old = pool
        .allocate_user(MIB, 64, &tight)
        .expect("buddy still has a free 1 MiB block");
    pool.check_invariants();
    // Blocks go back to the generation that served them; once buddy's chunk is empty it
    // is released and buddy is dropped.
    for b in [kept, old] {
        pool.free_user(b.addr, &backend).expect("live");
    }
    let released = pool.release_empty(&backend);
    assert_eq!(released.chunks, 1);
    assert_eq!(
        pool.strategy_stats().len(),
        1,
        "the retiring generation is gone"
    );
    for b in [fresh, fill] {
        pool.free_user(b.addr, &backend).expect("live");
    }
    pool.check_invariants();
}
