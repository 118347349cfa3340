//! The CPU backend: aligned chunks from the system allocator, big ones from `mmap`.

use super::HUGE_PAGE;
use super::{Chunk, ChunkHandle, Decommit, DeviceBackend, DeviceError, HugePages, PageMover};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// Chunks at least this large come from `mmap` and go back with `munmap`.
const MMAP_THRESHOLD: usize = 256 * 1024;
const PAGE: usize = 4096;

const TAG_HEAP: u32 = 0;
const TAG_MMAP: u32 = 1;
/// A mapped chunk registered with the process's userfaultfd: its pages can move.
const TAG_MMAP_MOVABLE: u32 = 2;

/// How the chunk was obtained (low byte) and, for heap chunks, log2 of its alignment:
/// what the handle of a CPU chunk holds.
fn tag(chunk: &Chunk) -> u32 {
    chunk.handle.0 as u32
}

/// A CPU chunk's host address (every CPU chunk has one; 0 only for a chunk that is not
/// ours, which no check below lets through to memory).
fn base(chunk: &Chunk) -> usize {
    chunk.host.unwrap_or(0)
}

/// Whether a chunk's memory comes from `map_chunk`.
fn is_mapped(chunk: &Chunk) -> bool {
    chunk.host.is_some() && (tag(chunk) == TAG_MMAP || tag(chunk) == TAG_MMAP_MOVABLE)
}

/// Set once the kernel refused `MADV_HUGEPAGE`: no huge pages to ask for.
static NO_HUGE: AtomicBool = AtomicBool::new(false);

/// Host memory. Small chunks come from the system allocator (aligned, zero-filled), chunks
/// of 256 KiB and more from anonymous `mmap` (zero pages), so releasing them returns their pages to the OS at once
/// and [`decommit_range`](Decommit::decommit_range) can hand back pages of a cached range with
/// `madvise(MADV_DONTNEED)`.
#[derive(Debug, Default, Clone, Copy)]
pub struct CpuBackend {
    _private: (),
}

impl CpuBackend {
    /// A backend over the host's memory.
    pub fn new() -> Self {
        Self { _private: () }
    }
}

fn err(size: usize, align: usize, reason: impl Into<String>) -> DeviceError {
    DeviceError {
        size,
        align,
        reason: reason.into(),
        lost: false,
    }
}

impl DeviceBackend for CpuBackend {
    fn name(&self) -> &str {
        "cpu"
    }

    fn host_visible(&self) -> bool {
        true
    }

    fn allocate_chunk(&self, size: usize, align: usize) -> Result<Chunk, DeviceError> {
        if size == 0 || !align.is_power_of_two() {
            return Err(err(
                size,
                align,
                "zero size or alignment not a power of two",
            ));
        }
        if size < MMAP_THRESHOLD || cfg!(miri) {
            let layout = Layout::from_size_align(size, align)
                .map_err(|e| err(size, align, e.to_string()))?;
            // Zero-filled, like fresh mmap pages: pool memory is then always initialized,
            // which `Allocation::as_slice` relies on.
            // SAFETY: `layout` has a non-zero size (checked above).
            let ptr = unsafe { System.alloc_zeroed(layout) };
            if ptr.is_null() {
                return Err(err(size, align, "the system allocator returned null"));
            }
            return Ok(Chunk {
                // The alignment goes into the tag so that release uses the same layout.
                handle: ChunkHandle(u64::from(TAG_HEAP | (align.trailing_zeros() << 8))),
                size,
                host: Some(ptr.expose_provenance()),
            });
        }
        map_chunk(size, align)
    }

    fn release_chunk(&self, chunk: Chunk) {
        if chunk.host.is_none() {
            return; // not a chunk of this backend: nothing of ours to give back
        }
        if tag(&chunk) & 0xff == TAG_HEAP {
            let ptr = std::ptr::with_exposed_provenance_mut::<u8>(base(&chunk));
            let align = 1usize << (tag(&chunk) >> 8);
            let layout = Layout::from_size_align(chunk.size, align).expect("valid chunk");
            // SAFETY: the chunk was allocated by `System.alloc` with exactly this layout
            // (size from the chunk, alignment from its tag) and is released once.
            unsafe { System.dealloc(ptr, layout) };
        } else {
            unmap(base(&chunk), chunk.size);
        }
    }

    fn capacity(&self) -> Option<usize> {
        crate::procfs::meminfo_bytes("MemTotal").map(|b| b as usize)
    }

    fn available(&self) -> Option<usize> {
        crate::procfs::meminfo_bytes("MemAvailable").map(|b| b as usize)
    }

    fn decommit(&self) -> Option<&dyn Decommit> {
        Some(self)
    }

    fn huge_pages(&self) -> Option<&dyn HugePages> {
        Some(self)
    }

    /// Page moves need userfaultfd's `UFFDIO_MOVE` (Linux 6.8 and later).
    fn page_mover(&self) -> Option<&dyn PageMover> {
        (!cfg!(miri) && uffd::get().is_some()).then_some(self as &dyn PageMover)
    }
}

impl Decommit for CpuBackend {
    fn decommit_range(&self, chunk: &Chunk, offset: usize, len: usize) -> usize {
        if !is_mapped(chunk) || cfg!(miri) {
            return 0;
        }
        let start = (base(chunk) + offset).next_multiple_of(PAGE);
        let end = (base(chunk) + offset + len) & !(PAGE - 1);
        if end <= start {
            return 0;
        }
        let ptr = std::ptr::with_exposed_provenance_mut::<libc::c_void>(start);
        // SAFETY: `[start, end)` lies inside a mapping this backend made (offset and len
        // are within the chunk, rounded inwards to whole pages); MADV_DONTNEED on private
        // anonymous memory only drops the pages' contents.
        let rc = unsafe { libc::madvise(ptr, end - start, libc::MADV_DONTNEED) };
        if rc == 0 {
            end - start
        } else {
            0
        }
    }
}

impl HugePages for CpuBackend {
    fn fault_in_huge(&self, chunk: &Chunk, offset: usize, len: usize) {
        if !is_mapped(chunk) || cfg!(miri) || NO_HUGE.load(Relaxed) || len == 0 {
            return;
        }
        let start = base(chunk) + offset;
        debug_assert!(start.is_multiple_of(HUGE_PAGE) && len.is_multiple_of(HUGE_PAGE));
        // Huge pages for the range just long enough to fault it in, then back to the
        // chunk's "no huge pages": khugepaged must never fill pages in behind the pool's
        // count, and the range merges back with its neighbours.
        if !advise(start, len, libc::MADV_HUGEPAGE) {
            // THP off ("never") or unknown to the kernel: the owner's writes fault it in.
            NO_HUGE.store(true, Relaxed);
            return;
        }
        advise(start, len, libc::MADV_POPULATE_WRITE);
        advise(start, len, libc::MADV_NOHUGEPAGE);
    }
}

impl PageMover for CpuBackend {
    fn move_pages(&self, src: &Chunk, from: usize, dst: &Chunk, to: usize, len: usize) -> bool {
        if tag(src) != TAG_MMAP_MOVABLE || tag(dst) != TAG_MMAP_MOVABLE || cfg!(miri) || len == 0 {
            return false;
        }
        let Some(fd) = uffd::get() else {
            return false;
        };
        let (a, b) = (base(src) + from, base(dst) + to);
        debug_assert!(a.is_multiple_of(PAGE) && b.is_multiple_of(PAGE) && len.is_multiple_of(PAGE));
        uffd::move_pages(fd, a, b, len)
    }
}

fn map_chunk(size: usize, align: usize) -> Result<Chunk, DeviceError> {
    let size = size.next_multiple_of(PAGE);
    // Over-map when the alignment exceeds a page, then cut the excess off both ends.
    let extra = if align > PAGE { align } else { 0 };
    let map_len = size
        .checked_add(extra)
        .ok_or_else(|| err(size, align, "size overflow"))?;
    // SAFETY: an anonymous private mapping with a null hint has no preconditions.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            map_len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(err(
            size,
            align,
            format!("mmap failed: {}", std::io::Error::last_os_error()),
        ));
    }
    let addr = ptr.expose_provenance();
    let base = addr.next_multiple_of(align.max(PAGE));
    if extra > 0 {
        let head = base - addr;
        let tail = map_len - head - size;
        if head > 0 {
            unmap(addr, head);
        }
        if tail > 0 {
            unmap(base + size, tail);
        }
    }
    // With THP set to "always" a first write would map 2 MiB at once, pages the pool
    // never counted: huge pages only where `fault_in_huge` asks for them.
    advise(base, size, libc::MADV_NOHUGEPAGE);
    let movable = uffd::get().is_some_and(|fd| uffd::register(fd, base, size));
    Ok(Chunk {
        handle: ChunkHandle(u64::from(if movable { TAG_MMAP_MOVABLE } else { TAG_MMAP })),
        size,
        host: Some(base),
    })
}

/// `madvise` over a whole-page range of a mapping made by `map_chunk`; whether it worked.
fn advise(addr: usize, len: usize, advice: libc::c_int) -> bool {
    let ptr = std::ptr::with_exposed_provenance_mut::<libc::c_void>(addr);
    // SAFETY: callers pass a page-aligned range inside a private anonymous read-write
    // mapping this backend made and has not unmapped; the advices used (huge page flags,
    // populate for writing) change no byte of the memory.
    unsafe { libc::madvise(ptr, len, advice) == 0 }
}

fn unmap(addr: usize, len: usize) {
    let ptr = std::ptr::with_exposed_provenance_mut::<libc::c_void>(addr);
    // SAFETY: `[addr, addr + len)` is a whole-page range of a mapping made by `map_chunk`
    // that nothing refers to any more (the pool releases only unowned chunks).
    let rc = unsafe { libc::munmap(ptr, len.next_multiple_of(PAGE)) };
    debug_assert_eq!(rc, 0, "munmap failed");
}

/// Page moves through a userfaultfd (`UFFDIO_MOVE`, Linux 6.8 and later): the kernel
/// hands a page from one address to another without zeroing it and without a fault, and,
/// unlike `mremap`, without splitting the mapping (so moves never add to the process's
/// count of memory areas). Chunks are registered in write-protect mode, which leaves
/// ordinary faults alone: the descriptor only serves the moves, and nothing ever reads it.
#[cfg(target_os = "linux")]
mod uffd {
    use std::os::fd::RawFd;
    use std::sync::OnceLock;

    /// `_IOWR(0xAA, nr, size)`.
    const fn iowr(nr: u64, size: u64) -> u64 {
        (3 << 30) | (size << 16) | (0xAA << 8) | nr
    }
    const UFFDIO_API: u64 = iowr(0x3F, 24);
    const UFFDIO_REGISTER: u64 = iowr(0x00, 32);
    const UFFDIO_MOVE: u64 = iowr(0x05, 40);
    const UFFD_API: u64 = 0xAA;
    const UFFD_USER_MODE_ONLY: libc::c_int = 1;
    const REGISTER_MODE_WP: u64 = 1 << 1;
    const MOVE_MODE_ALLOW_SRC_HOLES: u64 = 1 << 1;

    #[repr(C)]
    struct Api {
        api: u64,
        features: u64,
        ioctls: u64,
    }
    #[repr(C)]
    struct Register {
        start: u64,
        len: u64,
        mode: u64,
        ioctls: u64,
    }
    #[repr(C)]
    struct Move {
        dst: u64,
        src: u64,
        len: u64,
        mode: u64,
        moved: i64,
    }

    static FD: OnceLock<Option<RawFd>> = OnceLock::new();

    /// The process's userfaultfd, opened on first use; `None` where the kernel has none or
    /// refuses one.
    pub fn get() -> Option<RawFd> {
        *FD.get_or_init(|| {
            // SAFETY: the userfaultfd syscall takes flags only; it returns a new descriptor
            // or -1.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_userfaultfd,
                    libc::O_CLOEXEC | libc::O_NONBLOCK | UFFD_USER_MODE_ONLY,
                )
            } as RawFd;
            if fd < 0 {
                return None;
            }
            let mut api = Api {
                api: UFFD_API,
                features: 0,
                ioctls: 0,
            };
            // SAFETY: `fd` is the userfaultfd just opened; `api` is a valid `uffdio_api`.
            if unsafe { libc::ioctl(fd, UFFDIO_API as _, &mut api) } != 0 {
                // SAFETY: `fd` is ours and used nowhere else.
                unsafe { libc::close(fd) };
                return None;
            }
            Some(fd)
        })
    }

    /// Registers `[base, base + len)` (a mapping of ours) in write-protect mode; whether
    /// the kernel can then move pages into and out of it.
    pub fn register(fd: RawFd, base: usize, len: usize) -> bool {
        let mut r = Register {
            start: base as u64,
            len: len as u64,
            mode: REGISTER_MODE_WP,
            ioctls: 0,
        };
        // SAFETY: `fd` is the process's userfaultfd; `r` is a valid `uffdio_register` over a
        // private anonymous mapping this backend made.
        let ok = unsafe { libc::ioctl(fd, UFFDIO_REGISTER as _, &mut r) } == 0;
        ok && r.ioctls & (1 << 0x05) != 0
    }

    /// Moves the pages of `[src, src + len)` to `[dst, dst + len)`; whether all of them
    /// went (pages the source never had are skipped: the destination stays empty there).
    pub fn move_pages(fd: RawFd, src: usize, dst: usize, len: usize) -> bool {
        let mut m = Move {
            dst: dst as u64,
            src: src as u64,
            len: len as u64,
            mode: MOVE_MODE_ALLOW_SRC_HOLES,
            moved: 0,
        };
        // SAFETY: `fd` is the process's userfaultfd; both ranges are whole pages of
        // registered mappings of ours, the source a free block's and the destination a
        // request's pages that hold nothing yet.
        let rc = unsafe { libc::ioctl(fd, UFFDIO_MOVE as _, &mut m) };
        rc == 0 && m.moved == len as i64
    }
}

#[cfg(not(target_os = "linux"))]
mod uffd {
    pub fn get() -> Option<i32> {
        None
    }
    pub fn register(_: i32, _: usize, _: usize) -> bool {
        false
    }
    pub fn move_pages(_: i32, _: usize, _: usize, _: usize) -> bool {
        false
    }
}
