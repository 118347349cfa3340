//! Replays a trace through the pool on one thread, touching one byte per 4 KiB page of
//! each new block, and prints time per event, peak live, peak reserved (the pool's figure)
//! and the resident high-water mark growth (VmHWM).
//!
//! `cargo run --release -p bitnet-memory --example replay_ratio -- ../shared/traces/numpy-serving.csv`
//! (`REPLAY_TIMELINE=N` in the environment also prints N samples of live, reserved and
//! purged bytes along the run, on stderr).
use bitnet_memory::trace::{Op, Trace};
use bitnet_memory::{procfs, Allocation, MemoryConfig, MemoryManager};
use std::alloc::Layout;
use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Instant;

fn vm_hwm_kib() -> usize {
    (procfs::status_bytes("VmHWM").expect("VmHWM in /proc/self/status (Linux)") / 1024) as usize
}

/// `AnonHugePages` of the process: resident bytes mapped by transparent huge pages.
fn huge_kib() -> usize {
    (procfs::smaps_rollup_bytes("AnonHugePages").unwrap_or(0) / 1024) as usize
}

const USAGE: &str = "usage: replay_ratio TRACE.csv [fast | low-footprint | \
retain=F,min_retain=BYTES,cache=BYTES]";

/// One event: `(is_alloc, id, size, align)`.
type Ev = (bool, u64, usize, usize);

/// The trace's events, read by the library's one trace
/// reader (which names the line and field of a bad one), and the configuration.
fn parse_args(args: &[String]) -> Result<(Vec<Ev>, MemoryConfig), String> {
    let path = args.first().ok_or("no trace file given")?;
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let trace = Trace::read(std::io::BufReader::new(file)).map_err(|e| format!("{path}: {e}"))?;
    let events = trace
        .events()
        .iter()
        .map(|e| {
            (
                e.op == Op::Alloc,
                e.id,
                e.size as usize,
                (e.align as usize).max(1),
            )
        })
        .collect();
    // `low-footprint`, `fast`, or `retain=F,min_retain=BYTES,cache=BYTES` over the default.
    let config = match args.get(1).map(String::as_str) {
        None => MemoryConfig::default(),
        Some("low-footprint") => MemoryConfig::low_footprint(),
        Some("fast") => MemoryConfig::fast(),
        Some(spec) if spec.contains('=') => {
            let mut c = MemoryConfig::default();
            for kv in spec.split(',') {
                let (k, v) = kv.split_once('=').ok_or(format!("`{kv}`: not key=value"))?;
                let bad = |what: &str| format!("`{kv}`: {what}");
                match k {
                    "retain" => c.retain_fraction = v.parse().map_err(|_| bad("not a fraction"))?,
                    "min_retain" => c.min_retain = v.parse().map_err(|_| bad("not bytes"))?,
                    "cache" => c.thread_cache_bytes = v.parse().map_err(|_| bad("not bytes"))?,
                    _ => return Err(bad("unknown setting")),
                }
            }
            c
        }
        Some(other) => return Err(format!("`{other}`: not a configuration")),
    };
    config.validate().map_err(|e| e.to_string())?;
    Ok((events, config))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (events, config) = match parse_args(&args) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
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
    ExitCode::SUCCESS
}
