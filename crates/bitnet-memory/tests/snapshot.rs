//! `mm.snapshot()` and `mm.record_history(n)`: hand-built layouts whose blocks are known,
//! the JSON read back, the history's ring, ids, byte counts and markers.
#![deny(unsafe_code)]

use bitnet_memory::snapshot::{BlockSnapshot, HistoryKind, PoolSnapshot, Snapshot};
use bitnet_memory::{MemoryConfig, MemoryError, MemoryManager, Strategy, TrackingConfig};
use std::alloc::Layout;

const CHUNK: usize = 4 << 20;

fn config() -> MemoryConfig {
    let mut c = MemoryConfig::default()
        .min_chunk(CHUNK)
        .max_chunk(CHUNK)
        .thread_cache(false);
    c.cleanup.background = false;
    c
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 16).unwrap()
}

fn pool<'s>(snap: &'s Snapshot, name: &str) -> &'s PoolSnapshot {
    snap.devices[0]
        .pools
        .iter()
        .find(|p| p.pool == name)
        .expect("pool")
}

fn blocks(p: &PoolSnapshot) -> impl Iterator<Item = (u64, &BlockSnapshot)> {
    p.chunks
        .iter()
        .flat_map(|c| c.blocks.iter().map(move |b| (c.base_offset + b.offset, b)))
}

fn addr(a: &bitnet_memory::Allocation<'_>) -> u64 {
    a.as_ptr().addr() as u64
}

#[test]
fn blocks_are_where_the_allocations_are_and_the_json_reads_back() {
    let mm = MemoryManager::new(config()).unwrap();
    let small: Vec<_> = (0..4).map(|_| mm.allocate(layout(1000))).collect();
    let big = mm.allocate(layout(3 << 20)); // tracked: at or above the large threshold
    let mid = mm.allocate(layout(100_000)); // a one-block slab of the big classes
    let freed = addr(&small[1]);
    let mut small = small;
    drop(small.remove(1));

    let snap = mm.snapshot();
    snap.check().expect("a snapshot passes its own checks");
    let json = serde_json::to_string(&snap).unwrap();
    let back = Snapshot::from_json(&json).expect("reads back");
    assert_eq!(back, snap);

    let s = pool(&snap, "small");
    let by_addr: std::collections::HashMap<u64, &BlockSnapshot> = blocks(s).collect();
    for a in &small {
        let b = by_addr[&addr(a)];
        assert!(b.live);
        assert_eq!(b.size_class, Some(b.size));
        assert!(
            b.size >= 1000 && b.size < 1200,
            "class of 1000 B: {}",
            b.size
        );
    }
    assert!(!by_addr[&freed].live, "the freed block is free");

    let l = pool(&snap, "large");
    assert_eq!(l.strategy.as_deref(), Some("best-fit (TLSF)"));
    let by_addr: std::collections::HashMap<u64, &BlockSnapshot> = blocks(l).collect();
    let b = by_addr[&addr(&big)];
    assert!(b.live && b.size >= 3 << 20);
    let id = b.allocation_id.expect("large blocks are tracked");
    let site = b.site.as_deref().expect("with their site");
    assert!(site.contains("tests/snapshot.rs"), "{site}");
    let tracked: Vec<u64> = mm
        .tracking()
        .live()
        .iter()
        .map(|(_, m)| u64::from(m.id))
        .collect();
    assert!(tracked.contains(&id));
    let m = by_addr[&addr(&mid)];
    assert!(m.live && m.size_class.is_some());

    // Live blocks are the live allocations; their bytes are the live block bytes.
    let metrics = mm.metrics();
    let live: Vec<&BlockSnapshot> = snap.devices[0]
        .pools
        .iter()
        .flat_map(|p| p.chunks.iter().flat_map(|c| &c.blocks))
        .filter(|b| b.live)
        .collect();
    assert_eq!(live.len(), metrics.live_allocations());
    let bytes: u64 = live.iter().map(|b| b.size).sum();
    assert_eq!(bytes as usize, metrics.devices[0].live_block_bytes());
    assert_eq!(snap.metrics.live_bytes as usize, metrics.live_bytes());
    assert_eq!(
        snap.metrics.reserved_bytes as usize,
        metrics.reserved_bytes()
    );
    assert!(snap.metrics_detail.is_some());
    assert!(snap.history.is_empty(), "history is off by default");
}

#[test]
fn free_blocks_and_live_blocks_tile_the_large_chunks() {
    let mm = MemoryManager::new(config().strategy(Strategy::BestFit)).unwrap();
    let mut v: Vec<_> = (0..8)
        .map(|i| mm.allocate(layout(200_000 + i * 1000)))
        .collect();
    for i in (0..8).step_by(2).rev() {
        v.remove(i);
    }
    let snap = mm.snapshot();
    let l = pool(&snap, "large");
    assert_eq!(l.chunks.len(), 1);
    let c = &l.chunks[0];
    // Nothing is lent to the small pool under best fit: the blocks cover the chunk.
    let covered: u64 = c.blocks.iter().map(|b| b.size).sum();
    assert_eq!(covered, c.size);
    assert_eq!(c.blocks.iter().filter(|b| b.live).count(), 4);
    let free: u64 = c.blocks.iter().filter(|b| !b.live).map(|b| b.size).sum();
    assert_eq!(free as usize, mm.metrics().devices[0].large.free_bytes);
    for b in c.blocks.iter().filter(|b| !b.live) {
        assert!(b.allocation_id.is_none() && b.site.is_none());
    }
}

#[test]
fn the_buddy_pool_lists_its_free_blocks_too() {
    let mm = MemoryManager::new(config().strategy(Strategy::BuddySystem)).unwrap();
    let a = mm.allocate(layout(300_000));
    let snap = mm.snapshot();
    snap.check().unwrap();
    let l = pool(&snap, "large");
    assert_eq!(l.strategy.as_deref(), Some("buddy"));
    let c = &l.chunks[0];
    let covered: u64 = c.blocks.iter().map(|b| b.size).sum();
    assert_eq!(covered, c.size);
    assert_eq!(c.blocks.iter().filter(|b| b.live).count(), 1);
    assert_eq!(c.blocks[0].offset, 0);
    assert_eq!(c.base_offset + c.blocks[0].offset, addr(&a));
}

#[test]
fn history_keeps_the_last_entries_with_exact_bytes_and_paired_ids() {
    let mm = MemoryManager::new(config()).unwrap();
    let before = mm.allocate(layout(5000));
    mm.record_history(100).unwrap();
    let a = mm.allocate(layout(1000));
    let b = mm.allocate(layout(2 << 20));
    drop(a);
    drop(before);
    let snap = mm.snapshot();
    let h = &snap.history;
    let kinds: Vec<HistoryKind> = h.iter().map(|e| e.kind).collect();
    use HistoryKind::*;
    assert_eq!(kinds, vec![Alloc, Alloc, Free, Free]);
    assert_eq!(
        h.iter().map(|e| e.live_bytes).collect::<Vec<_>>(),
        vec![6000, 6000 + (2 << 20), 5000 + (2 << 20), 2 << 20]
    );
    assert_eq!(h[0].id, h[2].id, "a free names its allocation");
    assert_ne!(h[0].id, h[1].id);
    assert_ne!(
        h[3].id, h[0].id,
        "allocated before the history: an id of its own"
    );
    assert_eq!(h[0].pool.as_deref(), Some("small"));
    assert_eq!(h[1].pool.as_deref(), Some("large"));
    assert!(h[0].site.as_deref().unwrap().contains("tests/snapshot.rs"));
    assert!(h.windows(2).all(|w| w[0].t_ns <= w[1].t_ns));
    assert!(h.last().unwrap().t_ns <= snap.t_ns);
    let r = mm.metrics().reserved_bytes() as u64;
    assert_eq!(h[3].reserved_bytes, r);
    // The live block allocated under history carries the history's id.
    let live = blocks(pool(&snap, "large"))
        .find(|(at, _)| *at == addr(&b))
        .unwrap()
        .1;
    assert_eq!(live.allocation_id, h[1].id);

    // Trims and pressure are marked.
    drop(b);
    mm.trim();
    let snap = mm.snapshot();
    let trim = snap.history.last().unwrap();
    assert_eq!(trim.kind, Trim);
    assert!(trim.size > 0, "the trim released the chunk");
    assert_eq!(trim.detail.as_deref(), Some("requested"));
}

#[test]
fn the_ring_is_capped_and_zero_turns_history_off() {
    let mm = MemoryManager::new(config()).unwrap();
    mm.record_history(3).unwrap();
    for _ in 0..5 {
        drop(mm.allocate(layout(64)));
    }
    let snap = mm.snapshot();
    assert_eq!(snap.history.len(), 3);
    assert_eq!(snap.history_dropped, 7);
    mm.record_history(0).unwrap();
    drop(mm.allocate(layout(64)));
    let snap = mm.snapshot();
    assert!(snap.history.is_empty() && snap.history_dropped == 0);
    // Bad input is refused and changes nothing.
    let err = mm.record_history(usize::MAX).unwrap_err();
    assert!(matches!(err, MemoryError::InvalidConfig { .. }), "{err}");
    assert!(err.to_string().contains("record_history"), "{err}");
    drop(mm.allocate(layout(64)));
    assert!(mm.snapshot().history.is_empty());
}

#[test]
fn pressure_and_failed_requests_are_marked() {
    let mm = MemoryManager::new(config().budget(CHUNK)).unwrap();
    mm.record_history(64).unwrap();
    let a = mm.allocate(layout(CHUNK - (64 << 10)));
    mm.check_pressure();
    assert!(mm.try_allocate(layout(CHUNK)).is_err());
    let snap = mm.snapshot();
    let marks: Vec<_> = snap
        .history
        .iter()
        .filter(|e| e.kind == HistoryKind::Pressure)
        .collect();
    assert!(marks.len() >= 2, "{marks:?}");
    assert!(marks[0].detail.as_deref().unwrap().contains("critical") || marks[0].size == 0);
    let failed = marks.last().unwrap();
    assert_eq!(failed.size as usize, CHUNK);
    assert!(failed
        .detail
        .as_deref()
        .unwrap()
        .starts_with("allocation failed"));
    drop(a);
}

#[test]
fn threads_share_one_history_and_the_snapshot_stays_consistent() {
    let mut c = config().thread_cache(true);
    c.tracking = TrackingConfig::off();
    let mm = MemoryManager::new(c).unwrap();
    mm.record_history(1 << 16).unwrap();
    std::thread::scope(|s| {
        for t in 0..3 {
            let mm = &mm;
            s.spawn(move || {
                let mut keep = Vec::new();
                for i in 0..500 {
                    let a = mm.allocate(layout(64 + (i * 37 + t * 11) % 4000));
                    if i % 3 == 0 {
                        keep.push(a);
                    }
                }
                keep.truncate(50);
                drop(keep);
            });
        }
    });
    let snap = mm.snapshot();
    snap.check().unwrap();
    let mut live = std::collections::HashSet::new();
    for e in &snap.history {
        let id = e.id.unwrap();
        match e.kind {
            HistoryKind::Alloc => assert!(live.insert(id), "id {id} allocated twice"),
            HistoryKind::Free => assert!(live.remove(&id), "id {id} freed but not live"),
            _ => {}
        }
    }
    assert!(live.is_empty(), "every block was freed");
    assert_eq!(snap.history.len(), 3000);
    assert_eq!(snap.history.last().unwrap().live_bytes, 0);
}

#[test]
fn moved_blocks_keep_their_ids_in_the_snapshot() {
    let c = config()
        .strategy(Strategy::BestFit)
        .min_chunk(1 << 20)
        .max_chunk(1 << 20);
    let mm = MemoryManager::new(c).unwrap();
    mm.record_history(1000).unwrap();
    let mut v: Vec<_> = (0..8)
        .map(|_| mm.allocate_movable(layout(200_000)).unwrap())
        .collect();
    // Holes in the first chunk for the second chunk's three blocks.
    for i in [3, 1, 0] {
        v.remove(i);
    }
    let before: Vec<usize> = v.iter().map(|m| m.current_addr()).collect();
    let report = mm.compact();
    assert!(report.blocks_moved > 0, "{report}");
    let snap = mm.snapshot();
    snap.check().unwrap();
    let ids: std::collections::HashMap<u64, u64> = blocks(pool(&snap, "large"))
        .filter(|(_, b)| b.live)
        .map(|(at, b)| (at, b.allocation_id.expect("allocated under history")))
        .collect();
    let allocs: Vec<u64> = snap
        .history
        .iter()
        .filter(|e| e.kind == HistoryKind::Alloc)
        .map(|e| e.id.unwrap())
        .collect();
    assert_eq!(allocs.len(), 8);
    let mut moved = 0;
    for (m, was) in v.iter().zip(&before) {
        let id = ids[&(m.current_addr() as u64)];
        assert!(allocs.contains(&id));
        moved += usize::from(m.current_addr() != *was);
    }
    assert_eq!(moved, report.blocks_moved);
    let distinct: std::collections::HashSet<u64> = ids.values().copied().collect();
    assert_eq!(distinct.len(), v.len());
}
