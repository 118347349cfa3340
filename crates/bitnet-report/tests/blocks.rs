//! The blocks behind the per-block timeline: one span per block from its allocation to
//! its free, with the address a replay gave it, the site a snapshot names, and the cap.

mod common;

use bitnet_report::{ReplayOptions, ReportData, ReportOptions, MAX_BLOCKS};
use common::*;

#[test]
fn a_trace_gives_one_span_per_block_and_a_replay_their_addresses() {
    let d = ReportData::from_trace(SMALL_TRACE, &ReportOptions::default()).expect("report");
    let allocs = SMALL_TRACE.lines().filter(|l| l.starts_with("a,")).count();
    assert_eq!(d.blocks.len(), allocs);
    assert_eq!(d.blocks_dropped, 0);
    // In allocation order; every freed block closes at or after it opened; no address
    // without a replay.
    for w in d.blocks.windows(2) {
        assert!(w[0].t_alloc_ns <= w[1].t_alloc_ns);
    }
    for b in &d.blocks {
        assert!(b.t_free_ns.is_none_or(|t| t >= b.t_alloc_ns), "{b:?}");
        assert!(b.addr.is_none() && b.thread.is_some());
    }
    let live_at_end: u64 = d.leaks.iter().map(|g| g.count).sum();
    let open = d.blocks.iter().filter(|b| b.t_free_ns.is_none()).count() as u64;
    assert_eq!(
        open, live_at_end,
        "open spans are the blocks live at the end"
    );

    let replayed = ReportData::from_trace(
        SMALL_TRACE,
        &ReportOptions::default().replay(ReplayOptions::default()),
    )
    .expect("replay");
    assert!(replayed.blocks.iter().all(|b| b.addr.is_some()));
    // Blocks live at the same time never share an address.
    for a in &replayed.blocks {
        for b in &replayed.blocks {
            let overlap = a.t_alloc_ns < b.t_free_ns.unwrap_or(u64::MAX)
                && b.t_alloc_ns < a.t_free_ns.unwrap_or(u64::MAX);
            if a.id != b.id && overlap {
                assert_ne!(a.addr, b.addr, "{a:?} {b:?}");
            }
        }
    }
}

#[test]
fn a_large_trace_keeps_the_largest_blocks_and_counts_the_rest() {
    let mut t = String::from("op,id,size,align,thread,t_ns\n");
    let n = MAX_BLOCKS as u64 + 10;
    for id in 0..n {
        // Sizes 1..=n: the 10 smallest are left out.
        t += &format!(
            "a,{id},{},16,0,{}\nf,{id},0,0,0,{}\n",
            id + 1,
            2 * id,
            2 * id + 1
        );
    }
    let d = ReportData::from_trace(&t, &ReportOptions::default()).expect("report");
    assert_eq!(d.blocks.len(), MAX_BLOCKS);
    assert_eq!(d.blocks_dropped, 10);
    assert_eq!(d.blocks.iter().map(|b| b.size).min(), Some(11));
    assert_eq!(d.blocks[0].id, 10, "allocation order");
}

#[test]
fn a_snapshot_names_each_blocks_site_and_place() {
    use bitnet_memory::{MemoryConfig, MemoryManager};
    use std::alloc::Layout;
    let mut config = MemoryConfig::default();
    config.cleanup.background = false;
    let mm = MemoryManager::new(config).unwrap();
    mm.record_history(100).unwrap();
    let l = |n| Layout::from_size_align(n, 64).unwrap();
    let (kept, line) = (mm.allocate(l(300_000)), line!());
    let (gone, line2) = (mm.allocate(l(2000)), line!());
    drop(gone);
    let snap = mm.snapshot();
    let d = ReportData::from_snapshot(&snap, &ReportOptions::default()).expect("report");
    assert_eq!(d.blocks.len(), 2);
    let k = d.blocks.iter().find(|b| b.size == 300_000).unwrap();
    assert!(
        k.site
            .as_deref()
            .is_some_and(|s| s.contains(&format!("blocks.rs:{line}"))),
        "{k:?}"
    );
    assert!(
        k.t_free_ns.is_none() && k.addr.is_some(),
        "live: placed in its pool"
    );
    let g = d.blocks.iter().find(|b| b.size == 2000).unwrap();
    assert!(
        g.t_free_ns.is_some() && g.addr.is_none(),
        "freed: no place known"
    );
    // A freed block's site comes from the history alone.
    assert!(
        g.site
            .as_deref()
            .is_some_and(|s| s.contains(&format!("blocks.rs:{line2}"))),
        "{g:?}"
    );
    drop(kept);
}
