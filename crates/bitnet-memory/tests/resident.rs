//! The resident limit end to end, on the CPU device: tensors that grow and shrink (the
//! pattern behind caching allocators' fragmentation reports) leave holes the next sizes do
//! not fit; the pool hands those pages back before it takes fresh ones, so what it holds
//! committed, and what the process holds resident, stay within `retain_fraction` of the
//! peak of live bytes. One test in this file: the resident high-water mark is per process.

use bitnet_memory::{Allocation, MemoryConfig, MemoryManager, TrackingConfig};
use std::alloc::Layout;

const MIB: usize = 1 << 20;

fn status_kib(field: &str) -> Option<usize> {
    bitnet_memory::procfs::status_bytes(field).map(|b| (b / 1024) as usize)
}

/// Writes one byte per page, as a tensor's owner would touch it.
fn touch(a: &mut Allocation<'_>) {
    let len = a.len();
    let s = a.as_mut_slice();
    for i in (0..len).step_by(4096) {
        s[i] = 1;
    }
}

#[test]
fn growing_and_shrinking_tensors_stay_within_the_retain_fraction_of_the_live_peak() {
    let mut config = MemoryConfig::default().tracking(TrackingConfig::off());
    config.cleanup.background = false;
    let retain = config.retain_fraction;
    let mm = MemoryManager::new(config).unwrap();
    let hwm_reset = bitnet_memory::procfs::reset_peak_resident();
    let rss0 = status_kib("VmRSS").unwrap_or(0) * 1024;
    // Rounds of four tensors whose sizes go up and then down by 1.5 MiB a round: the
    // holes one round leaves are never the sizes the next asks for.
    let mut live: Vec<Allocation<'_>> = Vec::new();
    for round in 0..40usize {
        let grow = round % 20 < 10;
        let step = if grow { round % 10 } else { 10 - round % 10 };
        for k in 0..4 {
            let size = 2 * MIB + step * 3 * MIB / 2 + k * 64 * 1024;
            let mut a = mm.allocate(Layout::from_size_align(size, 64).unwrap());
            touch(&mut a);
            live.push(a);
        }
        // Keep the newest six.
        while live.len() > 6 {
            live.remove(0);
        }
    }
    let m = mm.metrics();
    let d = &m.devices[0];
    let limit = (d.peak_live_bytes as f64 * (1.0 + retain)) as usize;
    assert!(
        d.peak_reserved_bytes <= limit,
        "peak committed {} over {limit} ({:.3}x the live peak {})",
        d.peak_reserved_bytes,
        d.peak_reserved_bytes as f64 / d.peak_live_bytes as f64,
        d.peak_live_bytes
    );
    assert!(
        d.purged_bytes + d.moved_bytes > 0,
        "the holes were handed back or moved into new tensors"
    );
    // Without the limit the same run holds far more: the holes pile up.
    assert!(
        d.mapped_bytes > limit,
        "a run this small does not test the limit"
    );
    if hwm_reset {
        let growth = (status_kib("VmHWM").unwrap() * 1024).saturating_sub(rss0);
        // The process also holds the test harness and the manager: 2 MiB of slack.
        assert!(
            growth <= limit + 2 * MIB,
            "resident growth {growth} over {limit} + 2 MiB"
        );
    }
    drop(live);
    mm.check_invariants();
}
