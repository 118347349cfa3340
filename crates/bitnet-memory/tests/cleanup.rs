//! The cleanup engine: pressure, out-of-memory observers, emergency cleanup, the
//! background worker, and cleanup racing with allocation.

use bitnet_memory::events::CleanupStrategy;
use bitnet_memory::{
    CleanupConfig, DeviceId, EventFilter, EventKind, FailingBackend, MemoryConfig, MemoryEvent,
    MemoryManager, PressureLevel, RawBlock,
};
use std::alloc::Layout;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn l(size: usize) -> Layout {
    Layout::from_size_align(size, 64).unwrap()
}

/// 4 MiB chunks and no worker: exact, deterministic layouts.
fn manual() -> MemoryConfig {
    MemoryConfig::default()
        .min_chunk(4 << 20)
        .max_chunk(256 << 20)
        .cleanup(CleanupConfig::manual())
}

#[test]
fn pressure_crosses_each_threshold_and_critical_runs_emergency_cleanup() {
    let mm = MemoryManager::new(manual().budget(40 << 20)).unwrap();
    let sub = mm.subscribe(
        EventFilter::only(EventKind::MemoryPressureChanged)
            .with(EventKind::MemoryPressureCritical)
            .with(EventKind::CleanupTriggered),
        256,
    );
    let mut blocks = Vec::new();
    let mut seen = vec![mm.check_pressure()[0]];
    for _ in 0..20 {
        blocks.push(mm.allocate(l(2 << 20)));
        let level = mm.check_pressure()[0];
        if *seen.last().unwrap() != level {
            seen.push(level);
        }
    }
    use PressureLevel::*;
    assert_eq!(seen, vec![Low, Medium, High, Critical]);
    let events = sub.drain();
    let levels: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            MemoryEvent::MemoryPressureChanged { level, .. } => Some(level.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(levels, ["medium", "high", "critical"]);
    assert!(events
        .iter()
        .any(|e| e.kind() == EventKind::MemoryPressureCritical));
    assert!(events.contains(&MemoryEvent::CleanupTriggered {
        strategy: CleanupStrategy::Emergency
    }));
    // Freeing drops the level again.
    blocks.truncate(4);
    mm.trim();
    assert_eq!(mm.check_pressure()[0], Low);
    assert_eq!(mm.metrics().cleanup.pressure_events, 4);
}

/// A manager whose device is full: two 3 MiB raw blocks, held for an observer to free.
fn full_device_holding_two_blocks() -> (MemoryManager, Arc<Mutex<Vec<RawBlock>>>) {
    let backend = FailingBackend::new();
    let mm = MemoryManager::with_backend(manual(), backend.clone()).unwrap();
    let held: Arc<Mutex<Vec<RawBlock>>> = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..2 {
        let b = mm.allocate_raw(DeviceId::CPU, l(3 << 20)).unwrap();
        held.lock().unwrap().push(b);
    }
    backend.set_capacity(backend.outstanding_bytes());
    (mm, held)
}

#[test]
fn an_out_of_memory_observer_frees_memory_and_the_retry_succeeds() {
    let (mm, held) = full_device_holding_two_blocks();
    let calls = Arc::new(Mutex::new(Vec::new()));
    {
        let held = held.clone();
        let calls = calls.clone();
        mm.on_out_of_memory(move |mm, info| {
            calls
                .lock()
                .unwrap()
                .push((info.requested, info.metrics.live_bytes()));
            for b in held.lock().unwrap().drain(..) {
                mm.free_raw(b).unwrap();
            }
        });
    }
    let a = mm
        .try_allocate(l(3 << 20))
        .expect("the observer freed room and the retry used it");
    assert_eq!(a.len(), 3 << 20);
    assert_eq!(*calls.lock().unwrap(), vec![(3 << 20, 6 << 20)]);
    // Nothing left to free: the observer runs again, the retry fails, the error stands.
    let e = mm.try_allocate(l(8 << 20)).unwrap_err();
    assert!(
        matches!(e, bitnet_memory::MemoryError::OutOfMemory { .. }),
        "{e}"
    );
    assert_eq!(calls.lock().unwrap().len(), 2);
    let c = mm.metrics().cleanup;
    assert!(
        c.cleanup_success_rate() < 1.0,
        "the failed trim-and-retry counts"
    );
}

#[test]
fn emergency_cleanup_leaves_reserved_equal_to_live() {
    let mm = MemoryManager::new(manual()).unwrap();
    let keep: Vec<_> = (0..3)
        .map(|i| mm.allocate(l((2 << 20) + i * 4096)))
        .collect();
    let live: usize = keep.iter().map(|a| a.len()).sum();
    for round in 0..3 {
        let smalls: Vec<_> = (0..2000)
            .map(|i| mm.allocate(l(16 + (i * 7 + round) % 3000)))
            .collect();
        let larges: Vec<_> = (0..6)
            .map(|i| mm.allocate(l((3 << 20) + i * 8192)))
            .collect();
        drop((smalls, larges));
    }
    assert!(mm.metrics().reserved_bytes() > live);
    let r = mm.emergency_cleanup();
    assert!(r.success);
    assert!(r.bytes_released > 0 && r.blocks_released > 0);
    let m = mm.metrics();
    assert_eq!(m.live_bytes(), live);
    assert_eq!(m.reserved_bytes(), live, "nothing cached stays reserved");
    assert_eq!(m.cleanup.last.unwrap().strategy, CleanupStrategy::Emergency);
    drop(keep);
}

#[test]
fn the_worker_releases_idle_memory_after_its_decay_time_and_rests_when_idle() {
    let period = Duration::from_millis(20);
    let mm = MemoryManager::new(MemoryConfig::default().min_chunk(4 << 20).cleanup(
        CleanupConfig {
            background: true,
            period,
            decay: Duration::from_millis(100),
            ..CleanupConfig::default()
        },
    ))
    .unwrap();
    let mut a = mm.allocate(l(8 << 20));
    a.as_mut_slice().fill(1);
    let _keep = mm.allocate(l(2 << 20));
    drop(a);
    let dirty = mm.metrics().reserved_bytes();
    assert!(dirty >= 10 << 20);
    // Not before the decay time...
    std::thread::sleep(Duration::from_millis(40));
    assert_eq!(
        mm.metrics().reserved_bytes(),
        dirty,
        "released before its decay time"
    );
    // ...but soon after it.
    let mut released = false;
    for _ in 0..100 {
        std::thread::sleep(period);
        if mm.metrics().reserved_bytes() <= (2 << 20) + (1 << 20) {
            released = true;
            break;
        }
    }
    assert!(released, "idle memory not released: {}", mm.metrics());
    let c = mm.metrics().cleanup;
    assert_eq!(c.last.as_ref().unwrap().strategy, CleanupStrategy::Decay);
    // Idle now: the worker wakes once per period and does nothing.
    let runs = mm.metrics().cleanup.runs;
    let ticks = mm.worker_ticks().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let woke = mm.worker_ticks().unwrap() - ticks;
    assert_eq!(mm.metrics().cleanup.runs, runs, "cleanup ran while idle");
    assert!(
        woke <= 300 / 20 + 2,
        "woke {woke} times in 300 ms with a 20 ms period"
    );
    assert!(woke >= 3, "the worker stopped waking: {woke}");
}

#[test]
fn dropping_the_manager_stops_a_running_worker() {
    for _ in 0..20 {
        let mm = MemoryManager::new(MemoryConfig::default().cleanup(CleanupConfig {
            period: Duration::from_millis(1),
            decay: Duration::ZERO,
            ..CleanupConfig::default()
        }))
        .unwrap();
        let blocks: Vec<_> = (0..50).map(|i| mm.allocate(l(4096 * (i + 1)))).collect();
        drop(blocks);
        std::thread::sleep(Duration::from_millis(3));
        drop(mm); // joins the worker; a hang here fails the test by timeout
    }
}

/// Threads allocate, fill, check and free while another thread runs every kind of
/// cleanup: no block is lost or handed to two owners.
#[test]
fn cleanup_racing_with_allocation_never_frees_owned_blocks() {
    let mm = MemoryManager::new(manual().cleanup(CleanupConfig {
        period: Duration::from_millis(1),
        decay: Duration::ZERO,
        ..CleanupConfig::default()
    }))
    .unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..3u8 {
            let mm = &mm;
            s.spawn(move || {
                let mut live = Vec::new();
                for i in 0..1500usize {
                    let size = [24, 700, 5000, 70_000, 300_000, 3 << 20][(i + t as usize) % 6];
                    let mut a = mm.allocate(l(size));
                    let v = (i as u8) ^ t;
                    a.as_mut_slice().fill(v);
                    live.push((a, v));
                    if live.len() > 12 {
                        let (a, v) = live.swap_remove((i * 7) % live.len());
                        assert!(a.as_slice().iter().all(|&b| b == v), "block changed");
                    }
                }
                for (a, v) in live {
                    assert!(a.as_slice().iter().all(|&b| b == v), "block changed");
                }
            });
        }
        s.spawn(|| {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 2000 {
                match i % 3 {
                    0 => drop(mm.trim()),
                    1 => drop(mm.emergency_cleanup()),
                    _ => drop(mm.decay_now()),
                }
                i += 1;
                std::thread::yield_now();
            }
        });
        std::thread::sleep(Duration::from_millis(1));
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    mm.check_invariants();
    let m = mm.metrics();
    assert_eq!(m.live_allocations(), 0);
    assert_eq!(m.live_bytes(), 0);
    assert!(m.cleanup.runs > 0);
}

/// Movable allocations take the same path: out-of-memory observers are asked and the
/// retry uses what they freed.
#[test]
fn movable_allocations_ask_the_out_of_memory_observers_too() {
    let (mm, held) = full_device_holding_two_blocks();
    let calls = Arc::new(Mutex::new(0));
    {
        let (held, calls) = (held.clone(), calls.clone());
        mm.on_out_of_memory(move |mm, _| {
            *calls.lock().unwrap() += 1;
            for b in held.lock().unwrap().drain(..) {
                mm.free_raw(b).unwrap();
            }
        });
    }
    let a = mm
        .allocate_movable(l(3 << 20))
        .expect("the observer freed room and the retry used it");
    assert_eq!(a.len(), 3 << 20);
    assert_eq!(*calls.lock().unwrap(), 1);
}
