// Random operation sequences against a shadow model, shared by the proptest twin
// (`tests/ops_model/main.rs`) and the cargo-fuzz target (`fuzz/fuzz_targets/ops.rs`, which
// `include!`s this file). Operations: allocations of sizes from 1 B to 8 MiB at
// alignments up to 64 KiB, frees, writes, frees and allocations on a second thread
// (blocks cross threads both ways), movable blocks and compaction, trims, leak scopes,
// raw blocks and their stale handles, under a budget or not, with any strategy. After
// every operation: blocks never overlap, every live block holds what its owner wrote,
// the pool's invariant scan holds, live bytes equal the model's, reserved stays within
// the budget; a refused allocation is only ever a budget or device refusal.

use bitnet_memory::{
    Allocation, DeviceId, MemoryConfig, MemoryError, MemoryManager, MovableAllocation, RawBlock,
    Strategy,
};
use std::alloc::Layout;
use std::collections::BTreeMap;
use std::sync::mpsc;

/// The manager's setup for one run.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// 0..4: Hybrid, BestFit, BuddySystem, SlabAllocator.
    pub strategy: u8,
    /// Budget in MiB (0: none).
    pub budget_mib: u8,
    /// Thread caches on.
    pub thread_cache: bool,
}

/// One operation; indices pick a live block modulo their count.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    /// A block of about 2^`size_log` bytes (`size_log` up to 23), at 2^`align_log` (up to 16).
    Alloc {
        size_log: u8,
        frac: u16,
        align_log: u8,
    },
    /// Frees a live block.
    Free { idx: u16 },
    /// Refills a live block with `byte`.
    Write { idx: u16, byte: u8 },
    /// The other thread frees a live block.
    FreeRemote { idx: u16 },
    /// The other thread allocates a block and hands it here.
    AllocRemote { size_log: u8, frac: u16 },
    /// A movable block.
    AllocMovable { size_log: u8, frac: u16 },
    /// Frees a movable block.
    FreeMovable { idx: u16 },
    /// Compacts the movable blocks.
    Compact,
    /// Trims the caches and hands memory back.
    Trim,
    /// Opens a leak scope (closed by `ScopeClose` or the end of the run).
    ScopeOpen,
    /// Closes the innermost scope.
    ScopeClose,
    /// A raw block.
    AllocRaw { size_log: u8 },
    /// Frees a raw block, then tries its stale handle again.
    FreeRaw { idx: u16 },
}

fn size(size_log: u8, frac: u16) -> usize {
    let lo = 1usize << (size_log % 24);
    lo + (lo * frac as usize) / 65536
}

/// A block in the model: its byte.
struct Owned<'m> {
    a: Allocation<'m>,
    byte: u8,
}

type Job<'m> = Box<dyn FnOnce(&'m MemoryManager) -> Option<Owned<'m>> + Send + 'm>;

fn check_fill(bytes: &[u8], byte: u8, what: &str) {
    // The first and last 64 bytes and one per 4 KiB page: enough to see another owner.
    let n = bytes.len();
    let probe = (0..n.min(64))
        .chain(n.saturating_sub(64)..n)
        .chain((0..n).step_by(4096));
    for i in probe {
        assert_eq!(bytes[i], byte, "{what}: byte {i} of {n} changed");
    }
}

/// Runs `ops` on a manager made from `setup`, checking the model after each.
pub fn run(setup: Setup, ops: &[Op]) {
    let strategy = [
        Strategy::Hybrid,
        Strategy::BestFit,
        Strategy::BuddySystem,
        Strategy::SlabAllocator,
    ][setup.strategy as usize % 4];
    let mut config = MemoryConfig::default()
        .strategy(strategy)
        .min_chunk(1 << 20)
        .max_chunk(16 << 20)
        .thread_cache(setup.thread_cache);
    config.cleanup.background = false;
    let budget = (setup.budget_mib != 0).then(|| (setup.budget_mib as usize % 64 + 8) << 20);
    if let Some(b) = budget {
        config = config.budget(b);
    }
    let mm = MemoryManager::new(config).unwrap();
    drive(&mm, budget, ops);
    mm.check_invariants();
    assert_eq!(mm.metrics().live_bytes(), 0);
}

/// The operations, with a second thread that frees and allocates on request.
fn drive<'m>(mm: &'m MemoryManager, budget: Option<usize>, ops: &[Op]) {
    std::thread::scope(|s| {
        let (to_worker, jobs) = mpsc::channel::<Job<'m>>();
        let (to_main, results) = mpsc::channel::<Option<Owned<'m>>>();
        s.spawn(move || {
            for job in jobs {
                to_main.send(job(mm)).unwrap();
            }
        });
        let remote = |job: Job<'m>| {
            to_worker.send(job).unwrap();
            results.recv().unwrap()
        };
        let mut live: Vec<Owned<'m>> = Vec::new();
        let mut movable: Vec<(MovableAllocation<'m>, u8)> = Vec::new();
        let mut raw: Vec<(RawBlock, u8)> = Vec::new();
        let mut scopes = Vec::new();
        let mut stamp = 0u8;
        let refused = |e: &MemoryError| {
            assert!(
                matches!(
                    e,
                    MemoryError::BudgetExceeded { .. } | MemoryError::OutOfMemory { .. }
                ),
                "{e}"
            );
        };
        for op in ops {
            stamp = stamp.wrapping_add(1);
            match *op {
                Op::Alloc {
                    size_log,
                    frac,
                    align_log,
                } => {
                    let layout =
                        Layout::from_size_align(size(size_log, frac), 1 << (align_log % 17))
                            .unwrap();
                    match mm.try_allocate(layout) {
                        Ok(mut a) => {
                            assert_eq!(a.as_ptr().addr() % layout.align(), 0);
                            a.as_mut_slice().fill(stamp);
                            live.push(Owned { a, byte: stamp });
                        }
                        Err(e) => refused(&e),
                    }
                }
                Op::Free { idx } if !live.is_empty() => {
                    let o = live.swap_remove(idx as usize % live.len());
                    check_fill(o.a.as_slice(), o.byte, "before free");
                }
                Op::Write { idx, byte } if !live.is_empty() => {
                    let i = idx as usize % live.len();
                    live[i].a.as_mut_slice().fill(byte);
                    live[i].byte = byte;
                }
                Op::FreeRemote { idx } if !live.is_empty() => {
                    let o = live.swap_remove(idx as usize % live.len());
                    let back = remote(Box::new(move |_| {
                        check_fill(o.a.as_slice(), o.byte, "before remote free");
                        drop(o);
                        None
                    }));
                    assert!(back.is_none());
                }
                Op::AllocRemote { size_log, frac } => {
                    let n = size(size_log % 21, frac);
                    let got = remote(Box::new(move |mm: &MemoryManager| {
                        let mut a = mm
                            .try_allocate(Layout::from_size_align(n, 8).unwrap())
                            .ok()?;
                        a.as_mut_slice().fill(stamp);
                        Some(Owned { a, byte: stamp })
                    }));
                    live.extend(got);
                }
                Op::AllocMovable { size_log, frac } => {
                    let l = Layout::from_size_align(size(size_log % 21, frac), 8).unwrap();
                    match mm.allocate_movable(l) {
                        Ok(mut m) => {
                            m.pin_mut().fill(stamp);
                            movable.push((m, stamp));
                        }
                        Err(e) => refused(&e),
                    }
                }
                Op::FreeMovable { idx } if !movable.is_empty() => {
                    let (m, b) = movable.swap_remove(idx as usize % movable.len());
                    check_fill(&m.pin(), b, "movable before free");
                }
                Op::Compact => {
                    mm.compact();
                    for (m, b) in &movable {
                        check_fill(&m.pin(), *b, "movable after compaction");
                    }
                }
                Op::Trim => {
                    mm.trim();
                }
                Op::ScopeOpen if scopes.len() < 4 => scopes.push(mm.scope("ops")),
                Op::ScopeClose => {
                    scopes.pop();
                }
                Op::AllocRaw { size_log } => {
                    match mm.allocate_raw(
                        DeviceId::CPU,
                        Layout::from_size_align(size(size_log % 21, 0), 8).unwrap(),
                    ) {
                        Ok(r) => {
                            // SAFETY: a live raw block of `r.size` bytes.
                            unsafe { r.ptr.as_ptr().write_bytes(stamp, r.size) };
                            raw.push((r, stamp));
                        }
                        Err(e) => refused(&e),
                    }
                }
                Op::FreeRaw { idx } if !raw.is_empty() => {
                    let (r, b) = raw.swap_remove(idx as usize % raw.len());
                    check_fill(&mm.raw_bytes(&r).unwrap(), b, "raw before free");
                    mm.free_raw(r).unwrap();
                    assert!(matches!(
                        mm.free_raw(r),
                        Err(MemoryError::StaleHandle { .. })
                    ));
                }
                _ => {}
            }
            // The model after every operation (the worker thread is idle: quiescent).
            mm.check_invariants();
            let mut ranges = BTreeMap::new();
            let mut model_live = 0usize;
            for o in &live {
                ranges.insert(o.a.as_ptr().addr(), o.a.len());
                model_live += o.a.len();
            }
            for (r, _) in &raw {
                ranges.insert(r.ptr.as_ptr().addr(), r.size);
                model_live += r.size;
            }
            let mut end = 0;
            for (&start, &len) in &ranges {
                assert!(start >= end, "blocks overlap at {start:#x}");
                end = start + len;
            }
            for (m, _) in &movable {
                model_live += m.len();
            }
            let m = mm.metrics();
            assert_eq!(m.live_bytes(), model_live, "live bytes after {op:?}");
            if let Some(b) = budget {
                assert!(
                    m.reserved_bytes() <= b,
                    "reserved past the budget after {op:?}"
                );
            }
        }
        for o in &live {
            check_fill(o.a.as_slice(), o.byte, "at the end");
        }
        drop(scopes);
        drop(live);
        drop(movable);
        for (r, _) in raw {
            mm.free_raw(r).unwrap();
        }
        drop(to_worker);
    });
}
