//! [`RecordingAlloc`]: wraps any [`GlobalAlloc`] and writes a trace in the format of
//! [`crate::trace`] (`docs/trace-format.md`) that `bitnet-mem replay` replays.

use crate::trace::{Event, TraceWriter};
use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::collections::HashMap;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Mutex, PoisonError};
use std::time::Instant;

/// Events buffered before the buffer is handed to the writer thread (40 bytes each).
const BATCH: usize = 16 * 1024;

#[derive(Clone, Copy)]
struct RawEvent {
    alloc: bool,
    thread: u32,
    addr: usize,
    size: usize,
    align: usize,
    t_ns: u64,
}

struct Recorder {
    buf: Vec<RawEvent>,
    tx: Option<mpsc::Sender<Vec<RawEvent>>>,
    writer: Option<std::thread::JoinHandle<io::Result<RecordSummary>>>,
    t0: Option<Instant>,
}

thread_local! {
    // Set while this thread runs recorder code: its own allocations are not recorded.
    static REC_BUSY: Cell<bool> = const { Cell::new(false) };
    static REC_THREAD: Cell<u32> = const { Cell::new(u32::MAX) };
}
static NEXT_REC_THREAD: AtomicU32 = AtomicU32::new(0);

/// Sets `REC_BUSY` for a scope; restores the previous value.
struct Busy(bool);

impl Busy {
    fn enter() -> Self {
        Busy(REC_BUSY.with(|b| b.replace(true)))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        REC_BUSY.with(|b| b.set(self.0));
    }
}

/// What a recording wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordSummary {
    /// Lines written (after the header).
    pub events: u64,
    /// Allocation events.
    pub allocs: u64,
    /// Free events.
    pub frees: u64,
    /// Frees left out because their block was allocated before the recording started.
    pub frees_skipped: u64,
    /// Blocks allocated during the recording and still live at its end.
    pub live_at_end: u64,
}

/// Wraps a [`GlobalAlloc`] and records every allocation and free to a trace
/// (`docs/trace-format.md`) between [`start`](Self::start) and [`finish`](Self::finish):
///
/// ```no_run
/// use bitnet_memory::global::RecordingAlloc;
/// use std::alloc::System;
///
/// #[global_allocator]
/// static GLOBAL: RecordingAlloc<System> = RecordingAlloc::new(System);
///
/// fn main() -> std::io::Result<()> {
///     GLOBAL.start("my-program.csv")?;
///     let v: Vec<String> = (0..100).map(|i| i.to_string()).collect();
///     drop(v);
///     let s = GLOBAL.finish()?;
///     eprintln!("{} events", s.events);
///     Ok(())
/// }
/// ```
///
/// **Hot path.** A recorded call appends a 40-byte record to a shared buffer under a mutex
/// (the mutex also orders events: a free is recorded before the block goes back to the inner
/// allocator and an allocation after it came out, so a reused address never appears
/// allocated before its previous free). A full buffer (16,384 events) is sent to a writer
/// thread, which numbers blocks, formats lines and writes them through a 1 MiB buffer; no
/// formatting or I/O happens in the allocating thread. Measured overhead
/// (`cargo run --release -p bitnet-mem --example record_overhead`, one thread, 2 cores): see
/// `docs/trace-format.md`; threads that allocate at once contend on the mutex.
///
/// **No recursion.** A thread-local flag is set while recorder code runs (and for the whole
/// life of the writer thread): allocations made then, such as the buffers themselves, go to
/// the inner allocator unrecorded.
///
/// Blocks allocated before `start` are not in the trace, nor are their frees. `t_ns` is
/// taken under the mutex, so it never decreases down the file.
pub struct RecordingAlloc<A> {
    inner: A,
    active: AtomicBool,
    shared: Mutex<Recorder>,
}

impl<A: GlobalAlloc> RecordingAlloc<A> {
    /// A recorder around `inner`, not recording yet.
    pub const fn new(inner: A) -> Self {
        Self {
            inner,
            active: AtomicBool::new(false),
            shared: Mutex::new(Recorder {
                buf: Vec::new(),
                tx: None,
                writer: None,
                t0: None,
            }),
        }
    }

    /// The wrapped allocator.
    pub fn inner(&self) -> &A {
        &self.inner
    }

    /// Whether a recording is running.
    pub fn is_recording(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Starts recording to a new file at `path`.
    pub fn start(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let _busy = Busy::enter();
        let f = std::fs::File::create(path)?;
        self.start_writer(io::BufWriter::with_capacity(1 << 20, f))
    }

    /// Starts recording to any writer (written from a thread of the recorder's own).
    pub fn start_writer(&self, out: impl Write + Send + 'static) -> io::Result<()> {
        let _busy = Busy::enter();
        let mut st = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        if st.tx.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a recording is already running",
            ));
        }
        let (tx, rx) = mpsc::channel::<Vec<RawEvent>>();
        let writer = std::thread::Builder::new()
            .name("bitnet-trace-writer".into())
            .spawn(move || {
                REC_BUSY.with(|b| b.set(true));
                write_events(rx, out)
            })?;
        st.buf = Vec::with_capacity(BATCH);
        st.tx = Some(tx);
        st.writer = Some(writer);
        st.t0 = Some(Instant::now());
        self.active.store(true, Ordering::Release);
        Ok(())
    }

    /// Stops recording, writes what is buffered and waits for the writer.
    pub fn finish(&self) -> io::Result<RecordSummary> {
        let _busy = Busy::enter();
        self.active.store(false, Ordering::Release);
        let (buf, tx, writer) = {
            let mut st = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
            st.t0 = None;
            (std::mem::take(&mut st.buf), st.tx.take(), st.writer.take())
        };
        let (Some(tx), Some(writer)) = (tx, writer) else {
            return Err(io::Error::other("no recording is running"));
        };
        let _ = tx.send(buf);
        drop(tx);
        writer
            .join()
            .map_err(|_| io::Error::other("the trace writer panicked"))?
    }

    #[inline]
    fn record(&self, alloc: bool, addr: usize, layout: Layout) {
        if REC_BUSY.with(|b| b.replace(true)) {
            return;
        }
        self.record_locked(alloc, addr, layout);
        REC_BUSY.with(|b| b.set(false));
    }

    fn record_locked(&self, alloc: bool, addr: usize, layout: Layout) {
        let thread = REC_THREAD.with(|t| {
            if t.get() == u32::MAX {
                t.set(NEXT_REC_THREAD.fetch_add(1, Ordering::Relaxed));
            }
            t.get()
        });
        let mut st = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(t0) = st.t0 else {
            return;
        };
        let t_ns = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        st.buf.push(RawEvent {
            alloc,
            thread,
            addr,
            size: layout.size(),
            align: layout.align(),
            t_ns,
        });
        if st.buf.len() >= BATCH {
            let full = std::mem::replace(&mut st.buf, Vec::with_capacity(BATCH));
            if let Some(tx) = &st.tx {
                let _ = tx.send(full);
            }
        }
    }
}

fn write_events(rx: mpsc::Receiver<Vec<RawEvent>>, out: impl Write) -> io::Result<RecordSummary> {
    let mut w = TraceWriter::new(out)?;
    let mut ids: HashMap<usize, u64> = HashMap::new();
    let mut next_id = 1u64;
    let mut s = RecordSummary::default();
    for batch in rx {
        for e in batch {
            if e.alloc {
                // An address still mapped means its free was not seen; the new block
                // replaces it (the old one stays live in the trace).
                ids.insert(e.addr, next_id);
                w.event(&Event::alloc(
                    next_id,
                    e.size as u64,
                    e.align as u64,
                    e.thread,
                    e.t_ns,
                ))?;
                next_id += 1;
                s.allocs += 1;
            } else if let Some(id) = ids.remove(&e.addr) {
                w.event(&Event::free(id, e.thread, e.t_ns))?;
                s.frees += 1;
            } else {
                s.frees_skipped += 1;
            }
        }
    }
    w.flush()?;
    s.events = s.allocs + s.frees;
    s.live_at_end = ids.len() as u64;
    Ok(s)
}

// SAFETY: every call is forwarded to `inner` with the caller's arguments, so `inner`'s
// guarantees carry over; recording only reads the pointer's address and the layout.
// Recording never unwinds (a poisoned lock is entered anyway; send errors are ignored).
unsafe impl<A: GlobalAlloc> GlobalAlloc for RecordingAlloc<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        let p = unsafe { self.inner.alloc(layout) };
        if !p.is_null() && self.active.load(Ordering::Relaxed) {
            self.record(true, p.addr(), layout);
        }
        p
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        let p = unsafe { self.inner.alloc_zeroed(layout) };
        if !p.is_null() && self.active.load(Ordering::Relaxed) {
            self.record(true, p.addr(), layout);
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.active.load(Ordering::Relaxed) {
            self.record(false, ptr.addr(), layout);
        }
        // SAFETY: the caller's contract, forwarded.
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let active = self.active.load(Ordering::Relaxed);
        if active {
            self.record(false, ptr.addr(), layout);
        }
        // SAFETY: the caller's contract, forwarded.
        let p = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if active {
            if p.is_null() {
                // The old block lives on: record it again, as a new block.
                self.record(true, ptr.addr(), layout);
            } else {
                // SAFETY: `realloc`'s contract: `new_size` rounded up to `layout.align()`
                // does not overflow isize, so this is a valid layout.
                let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
                self.record(true, p.addr(), new);
            }
        }
        p
    }
}
