//! A device that runs submitted work after the host recorded it (a fake GPU queue whose
//! submissions the test makes and finishes by hand), and a device with limits. No GPU
//! needed: the pool's fence rule and limit checks run on every machine.
//!
//! The rule: a block freed when `submitted() == t` is handed out again only once
//! `completed() > t`; until then it is neither live nor free (`pending_free_bytes`).

use bitnet_memory::device::{
    Chunk, ChunkHandle, DeviceError, DeviceLimits, DeviceRange, Submissions,
};
use bitnet_memory::{
    DeviceBackend, DeviceId, LeakCheck, LeakConfig, MemoryConfig, MemoryError, MemoryManager,
    Strategy,
};
use std::alloc::Layout;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

/// Device memory the host cannot see, a queue counted by hand, optional limits.
#[derive(Default)]
struct State {
    next: AtomicU64,
    held: AtomicUsize,
    submitted: AtomicU64,
    completed: AtomicU64,
    /// Most bytes held at once.
    peak: AtomicUsize,
    /// `wait_for` calls, and the submission each last asked for.
    waits: AtomicU64,
    waited_for: AtomicU64,
    /// Whether a wait finishes the submissions up to the one waited for (a device that
    /// gets there), or times out.
    finish_on_wait: AtomicBool,
}

#[derive(Clone, Default)]
struct Queue {
    state: Arc<State>,
    limits: Option<DeviceLimits>,
    /// Whether the device counts submissions (`false`: a plain opaque device).
    fenced: bool,
}

impl Queue {
    fn fenced() -> Self {
        Self {
            fenced: true,
            ..Self::default()
        }
    }
    /// A submission is made (work recorded before it may use freed ranges).
    fn submit(&self) -> u64 {
        self.state.submitted.fetch_add(1, SeqCst) + 1
    }
    /// Every submission made so far has finished.
    fn finish_all(&self) {
        let s = self.state.submitted.load(SeqCst);
        self.state.completed.store(s, SeqCst);
    }
}

impl Submissions for Queue {
    fn submitted(&self) -> u64 {
        self.state.submitted.load(SeqCst)
    }
    fn completed(&self) -> u64 {
        self.state.completed.load(SeqCst)
    }
    fn wait_for(&self, n: u64, _timeout: std::time::Duration) -> bool {
        let st = &self.state;
        st.waits.fetch_add(1, SeqCst);
        st.waited_for.store(n, SeqCst);
        assert!(
            n <= self.submitted(),
            "waited for submission {n}, never made"
        );
        if st.finish_on_wait.load(SeqCst) {
            st.completed.fetch_max(n, SeqCst);
        }
        self.completed() >= n
    }
}

impl DeviceBackend for Queue {
    fn name(&self) -> &str {
        "queue"
    }
    fn host_visible(&self) -> bool {
        false
    }
    fn allocate_chunk(&self, size: usize, _align: usize) -> Result<Chunk, DeviceError> {
        let held = self.state.held.fetch_add(size, SeqCst) + size;
        self.state.peak.fetch_max(held, SeqCst);
        Ok(Chunk {
            handle: ChunkHandle(self.state.next.fetch_add(1, SeqCst)),
            size,
            host: None,
        })
    }
    fn release_chunk(&self, chunk: Chunk) {
        self.state.held.fetch_sub(chunk.size, SeqCst);
    }
    fn capacity(&self) -> Option<usize> {
        None
    }
    fn available(&self) -> Option<usize> {
        None
    }
    fn limits(&self) -> DeviceLimits {
        self.limits.unwrap_or_default()
    }
    fn submissions(&self) -> Option<&dyn Submissions> {
        self.fenced.then_some(self as &dyn Submissions)
    }
}

const DEV: DeviceId = DeviceId(0);

fn manager(dev: &Queue, strategy: Strategy, budget: Option<usize>) -> MemoryManager {
    let mut config = MemoryConfig::default()
        .min_chunk(4 << 20)
        .strategy(strategy);
    config.leak = LeakConfig::off();
    MemoryManager::builder(config)
        .device(dev.clone(), budget)
        .build()
        .unwrap()
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 16).unwrap()
}

fn range(mm: &MemoryManager, size: usize) -> (bitnet_memory::Allocation<'_>, DeviceRange) {
    let a = mm.try_allocate_on(DEV, layout(size)).unwrap();
    let r = a.device_range().expect("a block has a range");
    (a, r)
}

#[test]
fn a_freed_range_comes_back_only_after_the_next_submission_finished() {
    // Small (class) and large sizes, under every strategy.
    for strategy in [Strategy::Hybrid, Strategy::BestFit, Strategy::BuddySystem] {
        for size in [48, 4096, 100_000, 3 << 20] {
            let dev = Queue::fenced();
            // One shared chunk for all four blocks: A's chunk stays held (a chunk a free
            // empties goes back at once on a device that cannot decommit), so A's range
            // is there to be handed out again.
            let mut config = MemoryConfig::default()
                .min_chunk_no_decommit(16 << 20)
                .strategy(strategy);
            config.leak = LeakConfig::off();
            let mm = MemoryManager::builder(config)
                .device(dev.clone(), None)
                .build()
                .unwrap();
            let check = LeakCheck::start(&mm);
            let (a, ra) = range(&mm, size);
            dev.submit(); // work reading A is submitted...
            drop(a); // ...and A is freed while it may run
            let m = mm.metrics();
            assert_eq!(m.devices[0].live_bytes, 0, "{strategy:?} {size}");
            assert!(
                m.devices[0].pending_free_bytes >= size,
                "{strategy:?} {size}: {m:?}"
            );
            assert_eq!(m.devices[0].live_allocations, 0, "pending is not live");
            check.assert_no_leaks(); // and no leak either
                                     // Work recorded before the free may still run: A's range stays out.
            let (b, rb) = range(&mm, size);
            assert_ne!(ra, rb, "{strategy:?} {size}: B got A's range too early");
            dev.finish_all(); // submission 1 (before the free) done: not enough
            let (c, rc) = range(&mm, size);
            assert_ne!(rc, ra, "{strategy:?} {size}: the submission after the free");
            dev.submit();
            let (e, re) = range(&mm, size);
            assert_ne!(re, ra, "submitted is not finished");
            dev.finish_all(); // the next submission after the free has finished
            let (d, rd) = range(&mm, size);
            assert_eq!(rd, ra, "{strategy:?} {size}: A's range is free again");
            assert_eq!(mm.metrics().devices[0].pending_free_bytes, 0);
            mm.check_invariants();
            drop((b, c, d, e));
        }
    }
}

#[test]
fn pending_blocks_hold_their_chunk_until_the_device_is_done() {
    let dev = Queue::fenced();
    let mm = manager(&dev, Strategy::Hybrid, None);
    let (a, _) = range(&mm, 2 << 20);
    drop(a);
    let r = mm.trim();
    assert_eq!(
        r.chunks_released, 0,
        "a pending block keeps its chunk: {r:?}"
    );
    assert!(dev.state.held.load(SeqCst) > 0);
    dev.submit();
    dev.finish_all();
    let r = mm.trim(); // reclaims, then releases
    assert!(r.chunks_released > 0 && r.bytes_released > 0, "{r:?}");
    assert_eq!(dev.state.held.load(SeqCst), 0);
    let s = mm.snapshot();
    assert_eq!(s.devices[0].metrics.pending_free_bytes, 0);
}

#[test]
fn snapshot_rows_show_pending_blocks_as_not_live() {
    let dev = Queue::fenced();
    let mm = manager(&dev, Strategy::Hybrid, None);
    let keep = mm.try_allocate_on(DEV, layout(2 << 20)).unwrap();
    let gone = mm.try_allocate_on(DEV, layout(2 << 20)).unwrap();
    drop(gone);
    let s = mm.snapshot();
    assert!(s.devices[0].metrics.pending_free_bytes >= 2 << 20);
    let live: Vec<_> = s.devices[0]
        .pools
        .iter()
        .flat_map(|p| &p.chunks)
        .flat_map(|c| &c.blocks)
        .filter(|b| b.live)
        .collect();
    assert_eq!(live.len(), 1, "only `keep` is live: {live:?}");
    assert!(mm.metrics().to_string().contains("pending"));
    drop(keep);
}

#[test]
fn a_plain_opaque_device_reuses_a_freed_range_at_once() {
    // The same device without the capability: what the fence prevents.
    let dev = Queue::default();
    let mm = manager(&dev, Strategy::Hybrid, None);
    for size in [4096, 3 << 20] {
        let (a, ra) = range(&mm, size);
        drop(a);
        let (_b, rb) = range(&mm, size);
        assert_eq!(ra, rb, "{size}");
        assert_eq!(mm.metrics().devices[0].pending_free_bytes, 0);
    }
}

#[test]
fn a_budget_waits_for_pending_frees_only_through_the_device() {
    // With the budget full of pending blocks the request fails with the budget error
    // (no forced submission); once the device finishes, the same request succeeds.
    let dev = Queue::fenced();
    let mut config = MemoryConfig::default()
        .min_chunk(4 << 20)
        .max_chunk(4 << 20);
    config.leak = LeakConfig::off();
    let mm = MemoryManager::builder(config)
        .device(dev.clone(), Some(8 << 20))
        .build()
        .unwrap();
    let a = mm.try_allocate_on(DEV, layout(3 << 20)).unwrap();
    let b = mm.try_allocate_on(DEV, layout(3 << 20)).unwrap();
    drop((a, b));
    let e = mm.try_allocate_on(DEV, layout(3 << 20)).unwrap_err();
    assert!(matches!(e, MemoryError::BudgetExceeded { .. }), "{e}");
    assert_eq!(dev.submitted(), 0, "the pool never submits by itself");
    dev.submit();
    dev.finish_all();
    mm.try_allocate_on(DEV, layout(3 << 20)).unwrap();
}

#[test]
fn limits_raise_alignment_and_refuse_what_never_fits() {
    let dev = Queue {
        limits: Some(DeviceLimits {
            min_align: 256,
            max_chunk: 16 << 20,
            max_chunk_name: "max_buffer_size",
            max_block: 8 << 20,
            max_block_name: "max_storage_buffer_binding_size",
        }),
        ..Queue::default()
    };
    for strategy in [Strategy::Hybrid, Strategy::BestFit, Strategy::BuddySystem] {
        let mm = manager(&dev, strategy, Some(64 << 20));
        let blocks: Vec<_> = [4usize, 20, 48, 100, 300, 4096, 70_000, 1 << 20, 8 << 20]
            .iter()
            .map(|&s| mm.try_allocate_on(DEV, layout(s)).unwrap())
            .collect();
        for b in &blocks {
            let r = b.device_range().unwrap();
            assert_eq!(r.offset % 256, 0, "{strategy:?}: {r:?}");
            assert_eq!(r.len, b.len());
        }
        let e = mm.try_allocate_on(DEV, layout((8 << 20) + 1)).unwrap_err();
        match &e {
            MemoryError::TooLarge {
                limit, limit_name, ..
            } => {
                assert_eq!(*limit, 8 << 20);
                assert_eq!(*limit_name, "max_storage_buffer_binding_size");
            }
            _ => panic!("{strategy:?}: {e}"),
        }
        assert!(!e.is_retryable());
        assert!(
            e.to_string().contains("max_storage_buffer_binding_size"),
            "{e}"
        );
        assert_eq!(mm.metrics().cleanup.runs, 0, "no trim for what never fits");
        // Chunks never pass the device's largest buffer.
        let s = mm.snapshot();
        for p in &s.devices[0].pools {
            for c in &p.chunks {
                assert!(c.size <= 16 << 20, "{strategy:?}: chunk of {} B", c.size);
            }
        }
        drop(blocks);
    }
}

#[test]
fn a_chunk_limit_under_the_block_limit_is_named_when_it_is_the_one_hit() {
    let dev = Queue {
        limits: Some(DeviceLimits {
            min_align: 4,
            max_chunk: 4 << 20,
            max_chunk_name: "max_buffer_size",
            max_block: usize::MAX,
            max_block_name: "none",
        }),
        ..Queue::default()
    };
    let mm = manager(&dev, Strategy::Hybrid, None);
    let e = mm.try_allocate_on(DEV, layout(5 << 20)).unwrap_err();
    assert!(
        matches!(&e, MemoryError::TooLarge { limit_name, .. } if *limit_name == "max_buffer_size"),
        "{e}"
    );
    // Just under the limit, the strategy's rounding may still need a bigger chunk: then
    // the same error, never a device refusal.
    let near = mm.try_allocate_on(DEV, layout((4 << 20) - 16));
    if let Err(e) = &near {
        assert!(matches!(e, MemoryError::TooLarge { .. }), "{e}");
    }
}

#[test]
fn a_dedicated_chunk_goes_back_only_once_the_fence_passed() {
    let dev = Queue::fenced();
    let mm = manager(&dev, Strategy::Hybrid, None);
    let size = 12 << 20;
    let (a, ra) = range(&mm, size);
    assert_eq!(ra.offset, 0, "a chunk of its own");
    assert_eq!(dev.state.held.load(SeqCst), size);
    dev.submit(); // work using A is submitted...
    drop(a); // ...and A is freed while it may run: its buffer must stay
    assert_eq!(
        dev.state.held.load(SeqCst),
        size,
        "released before the fence"
    );
    assert!(mm.metrics().devices[0].pending_free_bytes >= size);
    // Another request reclaims nothing yet: the submission has not finished.
    let (b, _) = range(&mm, 64);
    assert!(
        dev.state.held.load(SeqCst) >= size,
        "released before the fence"
    );
    assert_eq!(mm.metrics().devices[0].released_chunks, 0);
    dev.finish_all(); // submission 1 was made before the free: not enough
    drop(range(&mm, 64));
    assert!(
        dev.state.held.load(SeqCst) >= size,
        "released before the fence"
    );
    dev.submit();
    dev.finish_all(); // the next submission after the free has finished
    let held = dev.state.held.load(SeqCst);
    drop(range(&mm, 64)); // reclaims A: its chunk goes back at once
    let m = mm.metrics();
    assert_eq!(dev.state.held.load(SeqCst), held - size);
    assert_eq!(m.devices[0].released_bytes, size);
    assert!(
        m.devices[0].pending_free_bytes < size,
        "only the small blocks wait"
    );
    mm.check_invariants();
    drop(b);
}

/// A fenced device whose waits finish (`finish`) or time out, and a manager over it with
/// 4 MiB shared chunks (one 3 MiB block each: a second one needs a new chunk).
fn waiting(finish: bool, strategy: Strategy) -> (Queue, MemoryManager) {
    let dev = Queue::fenced();
    dev.state.finish_on_wait.store(finish, SeqCst);
    let mut config = MemoryConfig::default()
        .min_chunk(4 << 20)
        .min_chunk_no_decommit(4 << 20)
        .max_chunk(4 << 20)
        .strategy(strategy);
    config.leak = LeakConfig::off();
    let mm = MemoryManager::builder(config)
        .device(dev.clone(), None)
        .build()
        .unwrap();
    (dev, mm)
}

#[test]
fn a_request_waits_for_a_submission_already_made_instead_of_growing() {
    // A shared-chunk block (3 MiB) and a dedicated one (12 MiB), under every strategy.
    for strategy in [Strategy::Hybrid, Strategy::BestFit, Strategy::BuddySystem] {
        for size in [3 << 20, 12 << 20] {
            let (dev, mm) = waiting(true, strategy);
            let (a, _) = range(&mm, size);
            let held = dev.state.held.load(SeqCst);
            drop(a); // pending, tagged with submission 0...
            dev.submit(); // ...and the submission after the free is made, not finished
            let (b, _) = range(&mm, size);
            let what = format!("{strategy:?} {size}");
            assert_eq!(dev.state.waits.load(SeqCst), 1, "{what}: no wait");
            assert_eq!(dev.state.waited_for.load(SeqCst), 1, "{what}");
            // Reclaimed, not grown past: the device never held both blocks at once.
            assert_eq!(dev.state.peak.load(SeqCst), held, "{what}: the pool grew");
            assert_eq!(dev.state.held.load(SeqCst), held, "{what}");
            // (A's range itself is gone: its chunk, empty once A was reclaimed, went
            // back before B's was made.)
            assert_eq!(mm.metrics().devices[0].pending_free_bytes, 0, "{what}");
            mm.check_invariants();
            drop(b);
        }
    }
}

#[test]
fn a_free_whose_submission_is_not_made_is_never_waited_for() {
    // Only the user can make the submission after the free: waiting would hang, so the
    // pool grows (and keeps the fence).
    let (dev, mm) = waiting(true, Strategy::Hybrid);
    let (a, ra) = range(&mm, 3 << 20);
    dev.submit(); // work using A...
    drop(a); // ...then the free: submission 2 is still to be made
    let (b, rb) = range(&mm, 3 << 20);
    assert_eq!(dev.state.waits.load(SeqCst), 0, "waited for nothing made");
    assert_ne!(rb, ra, "B got A's range before the next submission");
    assert_eq!(dev.state.held.load(SeqCst), 8 << 20, "grew by a chunk");
    assert_eq!(dev.submitted(), 1, "the pool never submits by itself");
    drop(b);
}

#[test]
fn a_wait_that_times_out_grows_and_keeps_the_fence() {
    let (dev, mm) = waiting(false, Strategy::Hybrid);
    let (a, ra) = range(&mm, 3 << 20);
    drop(a);
    dev.submit(); // made, and it never finishes within the wait
    let (b, rb) = range(&mm, 3 << 20);
    assert_eq!(dev.state.waits.load(SeqCst), 1);
    assert_ne!(rb, ra, "reused after a wait that timed out");
    assert_eq!(dev.state.held.load(SeqCst), 8 << 20, "grew instead");
    assert!(mm.metrics().devices[0].pending_free_bytes >= 3 << 20);
    // The same submission is not waited for twice: the next request grows at once.
    let (b2, _) = range(&mm, 3 << 20);
    assert_eq!(
        dev.state.waits.load(SeqCst),
        1,
        "waited again for a late submission"
    );
    dev.finish_all();
    let (c, _) = range(&mm, 3 << 20);
    assert_eq!(mm.metrics().devices[0].pending_free_bytes, 0, "reclaimed");
    assert_eq!(dev.state.held.load(SeqCst), 12 << 20, "A's chunk went back");
    drop((b, b2, c));
}

#[test]
fn pending_blocks_of_other_classes_or_too_few_bytes_cause_no_wait() {
    let (dev, mm) = waiting(true, Strategy::Hybrid);
    // 1 MiB pending, covered: not enough for a 3 MiB request, which grows without waiting.
    let (small, _) = range(&mm, 1 << 20);
    let (keep, _) = range(&mm, 3 << 20);
    drop(small);
    dev.submit();
    let (big, _) = range(&mm, 3 << 20);
    assert_eq!(dev.state.waits.load(SeqCst), 0, "1 MiB cannot serve 3 MiB");
    drop((keep, big));

    // 1 MiB covered and 3 MiB freed after the last submission: only covered bytes
    // count, so again no wait (the fake queue fails a wait for a submission not made).
    let (dev, mm) = waiting(true, Strategy::Hybrid);
    let (x, _) = range(&mm, 1 << 20);
    let (a, _) = range(&mm, 3 << 20);
    drop(x);
    dev.submit();
    drop(a);
    let (b, _) = range(&mm, 3 << 20);
    assert_eq!(
        dev.state.waits.load(SeqCst),
        0,
        "counted a free not yet submitted"
    );
    drop(b);
}
