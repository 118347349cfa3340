//! A device the host cannot address (as a GPU's memory is): chunks are handles with no host
//! address and the backend offers no capability. The same pool code serves it: blocks,
//! frees, trims, metrics and leak checks work; host views are refused; no capability is
//! asked of it.

use bitnet_memory::device::{Chunk, ChunkHandle, DeviceError};
use bitnet_memory::{
    DeviceBackend, DeviceId, LeakCheck, LeakConfig, MemoryConfig, MemoryError, MemoryManager,
    Strategy,
};
use std::alloc::Layout;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

/// "Device memory": buffers the backend keeps by handle, never shown to the host.
#[derive(Default)]
struct Buffers {
    next: AtomicU64,
    live: Mutex<HashMap<u64, Vec<u8>>>,
    allocated: AtomicUsize,
    released: AtomicUsize,
}

#[derive(Clone, Default)]
struct Opaque(Arc<Buffers>);

impl DeviceBackend for Opaque {
    fn name(&self) -> &str {
        "opaque"
    }
    fn host_visible(&self) -> bool {
        false
    }
    fn allocate_chunk(&self, size: usize, _align: usize) -> Result<Chunk, DeviceError> {
        let id = self.0.next.fetch_add(1, SeqCst);
        self.0.live.lock().unwrap().insert(id, vec![0; size]);
        self.0.allocated.fetch_add(1, SeqCst);
        Ok(Chunk {
            handle: ChunkHandle(id),
            size,
            host: None,
        })
    }
    fn release_chunk(&self, chunk: Chunk) {
        let gone = self.0.live.lock().unwrap().remove(&chunk.handle.0);
        assert!(gone.is_some(), "released a chunk it never gave: {chunk:?}");
        assert_eq!(gone.unwrap().len(), chunk.size);
        self.0.released.fetch_add(1, SeqCst);
    }
    fn capacity(&self) -> Option<usize> {
        Some(1 << 30)
    }
    fn available(&self) -> Option<usize> {
        let used: usize = self.0.live.lock().unwrap().values().map(Vec::len).sum();
        Some((1 << 30) - used)
    }
}

fn manager(strategy: Strategy) -> (MemoryManager, Opaque) {
    let dev = Opaque::default();
    let mut config = MemoryConfig::default().min_chunk(4 << 20);
    config.strategy = strategy;
    config.leak = LeakConfig::off();
    let mm = MemoryManager::builder(config)
        .device(dev.clone(), Some(64 << 20))
        .build()
        .unwrap();
    (mm, dev)
}

const DEV: DeviceId = DeviceId(0);

#[test]
fn an_opaque_device_offers_no_capability() {
    let d = Opaque::default();
    assert!(d.decommit().is_none() && d.huge_pages().is_none() && d.page_mover().is_none());
}

#[test]
fn blocks_on_a_device_the_host_cannot_see_are_served_freed_and_trimmed() {
    for strategy in [Strategy::Hybrid, Strategy::BestFit, Strategy::BuddySystem] {
        let (mm, dev) = manager(strategy);
        let check = LeakCheck::start(&mm);
        let sizes = [64usize, 4096, 100_000, 3 << 20, 48, 1 << 20];
        let blocks: Vec<_> = sizes
            .iter()
            .map(|&s| {
                mm.try_allocate_on(DEV, Layout::from_size_align(s, 64).unwrap())
                    .unwrap()
            })
            .collect();
        let m = mm.metrics();
        let d = &m.devices[0];
        assert_eq!(d.backend, "opaque");
        assert_eq!(d.live_bytes, sizes.iter().sum::<usize>(), "{strategy:?}");
        assert!(d.reserved_bytes >= d.live_bytes && d.mapped_bytes >= d.reserved_bytes);
        // No two blocks overlap, none sits at address 0.
        let mut spans: Vec<(usize, usize)> = blocks
            .iter()
            .map(|a| (a.as_ptr().addr(), a.len()))
            .collect();
        spans.sort();
        assert!(spans[0].0 != 0);
        assert!(
            spans.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0),
            "{spans:?}"
        );
        // The host may not look.
        assert!(blocks.iter().all(|a| a.try_as_slice().is_none()));
        mm.check_invariants();
        drop(blocks);
        check.assert_no_leaks();
        assert_eq!(mm.metrics().devices[0].live_bytes, 0);
        let r = mm.trim();
        // Chunks the frees emptied went back at once (the device cannot decommit); the
        // trim gives back the rest (the small classes' slabs).
        let released = mm.metrics().devices[0].released_chunks;
        assert!(released > 0, "{strategy:?}: {r:?}");
        let m = mm.metrics();
        assert_eq!(
            m.devices[0].mapped_bytes, 0,
            "{strategy:?}: every chunk went back"
        );
        assert_eq!(
            dev.0.allocated.load(SeqCst),
            dev.0.released.load(SeqCst),
            "{strategy:?}"
        );
        assert!(dev.0.live.lock().unwrap().is_empty());
        mm.check_invariants();
    }
}

#[test]
fn a_budget_on_an_opaque_device_is_a_clear_error_and_loses_nothing() {
    let (mm, _dev) = manager(Strategy::Hybrid);
    let keep = mm
        .try_allocate_on(DEV, Layout::from_size_align(40 << 20, 256).unwrap())
        .unwrap();
    let err = mm
        .try_allocate_on(DEV, Layout::from_size_align(40 << 20, 256).unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("budget"), "{err}");
    assert_eq!(mm.metrics().devices[0].live_bytes, 40 << 20);
    drop(keep);
}

#[test]
fn a_zeroed_allocation_on_a_device_that_cannot_zero_is_refused_without_touching_the_host() {
    // The host cannot write these bytes and the device offers no zero fill: handing the
    // block out as "zeroed" would give the caller an old owner's data.
    let (mm, _dev) = manager(Strategy::Hybrid);
    let e = mm
        .try_allocate_zeroed_on(DEV, Layout::from_size_align(4096, 64).unwrap())
        .unwrap_err();
    assert!(matches!(e, MemoryError::InvalidDeviceAccess { .. }), "{e}");
    assert!(e.to_string().contains("no zero fill"), "{e}");
    assert_eq!(mm.metrics().devices[0].live_bytes, 0, "nothing is kept");
    // A zero-sized one has nothing to zero.
    let z = mm
        .try_allocate_zeroed_on(DEV, Layout::from_size_align(0, 64).unwrap())
        .unwrap();
    assert!(z.is_empty());
}

#[test]
fn a_device_that_cannot_decommit_keeps_its_free_pages_counted() {
    // Two large blocks in one chunk: freeing one leaves a free block in a chunk that cannot
    // go back. The pool may not claim its pages went back: the device never offered that.
    let dev = Opaque::default();
    // Both blocks in one shared chunk (no dedicated chunks here).
    let mut config = MemoryConfig::default()
        .min_chunk_no_decommit(32 << 20)
        .dedicated_threshold(usize::MAX);
    config.leak = LeakConfig::off();
    let mm = MemoryManager::builder(config)
        .device(dev.clone(), Some(64 << 20))
        .build()
        .unwrap();
    let big = Layout::from_size_align(8 << 20, 4096).unwrap();
    let a = mm.try_allocate_on(DEV, big).unwrap();
    let b = mm.try_allocate_on(DEV, big).unwrap();
    let before = mm.metrics().devices[0].clone();
    drop(a);
    let r = mm.trim();
    let after = mm.metrics().devices[0].clone();
    assert_eq!(r.bytes_purged, 0, "{r:?}");
    assert_eq!(r.chunks_released, 0, "a live block holds the chunk: {r:?}");
    assert_eq!(after.purged_bytes, 0);
    assert_eq!(after.mapped_bytes, before.mapped_bytes);
    assert_eq!(
        after.reserved_bytes, before.reserved_bytes,
        "the freed block's pages are still the device's: they stay counted"
    );
    mm.check_invariants();
    drop(b);
}

/// A manager over `dev` with the default chunk settings (no `min_chunk` override).
fn default_manager(dev: &Opaque, strategy: Strategy) -> MemoryManager {
    let mut config = MemoryConfig::default().strategy(strategy);
    config.leak = LeakConfig::off();
    MemoryManager::builder(config)
        .device(dev.clone(), None)
        .build()
        .unwrap()
}

/// Bytes of the chunks the device has out now.
fn held(dev: &Opaque) -> usize {
    dev.0.live.lock().unwrap().values().map(Vec::len).sum()
}

#[test]
fn a_big_block_gets_a_chunk_of_its_own_that_goes_back_when_it_is_freed() {
    for strategy in [Strategy::Hybrid, Strategy::BestFit, Strategy::BuddySystem] {
        let dev = Opaque::default();
        let mm = default_manager(&dev, strategy);
        let small = mm
            .try_allocate_on(DEV, Layout::from_size_align(2 << 20, 256).unwrap())
            .unwrap();
        let shared = held(&dev);
        assert_eq!(shared, 4 << 20, "the first shared chunk is 4 MiB");
        // 10 MiB + 100 B: its own chunk, just its size in whole 4 KiB.
        let size = (10 << 20) + 100;
        let big = mm
            .try_allocate_on(DEV, Layout::from_size_align(size, 256).unwrap())
            .unwrap();
        assert_eq!(held(&dev) - shared, size.next_multiple_of(4096));
        let r = big.device_range().unwrap();
        assert_eq!(r.offset, 0, "alone in its chunk");
        assert_eq!(
            dev.0.live.lock().unwrap()[&r.chunk.0].len(),
            size.next_multiple_of(4096)
        );
        mm.check_invariants();
        let before = mm.metrics().devices[0].released_bytes;
        drop(big);
        // Back to the device at the free, no trim needed; the shared chunk stays (a live
        // block is in it).
        assert_eq!(held(&dev), shared);
        let m = mm.metrics();
        assert_eq!(
            m.devices[0].released_bytes - before,
            size.next_multiple_of(4096)
        );
        assert_eq!(m.devices[0].mapped_bytes, shared);
        assert!(!dev.0.live.lock().unwrap().contains_key(&r.chunk.0));
        mm.check_invariants();
        drop(small);
        // The shared chunk the free emptied goes back too.
        assert_eq!(held(&dev), 0);
    }
}

#[test]
fn releasing_chunks_at_frees_never_takes_one_with_an_owned_block() {
    // Owned blocks of every kind (small class, one-block slab, large, dedicated) share the
    // device while others are freed around them: every owned block's chunk stays held.
    let dev = Opaque::default();
    let mm = default_manager(&dev, Strategy::Hybrid);
    let sizes = [48usize, 600 << 10, 2 << 20, 6 << 20];
    let mut keep = Vec::new();
    for round in 0..6 {
        let mut gone = Vec::new();
        for &s in &sizes {
            let l = Layout::from_size_align(s + round * 64, 64).unwrap();
            keep.push(mm.try_allocate_on(DEV, l).unwrap());
            gone.push(mm.try_allocate_on(DEV, l).unwrap());
        }
        drop(gone);
        for a in &keep {
            let r = a.device_range().unwrap();
            let chunk = dev.0.live.lock().unwrap().get(&r.chunk.0).map(Vec::len);
            assert!(
                chunk.is_some_and(|len| r.offset + r.len <= len),
                "an owned block's chunk went back: {r:?}"
            );
        }
        mm.check_invariants();
    }
    let m = mm.metrics();
    assert!(m.devices[0].released_chunks > 0, "{m:?}");
    drop(keep);
    mm.trim();
    assert_eq!(held(&dev), 0);
}

#[test]
fn a_cpu_managers_chunks_are_unaffected() {
    // The CPU can decommit: the first chunk is still `min_chunk` (64 MiB), a big block
    // shares it, and a free releases nothing until a trim.
    let mm = MemoryManager::new(MemoryConfig::default().leak(LeakConfig::off())).unwrap();
    let big = mm
        .try_allocate(Layout::from_size_align(10 << 20, 256).unwrap())
        .unwrap();
    let other = mm
        .try_allocate(Layout::from_size_align(8 << 20, 256).unwrap())
        .unwrap();
    let m = mm.metrics();
    assert_eq!(m.devices[0].mapped_bytes, 64 << 20, "one 64 MiB chunk");
    assert_eq!(m.devices[0].large.chunks, 1);
    drop((big, other));
    let m = mm.metrics();
    assert_eq!(m.devices[0].mapped_bytes, 64 << 20, "kept until a trim");
    assert_eq!(m.devices[0].released_chunks, 0);
    assert_eq!(mm.trim().chunks_released, 1);
}
