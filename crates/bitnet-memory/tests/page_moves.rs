//! Page moves on the CPU device (`UFFDIO_MOVE`): a free block's resident pages go to a
//! request's fresh pages instead of being handed back while the request faults fresh ones
//! in. The bytes arrive, the source reads as zero, and the pool's books stay exact.

use bitnet_memory::{CpuBackend, DeviceBackend, MemoryConfig, MemoryManager, TrackingConfig};
use std::alloc::Layout;

const MIB: usize = 1 << 20;
const PAGE: usize = 4096;

/// Whether this kernel has `UFFDIO_MOVE` (Linux 6.8 and later).
fn kernel_moves() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release.trim().split(['.', '-']);
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor) >= (6, 8)
}

#[test]
#[cfg_attr(miri, ignore = "userfaultfd is a system call Miri does not run")]
fn pages_move_between_chunks_with_their_bytes() {
    let backend = CpuBackend::new();
    if !kernel_moves() {
        eprintln!("kernel before 6.8: no page moves to test");
        return;
    }
    let mover = backend.page_mover().expect("a 6.8+ kernel moves pages");
    let src = backend.allocate_chunk(MIB, PAGE).unwrap();
    let dst = backend.allocate_chunk(MIB, PAGE).unwrap();
    let at = |c: &bitnet_memory::device::Chunk, off: usize| {
        std::ptr::with_exposed_provenance_mut::<u8>(
            c.host.expect("a CPU chunk has a host address") + off,
        )
    };
    for p in 0..16 {
        // SAFETY: inside the 1 MiB chunk just mapped, which nothing else uses.
        unsafe { at(&src, p * PAGE).write(p as u8 + 1) };
    }
    assert!(mover.move_pages(&src, 0, &dst, 64 * 1024, 16 * PAGE));
    for p in 0..16 {
        // SAFETY: as above, both chunks are ours and mapped.
        let (moved, left) = unsafe {
            (
                at(&dst, 64 * 1024 + p * PAGE).read(),
                at(&src, p * PAGE).read(),
            )
        };
        assert_eq!(moved, p as u8 + 1, "page {p} arrived");
        assert_eq!(left, 0, "page {p} left the source empty");
    }
    // A destination page that holds data refuses a move, and nothing changes.
    // SAFETY: as above.
    unsafe { at(&src, 32 * PAGE).write(7) };
    assert!(!mover.move_pages(&src, 32 * PAGE, &dst, 64 * 1024, PAGE));
    // SAFETY: as above.
    assert_eq!(unsafe { at(&src, 32 * PAGE).read() }, 7);
    backend.release_chunk(src);
    backend.release_chunk(dst);
}

/// Under the resident limit a request that needs fresh pages takes them from free
/// blocks by moving: the pool counts moved bytes, its books match what the process holds,
/// and the request's bytes are its own.
#[test]
#[cfg_attr(miri, ignore = "userfaultfd is a system call Miri does not run")]
fn a_request_over_the_limit_takes_pages_by_moving_them() {
    if !kernel_moves() {
        eprintln!("kernel before 6.8: no page moves to test");
        return;
    }
    let mut config = MemoryConfig::default()
        .tracking(TrackingConfig::off())
        .huge_pages(false)
        .retain_fraction(0.0)
        .min_retain(0);
    config.cleanup.background = false;
    let mm = MemoryManager::new(config).unwrap();
    let layout = |n| Layout::from_size_align(n, 64).unwrap();
    let fill = |a: &mut bitnet_memory::Allocation<'_>, v: u8| {
        for b in a.as_mut_slice().iter_mut().step_by(PAGE) {
            *b = v;
        }
    };
    // Two 8 MiB tensors with a 1 MiB one between; the first freed leaves a resident hole.
    let mut a = mm.allocate(layout(8 * MIB));
    fill(&mut a, 1);
    let mut sep = mm.allocate(layout(MIB));
    fill(&mut sep, 2);
    let mut b = mm.allocate(layout(8 * MIB));
    fill(&mut b, 3);
    drop(a);
    // 12 MiB do not fit the hole: they take fresh pages, and with no slack over the live
    // peak the hole's pages must go. They move into the new tensor.
    let mut c = mm.allocate(layout(12 * MIB));
    let m = mm.metrics();
    let d = &m.devices[0];
    assert!(d.moved_bytes >= 4 * MIB, "moved {} B", d.moved_bytes);
    assert!(
        d.reserved_bytes <= d.peak_live_bytes + MIB,
        "{} B committed for a live peak of {} B",
        d.reserved_bytes,
        d.peak_live_bytes
    );
    fill(&mut c, 4);
    assert!(c.as_slice().iter().step_by(PAGE).all(|&v| v == 4));
    assert!(
        b.as_slice().iter().step_by(PAGE).all(|&v| v == 3),
        "b untouched"
    );
    assert!(
        sep.as_slice().iter().step_by(PAGE).all(|&v| v == 2),
        "sep untouched"
    );
}
