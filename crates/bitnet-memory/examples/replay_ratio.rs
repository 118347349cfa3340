//! Replays a trace through the pool on one thread, touching one byte per 4 KiB page of
//! each new block, and prints time per event, peak live, peak reserved (the pool's figure)
//! and the resident high-water mark growth (VmHWM).
//!
//! `cargo run --release -p bitnet-memory --example replay_ratio -- ../shared/traces/numpy-serving.csv`
//! (`REPLAY_TIMELINE=N` in the environment also prints N samples of live, reserved and
//! purged bytes along the run, on stderr).
use bitnet_memory::{procfs, Allocation, MemoryConfig, MemoryManager};
use std::alloc::Layout;
use std::collections::HashMap;
use std::time::Instant;

fn vm_hwm_kib() -> usize {
    (procfs::status_bytes("VmHWM").expect("VmHWM in /proc/self/status (Linux)") / 1024) as usize
}

/// `AnonHugePages` of the process: resident bytes mapped by transparent huge pages.
fn huge_kib() -> usize {
    (procfs::smaps_rollup_bytes("AnonHugePages").unwrap_or(0) / 1024) as usize
}

fn main() {
    let path = std::env::args().nth(1).expect("trace file");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut events = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let id: u64 = f[1].parse().unwrap();
        let size: usize = f[2].parse().unwrap();
        let align: usize = f[3].parse().unwrap();
        events.push((f[0] == "a", id, size, align.max(1)));
    }
    drop(text);
    // `low-footprint`, `fast`, or `retain=F,min_retain=BYTES,cache=BYTES` over the default.
    let mut config = match std::env::args().nth(2).as_deref() {
        Some("low-footprint") => MemoryConfig::low_footprint(),
        Some("fast") => MemoryConfig::fast(),
        _ => MemoryConfig::default(),
    };
    if let Some(spec) = std::env::args().nth(2).filter(|a| a.contains('=')) {
        for kv in spec.split(',') {
            let (k, v) = kv.split_once('=').expect("key=value");
            match k {
                "retain" => config.retain_fraction = v.parse().expect("a fraction"),
                "min_retain" => config.min_retain = v.parse().expect("bytes"),
                "cache" => config.thread_cache_bytes = v.parse().expect("bytes"),
                other => panic!("unknown setting {other}"),
            }
        }
    }
    let mm = MemoryManager::new(config).unwrap();
    let hwm0 = vm_hwm_kib();
    let t = Instant::now();
    let mut live: HashMap<u64, Allocation<'_>> = HashMap::new();
    let (mut cur, mut peak) = (0usize, 0usize);
    let mut at_peak = None;
    let every = std::env::var("REPLAY_TIMELINE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map(|n| events.len() / n.max(1));
    for (i, &(alloc, id, size, align)) in events.iter().enumerate() {
        if every.is_some_and(|e| e > 0 && i % e == 0) {
            let d = &mm.metrics().devices[0];
            eprintln!(
                "{i:>7} live {:6.1} reserved {:6.1} purged {:7.1} moved {:7.1} huge {:5.1} large-free {:6.1} cached {:5.1} slabs {:5.1}",
                cur as f64 / 1048576.0,
                d.reserved_bytes as f64 / 1048576.0,
                d.purged_bytes as f64 / 1048576.0,
                d.moved_bytes as f64 / 1048576.0,
                huge_kib() as f64 / 1024.0,
                d.large.free_bytes as f64 / 1048576.0,
                d.small.cached_bytes as f64 / 1048576.0,
                d.small.slab_bytes as f64 / 1048576.0,
            );
        }
        if alloc {
            let mut a = mm.allocate(Layout::from_size_align(size, align).unwrap());
            let p = a.as_mut_ptr();
            let mut o = 0;
            while o < size {
                // SAFETY: `o < size`, inside the allocation.
                unsafe { p.add(o).write_volatile(1) };
                o += 4096;
            }
            cur += size;
            if cur > peak && cur > 60 << 20 {
                at_peak = Some(mm.metrics());
            }
            peak = peak.max(cur);
            live.insert(id, a);
        } else if let Some(a) = live.remove(&id) {
            cur -= a.len();
        }
    }
    let el = t.elapsed();
    let m = mm.metrics();
    let hwm = (vm_hwm_kib() - hwm0) * 1024;
    println!(
        "{} events, {:.2} us/event; peak live {:.1} MiB; pool peak reserved {:.1} MiB ({:.2}x); VmHWM growth {:.1} MiB ({:.2}x)",
        events.len(),
        el.as_secs_f64() * 1e6 / events.len() as f64,
        peak as f64 / 1048576.0,
        m.peak_reserved_bytes() as f64 / 1048576.0,
        m.peak_reserved_bytes() as f64 / peak as f64,
        hwm as f64 / 1048576.0,
        hwm as f64 / peak as f64
    );
    println!(
        "purged {:.1} MiB",
        m.devices[0].purged_bytes as f64 / 1048576.0
    );
    println!("{m}");
    if let Some(p) = at_peak {
        let d = &p.devices[0];
        println!(
            "AT PEAK:\n{d}\n  large dirty? free {:.1} MiB, mapped {:.1} MiB",
            d.large.free_bytes as f64 / 1048576.0,
            d.mapped_bytes as f64 / 1048576.0
        );
        for c in &d.small.classes {
            if c.cached_blocks + c.free_blocks > 0 {
                println!(
                    "    class {} live {} cached {} free {}",
                    c.block_size, c.live_blocks, c.cached_blocks, c.free_blocks
                );
            }
        }
    }
}
