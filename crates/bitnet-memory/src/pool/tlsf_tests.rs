use super::*;
use crate::pool::strategy_tests::{exercise, fill_and_empty};

#[test]
#[cfg_attr(miri, ignore = "pure arithmetic, too slow under Miri")]
fn mapping_search_never_picks_a_bin_with_smaller_blocks() {
    for u in 1..1_000_000usize {
        let size = u * GRANULE;
        let (fl, sl) = mapping_insert(size);
        let lower = bin_lower_bound(fl, sl);
        assert!(
            lower <= size && mapping_insert(lower) == (fl, sl),
            "insert {size}"
        );
        let (fl, sl) = mapping_search(size);
        assert!(
            bin_lower_bound(fl, sl) >= size,
            "search {size} -> ({fl},{sl})"
        );
    }
}

#[test]
fn random_operations_keep_invariants() {
    exercise(&mut Tlsf::new(), 1 << 20, 0x0B17_04E7, 4000);
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
    assert!(
        small.addr < a.addr,
        "padding before the aligned block is reused"
    );
    t.free(a.token);
    t.free(small.token);
    t.check_invariants();
    assert_eq!(t.largest_free(), (1 << 20) / GRANULE * GRANULE);
}

#[test]
#[cfg_attr(miri, ignore = "pure arithmetic, too slow under Miri")]
fn a_chunk_sized_by_chunk_request_serves_the_request() {
    for size in (1..200)
        .map(|i| i * 12_345 + 1)
        .chain([1 << 20, (5 << 20) / 2, 155_649])
    {
        for align in [16, 4096, 1 << 16] {
            let mut t = Tlsf::new();
            let (csize, calign) = t.chunk_request(size, align, 0);
            let base = (1usize << 32).next_multiple_of(calign);
            t.add_chunk(0, base, csize);
            let b = t.allocate(size, align).expect("served");
            assert_eq!(b.addr % align, 0);
        }
    }
}
