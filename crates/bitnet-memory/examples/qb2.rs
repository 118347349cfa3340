//! scratch
use bitnet_memory::{MemoryConfig, MemoryManager};
use bitnet_memory::pool::size_class::{class_of, class_size};
use rand::{rngs::SmallRng, Rng, SeedableRng};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::VecDeque;
fn touch(p: *mut u8, n: usize) { let mut o = 0; while o < n { unsafe { p.add(o).write_volatile(1) }; o += 4096; } }
fn main() {
    let mode = std::env::args().nth(1).unwrap();
    let n = 400_000; let win = 64;
    let mut r = SmallRng::seed_from_u64(1);
    let s: Vec<usize> = (0..n).map(|_| (64f64.ln() + r.gen::<f64>() * (65536f64.ln() - 64f64.ln())).exp() as usize).collect();
    if mode == "ours" || mode == "off" || mode == "full" {
        let cfg = match mode.as_str() { "off" => MemoryConfig::default().tracking(bitnet_memory::TrackingConfig::off()), "full" => MemoryConfig::default().tracking(bitnet_memory::TrackingConfig::full()), _ => MemoryConfig::default() };
        let mm = MemoryManager::new(cfg).unwrap();
        for _ in 0..2 { let mut q = VecDeque::new();
        for &sz in &s { let mut a = mm.allocate(Layout::from_size_align(sz, 16).unwrap()); touch(a.as_mut_ptr(), sz); q.push_back(a); if q.len() > win { q.pop_front(); } } }
    } else if mode == "limit" {
        let mut stacks: Vec<Vec<*mut u8>> = vec![Vec::new(); 64];
        for c in 0..64 { for _ in 0..win { stacks[c].push(unsafe { System.alloc(Layout::from_size_align(class_size(c), 16).unwrap()) }); } }
        for _ in 0..2 { let mut q = VecDeque::new();
        for &sz in &s { let c = class_of(sz); let p = stacks[c].pop().unwrap(); touch(p, sz); q.push_back((p, c)); if q.len() > win { let (p, c) = q.pop_front().unwrap(); stacks[c].push(p); } }
        for (p, c) in q { stacks[c].push(p); } }
    }
}
