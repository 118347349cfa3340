//! The texts a person reads agree with the figures beside them: no utilization of
//! nothing, cleanup runs counted by what they are counted for, reserved and mapped named
//! apart, the snapshot's largest free block beside the mapped bytes it is part of.

use bitnet_memory::cleanup::CleanupStats;
use bitnet_memory::metrics::fmt_bytes;
use bitnet_memory::{MemoryConfig, MemoryManager, MetricsSnapshot};
use std::alloc::Layout;

#[test]
fn an_empty_manager_prints_no_utilization_of_nothing() {
    let mm = MemoryManager::new(MemoryConfig::default()).unwrap();
    let m = mm.metrics();
    assert_eq!(m.reserved_bytes(), 0);
    let text = m.to_string();
    assert!(!text.contains("100.0%"), "{text}");
    assert!(text.contains("utilization - (nothing reserved)"), "{text}");
    let frag = m.devices[0].fragmentation.to_string();
    assert!(
        frag.starts_with("utilization - (0 B live of 0 B mapped)"),
        "{frag}"
    );
}

#[test]
fn utilization_is_printed_beside_the_figures_it_divides() {
    let mm = MemoryManager::new(MemoryConfig::default()).unwrap();
    let a = mm.allocate(Layout::from_size_align(3 << 20, 64).unwrap());
    let d = mm.metrics().devices[0].clone();
    let text = d.to_string();
    let want = format!(
        "utilization {:.1}%",
        100.0 * d.live_bytes as f64 / d.reserved_bytes as f64
    );
    assert!(text.contains(&want), "{want} not in\n{text}");
    // Reserved and mapped apart, each with its own figure.
    assert!(
        text.contains(&format!("reserved  {:>12}", fmt_bytes(d.reserved_bytes))),
        "{text}"
    );
    assert!(
        text.contains(&format!("mapped    {:>12}", fmt_bytes(d.mapped_bytes))),
        "{text}"
    );
    let frag = d.fragmentation.to_string();
    assert!(
        frag.contains(&format!("of {} mapped", fmt_bytes(d.mapped_bytes))),
        "{frag}\nmapped {}",
        d.mapped_bytes
    );
    drop(a);
}

#[test]
fn cleanup_line_says_what_a_success_is() {
    let m = MetricsSnapshot {
        cleanup: CleanupStats {
            runs: 1,
            successes: 0,
            bytes_released: 32 << 10,
            ..CleanupStats::default()
        },
        ..MetricsSnapshot::default()
    };
    let text = m.to_string();
    assert!(!text.contains("successful"), "{text}");
    assert!(
        text.contains("1 runs (0 left no dirty free memory)"),
        "{text}"
    );
    assert!(
        text.contains("32.0 KiB given back") || text.contains("32 KiB given back"),
        "{text}"
    );
}

/// The snapshot's summary: largest free block <= mapped bytes, free <= reserved <= mapped.
#[test]
fn snapshot_summary_keeps_its_figures_in_order() {
    let mm = MemoryManager::new(MemoryConfig::default()).unwrap();
    let mut keep = Vec::new();
    for i in 0..12usize {
        let a = mm.allocate(Layout::from_size_align((i + 1) << 20, 64).unwrap());
        if i % 2 == 0 {
            keep.push(a);
        }
    }
    mm.trim();
    let s = mm.snapshot().metrics;
    assert!(s.mapped_bytes > 0, "{s:?}");
    assert!(s.largest_free <= s.mapped_bytes, "{s:?}");
    assert!(s.free_bytes <= s.reserved_bytes, "{s:?}");
    assert!(s.reserved_bytes <= s.mapped_bytes, "{s:?}");
    assert!(s.live_bytes <= s.reserved_bytes, "{s:?}");
    drop(keep);
}
