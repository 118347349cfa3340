use super::bins::{bin_lower_bound, mapping_insert, mapping_search};
use super::blocks::{clip, hull};
use super::*;
use crate::pool::strategy::tests::{exercise, fill_and_empty};
use crate::pool::strategy::BlockStrategy;

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
    let mut out = crate::pool::strategy::SysVec::new_in(std::alloc::System);
    t.remove_empty_chunks(&mut out, u64::MAX);
    assert_eq!(out.as_slice(), &[0]);
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

#[test]
fn dirty_bytes_follow_frees_merges_and_purges_oldest_first() {
    let mut t = Tlsf::new();
    t.add_chunk(0, 1 << 20, 1 << 20);
    assert_eq!(t.dirty_free_bytes(), 0, "fresh memory is not resident");
    let a = t.allocate(4096, 16).unwrap();
    let b = t.allocate(8192, 16).unwrap();
    let c = t.allocate(4096, 16).unwrap();
    t.free(a.token);
    t.free(c.token); // merges with the untouched tail: only its own bytes are dirty
    assert_eq!(t.dirty_free_bytes(), 4096 + 4096);
    t.check_invariants();
    let mut seen = Vec::new();
    let purged = t.purge(4096, &mut |chunk, offset, len, _| {
        seen.push((chunk, offset, len));
        (len, false)
    });
    assert_eq!(purged, 4096);
    assert_eq!(seen, vec![(0, 0, 4096)], "the oldest free block goes first");
    assert_eq!(t.dirty_free_bytes(), 4096);
    t.check_invariants();
    t.free(b.token);
    assert_eq!(t.dirty_free_bytes(), 4096 + 8192);
    t.check_invariants();
    // One free block now (a, b, c and the tail merged), handed over whole: the pool's
    // page map knows which of its pages are resident.
    assert_eq!(
        t.purge(usize::MAX, &mut |_, _, len, _| (len, false)),
        1 << 20
    );
    assert_eq!(t.dirty_free_bytes(), 0);
    t.check_invariants();
}

#[test]
fn a_freed_block_of_the_same_size_is_reused_first() {
    let mut t = Tlsf::new();
    t.add_chunk(0, 1 << 24, 1 << 24);
    let size = 3 * 1024 * 1024 + 4096;
    let a = t.allocate(size, 16).unwrap();
    let _keep = t.allocate(4096, 16).unwrap();
    t.free(a.token);
    let again = t.allocate(size, 16).unwrap();
    assert_eq!(again.addr, a.addr, "the resident block, not fresh memory");
}

/// Resident-first placement: a request goes to free memory whose pages are resident,
/// even when a smaller block of clean (untouched or purged) memory would fit better.
#[test]
fn requests_go_to_resident_free_memory_before_clean_memory() {
    const K: usize = 1024;
    let mut t = Tlsf::new();
    t.add_chunk(0, 1 << 20, 1 << 20);
    let a = t.allocate(512 * K, 16).unwrap();
    let _b = t.allocate(128 * K, 16).unwrap(); // the rest, 384 KiB, stays untouched
    t.free(a.token);
    assert_eq!(t.dirty_free_bytes(), 512 * K);
    // Best fit alone would take the clean 384 KiB tail.
    let c = t.allocate(300 * K, 16).unwrap();
    assert_eq!(c.addr, a.addr, "served from the resident block");
    assert_eq!(t.dirty_free_bytes(), 212 * K, "no new pages");
    t.check_invariants();
}

/// Merged blocks keep where their resident bytes are: a freed block after a clean
/// neighbour is resident at its back, and a request is carved there, flush with the end.
#[test]
fn resident_ranges_survive_merges_and_requests_are_carved_from_them() {
    const K: usize = 1024;
    let mut t = Tlsf::new();
    t.add_chunk(0, 1 << 20, 1 << 20);
    let x = t.allocate(128 * K, 16).unwrap();
    let b = t.allocate(256 * K, 16).unwrap();
    let _c = t.allocate(512 * K, 16).unwrap(); // 128 KiB stay untouched at the end
    t.free(x.token);
    t.purge(usize::MAX, &mut |_, _, len, _| (len, false)); // x's pages handed back: clean
    t.free(b.token); // merges with clean x: resident at 128 KiB..384 KiB of the block
    assert_eq!(t.dirty_free_bytes(), 256 * K);
    t.check_invariants();
    let d = t.allocate(200 * K, 4096).unwrap();
    assert_eq!(
        d.addr,
        x.addr + 184 * K,
        "carved in the resident pages, at the end"
    );
    assert_eq!(t.dirty_free_bytes(), 56 * K);
    t.check_invariants();
    // One piece is left in front, whole, for a later request.
    let e = t.allocate(184 * K, 16).unwrap();
    assert_eq!(e.addr, x.addr);
    t.check_invariants();
}

/// Fresh bytes of `(offset, len)` of chunk 0 that fall in the page range `[lo, hi)`
/// (chunk offsets): a page map in which only that range was handed back or never touched.
fn fresh_in(lo: usize, hi: usize) -> impl Fn(u32, usize, usize) -> usize {
    move |chunk, offset, len| {
        assert_eq!(chunk, 0);
        clip(lo, hi - lo, offset, offset + len).1
    }
}

/// The pool's page map overrules a free block's dirty range: a block whose range says
/// resident but whose middle pages were handed back (a purge of a block that later merged)
/// loses to a block that is resident throughout, though it is in a lower bin.
#[test]
fn the_page_map_overrules_the_dirty_range() {
    const K: usize = 1024;
    let base = 1 << 20;
    let place = |fresh: Option<&dyn Fn(u32, usize, usize) -> usize>| {
        let mut t = Tlsf::new();
        t.add_chunk(0, base, 1 << 20);
        let p = t.allocate(256 * K, 16).unwrap();
        let _q = t.allocate(16 * K, 16).unwrap();
        let r = t.allocate(512 * K, 16).unwrap();
        let _s = t.allocate(240 * K, 16).unwrap();
        t.free(p.token);
        t.free(r.token);
        let d = t.allocate_placed(200 * K, 16, fresh).unwrap();
        t.check_invariants();
        (d.addr, p.addr, r.addr)
    };
    let (d, p, _) = place(None);
    assert_eq!(d, p, "by the dirty ranges alone, the smaller block");
    // The page map: p's pages at 64 KiB..192 KiB are not resident.
    let map = fresh_in(64 * K, 192 * K);
    let (d, _, r) = place(Some(&map));
    assert_eq!(d, r, "the block that is resident throughout");
}

/// Where no place is wholly resident, the one with the fewest fresh pages: a block whose
/// first 64 KiB are not resident serves a 200 KiB request flush with its end (8 KiB
/// fresh), not at its front (64 KiB fresh).
#[test]
fn partly_resident_blocks_serve_where_fewest_pages_are_fresh() {
    const K: usize = 1024;
    let mut t = Tlsf::new();
    t.add_chunk(0, 1 << 20, 1 << 20);
    let a = t.allocate(256 * K, 16).unwrap();
    let _rest = t.allocate(768 * K, 16).unwrap();
    t.free(a.token);
    let map = fresh_in(0, 64 * K);
    let d = t.allocate_placed(200 * K, 16, Some(&map)).unwrap();
    assert_eq!(d.addr, a.addr + 56 * K);
    t.check_invariants();
    // More than half fresh everywhere: best fit places it (at the front of the block).
    t.free(d.token);
    let map = fresh_in(0, 192 * K);
    let d = t.allocate_placed(200 * K, 16, Some(&map)).unwrap();
    assert_eq!(d.addr, a.addr);
    t.check_invariants();
}

#[test]
fn clip_and_hull_of_ranges() {
    assert_eq!(clip(100, 50, 0, 120), (100, 20));
    assert_eq!(clip(100, 50, 120, 400), (0, 30));
    assert_eq!(clip(100, 50, 150, 400), (0, 0));
    assert_eq!(clip(0, 0, 0, 400), (0, 0));
    assert_eq!(hull((0, 0), (10, 5)), (10, 5));
    assert_eq!(hull((10, 5), (0, 0)), (10, 5));
    assert_eq!(hull((10, 5), (30, 10)), (10, 30));
}
