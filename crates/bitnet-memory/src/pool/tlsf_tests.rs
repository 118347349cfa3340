use super::*;
use crate::pool::strategy_tests::{exercise, fill_and_empty};

fn bin_lower_bound(fl: usize, sl: usize) -> usize {
    if fl == 0 {
        sl * GRANULE
    } else {
        ((SL_COUNT + sl) << (fl - 1)) * GRANULE
    }
}

#[test]
fn mapping_search_never_picks_a_bin_with_smaller_blocks() {
    for u in 1..1_000_000usize {
        let size = u * GRANULE;
        let (fl, sl) = mapping_insert(size);
        let lower = bin_lower_bound(fl, sl);
        assert!(lower <= size && mapping_insert(lower) == (fl, sl), "insert {size}");
        let (fl, sl) = mapping_search(size);
        assert!(bin_lower_bound(fl, sl) >= size, "search {size} -> ({fl},{sl})");
    }
}

#[test]
fn random_operations_keep_invariants() {
    exercise(&mut Tlsf::new(), 1 << 20, 0xB17_4E7, 4000);
}

#[test]
fn freeing_everything_restores_one_block_per_chunk() {
    fill_and_empty(&mut Tlsf::new(), 1 << 20);
}

#[test]
fn neighbours_coalesce() {
    let mut t = Tlsf::new();
    t.add_chunk(0, 1 << 20, 4096);
    let a = t.allocate(1024, 16).unwrap();
    let b = t.allocate(1024, 16).unwrap();
    let c = t.allocate(1024, 16).unwrap();
    assert_eq!(b.addr, a.addr + 1024);
    t.free(a.token);
    t.free(c.token);
    t.check_invariants();
    assert_eq!(t.largest_free(), 4096 - 2048);
    t.free(b.token);
    t.check_invariants();
    assert_eq!(t.largest_free(), 4096);
    let mut out = Vec::new();
    t.remove_empty_chunks(&mut out);
    assert_eq!(out, vec![0]);
    assert_eq!(t.free_bytes(), 0);
}

#[test]
fn over_aligned_requests_are_aligned_and_pad_is_reusable() {
    let mut t = Tlsf::new();
    t.add_chunk(0, 0x10_0000 + 64, 1 << 20);
    let a = t.allocate(100, 4096).unwrap();
    assert_eq!(a.addr % 4096, 0);
    t.check_invariants();
    let small = t.allocate(64, 16).unwrap();
    assert!(small.addr < a.addr, "padding before the aligned block is reused");
    t.free(a.token);
    t.free(small.token);
    t.check_invariants();
    assert_eq!(t.largest_free(), (1 << 20) / GRANULE * GRANULE);
}
