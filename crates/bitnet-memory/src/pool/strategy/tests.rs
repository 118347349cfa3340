//! Shared checks for every [`BlockStrategy`].
use super::{Block, BlockStrategy};
use rand::{rngs::SmallRng, Rng, SeedableRng};

/// Random allocate/free against a model of live ranges; invariants after every step.
pub fn exercise(s: &mut dyn BlockStrategy, chunk: usize, seed: u64, steps: usize) {
    let mut rng = SmallRng::seed_from_u64(seed);
    s.add_chunk(0, chunk, chunk);
    s.add_chunk(1, chunk * 4, chunk);
    let mut live: Vec<(Block, usize, usize)> = Vec::new();
    let steps = if cfg!(miri) { steps / 40 } else { steps };
    for _ in 0..steps {
        if live.is_empty() || rng.gen_bool(0.55) {
            let size = 1usize << rng.gen_range(0..16);
            let size = rng.gen_range(size / 2 + 1..=size);
            let align = 1usize << rng.gen_range(0..13);
            if let Some(b) = s.allocate(size, align) {
                assert_eq!(b.addr % align, 0, "misaligned");
                assert!(b.size >= size);
                for (o, _, _) in &live {
                    let disjoint = b.addr + b.size <= o.addr || o.addr + o.size <= b.addr;
                    assert!(disjoint, "overlap {b:?} {o:?}");
                }
                live.push((b, size, align));
            }
        } else {
            let i = rng.gen_range(0..live.len());
            let (b, _, _) = live.swap_remove(i);
            assert_eq!(s.free(b.token), b.size);
        }
        s.check_invariants();
    }
    let used: usize = live.iter().map(|l| l.0.size).sum();
    assert_eq!(s.free_bytes() + used, 2 * chunk);
    for (b, _, _) in live {
        s.free(b.token);
    }
    s.check_invariants();
    let mut out = super::SysVec::new_in(std::alloc::System);
    s.remove_empty_chunks(&mut out, u64::MAX);
    out.sort();
    assert_eq!(out.as_slice(), &[0, 1], "every chunk empty again");
}

/// Fills a chunk with small blocks, frees them in a scrambled order, and asks for the whole
/// chunk again.
pub fn fill_and_empty(s: &mut dyn BlockStrategy, chunk: usize) {
    s.add_chunk(7, chunk * 8, chunk);
    let mut blocks = Vec::new();
    while let Some(b) = s.allocate(4096, 16) {
        blocks.push(b);
    }
    assert_eq!(blocks.len(), chunk / 4096);
    let mut rng = SmallRng::seed_from_u64(1);
    while !blocks.is_empty() {
        let b = blocks.swap_remove(rng.gen_range(0..blocks.len()));
        s.free(b.token);
    }
    s.check_invariants();
    assert_eq!(s.largest_free(), chunk);
    let whole = s.allocate(chunk, 16).expect("whole chunk again");
    assert_eq!(whole.addr, chunk * 8);
    s.free(whole.token);
}
