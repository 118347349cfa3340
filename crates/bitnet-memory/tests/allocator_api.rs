//! `allocator_api2` collections on a `&MemoryManager`.

use allocator_api2::alloc::{Allocator, Layout};
use allocator_api2::vec::Vec;
use bitnet_memory::{MemoryConfig, MemoryManager};

#[test]
fn vec_grows_and_frees_through_the_manager() {
    let mm = MemoryManager::new(MemoryConfig::default()).unwrap();
    {
        let mut v: Vec<u64, &MemoryManager> = Vec::new_in(&mm);
        for i in 0..300_000u64 {
            v.push(i); // crosses from size classes into large blocks
        }
        assert_eq!(v.iter().sum::<u64>(), 300_000 * 299_999 / 2);
        assert_eq!(mm.metrics().live_bytes(), v.capacity() * 8);
        v.truncate(10);
        v.shrink_to_fit();
        assert_eq!(mm.metrics().live_bytes(), 80);
        assert_eq!(&v[..3], &[0, 1, 2]);
        mm.check_invariants();
    }
    let m = mm.metrics();
    assert_eq!(m.live_bytes(), 0);
    assert_eq!(m.live_allocations(), 0);
    mm.check_invariants();
}

#[test]
fn zero_sized_and_aligned_requests() {
    let mm = MemoryManager::new(MemoryConfig::default()).unwrap();
    let a = &mm;
    let z = Allocator::allocate(&a, Layout::from_size_align(0, 256).unwrap()).unwrap();
    assert_eq!(z.len(), 0);
    assert_eq!(z.cast::<u8>().as_ptr().addr() % 256, 0);
    // SAFETY: the block was allocated by `a` with this layout.
    unsafe { Allocator::deallocate(&a, z.cast(), Layout::from_size_align(0, 256).unwrap()) };
    for (size, align) in [
        (1, 1),
        (33, 32),
        (4000, 4096),
        (100, 1 << 14),
        (5 << 20, 64),
    ] {
        let layout = Layout::from_size_align(size, align).unwrap();
        let b = Allocator::allocate(&a, layout).unwrap();
        assert_eq!(b.len(), size);
        assert_eq!(b.cast::<u8>().as_ptr().addr() % align, 0);
        assert_eq!(mm.metrics().live_bytes(), size);
        // SAFETY: as above.
        unsafe { Allocator::deallocate(&a, b.cast(), layout) };
        assert_eq!(mm.metrics().live_bytes(), 0);
    }
    mm.check_invariants();
}

#[test]
fn hashbrown_map_on_the_manager() {
    let mm = MemoryManager::new(MemoryConfig::default()).unwrap();
    let mut m = hashbrown::HashMap::new_in(&mm);
    for i in 0..20_000u32 {
        m.insert(i, i * 2);
    }
    assert_eq!(m[&777], 1554);
    assert!(mm.metrics().live_bytes() > 20_000 * 8);
    drop(m);
    assert_eq!(mm.metrics().live_bytes(), 0);
}
