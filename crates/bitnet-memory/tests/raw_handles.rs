//! Generation-tagged raw handles (issue 22): a double free or a use of a stale handle is
//! an error, never UB, even after the block's address was handed out again.

use bitnet_memory::{DeviceId, MemoryConfig, MemoryError, MemoryManager};
use std::alloc::Layout;

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 16).unwrap()
}

#[test]
fn a_stale_handle_is_refused_after_its_address_is_handed_out_again() {
    // Thread caches are LIFO: the next raw block of the same size gets the same address.
    let mm = MemoryManager::new(MemoryConfig::default()).unwrap();
    for size in [48, 4096, 3 << 20] {
        let old = mm.allocate_raw(DeviceId::CPU, layout(size)).unwrap();
        mm.free_raw(old).unwrap();
        let new = mm.allocate_raw(DeviceId::CPU, layout(size)).unwrap();
        assert_eq!(new.ptr, old.ptr, "{size}: the address came back");
        assert_ne!(new.generation, old.generation);
        // SAFETY: the new block is live and `size` bytes long.
        unsafe { new.ptr.as_ptr().write_bytes(7, size) };
        for e in [
            mm.free_raw(old).unwrap_err(),
            mm.check_raw(&old).unwrap_err(),
            mm.raw_bytes(&old).unwrap_err(),
        ] {
            assert!(
                matches!(&e, MemoryError::StaleHandle { generation, reason, .. }
                    if *generation == old.generation && reason.contains("handed out again")),
                "{size}: {e}"
            );
            assert!(!e.is_retryable());
        }
        // The new owner's block is untouched by the refused calls.
        assert_eq!(mm.metrics().live_allocations(), 1);
        mm.check_raw(&new).unwrap();
        assert!(mm.raw_bytes(&new).unwrap().iter().all(|&b| b == 7));
        mm.free_raw(new).unwrap();
        assert_eq!(mm.metrics().live_allocations(), 0);
    }
}

#[test]
fn a_double_free_is_a_stale_handle_and_a_foreign_one_an_invalid_free() {
    let mm = MemoryManager::new(MemoryConfig::default()).unwrap();
    let other = MemoryManager::new(MemoryConfig::default()).unwrap();
    let b = mm.allocate_raw(DeviceId::CPU, layout(64)).unwrap();
    let e = other.free_raw(b).unwrap_err();
    assert!(matches!(e, MemoryError::InvalidFree { .. }), "{e}");
    let e = other.check_raw(&b).unwrap_err();
    assert!(matches!(e, MemoryError::InvalidFree { .. }), "{e}");
    mm.free_raw(b).unwrap();
    let e = mm.free_raw(b).unwrap_err();
    assert!(
        matches!(&e, MemoryError::StaleHandle { reason, .. } if reason.contains("freed")),
        "{e}"
    );
    // A forged generation on a live address is not a stale handle of this manager.
    let c = mm.allocate_raw(DeviceId::CPU, layout(64)).unwrap();
    let mut forged = c;
    forged.generation = c.generation + 1000;
    let e = mm.free_raw(forged).unwrap_err();
    assert!(matches!(e, MemoryError::InvalidFree { .. }), "{e}");
    mm.free_raw(c).unwrap();
}

#[test]
fn generations_are_unique_across_managers() {
    let a = MemoryManager::new(MemoryConfig::default()).unwrap();
    let b = MemoryManager::new(MemoryConfig::default()).unwrap();
    let x = a.allocate_raw(DeviceId::CPU, layout(64)).unwrap();
    let y = b.allocate_raw(DeviceId::CPU, layout(64)).unwrap();
    assert_ne!(x.generation, y.generation);
    a.free_raw(x).unwrap();
    b.free_raw(y).unwrap();
}
