//! Times `MemoryManager::compact` on a layout with holes: 16 chunks of 64 MiB filled with
//! 1 MiB movable blocks (every page written), every other block freed, so 256 MiB of
//! blocks must move to empty 8 chunks. Prints the report and the copy rate per run.
//!
//! `cargo run --release -p bitnet-memory --example compact_time`
use bitnet_memory::cleanup::CleanupConfig;
use bitnet_memory::{MemoryConfig, MemoryManager};
use std::alloc::Layout;
use std::time::Instant;

const CHUNK: usize = 64 << 20;
const BLOCK: usize = 1 << 20;
const CHUNKS: usize = 16;

fn main() {
    for run in 0..3 {
        let mm = MemoryManager::new(
            MemoryConfig::default()
                .min_chunk(CHUNK)
                .max_chunk(CHUNK)
                .cleanup(CleanupConfig::manual()),
        )
        .unwrap();
        let layout = Layout::from_size_align(BLOCK, 64).unwrap();
        let mut blocks: Vec<_> = (0..CHUNKS * CHUNK / BLOCK)
            .map(|i| {
                let mut a = mm.allocate_movable(layout).unwrap();
                a.pin_mut().fill(i as u8);
                (i, a)
            })
            .collect();
        blocks.retain(|(i, _)| i % 2 == 1);
        let mapped = mm.metrics().devices[0].mapped_bytes;
        let t = Instant::now();
        let r = mm.compact();
        let wall = t.elapsed();
        let after = mm.metrics().devices[0].mapped_bytes;
        for (i, a) in &blocks {
            assert!(
                a.pin().iter().all(|&b| b == *i as u8),
                "block {i} corrupted"
            );
        }
        println!(
            "run {run}: {r}\n  wall {:.1} ms, {:.2} GB/s copied; mapped {} MiB -> {} MiB",
            wall.as_secs_f64() * 1e3,
            r.bytes_moved as f64 / wall.as_secs_f64() / 1e9,
            mapped >> 20,
            after >> 20
        );
    }
}
