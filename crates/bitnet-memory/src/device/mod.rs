//! The device layer: where chunks of memory come from.
//!
//! A [`DeviceBackend`] hands out large chunks and takes them back; everything finer (blocks
//! inside chunks) is the pool's business. A [`Chunk`] is an opaque handle and a size, with
//! a host address only on devices the host can address, and the pool asks the backend for
//! anything in (chunk, offset) terms, so the same pool code sub-allocates device memory
//! that the host cannot touch. What only some devices do (decommit, huge pages, page
//! moves) is a capability the backend offers or not.

mod cpu;
mod failing;

pub use cpu::CpuBackend;
pub use failing::FailingBackend;

#[cfg(test)]
mod tests;

use std::fmt;

/// Index of a device inside one [`MemoryManager`](crate::MemoryManager).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct DeviceId(pub u8);

impl DeviceId {
    /// The CPU, always device 0 of a manager made with `MemoryManager::new`.
    pub const CPU: DeviceId = DeviceId(0);
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "device {}", self.0)
    }
}

/// The backend's own name for a chunk: opaque to the pool, which only hands it back
/// (the CPU backend keeps how the chunk was obtained in it; a GPU backend would keep the
/// index of its buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkHandle(pub u64);

/// A contiguous range of device memory owned by the pool until released: an opaque
/// handle and a size, and a host address only where the host can address it.
///
/// The pool never does arithmetic on the handle; it talks to the backend in (chunk,
/// offset) pairs. For its own bookkeeping it gives each chunk a base in a pool-private
/// address space: the host address where there is one (so a block's address is the
/// pointer users get, with no lookup on the hot path), else a number of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// The backend's name for the chunk.
    pub handle: ChunkHandle,
    /// Size in bytes.
    pub size: usize,
    /// First byte's host address, with its provenance exposed
    /// (`ptr.expose_provenance()`): `Some` exactly when the device is
    /// [`host_visible`](DeviceBackend::host_visible).
    pub host: Option<usize>,
}

/// Why a device refused a chunk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("device refused a chunk of {size} B (align {align} B): {reason}")]
pub struct DeviceError {
    /// Requested chunk size in bytes.
    pub size: usize,
    /// Requested chunk alignment in bytes.
    pub align: usize,
    /// What the device said.
    pub reason: String,
}

/// Size of a transparent huge page (x86-64, aarch64 with 4 KiB pages).
pub const HUGE_PAGE: usize = 2 << 20;

/// Source of device memory: chunks in, chunks out.
///
/// Six required methods; what only some devices can do is a capability the backend
/// describes ([`decommit`](Self::decommit), [`huge_pages`](Self::huge_pages),
/// [`page_mover`](Self::page_mover)): `None` means the device cannot, and the pool then
/// neither asks nor counts on it, rather than calling a default that silently does
/// nothing.
///
/// Implementations must be thread-safe; the pool calls them rarely (growing, trimming) and
/// never on its hot path.
pub trait DeviceBackend: Send + Sync + 'static {
    /// Short name for reports (`"cpu"`).
    fn name(&self) -> &str;

    /// Whether the host can address the device's memory. Only then do chunks carry a
    /// host address, and [`Allocation::as_slice`](crate::Allocation::as_slice) and friends
    /// work.
    fn host_visible(&self) -> bool;

    /// Obtains a chunk of at least `size` bytes aligned to `align` (a power of two). A
    /// host-visible backend gives its host address (aligned, provenance exposed) and must
    /// hand out initialized bytes (the CPU backend zero-fills), because allocations expose
    /// them as `&[u8]`; other backends give `host: None`.
    fn allocate_chunk(&self, size: usize, align: usize) -> Result<Chunk, DeviceError>;

    /// Gives a chunk back. The pool calls this only for chunks none of whose blocks is
    /// owned, so nothing refers to the memory any more.
    fn release_chunk(&self, chunk: Chunk);

    /// Total memory of the device in bytes, if known.
    fn capacity(&self) -> Option<usize>;

    /// Memory the device can still give, in bytes, if known.
    fn available(&self) -> Option<usize>;

    /// Handing pages of a range back while the pool keeps the range, if the device can.
    fn decommit(&self) -> Option<&dyn Decommit> {
        None
    }

    /// Faulting ranges in with huge pages, if the device can.
    fn huge_pages(&self) -> Option<&dyn HugePages> {
        None
    }

    /// Moving pages from one range to another, if the device can (now: the check may
    /// depend on the running kernel).
    fn page_mover(&self) -> Option<&dyn PageMover> {
        None
    }
}

/// Capability: hand the pages of part of a chunk back to the device.
pub trait Decommit: Send + Sync {
    /// Hands the pages of `[offset, offset + len)` of `chunk` back to the device while the
    /// pool keeps the range (it reads as zero or garbage when reused). Returns the bytes
    /// actually handed back (0 where this chunk cannot, e.g. a heap chunk of the CPU).
    fn decommit_range(&self, chunk: &Chunk, offset: usize, len: usize) -> usize;
}

/// Capability: fault a range in with huge pages.
pub trait HugePages: Send + Sync {
    /// Faults in `[offset, offset + len)` of `chunk` (offsets and length whole multiples
    /// of [`HUGE_PAGE`] in the device's address space) with huge pages where it can, for an
    /// owner about to write all of it. Only a speed hint: the pool counts the range as
    /// resident either way, and no page outside the range may become resident.
    fn fault_in_huge(&self, chunk: &Chunk, offset: usize, len: usize);
}

/// Capability: move pages between chunks instead of copying them.
pub trait PageMover: Send + Sync {
    /// Moves the pages of `[from, from + len)` of chunk `src` to `[to, to + len)` of chunk
    /// `dst` (whole pages), leaving the source range as a decommit leaves it: the pool
    /// hands a free block's resident pages to a request instead of handing them back and
    /// faulting fresh ones in. Whether it did; where it did not, nothing changed.
    fn move_pages(&self, src: &Chunk, from: usize, dst: &Chunk, to: usize, len: usize) -> bool;
}
