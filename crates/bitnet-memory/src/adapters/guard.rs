//! The misuse guard of [`PoolAlloc`](super::PoolAlloc): a double free, or a free of a
//! pointer the pool never gave out, aborts with a message naming the pointer, instead of
//! putting the block on a free list twice (two owners would then share it).
//!
//! `GlobalAlloc::dealloc` cannot return an error, so misuse ends the process, as glibc's
//! `free(): double free detected in tcache 2` does.
//!
//! **By default**, as cheap as glibc's check: each small block freed through the adapter
//! gets a key word (its second word; every pool block has at least 16 bytes, and the
//! pool keeps its free lists outside the blocks) and an allocation clears it. A free that
//! finds the key already there asks the pool whether the block is free now (a scan of the
//! caches and the class's list, [`DevicePool::holds_free_block`]) and aborts if it is; an
//! owner that happened to store the key itself only pays for the scan. Large blocks are
//! freed by address from the large pool's table, which knows every live block: a free of
//! any other address aborts. A small-class free of a foreign pointer is not seen by
//! default (nothing cheap tells it from a pool block).
//!
//! **In hardened mode** ([`HardenedConfig`](crate::security::HardenedConfig)) every block
//! the adapter hands out is in a set of live addresses: a free of an address not in it
//! (double or foreign, small or large) aborts, and so does a free whose trailing canary
//! was overwritten (see [`CANARY`]).

use crate::pool::hybrid::DevicePool;
use allocator_api2::alloc::System as SysAlloc;
use hashbrown::{DefaultHashBuilder, HashMap};
use parking_lot::Mutex;
use std::io::Write;

/// The key a free writes into a small block's second word: a fixed odd constant mixed
/// with an address that differs per process (ASLR), so that a program cannot forge it by
/// accident and rarely holds it as data.
#[inline]
pub(super) fn key() -> usize {
    static ANCHOR: u8 = 0;
    (std::ptr::addr_of!(ANCHOR).addr().rotate_left(29)) ^ 0x9e37_79b9_7f4a_7c15_u64 as usize
}

/// The key word of the block at `addr`.
#[inline]
fn key_word(addr: usize) -> *mut usize {
    std::ptr::with_exposed_provenance_mut::<usize>(addr + size_of::<usize>())
}

/// A small block leaves the pool through the adapter: its key (if a free wrote one) goes.
///
/// # Safety
/// `addr` is a block of at least 16 bytes the pool just handed out to the caller.
#[inline]
pub(super) unsafe fn on_alloc(addr: usize) {
    // SAFETY: the block is the caller's, at least 16 bytes long (the caller's contract);
    // written unaligned, as alignment may be 1.
    unsafe { key_word(addr).write_unaligned(0) };
}

/// A small block of `class` is freed through the adapter: aborts if it is free already,
/// else marks it with the key.
///
/// # Safety
/// `addr` is readable and writable for 16 bytes: a block the caller says it owns, of a
/// size the pool serves from classes (every class block has at least 16 bytes).
#[inline]
pub(super) unsafe fn on_free_small(pool: &DevicePool, addr: usize, class: usize, size: usize) {
    let w = key_word(addr);
    let k = key();
    // SAFETY: see the function's contract.
    if unsafe { w.read_unaligned() } == k && pool.holds_free_block(addr, class) {
        misuse("double free", addr, size);
    }
    // SAFETY: as above.
    unsafe { w.write_unaligned(k) };
}

/// Ends the process with a message naming the pointer, written from a stack buffer
/// straight to file descriptor 2 (nothing here may allocate: the allocator is broken).
#[cold]
#[inline(never)]
pub(super) fn misuse(what: &str, addr: usize, size: usize) -> ! {
    let mut buf = [0u8; 256];
    let n = {
        let mut w: &mut [u8] = &mut buf;
        let _ = writeln!(
            w,
            "bitnet-memory PoolAlloc: {what} of pointer {addr:#x} (layout size {size} B); aborting"
        );
        256 - w.len()
    };
    // SAFETY: writes `n` initialised bytes of `buf` to stderr; the result is ignored (the
    // process ends either way).
    unsafe { libc::write(2, buf.as_ptr().cast(), n) };
    std::process::abort()
}

/// Bytes of the trailing canary a hardened adapter puts after each block.
pub(super) const CANARY: usize = 16;
/// The canary's byte.
const CANARY_BYTE: u8 = 0xCA;

/// Blocks handed out by a hardened adapter: address -> requested size. Its memory comes
/// from `System`, never from the adapter itself.
type Live = HashMap<usize, usize, DefaultHashBuilder, SysAlloc>;

/// The live set of a hardened adapter.
pub(super) struct LiveSet(Mutex<Option<Live>>);

impl LiveSet {
    pub(super) const fn new() -> Self {
        Self(parking_lot::const_mutex(None))
    }

    /// A block of `size` bytes (its canary after it) was handed out at `addr`: writes the
    /// canary and records the block.
    ///
    /// # Safety
    /// `addr` is a block of at least `size + CANARY` bytes just handed out.
    pub(super) unsafe fn insert(&self, addr: usize, size: usize) {
        let p = std::ptr::with_exposed_provenance_mut::<u8>(addr + size);
        // SAFETY: the canary's bytes lie inside the block (the caller's contract).
        unsafe { p.write_bytes(CANARY_BYTE, CANARY) };
        self.0
            .lock()
            .get_or_insert_with(|| Live::with_hasher_in(DefaultHashBuilder::default(), SysAlloc))
            .insert(addr, size);
    }

    /// A block is freed: aborts unless it is live with this size and its canary holds.
    ///
    /// # Safety
    /// When `addr` is in the set, its block is still mapped (it is live).
    pub(super) unsafe fn remove(&self, addr: usize, size: usize) {
        let found = self.0.lock().as_mut().and_then(|l| l.remove(&addr));
        match found {
            None => misuse(
                "free of a block that is not live (double or foreign free)",
                addr,
                size,
            ),
            Some(s) if s != size => {
                misuse("free with a size other than the allocation's", addr, size)
            }
            Some(_) => {}
        }
        let p = std::ptr::with_exposed_provenance::<u8>(addr + size);
        // SAFETY: the block was live with this size, so its canary bytes are mapped.
        let canary = unsafe { std::slice::from_raw_parts(p, CANARY) };
        if canary.iter().any(|&b| b != CANARY_BYTE) {
            misuse(
                "overflow: bytes written past the end of the block",
                addr,
                size,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::pool_access::{cpu_pool, free_to_pool_checked};
    use crate::{MemoryConfig, MemoryManager};

    #[test]
    fn an_owner_that_stores_the_key_itself_frees_without_an_abort() {
        // No cleanup worker: nothing here needs it, and under Miri its parking fails
        // (see tests/unsafe_paths.rs).
        let mut c = MemoryConfig::default();
        c.cleanup.background = false;
        let mm = MemoryManager::new(c).unwrap();
        let pool = cpu_pool(&mm);
        let (addr, token) = pool.allocate(64, 8).unwrap();
        assert_ne!(token & crate::pool::hybrid::SMALL, 0);
        // SAFETY: the block is ours, 64 bytes.
        unsafe {
            on_alloc(addr);
            key_word(addr).write_unaligned(key());
            free_to_pool_checked(pool, addr, 64, 8);
        }
        // The block is free (cached): the pool says so, and it is served again.
        let class = pool.class_for(64, 8).unwrap();
        assert!(pool.holds_free_block(addr, class));
        assert_eq!(pool.allocate(64, 8).unwrap().0, addr);
        assert!(!pool.holds_free_block(addr, class));
    }
}
