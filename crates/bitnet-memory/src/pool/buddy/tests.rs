use super::*;
use crate::pool::strategy::tests::{exercise, fill_and_empty};

#[test]
fn random_operations_keep_invariants() {
    exercise(&mut Buddy::new(), 1 << 20, 0x0B0D_D1E5, 4000);
}

#[test]
fn freeing_everything_restores_one_block_per_arena() {
    fill_and_empty(&mut Buddy::new(), 1 << 20);
}

#[test]
fn buddies_merge_in_arenas_not_aligned_beyond_their_size() {
    // Arena at an address aligned to its size only (1 MiB), not more: merging must use
    // offsets relative to the arena, or blocks of the upper half never merge.
    let mut b = Buddy::new();
    let base = 3 << 20;
    b.add_chunk(0, base, 1 << 20);
    let blocks: Vec<_> = (0..16).map(|_| b.allocate(64 << 10, 16).unwrap()).collect();
    assert!(b.allocate(16, 16).is_none(), "arena full");
    for blk in &blocks {
        assert_eq!(blk.addr % (64 << 10), 0);
        b.free(blk.token);
        b.check_invariants();
    }
    assert_eq!(b.largest_free(), 1 << 20);
    let whole = b.allocate(1 << 20, 16).expect("largest block served again");
    assert_eq!(whole.addr, base);
}
