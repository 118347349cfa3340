//! [`PoolAlloc`]: a [`GlobalAlloc`] backed by a lazily built manager, usable as
//! `#[global_allocator]`; with the side heap, thread states and deferred frees it needs.

use super::deferred::Deferred;
use super::guard::{self, LiveSet, CANARY};
use super::pool_access::{cpu_pool, free_to_pool_checked, normalized};
use crate::config::{MemoryConfig, MAX_ALIGN};
use crate::manager::MemoryManager;
use crate::pool::hybrid::{DevicePool, SMALL};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, UnsafeCell};
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicUsize, Ordering};

const UNINIT: u8 = 0;
const INITIALIZING: u8 = 1;
const READY: u8 = 2;
const FAILED: u8 = 3;

/// Per-thread state of every [`PoolAlloc`]: see "Threads" in its docs.
const FRESH: u8 = 0;
const ACTIVE: u8 = 1;
const EXITING: u8 = 2;
/// The thread is creating its `parking_lot` thread data (see "Locks" in [`PoolAlloc`]).
const PREPARING: u8 = 3;

thread_local! {
    // Const-initialized and without a destructor: readable at any time, even while the
    // thread's other thread-locals are being destroyed.
    static THREAD_STATE: Cell<u8> = const { Cell::new(FRESH) };
    static EARLY_GUARD: ExitGuard = const { ExitGuard };
    static LATE_GUARD: ExitGuard = const { ExitGuard };
}

/// Marks the thread as exiting when its thread-locals are destroyed.
struct ExitGuard;

impl Drop for ExitGuard {
    fn drop(&mut self) {
        THREAD_STATE.with(|s| s.set(EXITING));
    }
}

/// Bytes of address space reserved for the side heap (untouched pages cost nothing).
const SIDE_BYTES: usize = 64 << 20;

/// A bump region for the few allocations the pool cannot serve: those made while the
/// manager is being built and those made by a thread whose thread-locals are being
/// destroyed. Never reused; its address range tells its blocks apart from the pool's.
struct SideHeap {
    base: AtomicUsize,
    used: AtomicUsize,
}

impl SideHeap {
    const fn new() -> Self {
        Self {
            base: AtomicUsize::new(0),
            used: AtomicUsize::new(0),
        }
    }

    fn base(&self) -> usize {
        let b = self.base.load(Ordering::Acquire);
        if b != 0 {
            return b;
        }
        // SAFETY: an anonymous private mapping with a null hint has no preconditions;
        // MAP_NORESERVE: only the pages touched cost memory.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                SIDE_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return 0;
        }
        let addr = p.expose_provenance();
        match self
            .base
            .compare_exchange(0, addr, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => addr,
            Err(other) => {
                // SAFETY: `p` is the mapping made above, which nothing else has seen.
                unsafe { libc::munmap(p, SIDE_BYTES) };
                other
            }
        }
    }

    fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = self.base();
        if base == 0 {
            return ptr::null_mut();
        }
        let (size, align) = normalized(layout);
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let Some(start) = (base + used).checked_next_multiple_of(align) else {
                return ptr::null_mut();
            };
            let start = start - base;
            match start.checked_add(size) {
                Some(end) if end <= SIDE_BYTES => {
                    match self.used.compare_exchange_weak(
                        used,
                        end,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => return ptr::with_exposed_provenance_mut(base + start),
                        Err(u) => used = u,
                    }
                }
                _ => return ptr::null_mut(),
            }
        }
    }

    #[inline]
    fn contains(&self, addr: usize) -> bool {
        let b = self.base.load(Ordering::Relaxed);
        b != 0 && addr.wrapping_sub(b) < SIDE_BYTES
    }
}

/// A [`GlobalAlloc`] that serves a whole program from a pool:
///
/// ```no_run
/// use bitnet_memory::global::PoolAlloc;
///
/// #[global_allocator]
/// static GLOBAL: PoolAlloc = PoolAlloc::new();
///
/// fn main() {
///     let v = vec![1u8; 4096];                      // served by the pool
///     let m = GLOBAL.manager().expect("built on first use").metrics();
///     assert!(m.live_bytes() >= v.len());
/// }
/// ```
///
/// # How it works
///
/// **Lazy construction.** A `static` must be built in a const context, but a
/// [`MemoryManager`] allocates while it is built. So the first allocation builds it: the
/// thread that moves the state from *uninit* to *initializing* calls
/// `MemoryManager::new`, stores it, and publishes *ready* (release). Every allocation made
/// meanwhile, by that thread (the manager's own boxes and vectors) or any other, is served
/// from the **side heap**: a 64 MiB `MAP_NORESERVE` mapping carved by an atomic bump
/// pointer, never reused. A block is known to come from the side heap by its address
/// alone (one range check in `dealloc`), so nothing needs to be remembered per block, and
/// freeing one is a no-op. Building a manager takes a few KiB of it, once.
///
/// **Threads.** The pool finds a thread's cache through the `thread_local` crate, whose
/// per-thread id is released by a thread-local destructor when the thread exits; that
/// destructor allocates while holding the crate's id lock, and a pool operation then would
/// ask for a new id under the same lock and deadlock. Therefore each thread's first pool
/// operation registers two exit guards of ours, one before it and one after it (by then the
/// crate's destructor is registered). Thread-local destructors run in reverse order of
/// registration (glibc `__cxa_thread_atexit_impl`, and Rust's fallback list alike), so a
/// guard of ours runs before the crate's and marks the thread as *exiting*. From then on the
/// thread's allocations come from the side heap and its frees of pool blocks are
/// **deferred**: pushed on a lock-free list threaded through the freed blocks themselves
/// (every pool block has at least 16 bytes), which the next allocation by any live thread
/// hands back to the pool. Exiting threads use a few bytes of side heap each (the crate
/// keeps freed ids in a growing heap).
///
/// **Locks.** The pool's locks are `parking_lot` mutexes. The first time a thread parks,
/// `parking_lot` creates the thread's parking data and may grow its global table of
/// waiters, allocating while it holds every bucket lock of that table; if that allocation
/// had to wait for a contended pool lock, it would park, need a bucket lock, and deadlock.
/// So the thread's first pool operation first makes `parking_lot` create that data (a
/// zero-timeout condvar wait) with the thread's allocations served from the side heap
/// (`parking_lot` never frees its old tables, so those blocks are never freed either).
///
/// **Cost.** On top of the pool's own hot path: one load of the state, one thread-local
/// read, one load of the deferred list's head (alloc) or one range check (dealloc).
/// `realloc` keeps the pointer where the pool can resize the block in place (the same
/// size class, or a large block growing into free memory after it: see
/// `DevicePool::resize_in_place`), and is alloc + copy + free otherwise.
///
/// **Misuse.** A double free, or a free of a pointer the pool never gave out, aborts the
/// process with a message naming the pointer (`GlobalAlloc` cannot return an error): by
/// default where a check is as cheap as glibc's (a key word in each freed small block,
/// large blocks by their table), always in hardened mode
/// ([`MemoryConfig::hardened`](crate::MemoryConfig::hardened), which also puts a canary
/// after each block and aborts on a free that finds it overwritten). See `adapters/guard.rs`.
///
/// If building the manager fails (a bad configuration), every later request goes to
/// [`System`].
pub struct PoolAlloc {
    config: fn() -> MemoryConfig,
    state: AtomicU8,
    manager: UnsafeCell<MaybeUninit<MemoryManager>>,
    pool: AtomicPtr<DevicePool>,
    side: SideHeap,
    deferred: Deferred,
    /// The manager's config asked for hardened mode (set before READY is published).
    hardened: AtomicBool,
    /// Hardened mode: every block handed out, with its size.
    live: LiveSet,
}

// SAFETY: `manager` is written once, by the one thread that won the UNINIT -> INITIALIZING
// exchange, before the release store of READY; it is read only after an acquire load saw
// READY, and never written again until `drop` (which has `&mut self`). `MemoryManager` is
// `Sync`; everything else is atomic.
unsafe impl Sync for PoolAlloc {}
// SAFETY: as above; moving the allocator moves the manager, which is `Send`.
unsafe impl Send for PoolAlloc {}

impl Default for PoolAlloc {
    fn default() -> Self {
        Self::new()
    }
}

impl PoolAlloc {
    /// A global allocator whose manager has the default configuration.
    pub const fn new() -> Self {
        Self::with_config(<MemoryConfig as Default>::default)
    }

    /// A global allocator whose manager is built from `config()` on first use (with the
    /// background cleanup worker switched off: a global allocator starts no thread).
    pub const fn with_config(config: fn() -> MemoryConfig) -> Self {
        Self {
            config,
            state: AtomicU8::new(UNINIT),
            manager: UnsafeCell::new(MaybeUninit::uninit()),
            pool: AtomicPtr::new(ptr::null_mut()),
            side: SideHeap::new(),
            deferred: Deferred::new(),
            hardened: AtomicBool::new(false),
            live: LiveSet::new(),
        }
    }

    /// The manager, once the first allocation has built it.
    pub fn manager(&self) -> Option<&MemoryManager> {
        if self.state.load(Ordering::Acquire) != READY {
            return None;
        }
        // SAFETY: READY was published (release) after the manager was written, and it is
        // never written again while `self` is borrowed.
        Some(unsafe { (*self.manager.get()).assume_init_ref() })
    }

    /// Bytes handed out by the side heap so far (construction and exiting threads).
    pub fn side_heap_bytes(&self) -> usize {
        self.side.used.load(Ordering::Relaxed)
    }

    /// Frees deferred so far because an exiting thread made them (see "Threads").
    pub fn deferred_frees(&self) -> usize {
        self.deferred.pushed()
    }

    #[inline]
    fn pool(&self) -> &DevicePool {
        // SAFETY: called only after READY was seen (acquire); the pointer was stored before
        // READY was published and points into the manager, which lives as long as `self`.
        unsafe { &*self.pool.load(Ordering::Relaxed) }
    }

    #[cold]
    fn alloc_not_ready(&self, layout: Layout) -> *mut u8 {
        match self.state.load(Ordering::Acquire) {
            UNINIT => {
                if self
                    .state
                    .compare_exchange(UNINIT, INITIALIZING, Ordering::Acquire, Ordering::Acquire)
                    .is_ok()
                {
                    self.build();
                }
                // SAFETY: the caller's layout, forwarded.
                unsafe { self.alloc(layout) }
            }
            READY => {
                // SAFETY: the caller's layout, forwarded.
                unsafe { self.alloc(layout) }
            }
            // SAFETY: the caller's layout has a non-zero size (GlobalAlloc contract).
            FAILED => unsafe { System.alloc(layout) },
            _ => self.side.alloc(layout),
        }
    }

    /// Builds the manager; runs once, in the thread that won the UNINIT -> INITIALIZING
    /// exchange. Its own allocations see INITIALIZING and go to the side heap.
    #[cold]
    fn build(&self) {
        let mut config = (self.config)();
        // A global allocator starts no thread of its own: the cleanup worker would contend
        // for pool locks with threads whose lock parking itself allocates (parking_lot),
        // and it could deadlock there. Trimming stays available through the manager.
        config.cleanup.background = false;
        match MemoryManager::new(config) {
            Ok(mm) => {
                let pool: *const DevicePool = cpu_pool(&mm);
                self.hardened
                    .store(mm.config().hardened.enabled, Ordering::Relaxed);
                // SAFETY: only this thread writes, and nobody reads before READY.
                unsafe { (*self.manager.get()).write(mm) };
                self.pool.store(pool.cast_mut(), Ordering::Relaxed);
                self.state.store(READY, Ordering::Release);
            }
            Err(_) => self.state.store(FAILED, Ordering::Release),
        }
    }

    #[inline]
    fn pool_alloc(&self, layout: Layout) -> *mut u8 {
        let (size, align) = normalized(layout);
        if align > MAX_ALIGN {
            return ptr::null_mut();
        }
        let hardened = self.hardened.load(Ordering::Relaxed);
        let Some(block) = size.checked_add(if hardened { CANARY } else { 0 }) else {
            return ptr::null_mut();
        };
        match self.pool().allocate(block, align) {
            Ok((addr, token)) => {
                if token & SMALL != 0 {
                    // SAFETY: a small block (at least 16 bytes) just handed out.
                    unsafe { guard::on_alloc(addr) };
                }
                if hardened {
                    // SAFETY: the block has `size + CANARY` bytes and was just handed out.
                    unsafe { self.live.insert(addr, size) };
                }
                ptr::with_exposed_provenance_mut(addr)
            }
            Err(_) => ptr::null_mut(),
        }
    }

    /// The size and alignment the pool served a block of `layout` with; in hardened mode,
    /// first checks that the block is live with this size and its canary holds (aborting
    /// if not).
    #[inline]
    fn checked_layout(&self, addr: usize, layout: Layout) -> (usize, usize) {
        let (size, align) = normalized(layout);
        if self.hardened.load(Ordering::Relaxed) {
            // SAFETY: a block in the live set is mapped; `remove` aborts on any other.
            unsafe { self.live.remove(addr, size) };
            return (size + CANARY, align);
        }
        (size, align)
    }

    #[inline]
    fn pool_free(&self, addr: usize, (size, align): (usize, usize)) {
        // SAFETY: `dealloc`'s caller says it owns the block of this layout; the guard
        // aborts where the pool says otherwise.
        unsafe { free_to_pool_checked(self.pool(), addr, size, align) };
    }

    /// The thread's first pool operation `op`, with the exit guards registered around it;
    /// `None` (and nothing done) if the thread is already being torn down.
    #[cold]
    fn first_use<R>(op: impl FnOnce() -> R) -> Option<R> {
        THREAD_STATE.with(|s| s.set(PREPARING));
        create_parking_lot_thread_data();
        THREAD_STATE.with(|s| s.set(ACTIVE));
        if EARLY_GUARD.try_with(|_| ()).is_err() {
            THREAD_STATE.with(|s| s.set(EXITING));
            return None;
        }
        let r = op();
        if LATE_GUARD.try_with(|_| ()).is_err() {
            THREAD_STATE.with(|s| s.set(EXITING));
        }
        Some(r)
    }

    #[cold]
    fn alloc_cold_thread(&self, layout: Layout) -> *mut u8 {
        if THREAD_STATE.with(Cell::get) == FRESH {
            if let Some(p) = Self::first_use(|| self.pool_alloc(layout)) {
                return p;
            }
        }
        self.side.alloc(layout)
    }

    #[cold]
    fn dealloc_cold_thread(&self, addr: usize, layout: (usize, usize)) {
        if THREAD_STATE.with(Cell::get) == FRESH
            && Self::first_use(|| self.pool_free(addr, layout)).is_some()
        {
            return;
        }
        self.defer(addr, layout);
    }

    /// Queues a pool block for freeing by another thread.
    #[cold]
    fn defer(&self, addr: usize, (size, align): (usize, usize)) {
        debug_assert!(size < 1 << 58);
        let packed = (size << 6) | align.trailing_zeros() as usize;
        // SAFETY: the block is a pool block being freed, so nobody else uses it, and every
        // pool block has at least 16 bytes (the smallest size class; large blocks are
        // bigger).
        unsafe { self.deferred.push(addr, packed) };
    }

    /// Frees every deferred block (from a live thread).
    #[cold]
    fn drain_deferred(&self) {
        self.deferred.take_all(|p, packed| {
            // SAFETY: a block an exiting thread freed with this layout, checked then in
            // hardened mode.
            unsafe { free_to_pool_checked(self.pool(), p, packed >> 6, 1 << (packed & 63)) }
        });
    }
}

/// Makes `parking_lot` create this thread's parking data now (a zero-timeout wait parks
/// once), while the thread's allocations are served from the side heap.
fn create_parking_lot_thread_data() {
    let m = parking_lot::Mutex::new(());
    let cv = parking_lot::Condvar::new();
    let mut g = m.lock();
    let _ = cv.wait_for(&mut g, std::time::Duration::ZERO);
}

// SAFETY: every block handed out is valid for its layout until freed: pool blocks are
// exclusive (the pool's contract), side-heap blocks are disjoint ranges of one mapping
// never reused, System blocks are System's. `dealloc` sends each block back where it came
// from: side-heap blocks are recognised by address; before READY nothing else is handed
// out, in FAILED everything else came from System, in READY from the pool. Nothing here
// unwinds (the pool reports failure as an error, turned into null).
unsafe impl GlobalAlloc for PoolAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if self.state.load(Ordering::Acquire) != READY {
            return self.alloc_not_ready(layout);
        }
        if THREAD_STATE.with(Cell::get) != ACTIVE {
            return self.alloc_cold_thread(layout);
        }
        if !self.deferred.is_empty() {
            self.drain_deferred();
        }
        self.pool_alloc(layout)
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let addr = ptr.addr();
        if self.side.contains(addr) {
            return;
        }
        match self.state.load(Ordering::Acquire) {
            READY => {}
            // SAFETY: in FAILED, every block not from the side heap came from System with
            // this layout (the caller's contract).
            FAILED => return unsafe { System.dealloc(ptr, layout) },
            _ => {
                debug_assert!(false, "before READY every block comes from the side heap");
                return;
            }
        }
        let layout = self.checked_layout(addr, layout);
        if THREAD_STATE.with(Cell::get) == ACTIVE {
            self.pool_free(addr, layout);
        } else {
            self.dealloc_cold_thread(addr, layout);
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if self.realloc_in_place(ptr.addr(), layout, new_size) {
            return ptr;
        }
        // SAFETY: the caller's contract: `new_size` rounded up to `layout.align()` fits
        // `isize`, so the layout is valid.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: `new_layout` has a non-zero size (the caller's contract).
        let p = unsafe { self.alloc(new_layout) };
        if !p.is_null() {
            // SAFETY: `ptr` is valid for `layout.size()` bytes, `p` for `new_size`; they
            // are different blocks (`ptr` is still allocated), so they do not overlap.
            unsafe {
                ptr::copy_nonoverlapping(ptr, p, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        p
    }
}

impl PoolAlloc {
    /// `realloc`'s first try: resizes a pool block where it lies. `false`: the caller
    /// moves it.
    #[inline]
    fn realloc_in_place(&self, addr: usize, layout: Layout, new_size: usize) -> bool {
        // Hardened blocks carry a canary after the owner's bytes and a size in the live
        // set: they always move.
        if self.state.load(Ordering::Acquire) != READY
            || self.side.contains(addr)
            || THREAD_STATE.with(Cell::get) != ACTIVE
            || self.hardened.load(Ordering::Relaxed)
        {
            return false;
        }
        let (old, align) = normalized(layout);
        self.pool()
            .resize_in_place(addr, old, new_size.max(1), align)
    }
}

impl Drop for PoolAlloc {
    fn drop(&mut self) {
        if *self.state.get_mut() == READY {
            // SAFETY: READY means the manager was written; `&mut self` means no block of
            // this allocator can be used any more through it.
            unsafe { self.manager.get_mut().assume_init_drop() };
        }
        let base = *self.side.base.get_mut();
        if base != 0 {
            // SAFETY: the side heap's mapping, made by `SideHeap::base`, unused from now on.
            unsafe { libc::munmap(ptr::with_exposed_provenance_mut(base), SIDE_BYTES) };
        }
    }
}
