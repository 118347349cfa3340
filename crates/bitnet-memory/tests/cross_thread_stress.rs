//! Cross-thread frees under load, against a shadow model: two producer threads allocate
//! (sizes 16 B..256 KiB, so small classes with growing thread caches and large blocks),
//! write a tag into each block and hand the blocks in batches to a consumer thread, which
//! checks the tag and frees them, while a fourth thread trims. The shadow map of live
//! ranges catches a block handed to two owners (an overlap at allocation) and a lost or
//! corrupted one (a missing entry or a changed tag at free). Through the manager and
//! through `PoolAlloc`. After the threads have exited, nothing is live and no thread cache
//! holds a block: an exiting thread's cache goes back to the pool.

use bitnet_memory::global::PoolAlloc;
use bitnet_memory::{MemoryConfig, MemoryManager};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::alloc::{GlobalAlloc, Layout};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};

/// Batches per producer (64 blocks each): more in release builds.
const BATCHES: usize = if cfg!(debug_assertions) { 600 } else { 4000 };

/// Live ranges: start -> (end, tag).
#[derive(Default)]
struct Shadow(Mutex<BTreeMap<usize, (usize, u64)>>);

impl Shadow {
    fn insert(&self, addr: usize, size: usize, tag: u64) {
        let mut m = self.0.lock().unwrap();
        if let Some((&start, &(end, other))) = m.range(..addr + size).next_back() {
            assert!(
                end <= addr,
                "[{addr:#x}, +{size}) (tag {tag}) overlaps live [{start:#x}, {end:#x}) (tag {other})"
            );
        }
        m.insert(addr, (addr + size, tag));
    }

    fn remove(&self, addr: usize, tag: u64) {
        let got = self.0.lock().unwrap().remove(&addr);
        assert_eq!(
            got.map(|(_, t)| t),
            Some(tag),
            "block {addr:#x} lost or retagged"
        );
    }
}

fn size(rng: &mut SmallRng) -> (usize, usize) {
    let s = (rng.gen_range((16f64).ln()..(256f64 * 1024.0).ln())).exp() as usize;
    (s.max(16), if rng.gen_bool(0.2) { 64 } else { 8 })
}

/// Writes `tag` into the first and last 8 bytes of the block.
fn stamp(b: &mut [u8], tag: u64) {
    let n = b.len();
    b[..8].copy_from_slice(&tag.to_le_bytes());
    b[n - 8..].copy_from_slice(&tag.to_le_bytes());
}

fn stamped(b: &[u8], tag: u64) -> bool {
    let n = b.len();
    b[..8] == tag.to_le_bytes() && b[n - 8..] == tag.to_le_bytes()
}

/// Runs the producers, the consumer and the trimmer; `alloc(size, align) -> (addr, block)`,
/// `bytes(&mut block) -> &mut [u8]`, `free(block)`; `trim()`.
fn run<B: Send>(
    alloc: &(dyn Fn(usize, usize) -> (usize, B) + Sync),
    bytes: &(dyn Fn(&mut B) -> &mut [u8] + Sync),
    free: &(dyn Fn(B) + Sync),
    trim: &(dyn Fn() + Sync),
) {
    let shadow = Shadow::default();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel::<Vec<(usize, u64, B)>>(8);
        let mut handles = Vec::new();
        for p in 0..2u64 {
            let (tx, shadow) = (tx.clone(), &shadow);
            handles.push(s.spawn(move || {
                let mut rng = SmallRng::seed_from_u64(p);
                for batch in 0..BATCHES as u64 {
                    let mut v = Vec::with_capacity(64);
                    for i in 0..64 {
                        let (size, align) = size(&mut rng);
                        let (addr, mut b) = alloc(size, align);
                        let tag = (p << 60) | (batch << 8) | i;
                        shadow.insert(addr, size, tag);
                        stamp(bytes(&mut b), tag);
                        v.push((addr, tag, b));
                    }
                    tx.send(v).unwrap();
                }
            }));
        }
        drop(tx);
        let shadow_ref = &shadow;
        handles.push(s.spawn(move || {
            for v in rx {
                for (addr, tag, mut b) in v {
                    assert!(stamped(bytes(&mut b), tag), "block {addr:#x} overwritten");
                    shadow_ref.remove(addr, tag);
                    free(b);
                }
            }
        }));
        let done_ref = &done;
        let trimmer = s.spawn(move || {
            while !done_ref.load(Ordering::Relaxed) {
                trim();
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        });
        // Joined one by one: `join` returns once the thread, its thread-local destructors
        // included, has finished (the end of `scope` may come before those ran).
        for h in handles {
            h.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        trimmer.join().unwrap();
    });
    assert!(shadow.0.lock().unwrap().is_empty(), "blocks never freed");
}

#[test]
fn through_the_manager_no_block_is_shared_lost_or_left_in_an_exited_threads_cache() {
    let mut config = MemoryConfig::default();
    config.cleanup.background = false;
    let mm = MemoryManager::new(config).unwrap();
    run(
        &|size, align| {
            let a = mm.allocate(Layout::from_size_align(size, align).unwrap());
            (a.as_ptr() as usize, a)
        },
        &|a| a.as_mut_slice(),
        &|a| drop(a),
        &|| {
            mm.trim();
        },
    );
    mm.check_invariants();
    let m = mm.metrics();
    assert_eq!(m.live_bytes(), 0);
    let d = &m.devices[0];
    assert_eq!(d.small.cached_bytes, 0, "exited threads' caches went back");
    assert_eq!(d.allocations, d.frees, "every block allocated was freed");
}

static POOL: PoolAlloc = PoolAlloc::new();

/// A block of `POOL`.
struct Raw(*mut u8, Layout);
// SAFETY: a block of memory the holder owns exclusively.
unsafe impl Send for Raw {}

#[test]
fn through_pool_alloc_no_block_is_shared_lost_or_left_in_an_exited_threads_cache() {
    run(
        &|size, align| {
            let l = Layout::from_size_align(size, align).unwrap();
            // SAFETY: `size` > 0.
            let p = unsafe { POOL.alloc(l) };
            assert!(!p.is_null());
            (p as usize, Raw(p, l))
        },
        // SAFETY: the block is valid for its layout's size, and owned by the caller.
        &|r| unsafe { std::slice::from_raw_parts_mut(r.0, r.1.size()) },
        // SAFETY: allocated by `POOL` with this layout, freed once.
        &|r| unsafe { POOL.dealloc(r.0, r.1) },
        &|| {
            if let Some(mm) = POOL.manager() {
                mm.trim();
            }
        },
    );
    let mm = POOL.manager().expect("built");
    mm.check_invariants();
    let m = mm.metrics();
    let d = &m.devices[0];
    assert_eq!(d.small.cached_bytes, 0, "exited threads' caches went back");
}
