//! Runs workloads through a [`Contender`] and times them.

use crate::bench::contenders::{Contender, Refusal};
use crate::bench::workload::Stream;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::sync::{mpsc, Barrier};
use std::time::{Duration, Instant};

/// Bytes between touched bytes: one per 4 KiB page.
pub const PAGE: usize = 4096;

/// Writes one byte in every 4 KiB page of `[p, p + size)`, as a tensor op would fault them in.
///
/// # Safety
/// `p` must be valid for writes of `size` bytes.
#[inline]
pub unsafe fn touch(p: *mut u8, size: usize) {
    let mut off = 0;
    while off < size {
        // SAFETY: `off < size` and the caller guarantees `size` writable bytes; volatile so
        // the write is not optimised away although nothing reads it.
        unsafe { p.add(off).write_volatile(off as u8) };
        off += PAGE;
    }
}

/// Page faults this thread has taken so far (minor and major, from
/// `getrusage(RUSAGE_THREAD)`); `None` where the system does not count them per thread.
pub fn thread_faults() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `rusage` is plain integers, for which all zeroes is a valid value.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `ru` is a valid, writable `rusage` for the call to fill.
        if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) } == 0 {
            return Some(ru.ru_minflt as u64 + ru.ru_majflt as u64);
        }
    }
    None
}

/// Why a run stopped before the end of its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The allocator refused the request of event `event` (0-based in the stream).
    Refused {
        /// The event.
        event: usize,
        /// Its answer.
        refusal: Refusal,
    },
    /// The allocator served event `event`, but with it the live bytes would pass this
    /// machine's memory: touching its pages would swap or bring the out-of-memory killer,
    /// so the block went back untouched and the run stopped there.
    OverMemory {
        /// The event.
        event: usize,
        /// Its size.
        size: usize,
        /// Live bytes with it.
        live: u64,
        /// The machine's memory (`MemTotal`).
        memory: u64,
    },
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use bitnet_memory::metrics::fmt_bytes;
        match self {
            Stop::Refused { event, refusal } => write!(f, "at event {}: {refusal}", event + 1),
            Stop::OverMemory {
                event,
                size,
                live,
                memory,
            } => write!(
                f,
                "at event {}: served {} B ({}), but live bytes would reach {} B ({}), over this \
                 machine's memory of {} B ({}): stopped before touching its pages",
                event + 1,
                size,
                fmt_bytes(*size),
                live,
                fmt_bytes(*live as usize),
                memory,
                fmt_bytes(*memory as usize)
            ),
        }
    }
}

impl std::error::Error for Stop {}

/// The machine's memory in bytes (`MemTotal`), read once; `u64::MAX` where unknown.
pub fn machine_memory() -> u64 {
    static MEMORY: OnceLock<u64> = OnceLock::new();
    *MEMORY.get_or_init(|| bitnet_memory::procfs::meminfo_bytes("MemTotal").unwrap_or(u64::MAX))
}

/// The timed part of one stream on one thread.
#[derive(Debug, Clone, Copy)]
pub struct Timed {
    /// When it started.
    pub start: Instant,
    /// When it ended.
    pub end: Instant,
    /// Page faults the thread took in between (`None`: not counted here).
    pub faults: Option<u64>,
}

/// Runs `stream` on this thread and times it. Blocks still live at the end of the stream
/// are freed after the end. A refused request stops the run ([`Stop::Refused`]); so does
/// one that would take the live bytes past this machine's memory ([`Stop::OverMemory`]),
/// whose block is asked for, then given back untouched. Either way every block held is
/// freed before returning.
pub fn run_stream<C: Contender>(c: &mut C, stream: &Stream) -> Result<Timed, Stop> {
    run_stream_within(c, stream, machine_memory())
}

/// [`run_stream`] with the memory limit given (tests use a small one).
#[inline(never)]
pub fn run_stream_within<C: Contender>(
    c: &mut C,
    stream: &Stream,
    memory: u64,
) -> Result<Timed, Stop> {
    // Where the live bytes first pass `memory`: the stream's ops before it run as usual.
    let over = (stream.peak_live > memory)
        .then(|| stream.first_live_over(memory))
        .flatten();
    let ops = &stream.ops[..over.map_or(stream.ops.len(), |(i, _)| i)];
    let mut slots: Vec<Option<C::Block>> = Vec::with_capacity(stream.slots);
    slots.resize_with(stream.slots, || None);
    let free_all = |c: &mut C, slots: Vec<Option<C::Block>>| {
        for b in slots.into_iter().flatten() {
            c.free(b);
        }
    };
    let faults_before = thread_faults();
    let start = Instant::now();
    for (i, op) in ops.iter().enumerate() {
        let slot = &mut slots[op.slot as usize];
        if op.free {
            if let Some(b) = slot.take() {
                c.free(b);
            }
        } else {
            match c.alloc(op.size, 1 << op.align_log2) {
                Ok(mut b) => {
                    // SAFETY: `b` is a live block of `op.size` bytes (the contender's contract).
                    unsafe { touch(C::ptr(&mut b), op.size) };
                    *slot = Some(b);
                }
                Err(refusal) => {
                    free_all(c, slots);
                    return Err(Stop::Refused { event: i, refusal });
                }
            }
        }
    }
    let end = Instant::now();
    let faults = faults_before.zip(thread_faults()).map(|(a, b)| b - a);
    if let Some((event, live)) = over {
        let op = &stream.ops[event];
        let stop = match c.alloc(op.size, 1 << op.align_log2) {
            Ok(b) => {
                c.free(b);
                Stop::OverMemory {
                    event,
                    size: op.size,
                    live,
                    memory,
                }
            }
            Err(refusal) => Stop::Refused { event, refusal },
        };
        free_all(c, slots);
        return Err(stop);
    }
    free_all(c, slots);
    Ok(Timed { start, end, faults })
}

/// Runs one stream per thread, all started together; wall time from the first thread's
/// start to the last thread's end, and the page faults of all threads' timed parts. Even a
/// single stream runs on a thread of its own, so that one and two threads are measured
/// alike (glibc, for one, serves the main thread from another arena than the others).
/// The machine's memory is shared out between the threads: each stream stops where its
/// live bytes would pass its share ([`Stop::OverMemory`]).
pub fn run_streams<C, F>(make: &F, streams: &[Stream]) -> Result<(Duration, Option<u64>), Stop>
where
    C: Contender,
    F: Fn() -> C + Sync,
{
    run_streams_within(make, streams, machine_memory())
}

/// [`run_streams`] with the memory to share out given (tests use a small one).
pub fn run_streams_within<C, F>(
    make: &F,
    streams: &[Stream],
    memory: u64,
) -> Result<(Duration, Option<u64>), Stop>
where
    C: Contender,
    F: Fn() -> C + Sync,
{
    let share = memory / streams.len().max(1) as u64;
    let barrier = Barrier::new(streams.len() + 1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = streams
            .iter()
            .map(|st| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let mut c = make();
                    barrier.wait();
                    run_stream_within(&mut c, st, share)
                })
            })
            .collect();
        barrier.wait();
        // Each thread takes its own start: this thread may not run again before they end.
        let runs: Vec<Result<Timed, Stop>> = handles
            .into_iter()
            .map(|h| h.join().expect("benchmark thread panicked"))
            .collect();
        let runs = runs.into_iter().collect::<Result<Vec<Timed>, Stop>>()?;
        let faults = runs.iter().map(|t| t.faults).sum::<Option<u64>>();
        Ok((wall(runs.iter().map(|t| (t.start, t.end))), faults))
    })
}

/// From the first start to the last end of `(start, end)` spans.
fn wall(spans: impl Iterator<Item = (Instant, Instant)>) -> Duration {
    let (start, end) = spans
        .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
        .expect("at least one thread");
    end.saturating_duration_since(start)
}

/// Blocks handed from producer to consumer at a time.
pub const BATCH: usize = 64;

/// What a cross-thread run measured.
#[derive(Debug, Clone, Copy)]
pub struct CrossRun {
    /// Wall time from the first producer's start to the last consumer's end.
    pub wall: Duration,
    /// Highest bytes allocated and not yet freed (counted per batch of 64 blocks).
    pub peak_live: u64,
}

/// For each entry of `sizes`, a producer thread allocates the sizes (touching each block)
/// and hands them in batches of 64 to its consumer thread, which frees them. Batch
/// vectors go back to the producer, so the hand-over allocates nothing. A refused request
/// stops its producer (the consumer frees what it was sent) and is returned.
pub fn run_cross<C, F>(make: &F, sizes: &[Vec<usize>], align: usize) -> Result<CrossRun, Stop>
where
    C: Contender,
    F: Fn() -> C + Sync,
{
    let barrier = Barrier::new(2 * sizes.len() + 1);
    let live = AtomicU64::new(0);
    let peak = AtomicU64::new(0);
    let wall = std::thread::scope(|scope| {
        let mut producers = Vec::new();
        let mut consumers = Vec::new();
        for list in sizes {
            let (tx, rx) = mpsc::sync_channel::<(u64, Vec<C::Block>)>(4);
            let (back_tx, back_rx) = mpsc::channel::<Vec<C::Block>>();
            let (barrier, live, peak) = (&barrier, &live, &peak);
            producers.push(scope.spawn(move || {
                let mut c = make();
                barrier.wait();
                let start = Instant::now();
                for (n, chunk) in list.chunks(BATCH).enumerate() {
                    let mut batch = back_rx
                        .try_recv()
                        .unwrap_or_else(|_| Vec::with_capacity(BATCH));
                    let mut bytes = 0;
                    for (i, &size) in chunk.iter().enumerate() {
                        let mut b = match c.alloc(size, align) {
                            Ok(b) => b,
                            Err(refusal) => {
                                for b in batch {
                                    c.free(b);
                                }
                                let event = 2 * (n * BATCH + i);
                                return Err(Stop::Refused { event, refusal });
                            }
                        };
                        // SAFETY: `b` is a live block of `size` bytes.
                        unsafe { touch(C::ptr(&mut b), size) };
                        batch.push(b);
                        bytes += size as u64;
                    }
                    let now = live.fetch_add(bytes, Ordering::Relaxed) + bytes;
                    peak.fetch_max(now, Ordering::Relaxed);
                    tx.send((bytes, batch)).expect("consumer alive");
                }
                Ok(start)
            }));
            consumers.push(scope.spawn(move || {
                let mut c = make();
                barrier.wait();
                for (bytes, mut batch) in rx {
                    for b in batch.drain(..) {
                        c.free(b);
                    }
                    live.fetch_sub(bytes, Ordering::Relaxed);
                    let _ = back_tx.send(batch);
                }
                Instant::now()
            }));
        }
        barrier.wait();
        let starts: Vec<Result<Instant, Stop>> = producers
            .into_iter()
            .map(|h| h.join().expect("producer panicked"))
            .collect();
        let ends: Vec<Instant> = consumers
            .into_iter()
            .map(|h| h.join().expect("consumer panicked"))
            .collect();
        let starts = starts.into_iter().collect::<Result<Vec<Instant>, Stop>>()?;
        Ok(wall(starts.into_iter().zip(ends)))
    })?;
    Ok(CrossRun {
        wall,
        peak_live: peak.into_inner(),
    })
}

#[cfg(test)]
mod tests {
    use super::{run_stream_within, run_streams_within, thread_faults, touch, Stop, PAGE};
    use crate::bench::contenders::{Glibc, Refusal};
    use crate::bench::workload::StreamBuilder;

    /// A stream of 4 KiB, then 8 KiB while the first is live, then (after both are
    /// freed) 12 KiB: live bytes 4, 12, 8, 0, 12 KiB.
    fn stream() -> crate::bench::workload::Stream {
        let mut b = StreamBuilder::new();
        let s1 = b.alloc(4096, 16);
        let s2 = b.alloc(8192, 16);
        b.free(s1);
        b.free(s2);
        b.alloc(12288, 16);
        b.finish()
    }

    #[test]
    fn a_run_stops_before_touching_more_than_the_machine_has() {
        let s = stream();
        assert_eq!(s.first_live_over(12288), None);
        assert_eq!(s.first_live_over(12287), Some((1, 12288)));
        assert_eq!(s.first_live_over(4095), Some((0, 4096)));
        // Memory enough: the run ends.
        assert!(run_stream_within(&mut Glibc, &s, 12288).is_ok());
        // Not enough for the second block with the first live: glibc serves it, it goes
        // back untouched, and the run says where it stopped and why.
        match run_stream_within(&mut Glibc, &s, 10_000) {
            Err(Stop::OverMemory {
                event: 1,
                size: 8192,
                live: 12288,
                memory: 10_000,
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn threads_share_the_machines_memory() {
        let two = [stream(), stream()];
        // Each stream's live peak is 12 KiB: two fit in 24 KiB, not in 20,000 bytes.
        assert!(run_streams_within(&|| Glibc, &two, 24576).is_ok());
        match run_streams_within(&|| Glibc, &two, 20_000) {
            Err(Stop::OverMemory {
                memory: 10_000,
                event: 1,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    /// An allocator that refuses its `n`th request.
    struct RefuseNth(usize, Glibc);

    impl crate::bench::contenders::Contender for RefuseNth {
        type Block = <Glibc as crate::bench::contenders::Contender>::Block;
        fn alloc(&mut self, size: usize, align: usize) -> Result<Self::Block, Refusal> {
            if self.0 == 0 {
                return Err(Refusal {
                    size,
                    align,
                    reason: "told to".into(),
                });
            }
            self.0 -= 1;
            self.1.alloc(size, align)
        }
        fn ptr(b: &mut Self::Block) -> *mut u8 {
            Glibc::ptr(b)
        }
        fn free(&mut self, b: Self::Block) {
            self.1.free(b)
        }
    }

    #[test]
    fn a_refusal_stops_the_run_at_its_event() {
        let s = stream();
        // The third allocation is the fifth event.
        match run_stream_within(&mut RefuseNth(2, Glibc), &s, u64::MAX) {
            Err(e @ Stop::Refused { event: 4, .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.starts_with(
                        "at event 5: refused 12288 B (12.0 KiB) aligned to 16: told to"
                    ),
                    "{msg}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            run_stream_within(&mut RefuseNth(0, Glibc), &s, u64::MAX),
            Err(Stop::Refused { event: 0, .. })
        ));
    }

    /// Writing to fresh pages shows as faults of this thread, one per page (4 MiB of fresh
    /// anonymous memory from `mmap`: mapped, never touched).
    #[test]
    #[cfg(target_os = "linux")]
    fn fresh_pages_show_as_faults() {
        let pages = 1024;
        let len = pages * PAGE;
        std::thread::spawn(move || {
            // SAFETY: an anonymous private mapping with a null hint has no preconditions.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            assert_ne!(p, libc::MAP_FAILED);
            let before = thread_faults().expect("counted on Linux");
            // SAFETY: `p` is a fresh read-write mapping of `len` bytes.
            unsafe { touch(p.cast(), len) };
            let faults = thread_faults().expect("counted on Linux") - before;
            // One each, or fewer where THP is set to "always" (huge pages); never more.
            let thp_always = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
                .is_ok_and(|s| s.contains("[always]"));
            let least = if thp_always { 1 } else { pages as u64 };
            assert!(
                (least..=pages as u64 + 8).contains(&faults),
                "{faults} faults"
            );
            let again = thread_faults().unwrap();
            // SAFETY: as above.
            unsafe { touch(p.cast(), len) };
            assert!(
                thread_faults().unwrap() - again <= 2,
                "resident pages fault again"
            );
            // SAFETY: `p` is the mapping made above, of `len` bytes, used no more.
            assert_eq!(unsafe { libc::munmap(p, len) }, 0);
        })
        .join()
        .unwrap();
    }
}
