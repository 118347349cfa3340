//! `realloc` through `PoolAlloc` keeps the pointer where the pool can resize the block in
//! place, and moves it (keeping the bytes) where it cannot. A fresh `PoolAlloc` of its own
//! (not the global allocator), so the layout of its first chunk is known.

use bitnet_memory::global::PoolAlloc;
use std::alloc::{GlobalAlloc, Layout};

static POOL: PoolAlloc = PoolAlloc::new();
const MIB: usize = 1 << 20;

/// Fills `len` bytes at `p` with a pattern keyed by `seed`.
unsafe fn fill(p: *mut u8, len: usize, seed: u8) {
    for i in 0..len {
        // SAFETY: the caller's contract: `p` is valid for `len` bytes.
        unsafe {
            p.add(i)
                .write((i as u8).wrapping_mul(31).wrapping_add(seed))
        };
    }
}

/// Whether the pattern of [`fill`] is intact.
unsafe fn intact(p: *const u8, len: usize, seed: u8) -> bool {
    // SAFETY: the caller's contract: `p` is valid for `len` bytes.
    (0..len).all(|i| unsafe { p.add(i).read() } == (i as u8).wrapping_mul(31).wrapping_add(seed))
}

#[test]
fn realloc_grows_in_place_when_it_can_and_moves_the_bytes_when_it_cannot() {
    let l2 = Layout::from_size_align(2 * MIB, 64).unwrap();
    let l3 = Layout::from_size_align(3 * MIB, 64).unwrap();
    // SAFETY: every pointer below is used within the layout it was allocated or resized
    // to, and freed once with that layout.
    unsafe {
        let a = POOL.alloc(l2);
        assert!(!a.is_null());
        fill(a, 2 * MIB, 1);
        // The rest of the fresh chunk after `a` is free: the block grows where it is.
        let a2 = POOL.realloc(a, l2, 3 * MIB);
        assert_eq!(a2, a, "grown in place");
        assert!(intact(a2, 2 * MIB, 1));
        fill(a2, 3 * MIB, 2);
        // A block right after it: now it cannot grow, and moves with its bytes.
        let b = POOL.alloc(l3);
        assert_eq!(b, a2.add(3 * MIB), "carved right after it");
        let a3 = POOL.realloc(a2, l3, 5 * MIB);
        assert!(!a3.is_null());
        assert_ne!(a3, a2, "the memory after it is taken: moved");
        assert!(intact(a3, 3 * MIB, 2), "the bytes moved with it");
        // A small block within its size class stays.
        let small = Layout::from_size_align(1000, 8).unwrap();
        let s = POOL.alloc(small);
        fill(s, 1000, 3);
        let s2 = POOL.realloc(s, small, 1024);
        assert_eq!(s2, s, "the same 1 KiB class");
        assert!(intact(s2, 1000, 3));
        let s3 = POOL.realloc(s2, Layout::from_size_align(1024, 8).unwrap(), 4000);
        assert!(intact(s3, 1000, 3), "another class: moved with its bytes");
        POOL.dealloc(s3, Layout::from_size_align(4000, 8).unwrap());
        POOL.dealloc(b, l3);
        POOL.dealloc(a3, Layout::from_size_align(5 * MIB, 64).unwrap());
    }
    let m = POOL.manager().expect("built").metrics();
    assert_eq!(
        m.live_bytes(),
        0,
        "every block went back at its resized size"
    );
}
