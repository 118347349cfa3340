//! What each backend says it can do.

use super::{CpuBackend, DeviceBackend, FailingBackend};

#[test]
fn the_cpu_offers_decommit_and_huge_pages_and_hands_out_host_addresses() {
    let cpu = CpuBackend::new();
    assert!(cpu.host_visible());
    assert!(cpu.decommit().is_some());
    assert!(cpu.huge_pages().is_some());
    let c = cpu
        .allocate_chunk(1 << 20, 4096)
        .expect("the host gives 1 MiB");
    let host = c.host.expect("a CPU chunk has a host address");
    assert!(host.is_multiple_of(4096));
    if !cfg!(miri) {
        // A mapped chunk: its pages go back on request.
        let d = cpu.decommit().unwrap();
        assert_eq!(d.decommit_range(&c, 0, 64 << 10), 64 << 10);
    }
    cpu.release_chunk(c);
}

#[test]
fn the_failing_backend_offers_what_the_cpu_does_except_page_moves() {
    let f = FailingBackend::new();
    assert!(f.decommit().is_some());
    assert!(f.huge_pages().is_some());
    assert!(f.page_mover().is_none(), "it never moved pages");
}
