//! The device layer: where chunks of memory come from.
//!
//! A [`DeviceBackend`] hands out large chunks and takes them back; everything finer (blocks
//! inside chunks) is the pool's business. A [`Chunk`] is an opaque handle and a size, with
//! a host address only on devices the host can address, and the pool asks the backend for
//! anything in (chunk, offset) terms, so the same pool code sub-allocates device memory
//! that the host cannot touch. What only some devices do (decommit, huge pages, page
//! moves, counting GPU submissions) is a capability the backend offers or not, and what a
//! device cannot serve at all (alignment of block offsets, largest buffer, largest
//! binding) it states in [`DeviceLimits`].

mod cpu;
mod failing;
#[cfg(feature = "wgpu")]
pub mod wgpu;

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
    /// The device is gone for good (a lost GPU device): no later request can succeed, so
    /// the manager reports it at once instead of trimming and retrying.
    pub lost: bool,
}

/// Where a block lies on its device: the backend's chunk and the block's byte range in
/// it. What a device API needs to use the block (a GPU buffer binding, a copy), found
/// through the pool's chunk table (`Allocation::device_range`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceRange {
    /// The backend's chunk holding the block.
    pub chunk: ChunkHandle,
    /// Offset of the block's first byte in the chunk, in bytes (a multiple of the
    /// device's [`DeviceLimits::min_align`]).
    pub offset: usize,
    /// Length of the block as requested, in bytes.
    pub len: usize,
}

/// Something that names a block on a device: an allocation, or a [`DeviceRange`] itself.
/// Device backends take it where they act on a block (the wgpu backend's binding, upload
/// and download), so they need not know the handle types above them.
pub trait DeviceBlock {
    /// The block's range on its device; `None` for a zero-sized block.
    fn device_range(&self) -> Option<DeviceRange>;
}

impl DeviceBlock for DeviceRange {
    fn device_range(&self) -> Option<DeviceRange> {
        Some(*self)
    }
}

/// What a device can never serve, whatever is free: the pool keeps every block inside
/// these. [`DeviceLimits::NONE`] (the default of [`DeviceBackend::limits`]) means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceLimits {
    /// Every block's offset in its chunk is a multiple of this (a power of two): the pool
    /// raises the alignment of every request on the device to it.
    pub min_align: usize,
    /// Largest chunk the device can make, in bytes: the pool's chunk growth stops there
    /// and a request that needs a bigger chunk is refused as too large.
    pub max_chunk: usize,
    /// The device's name for `max_chunk` (for errors), e.g. `"max_buffer_size"`.
    pub max_chunk_name: &'static str,
    /// Largest block, in bytes (e.g. the largest range a GPU kernel can bind).
    pub max_block: usize,
    /// The device's name for `max_block`, e.g. `"max_storage_buffer_binding_size"`.
    pub max_block_name: &'static str,
}

impl DeviceLimits {
    /// No limit: alignment 1, chunks and blocks of any size.
    pub const NONE: DeviceLimits = DeviceLimits {
        min_align: 1,
        max_chunk: usize::MAX,
        max_chunk_name: "none",
        max_block: usize::MAX,
        max_block_name: "none",
    };
}

impl Default for DeviceLimits {
    fn default() -> Self {
        Self::NONE
    }
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

    /// What the device can never serve (see [`DeviceLimits`]). Default: no limit.
    fn limits(&self) -> DeviceLimits {
        DeviceLimits::NONE
    }

    /// Counting of the work submitted to the device, if the device runs work that may
    /// still use memory after the host freed it (a GPU queue). The pool then holds each
    /// freed block back until the next submission after the free has finished, and keeps
    /// no thread caches for the device (see [`Submissions`]).
    fn submissions(&self) -> Option<&dyn Submissions> {
        None
    }

    /// Setting a range of a chunk to zeros on the device, if it can: what
    /// `MemoryManager::try_allocate_zeroed_on` uses where the host cannot write the bytes.
    fn zero_fill(&self) -> Option<&dyn ZeroFill> {
        None
    }
}

/// Capability: set a block's bytes to zero on the device.
pub trait ZeroFill: Send + Sync {
    /// Sets the `len` bytes at `offset` of chunk `chunk` to zero before any work the
    /// caller records next reads them (the range may be padded up to the device's copy
    /// granularity inside the block's own alignment).
    fn zero_range(&self, range: DeviceRange) -> Result<(), DeviceError>;
}

/// Capability: the device runs submitted work after the host recorded it (a GPU queue),
/// so a freed range may still be read or written by work already submitted, or recorded
/// and not yet submitted (and on wgpu, `Queue::write_buffer` uploads run at the start of
/// the next submission, before command buffers recorded earlier).
///
/// The pool's rule for such a device: a block freed when `submitted() == t` goes back into
/// the pool only once `completed() > t`, i.e. once the next submission after the free has
/// finished (and with it, queues being in order, every earlier one). Work using a block
/// must therefore be submitted no later than that next submission.
pub trait Submissions: Send + Sync {
    /// Submissions made to the device so far (through the backend, or noted by it).
    fn submitted(&self) -> u64;

    /// How many of the submissions have finished (the highest finished submission
    /// number, counting from 1): checks the device without blocking.
    fn completed(&self) -> u64;

    /// Blocks until submission `n` (counting from 1) has finished or `timeout` has
    /// passed; returns whether it has finished. Never submits anything: a submission not
    /// made yet (`n > submitted()`) is not waited for. The pool calls it, with no lock
    /// held, before it would map a fresh chunk while freed blocks wait only for a
    /// submission already made (see `pool/hybrid/fence.rs`).
    ///
    /// The default cannot wait: it says whether `n` has finished already.
    fn wait_for(&self, n: u64, timeout: std::time::Duration) -> bool {
        let _ = timeout;
        self.completed() >= n
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
