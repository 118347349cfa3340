//! The allocators a benchmark compares, each behind the same small per-thread interface:
//! our pool, glibc malloc, mimalloc, jemalloc (each through its own API, in one process),
//! and the `limit` row, a pre-filled stack of blocks per size class with no bookkeeping.

use crate::bench::workload::Stream;
use bitnet_memory::pool::size_class;
use bitnet_memory::{Allocation, MemoryManager};
use serde::{Deserialize, Serialize};
use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt;
use std::ptr::NonNull;

/// Why an allocator did not serve a request: a trace may ask for 1 TiB or `isize::MAX`
/// bytes (valid by the trace format), and each allocator's answer is a result to report,
/// not a reason to panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Bytes asked for.
    pub size: usize,
    /// Alignment asked for.
    pub align: usize,
    /// The allocator's own words (its error, or what it returned).
    pub reason: String,
}

impl Refusal {
    #[cold]
    fn new(size: usize, align: usize, reason: impl Into<String>) -> Self {
        Self {
            size,
            align,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "refused {} B ({}) aligned to {}: {}",
            self.size,
            bitnet_memory::metrics::fmt_bytes(self.size),
            self.align,
            self.reason
        )
    }
}

/// An allocator as one thread uses it.
pub trait Contender {
    /// A live block; freeing it gives it back.
    type Block: Send;
    /// Allocates `size` (> 0) bytes aligned to `align`, or says why the allocator would
    /// not. The block is valid for `size` bytes until it is freed.
    fn alloc(&mut self, size: usize, align: usize) -> Result<Self::Block, Refusal>;
    /// First byte of a block.
    fn ptr(b: &mut Self::Block) -> *mut u8;
    /// Frees a block.
    fn free(&mut self, b: Self::Block);
}

/// Which allocator.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Our pool, default configuration.
    BitnetMemory,
    /// Our pool through `PoolAlloc`, its `GlobalAlloc` adapter (what a
    /// `#[global_allocator]` user gets): no tracking, no allocation handles.
    PoolAlloc,
    /// glibc `posix_memalign` / `free`.
    Glibc,
    /// mimalloc, through its `GlobalAlloc` impl.
    Mimalloc,
    /// jemalloc, through its `GlobalAlloc` impl.
    Jemalloc,
    /// Pre-filled per-class stacks, no bookkeeping: the floor.
    Limit,
}

impl Kind {
    /// All allocators, ours first.
    pub const ALL: [Kind; 6] = [
        Kind::BitnetMemory,
        Kind::PoolAlloc,
        Kind::Glibc,
        Kind::Mimalloc,
        Kind::Jemalloc,
        Kind::Limit,
    ];

    /// Name in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Kind::BitnetMemory => "bitnet-memory",
            Kind::PoolAlloc => "pool-alloc",
            Kind::Glibc => "glibc",
            Kind::Mimalloc => "mimalloc",
            Kind::Jemalloc => "jemalloc",
            Kind::Limit => "limit",
        }
    }
}

/// Our pool, through the RAII API users hold.
pub struct Pool<'m>(pub &'m MemoryManager);

impl<'m> Contender for Pool<'m> {
    type Block = Allocation<'m>;

    #[inline]
    fn alloc(&mut self, size: usize, align: usize) -> Result<Allocation<'m>, Refusal> {
        let layout = layout(size, align)?;
        self.0
            .try_allocate(layout)
            .map_err(|e| Refusal::new(size, align, e.to_string()))
    }

    #[inline]
    fn ptr(b: &mut Allocation<'m>) -> *mut u8 {
        b.as_mut_ptr()
    }

    #[inline]
    fn free(&mut self, b: Allocation<'m>) {
        drop(b);
    }
}

/// A block from an allocator with a C-like interface.
pub struct RawBlock {
    ptr: NonNull<u8>,
    size: usize,
    align: usize,
}

// SAFETY: a `RawBlock` is the only handle to its block; the allocators it comes from
// (glibc, mimalloc, jemalloc) free correctly from any thread.
unsafe impl Send for RawBlock {}

/// The layout of a request, or the refusal of one no Rust allocator can be asked for (a
/// size that, rounded up to its alignment, passes `isize::MAX`).
#[inline]
fn layout(size: usize, align: usize) -> Result<Layout, Refusal> {
    Layout::from_size_align(size, align).map_err(|e| Refusal::new(size, align, e.to_string()))
}

/// glibc malloc through `posix_memalign` and `free`.
pub struct Glibc;

impl Contender for Glibc {
    type Block = RawBlock;

    #[inline]
    fn alloc(&mut self, size: usize, align: usize) -> Result<RawBlock, Refusal> {
        let mut p: *mut libc::c_void = std::ptr::null_mut();
        let align = align.max(std::mem::size_of::<usize>());
        // SAFETY: `align` is a power of two and a multiple of the pointer size.
        let rc = unsafe { libc::posix_memalign(&mut p, align, size) };
        match NonNull::new(p.cast::<u8>()) {
            Some(ptr) if rc == 0 => Ok(RawBlock { ptr, size, align }),
            _ => Err(Refusal::new(
                size,
                align,
                format!(
                    "posix_memalign returned {rc} ({})",
                    std::io::Error::from_raw_os_error(rc)
                ),
            )),
        }
    }

    #[inline]
    fn ptr(b: &mut RawBlock) -> *mut u8 {
        b.ptr.as_ptr()
    }

    #[inline]
    fn free(&mut self, b: RawBlock) {
        // SAFETY: the block came from `posix_memalign` and is freed once.
        unsafe { libc::free(b.ptr.as_ptr().cast()) }
    }
}

/// An allocator used through its `GlobalAlloc` impl (not installed as the global one).
pub struct ViaGlobalAlloc<A: GlobalAlloc + 'static>(pub &'static A, pub &'static str);

/// mimalloc.
pub static MIMALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
/// Our pool through `PoolAlloc`, one per configuration preset (a `PoolAlloc` takes its
/// configuration as a function).
pub static POOL_ALLOC_DEFAULT: bitnet_memory::global::PoolAlloc =
    bitnet_memory::global::PoolAlloc::with_config(bitnet_memory::MemoryConfig::default);
/// As [`POOL_ALLOC_DEFAULT`], with `MemoryConfig::fast()`.
pub static POOL_ALLOC_FAST: bitnet_memory::global::PoolAlloc =
    bitnet_memory::global::PoolAlloc::with_config(bitnet_memory::MemoryConfig::fast);
/// As [`POOL_ALLOC_DEFAULT`], with `MemoryConfig::low_footprint()`.
pub static POOL_ALLOC_LOW: bitnet_memory::global::PoolAlloc =
    bitnet_memory::global::PoolAlloc::with_config(bitnet_memory::MemoryConfig::low_footprint);
/// As [`POOL_ALLOC_DEFAULT`], in hardened mode.
pub static POOL_ALLOC_HARDENED: bitnet_memory::global::PoolAlloc =
    bitnet_memory::global::PoolAlloc::with_config(hardened_config);

fn hardened_config() -> bitnet_memory::MemoryConfig {
    bitnet_memory::MemoryConfig::default().hardened(true)
}

/// jemalloc.
pub static JEMALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

impl<A: GlobalAlloc + 'static> Contender for ViaGlobalAlloc<A> {
    type Block = RawBlock;

    #[inline]
    fn alloc(&mut self, size: usize, align: usize) -> Result<RawBlock, Refusal> {
        let layout = layout(size, align)?;
        // SAFETY: `size` > 0 (workloads never ask for 0 bytes).
        let p = unsafe { self.0.alloc(layout) };
        match NonNull::new(p) {
            Some(ptr) => Ok(RawBlock { ptr, size, align }),
            None => Err(Refusal::new(
                size,
                align,
                "out of memory (it returned null)",
            )),
        }
    }

    #[inline]
    fn ptr(b: &mut RawBlock) -> *mut u8 {
        b.ptr.as_ptr()
    }

    #[inline]
    fn free(&mut self, b: RawBlock) {
        // SAFETY: allocated by this allocator with this layout, freed once.
        unsafe {
            self.0.dealloc(
                b.ptr.as_ptr(),
                Layout::from_size_align_unchecked(b.size, b.align),
            )
        }
    }
}

/// A block of the limit row: its address and class.
pub struct LimitBlock {
    ptr: NonNull<u8>,
    class: u32,
}

// SAFETY: a plain address of memory the `Limit` owns; the limit runs on one thread only.
unsafe impl Send for LimitBlock {}

/// The floor: for every size class a stack of blocks allocated and touched before the
/// run; allocating pops, freeing pushes, nothing else. It needs to know the workload (the
/// most blocks of each class live at once) and serves one thread.
pub struct Limit {
    stacks: Vec<Vec<NonNull<u8>>>,
    regions: Vec<(NonNull<u8>, Layout)>,
}

/// Class of a request in the limit: the pool's size classes, which extend past 1 MiB with
/// four classes per power of two.
fn limit_class(size: usize, align: usize) -> usize {
    size_class::class_of(size.next_multiple_of(align))
}

// SAFETY: a `Limit` owns its regions and the blocks in its stacks are addresses inside
// them; moving it to another thread moves that ownership (it is used by one thread at a time).
unsafe impl Send for Limit {}

impl Limit {
    /// Pre-fills enough blocks of every class for `stream`, each page touched; the
    /// refusal of the first region the system would not give.
    pub fn for_stream(stream: &Stream) -> Result<Self, Refusal> {
        let need = stream.max_live_per_class(limit_class);
        let mut stacks = vec![Vec::new(); need.len()];
        let mut regions = Vec::new();
        let align = stream.max_align.max(64);
        for (class, &n) in need.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let class_size = size_class::class_size(class);
            let too_big = || {
                Refusal::new(
                    class_size,
                    align,
                    "its pre-filled region would pass isize::MAX bytes",
                )
            };
            let stride = class_size
                .checked_next_multiple_of(align)
                .ok_or_else(too_big)?;
            let bytes = stride.checked_mul(n).ok_or_else(too_big)?;
            let layout = layout(bytes, align.max(4096))?;
            // SAFETY: non-zero size.
            let base = unsafe { System.alloc(layout) };
            let Some(base) = NonNull::new(base) else {
                // The regions made so far go back as this `Limit` drops.
                drop(Self { stacks, regions });
                return Err(Refusal::new(
                    bytes,
                    layout.align(),
                    "out of memory for its pre-filled region (the system returned null)",
                ));
            };
            // SAFETY: the region was just allocated with `layout`.
            unsafe { crate::bench::run::touch(base.as_ptr(), layout.size()) };
            regions.push((base, layout));
            stacks[class] = (0..n)
                .rev()
                // SAFETY: `i * stride` is inside the region.
                .map(|i| unsafe { base.add(i * stride) })
                .collect();
        }
        Ok(Self { stacks, regions })
    }

    /// Bytes held by the pre-filled blocks.
    pub fn bytes(&self) -> usize {
        self.regions.iter().map(|(_, l)| l.size()).sum()
    }
}

impl Contender for Limit {
    type Block = LimitBlock;

    #[inline]
    fn alloc(&mut self, size: usize, align: usize) -> Result<LimitBlock, Refusal> {
        let class = limit_class(size, align);
        match self.stacks.get_mut(class).and_then(Vec::pop) {
            Some(ptr) => Ok(LimitBlock {
                ptr,
                class: class as u32,
            }),
            None => Err(Refusal::new(
                size,
                align,
                format!("class {class} was not pre-filled for this stream"),
            )),
        }
    }

    #[inline]
    fn ptr(b: &mut LimitBlock) -> *mut u8 {
        b.ptr.as_ptr()
    }

    #[inline]
    fn free(&mut self, b: LimitBlock) {
        self.stacks[b.class as usize].push(b.ptr);
    }
}

impl Drop for Limit {
    fn drop(&mut self) {
        for (p, l) in self.regions.drain(..) {
            // SAFETY: allocated in `for_stream` with this layout, freed once.
            unsafe { System.dealloc(p.as_ptr(), l) };
        }
    }
}
