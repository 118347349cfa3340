//! Runs workloads through a [`Contender`] and times them.

use crate::contenders::Contender;
use crate::workload::Stream;
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

/// Runs `stream` on this thread: the start and end of the timed part. Blocks still live
/// at the end of the stream are freed after the end.
#[inline(never)]
pub fn run_stream<C: Contender>(c: &mut C, stream: &Stream) -> (Instant, Instant) {
    let mut slots: Vec<Option<C::Block>> = Vec::with_capacity(stream.slots);
    slots.resize_with(stream.slots, || None);
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
    for b in slots.into_iter().flatten() {
        c.free(b);
    }
    (start, end)
}

/// Runs one stream per thread, all started together; wall time from the first thread's
/// start to the last thread's end. Even a single stream runs on a thread of its own, so that one and
/// two threads are measured alike (glibc, for one, serves the main thread from another
/// arena than the others).
pub fn run_streams<C, F>(make: &F, streams: &[Stream]) -> Duration
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
        let spans: Vec<(Instant, Instant)> = handles
            .into_iter()
            .map(|h| h.join().expect("benchmark thread panicked"))
            .collect();
        wall(&spans)
    })
}

/// From the first start to the last end.
fn wall(spans: &[(Instant, Instant)]) -> Duration {
    let start = spans
        .iter()
        .map(|s| s.0)
        .min()
        .expect("at least one thread");
    let end = spans
        .iter()
        .map(|s| s.1)
        .max()
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
        let spans: Vec<_> = starts.into_iter().zip(ends).collect();
        wall(&spans)
    });
    CrossRun {
        wall,
        peak_live: peak.into_inner(),
    }
}
