//! Raw blocks: allocations without an owner, freed by hand. Handles are generation-tagged:
//! a double free, a free of a foreign block, or any use of a handle whose block was freed
//! (even after the address was handed out again) is an error, never UB.

use super::MemoryManager;
use crate::device::DeviceId;
use crate::error::{MemoryError, Result};
use std::alloc::Layout;
use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Managers made so far: each raw table takes the next number as its tag.
static TABLES: AtomicU64 = AtomicU64::new(1);

/// Bits of a generation that count blocks within one manager; the bits above hold the
/// manager's tag, so a handle of one manager never names a block of another.
const COUNT_BITS: u32 = 40;

/// The raw blocks of one manager: live blocks by address, and the generations issued.
#[derive(Debug)]
pub(crate) struct RawTable {
    live: HashMap<usize, RawEntry>,
    tag: u64,
    /// Blocks allocated so far (the count part of the next generation).
    issued: u64,
}

impl Default for RawTable {
    fn default() -> Self {
        Self {
            live: HashMap::new(),
            tag: TABLES.fetch_add(1, Relaxed),
            issued: 0,
        }
    }
}

impl RawTable {
    /// A new generation, never given before by any manager (2^40 per manager, 2^24
    /// managers; past those it wraps, and only uniqueness would be lost).
    fn next_generation(&mut self) -> u64 {
        self.issued += 1;
        (self.tag << COUNT_BITS) | (self.issued & ((1 << COUNT_BITS) - 1))
    }

    /// Whether this manager gave out `generation`.
    fn issued(&self, generation: u64) -> bool {
        let count = generation & ((1 << COUNT_BITS) - 1);
        generation >> COUNT_BITS == self.tag & ((1 << (64 - COUNT_BITS)) - 1)
            && count != 0
            && count <= self.issued
    }
}

/// A block from [`MemoryManager::allocate_raw`]: no owner, freed only by
/// [`MemoryManager::free_raw`], which detects double and foreign frees.
///
/// The handle carries the block's generation, a number no other raw block (of any
/// manager) ever gets: once the block is freed, the handle is stale, and every call with it
/// ([`free_raw`](MemoryManager::free_raw), [`check_raw`](MemoryManager::check_raw),
/// [`raw_bytes`](MemoryManager::raw_bytes)) is refused with
/// [`MemoryError::StaleHandle`], even when the same address is live again in a new raw
/// block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawBlock {
    /// First byte.
    pub ptr: NonNull<u8>,
    /// Size in bytes.
    pub size: usize,
    /// Device of the block.
    pub device: DeviceId,
    /// The block's generation: unique to this allocation.
    pub generation: u64,
}

// SAFETY: a `RawBlock` is a plain description (address and size); it grants no access by
// itself: dereferencing `ptr` is the caller's unsafe business.
unsafe impl Send for RawBlock {}
// SAFETY: as above.
unsafe impl Sync for RawBlock {}

/// What the manager remembers of a live raw block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawEntry {
    token: u64,
    size: usize,
    device: DeviceId,
    slot: u32,
    generation: u64,
}

impl MemoryManager {
    /// Allocates a block without an owner: it stays allocated until
    /// [`free_raw`](Self::free_raw). For code that manages lifetimes itself (FFI, arenas).
    #[track_caller]
    pub fn allocate_raw(&self, device: DeviceId, layout: Layout) -> Result<RawBlock> {
        if layout.size() == 0 {
            return Err(MemoryError::InvalidLayout {
                size: 0,
                align: layout.align(),
                reason: "raw blocks must have a size",
            });
        }
        let a = self.try_allocate_on(device, layout)?;
        let (addr, size, token, slot) = a.into_parts();
        let mut raw = self.inner.raw.lock();
        let generation = raw.next_generation();
        raw.live.insert(
            addr,
            RawEntry {
                token,
                size,
                device,
                slot,
                generation,
            },
        );
        drop(raw);
        Ok(RawBlock {
            ptr: NonNull::new(std::ptr::with_exposed_provenance_mut(addr)).expect("non-null"),
            size,
            device,
            generation,
        })
    }

    /// Checks that `block` is live: allocated by this manager, not freed since, with its
    /// size and device. A stale handle (the block freed, maybe handed out again) is
    /// [`MemoryError::StaleHandle`]; a handle of no raw block of this manager is
    /// [`MemoryError::InvalidFree`].
    pub fn check_raw(&self, block: &RawBlock) -> Result<()> {
        let raw = self.inner.raw.lock();
        Self::live_entry(&raw, block).map(|_| ())
    }

    /// The bytes of a live raw block on a host-visible device, copied out; the handle is
    /// checked first (see [`check_raw`](Self::check_raw)), so a stale handle reads nothing.
    pub fn raw_bytes(&self, block: &RawBlock) -> Result<Vec<u8>> {
        let raw = self.inner.raw.lock();
        let e = Self::live_entry(&raw, block)?;
        if !self.pool(e.device)?.host_visible {
            return Err(MemoryError::InvalidDeviceAccess {
                reason: format!("raw block on {}: the host cannot read it", e.device),
            });
        }
        // SAFETY: the block is live (checked under the lock, which `free_raw` takes before
        // freeing it), host-visible and `size` bytes long, so its bytes are readable while
        // the lock is held.
        let bytes = unsafe { std::slice::from_raw_parts(block.ptr.as_ptr(), e.size) };
        Ok(bytes.to_vec())
    }

    /// Frees a raw block. A second free of the same block (stale handle), a block this
    /// manager did not hand out, or a wrong size or device, is refused with
    /// [`MemoryError::StaleHandle`] or [`MemoryError::InvalidFree`] and changes nothing.
    pub fn free_raw(&self, block: RawBlock) -> Result<()> {
        let addr = block.ptr.as_ptr().addr();
        let mut raw = self.inner.raw.lock();
        let e = Self::live_entry(&raw, &block).inspect_err(|err| {
            self.inner.security.audit.push(
                crate::security::AuditKind::InvalidFree,
                addr,
                block.size,
                err.to_string(),
            )
        })?;
        raw.live.remove(&addr);
        drop(raw);
        self.inner.free(e.device.0, addr, e.token, e.size, e.slot);
        Ok(())
    }

    /// The entry of a live block `block` names, or why it names none.
    fn live_entry(raw: &RawTable, block: &RawBlock) -> Result<RawEntry> {
        let addr = block.ptr.as_ptr().addr();
        let invalid = |reason| MemoryError::InvalidFree {
            addr,
            size: block.size,
            reason,
        };
        let stale = |reason: String| MemoryError::StaleHandle {
            addr,
            size: block.size,
            generation: block.generation,
            reason,
        };
        let issued = raw.issued(block.generation);
        let Some(&e) = raw.live.get(&addr) else {
            return Err(if issued {
                stale("the block was freed (double free or use after free)".into())
            } else {
                invalid("not a live raw block of this manager (double free?)")
            });
        };
        if e.generation != block.generation {
            return Err(if issued {
                stale(format!(
                    "the block was freed and its address handed out again (now generation {})",
                    e.generation
                ))
            } else {
                invalid("not a live raw block of this manager (no such generation)")
            });
        }
        if e.size != block.size || e.device != block.device {
            return Err(invalid("size or device differs from the allocation"));
        }
        Ok(e)
    }
}
