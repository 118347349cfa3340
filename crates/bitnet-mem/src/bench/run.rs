//! Runs workloads through a [`Contender`] and times them.

use crate::bench::contenders::Contender;
use crate::bench::workload::Stream;
use std::sync::atomic::{AtomicU64, Ordering};
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
/// are freed after the end.
#[inline(never)]
pub fn run_stream<C: Contender>(c: &mut C, stream: &Stream) -> Timed {
    let mut slots: Vec<Option<C::Block>> = Vec::with_capacity(stream.slots);
    slots.resize_with(stream.slots, || None);
    let faults_before = thread_faults();
    let start = Instant::now();
    for op in &stream.ops {
        let slot = &mut slots[op.slot as usize];
        if op.free {
            if let Some(b) = slot.take() {
                c.free(b);
            }
        } else {
            let mut b = c.alloc(op.size, 1 << op.align_log2);
            // SAFETY: `b` is a live block of `op.size` bytes (the contender's contract).
            unsafe { touch(C::ptr(&mut b), op.size) };
            *slot = Some(b);
        }
    }
    let end = Instant::now();
    let faults = faults_before.zip(thread_faults()).map(|(a, b)| b - a);
    for b in slots.into_iter().flatten() {
        c.free(b);
    }
    Timed { start, end, faults }
}

/// Runs one stream per thread, all started together; wall time from the first thread's
/// start to the last thread's end, and the page faults of all threads' timed parts. Even a
/// single stream runs on a thread of its own, so that one and two threads are measured
/// alike (glibc, for one, serves the main thread from another arena than the others).
pub fn run_streams<C, F>(make: &F, streams: &[Stream]) -> (Duration, Option<u64>)
where
    C: Contender,
    F: Fn() -> C + Sync,
{
    let barrier = Barrier::new(streams.len() + 1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = streams
            .iter()
            .map(|st| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let mut c = make();
                    barrier.wait();
                    run_stream(&mut c, st)
                })
            })
            .collect();
        barrier.wait();
        // Each thread takes its own start: this thread may not run again before they end.
        let runs: Vec<Timed> = handles
            .into_iter()
            .map(|h| h.join().expect("benchmark thread panicked"))
            .collect();
        let faults = runs.iter().map(|t| t.faults).sum::<Option<u64>>();
        (wall(runs.iter().map(|t| (t.start, t.end))), faults)
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
/// vectors go back to the producer, so the hand-over allocates nothing.
pub fn run_cross<C, F>(make: &F, sizes: &[Vec<usize>], align: usize) -> CrossRun
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
                for chunk in list.chunks(BATCH) {
                    let mut batch = back_rx
                        .try_recv()
                        .unwrap_or_else(|_| Vec::with_capacity(BATCH));
                    let mut bytes = 0;
                    for &size in chunk {
                        let mut b = c.alloc(size, align);
                        // SAFETY: `b` is a live block of `size` bytes.
                        unsafe { touch(C::ptr(&mut b), size) };
                        batch.push(b);
                        bytes += size as u64;
                    }
                    let now = live.fetch_add(bytes, Ordering::Relaxed) + bytes;
                    peak.fetch_max(now, Ordering::Relaxed);
                    tx.send((bytes, batch)).expect("consumer alive");
                }
                start
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
        let starts: Vec<Instant> = producers
            .into_iter()
            .map(|h| h.join().expect("producer panicked"))
            .collect();
        let ends: Vec<Instant> = consumers
            .into_iter()
            .map(|h| h.join().expect("consumer panicked"))
            .collect();
        wall(starts.into_iter().zip(ends))
    });
    CrossRun {
        wall,
        peak_live: peak.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use super::{thread_faults, touch, PAGE};

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
