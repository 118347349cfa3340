//! Hardened mode (issue 22): canaries before and after each block, checked at free and by
//! `validate` (CorruptionDetected with the block, its site and the bytes found), poison on
//! free, zero on free for sensitive buffers, the audit log.

use bitnet_memory::security::{AuditKind, POISON};
use bitnet_memory::{DeviceId, MemoryConfig, MemoryError, MemoryManager};
use std::alloc::Layout;

fn hardened() -> MemoryManager {
    MemoryManager::new(MemoryConfig::default().hardened(true)).unwrap()
}

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

#[test]
fn hardened_mode_is_off_by_default() {
    assert!(!MemoryConfig::default().hardened.enabled);
    let mm = MemoryManager::new(MemoryConfig::default()).unwrap();
    let _a = mm.allocate(layout(100, 8));
    assert_eq!(mm.metrics().live_bytes(), 100, "no canary bytes");
}

#[test]
fn an_overflow_is_corruption_detected_with_block_site_and_bytes() {
    let mm = hardened();
    for (size, align) in [(100, 8), (64, 64), (5000, 4096), (3 << 20, 16)] {
        let mut a = mm.allocate(layout(size, align));
        a.as_mut_slice().fill(1); // in bounds: fine
        mm.validate().unwrap();
        let addr = a.as_ptr().addr();
        assert_eq!(addr % align, 0);
        // SAFETY: one byte past the owner's end lies in the canary inside the pool block.
        unsafe { a.as_mut_ptr().add(size).write(0x41) };
        let e = mm.validate().unwrap_err();
        match &e {
            MemoryError::CorruptionDetected {
                addr: at,
                size: s,
                site,
                side,
                offset,
                found,
            } => {
                assert_eq!(
                    (*at, *s, *side, *offset),
                    (addr, size, "after", size as isize)
                );
                assert!(site.contains("tests/hardened.rs"), "{site}");
                assert!(found.starts_with("41"), "{found}");
            }
            other => panic!("{other}"),
        }
        assert!(!e.is_retryable());
        // Still overwritten: found again, then again at the free.
        assert!(mm.validate().is_err());
        drop(a);
        assert!(mm.validate().is_err(), "found at the free, reported once");
        mm.validate().unwrap();
    }
    let log = mm.audit_log().events();
    assert!(log
        .iter()
        .any(|e| e.kind == AuditKind::Corruption && e.detail.contains("at its free")));
    assert!(mm.corruptions_found() >= 12);
}

#[test]
fn an_underflow_is_found_before_the_block() {
    let mm = hardened();
    let mut a = mm.allocate(layout(48, 16));
    // SAFETY: the byte before the owner's first lies in the front canary of the block.
    unsafe { a.as_mut_ptr().sub(3).write(0) };
    let e = mm.validate().unwrap_err();
    assert!(
        matches!(
            e,
            MemoryError::CorruptionDetected {
                side: "before",
                offset: -3,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn corruption_found_at_a_free_is_reported_by_the_next_validate() {
    let mm = hardened();
    let mut a = mm.allocate(layout(32, 8));
    let addr = a.as_ptr().addr();
    // SAFETY: inside the back canary.
    unsafe { a.as_mut_ptr().add(40).write(9) };
    drop(a);
    assert_eq!(mm.corruptions_found(), 1);
    let e = mm.validate().unwrap_err();
    assert!(
        matches!(e, MemoryError::CorruptionDetected { addr: at, offset: 40, .. } if at == addr),
        "{e}"
    );
}

#[test]
fn freed_memory_is_poisoned() {
    let mm = hardened();
    let mut a = mm.allocate(layout(200, 8));
    a.as_mut_slice().fill(0x11);
    let addr = a.as_ptr().addr();
    drop(a);
    // The thread cache is LIFO: the same block comes back.
    let b = mm.allocate(layout(200, 8));
    assert_eq!(b.as_ptr().addr(), addr);
    assert!(
        b.as_slice().iter().all(|&x| x == POISON),
        "poisoned on free"
    );
}

#[test]
fn sensitive_buffers_are_zeroed_on_free_in_any_mode() {
    for mm in [
        MemoryManager::new(MemoryConfig::default()).unwrap(),
        hardened(),
    ] {
        let mut s = mm.try_allocate_sensitive(layout(256, 8)).unwrap();
        s.as_mut_slice().fill(0x42);
        let addr = s.as_ptr().addr();
        drop(s);
        let t = mm.try_allocate_sensitive(layout(256, 8)).unwrap();
        assert_eq!(t.as_ptr().addr(), addr);
        assert!(t.as_slice().iter().all(|&x| x == 0), "zeroed on free");
        assert!(mm
            .audit_log()
            .events()
            .iter()
            .any(|e| e.kind == AuditKind::SensitiveWiped && e.addr == addr));
    }
}

#[test]
fn in_bounds_use_of_every_size_and_alignment_is_never_corruption() {
    let mm = hardened();
    let mut held = Vec::new();
    for i in 0..400usize {
        let size = 1 + (i * 7919) % 70_000;
        let align = 1 << (i % 13);
        let mut a = mm.allocate(layout(size, align));
        assert_eq!(a.as_ptr().addr() % align, 0);
        a.as_mut_slice().fill(0xFF);
        held.push(a);
        if i % 3 == 0 {
            held.swap_remove(i % held.len());
        }
    }
    mm.validate().unwrap();
    drop(held);
    mm.validate().unwrap();
    assert_eq!(mm.corruptions_found(), 0);
    assert_eq!(mm.metrics().live_bytes(), 0);
}

#[test]
fn raw_blocks_are_guarded_and_refused_frees_are_audited() {
    let mm = hardened();
    let b = mm.allocate_raw(DeviceId::CPU, layout(64, 8)).unwrap();
    // SAFETY: one past the end: inside the back canary.
    unsafe { b.ptr.as_ptr().add(64).write(1) };
    assert!(mm.validate().is_err());
    mm.free_raw(b).unwrap();
    assert!(mm.free_raw(b).is_err());
    let log = mm.audit_log().events();
    assert!(log
        .iter()
        .any(|e| e.kind == AuditKind::InvalidFree && e.addr == b.ptr.as_ptr().addr()));
}

#[test]
fn the_audit_log_keeps_its_capacity_and_counts_what_it_dropped() {
    let mut c = MemoryConfig::default().hardened(true);
    c.hardened.audit_capacity = 4;
    let mm = MemoryManager::new(c).unwrap();
    let b = mm.allocate_raw(DeviceId::CPU, layout(64, 8)).unwrap();
    mm.free_raw(b).unwrap();
    for _ in 0..10 {
        assert!(mm.free_raw(b).is_err());
    }
    assert_eq!(mm.audit_log().events().len(), 4);
    assert_eq!(mm.audit_log().dropped(), 6);
    assert_eq!(mm.audit_log().events()[3].seq, 9);
}
