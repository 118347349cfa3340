//! The tracking layer, the event bus and the metrics exports, through the manager.

use bitnet_memory::events::CleanupStrategy;
use bitnet_memory::{
    EventFilter, EventKind, MemoryConfig, MemoryEvent, MemoryManager, MetricsSnapshot,
    TrackingConfig,
};
use std::alloc::Layout;

fn l(size: usize) -> Layout {
    Layout::from_size_align(size, 16).unwrap()
}

#[test]
fn large_allocations_are_always_tracked_and_small_ones_sampled() {
    let mm = MemoryManager::new(MemoryConfig::default()).unwrap();
    let big = mm.allocate(l(2 << 20));
    assert!(big.is_tracked());
    let id = big.id().unwrap();
    assert!(id > 0);
    let smalls: Vec<_> = (0..20_000).map(|_| mm.allocate(l(100))).collect();
    let tracked = smalls.iter().filter(|a| a.is_tracked()).count();
    // 10% of 20,000, thinned by the pattern detector (one site, one size): well below
    // 2,000 but not zero.
    assert!(tracked > 0 && tracked < 2_000, "tracked {tracked}");
    let m = mm.metrics();
    assert_eq!(m.tracking.tracked_live, tracked + 1);
    drop(smalls);
    drop(big);
    assert_eq!(mm.metrics().tracking.tracked_live, 0);
}

#[test]
fn sampling_can_change_at_run_time() {
    let mm = MemoryManager::new(MemoryConfig::default().tracking(TrackingConfig {
        sample_rate: 0.0,
        ..TrackingConfig::default()
    }))
    .unwrap();
    let sizes = |i: usize| 64 + (i * 37) % 4000;
    let a: Vec<_> = (0..500).map(|i| mm.allocate(l(sizes(i)))).collect();
    assert_eq!(a.iter().filter(|a| a.is_tracked()).count(), 0);
    mm.set_sample_rate(1.0);
    let b: Vec<_> = (0..500).map(|i| mm.allocate(l(sizes(i)))).collect();
    assert_eq!(b.iter().filter(|a| a.is_tracked()).count(), 500);
    mm.tracking().set_large_threshold(1 << 30);
    mm.tracking().set_sample_rate(0.0);
    let c = mm.allocate(l(2 << 20));
    assert!(!c.is_tracked(), "the large threshold moved");
    mm.tracking().set_enabled(false);
    mm.tracking().set_sample_rate(1.0);
    assert!(!mm.allocate(l(100)).is_tracked());
}

#[test]
fn subscribers_see_each_event_their_actions_cause() {
    let mm = MemoryManager::new(
        MemoryConfig::default()
            .budget(16 << 20)
            .min_chunk(4 << 20)
            .tracking(TrackingConfig::full()),
    )
    .unwrap();
    let sub = mm.subscribe(EventFilter::ALL, 1024);
    let a = mm.allocate(l(3000));
    let (addr, id) = (a.as_ptr() as usize, a.id().unwrap());
    drop(a);
    mm.trim();
    let _ = mm.try_allocate(l(64 << 20)).unwrap_err();
    mm.set_sample_rate(0.5);
    // A fragmented large pool: every other 1.5 MiB block freed.
    let blocks: Vec<_> = (0..8).map(|_| mm.allocate(l(3 << 19))).collect();
    let kept: Vec<_> = blocks
        .into_iter()
        .enumerate()
        .filter_map(|(i, b)| (i % 2 == 0).then_some(b))
        .collect();
    mm.trim();
    let events = sub.drain();
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind()).collect();
    assert!(events.contains(&MemoryEvent::AllocationCreated {
        id,
        addr,
        size: 3000,
        device: bitnet_memory::DeviceId::CPU
    }));
    assert!(events.contains(&MemoryEvent::AllocationDropped {
        id,
        addr,
        size: 3000,
        device: bitnet_memory::DeviceId::CPU
    }));
    assert!(events.contains(&MemoryEvent::CleanupTriggered {
        strategy: CleanupStrategy::Requested
    }));
    assert!(events.contains(&MemoryEvent::CleanupTriggered {
        strategy: CleanupStrategy::TrimAndRetry
    }));
    assert!(kinds.contains(&EventKind::CleanupCompleted));
    assert!(events.iter().any(|e| matches!(e,
        MemoryEvent::AllocationFailed { size, error, .. } if *size == 64 << 20 && error.contains("budget"))));
    assert!(events.iter().any(|e| matches!(e,
        MemoryEvent::SamplingRateChanged { old, new, .. } if *old == 1.0 && *new == 0.5)));
    assert!(events.iter().any(|e| matches!(e,
        MemoryEvent::FragmentationDetected { fragmentation_level, .. } if *fragmentation_level > 0.5)));
    drop(kept);
}

#[test]
fn filters_select_kinds_and_nothing_is_sent_to_nobody() {
    let mm = MemoryManager::new(MemoryConfig::default()).unwrap();
    let drops = mm.subscribe(EventFilter::only(EventKind::AllocationDropped), 16);
    let a = mm.allocate(l(10));
    drop(a);
    mm.trim();
    let ev = drops.drain();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].kind(), EventKind::AllocationDropped);
    drop(drops);
    // Unsubscribed: the next emit notices and stops building events.
    drop(mm.allocate(l(10)));
    assert_eq!(mm.metrics().events_dropped, 0);
}

#[test]
fn a_slow_subscriber_never_blocks_allocation() {
    let mm = MemoryManager::new(MemoryConfig::default()).unwrap();
    let sub = mm.subscribe(
        EventFilter::only(EventKind::AllocationCreated).with(EventKind::AllocationDropped),
        4,
    );
    // Nobody reads: a blocking send would hang here forever.
    for i in 0..10_000 {
        drop(mm.allocate(l(16 + i % 512)));
    }
    assert_eq!(sub.receiver().len(), 4);
    assert_eq!(sub.dropped(), 20_000 - 4);
    assert_eq!(mm.metrics().events_dropped, 20_000 - 4);
}

#[test]
fn metrics_round_trip_through_json_and_prometheus() {
    let mm = MemoryManager::new(MemoryConfig::default()).unwrap();
    let keep: Vec<_> = (0..100).map(|i| mm.allocate(l(1000 + i))).collect();
    let big = mm.allocate(l(3 << 20));
    let m = mm.metrics();
    let back: MetricsSnapshot = serde_json::from_str(&m.to_json()).unwrap();
    assert_eq!(back, m);
    let text = m.to_prometheus();
    let mut seen = std::collections::HashMap::new();
    for line in text.lines() {
        if line.starts_with('#') {
            assert!(
                line.starts_with("# HELP ") || line.starts_with("# TYPE "),
                "{line}"
            );
            continue;
        }
        let (name, value) = line.rsplit_once(' ').expect("name value");
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        assert!(name.starts_with("bitnet_memory_"), "{line}");
        seen.insert(name.to_string(), v);
    }
    let live = m.live_bytes() as f64;
    assert_eq!(
        seen["bitnet_memory_live_bytes{device=\"0\",backend=\"cpu\"}"],
        live
    );
    assert_eq!(
        seen["bitnet_memory_live_allocations{device=\"0\",backend=\"cpu\"}"],
        101.0
    );
    assert_eq!(
        seen["bitnet_memory_pool_live_blocks{device=\"0\",pool=\"large\"}"],
        1.0
    );
    assert!(m.to_string().contains("tracking"));
    drop((keep, big));
}

#[test]
fn the_compact_record_is_at_most_16_bytes() {
    assert!(
        std::mem::size_of::<bitnet_memory::tracking::metadata::CompactAllocationMetadata>() <= 16
    );
}
