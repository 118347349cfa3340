//! The whole test binary runs on the pool: `PoolAlloc` is its global allocator.
//!
//! Every test here also exercises the adapter's thread handling: the harness runs each test
//! on a thread of its own, which exits when the test ends.

use bitnet_memory::global::PoolAlloc;
use bitnet_memory::MemoryManager;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

#[global_allocator]
static GLOBAL: PoolAlloc = PoolAlloc::new();

/// Every test takes this lock, so that no other test's allocations blur the live-byte
/// counts one reads (each test still runs on a thread of its own and starts more).
static QUIET: Mutex<()> = Mutex::new(());

fn manager() -> &'static MemoryManager {
    GLOBAL
        .manager()
        .expect("the first allocation of the process built the manager")
}

fn live() -> usize {
    manager().metrics().live_bytes()
}

/// Runs `f` on a thread and fails (rather than hangs) if it does not finish in time.
fn within(secs: u64, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .expect("deadlock or panic: the work did not finish");
}

#[test]
fn vec_string_and_hashmap_live_in_the_pool() {
    let _q = QUIET.lock().unwrap_or_else(|e| e.into_inner());
    let before = live();
    let big: Vec<u64> = (0..(1u64 << 20)).collect(); // 8 MiB: a large block
    let mut map: HashMap<String, Vec<u32>> = HashMap::new();
    for i in 0..10_000u32 {
        map.insert(format!("key-{i}"), vec![i; (i % 17) as usize]);
    }
    let during = live();
    assert!(
        during >= before + (8 << 20),
        "8 MiB Vec not counted by the pool: live {before} -> {during}"
    );
    assert_eq!(
        big.iter().sum::<u64>(),
        (1u64 << 20) * ((1u64 << 20) - 1) / 2
    );
    assert_eq!(map["key-9999"], vec![9999u32; 9999 % 17]);
    drop(big);
    drop(map);
    let after = live();
    assert!(
        after < during - (8 << 20),
        "freed blocks still counted: {during} -> {after}"
    );
}

#[test]
fn alignment_is_honoured_up_to_large_blocks() {
    let _q = QUIET.lock().unwrap_or_else(|e| e.into_inner());
    for align in [1usize, 8, 64, 4096, 8192, 1 << 16, 1 << 21] {
        for size in [1usize, 24, 100, 5000, 70_000, 3 << 20] {
            let layout = std::alloc::Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero size; freed below with the same layout.
            let p = unsafe { std::alloc::alloc(layout) };
            assert!(!p.is_null(), "size {size} align {align}");
            assert_eq!(p.addr() % align, 0, "size {size} align {align}");
            // SAFETY: `p` is valid for `size` bytes.
            unsafe {
                p.write(1);
                p.add(size - 1).write(2);
                std::alloc::dealloc(p, layout);
            }
        }
    }
}

#[test]
fn threads_allocate_and_free_each_others_blocks() {
    let _q = QUIET.lock().unwrap_or_else(|e| e.into_inner());
    within(60, || {
        let (tx, rx) = mpsc::channel::<Vec<Box<[u8]>>>();
        let producers: Vec<_> = (0..8)
            .map(|t| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for round in 0..50 {
                        let batch: Vec<Box<[u8]>> = (0..64)
                            .map(|i| vec![t as u8; 16 + (i * 97 + round * 31) % 20_000].into())
                            .collect();
                        tx.send(batch).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        let mut seen = 0;
        for batch in rx {
            for b in batch {
                assert!(b.iter().all(|&x| x == b[0]), "block contents corrupted");
                seen += 1;
            }
        }
        for p in producers {
            p.join().unwrap();
        }
        assert_eq!(seen, 8 * 50 * 64);
    });
}

#[test]
fn many_short_lived_threads_exit_without_deadlock() {
    let _q = QUIET.lock().unwrap_or_else(|e| e.into_inner());
    within(60, || {
        for i in 0..300usize {
            std::thread::spawn(move || {
                let v: Vec<String> = (0..i % 50).map(|j| j.to_string()).collect();
                assert_eq!(v.len(), i % 50);
            })
            .join()
            .unwrap();
        }
    });
    // Building the manager and 300 thread exits took little of the side heap.
    let side = GLOBAL.side_heap_bytes();
    assert!(
        side > 0,
        "the manager's construction was served from the side heap"
    );
    assert!(side < 1 << 20, "side heap grew to {side} bytes");
}

thread_local! {
    // Registered before the thread's first pool operation, so destroyed after the
    // adapter's exit guards: its free happens on an "exiting" thread and is deferred.
    static LATE_DROP: Cell<Option<Box<[u8]>>> = const { Cell::new(None) };
}

/// A bare pthread (std's thread start-up allocates before user code runs, which would
/// register the adapter's guards first): registers `LATE_DROP`, then allocates.
extern "C" fn thread_with_late_drop(_: *mut libc::c_void) -> *mut libc::c_void {
    LATE_DROP.with(|_| {}); // registers the destructor, allocates nothing
    LATE_DROP.with(|c| c.set(Some(vec![7u8; 3 << 20].into_boxed_slice())));
    std::ptr::null_mut()
}

#[test]
fn frees_from_exiting_threads_are_deferred_then_returned() {
    let _q = QUIET.lock().unwrap_or_else(|e| e.into_inner());
    let deferred_before = GLOBAL.deferred_frees();
    let before = live();
    within(30, || {
        let mut tid: libc::pthread_t = 0;
        // SAFETY: a valid start routine that ignores its argument; default attributes.
        let rc = unsafe {
            libc::pthread_create(
                &mut tid,
                std::ptr::null(),
                thread_with_late_drop,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(rc, 0);
        // SAFETY: `tid` is a joinable thread created above, joined once.
        assert_eq!(unsafe { libc::pthread_join(tid, std::ptr::null_mut()) }, 0);
    });
    assert!(
        GLOBAL.deferred_frees() > deferred_before,
        "the thread-local's block was not deferred"
    );
    // The next allocation of a live thread hands deferred blocks back to the pool.
    let probe = vec![0u8; 100];
    let after = live();
    assert!(
        after < before + (3 << 20),
        "deferred 3 MiB block never returned: live {before} -> {after}"
    );
    drop(probe);
}
