//! The device layer: where chunks of memory come from.
//!
//! A [`DeviceBackend`] hands out large chunks and takes them back; everything finer (blocks
//! inside chunks) is the pool's business and works on addresses and offsets only, so the
//! same pool code can later sub-allocate device memory that the host cannot touch.

mod cpu;
mod failing;

pub use cpu::CpuBackend;
pub use failing::FailingBackend;

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

/// A contiguous range of device memory owned by the pool until released.
///
/// `base` is an address in the device's address space; for host-visible devices it is a
/// host address whose provenance the backend has exposed, so the pool can hand out
/// pointers into the chunk (see [`DeviceBackend::host_visible`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// First address of the chunk.
    pub base: usize,
    /// Size in bytes.
    pub size: usize,
    /// Backend-private tag (for the CPU backend: how the chunk was obtained).
    pub tag: u32,
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
/// Implementations must be thread-safe; the pool calls them rarely (growing, trimming) and
/// never on its hot path.
pub trait DeviceBackend: Send + Sync + 'static {
    /// Short name for reports (`"cpu"`).
    fn name(&self) -> &str;

    /// Whether chunk addresses can be dereferenced by the host. Only then do
    /// [`Allocation::as_slice`](crate::Allocation::as_slice) and friends work.
    fn host_visible(&self) -> bool;

    /// Obtains a chunk of at least `size` bytes whose base is aligned to `align` (a power
    /// of two). A host-visible backend must hand out initialized bytes (the CPU backend
    /// zero-fills), because allocations expose them as `&[u8]`; it must also expose the
    /// provenance of `base` (`ptr.expose_provenance()`), since the pool turns addresses
    /// back into pointers.
    fn allocate_chunk(&self, size: usize, align: usize) -> Result<Chunk, DeviceError>;

    /// Gives a chunk back. The pool calls this only for chunks none of whose blocks is
    /// owned, so nothing refers to the memory any more.
    fn release_chunk(&self, chunk: Chunk);

    /// Hands the pages of `[offset, offset + len)` of a chunk back to the device while the
    /// pool keeps the range (it reads as zero or garbage when reused). Returns the bytes
    /// actually handed back. The default does nothing.
    fn decommit(&self, _chunk: &Chunk, _offset: usize, _len: usize) -> usize {
        0
    }

    /// Faults in `[offset, offset + len)` of a chunk (offsets and length whole multiples of
    /// [`HUGE_PAGE`] in address) with huge pages where the device can, for an owner about to
    /// write all of it. Only a speed hint: the pool counts the range as resident either way,
    /// and no page outside the range may become resident. The default does nothing.
    fn fault_in_huge(&self, _chunk: &Chunk, _offset: usize, _len: usize) {}

    /// Moves the pages of `[from, from + len)` of chunk `src` to `[to, to + len)` of chunk
    /// `dst` (whole pages), leaving the source range as a decommit leaves it: the pool
    /// hands a free block's resident pages to a request instead of handing them back and
    /// faulting fresh ones in. Whether it did; where it did not, nothing changed. The
    /// default moves nothing.
    fn move_pages(
        &self,
        _src: &Chunk,
        _from: usize,
        _dst: &Chunk,
        _to: usize,
        _len: usize,
    ) -> bool {
        false
    }

    /// Whether [`move_pages`](Self::move_pages) may move anything. The default: no.
    fn moves_pages(&self) -> bool {
        false
    }

    /// Total memory of the device in bytes, if known.
    fn capacity(&self) -> Option<usize>;

    /// Memory the device can still give, in bytes, if known.
    fn available(&self) -> Option<usize>;
}
