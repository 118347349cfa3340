//! Fenced frees: on a device that runs submitted work after the host recorded it (a GPU
//! queue, [`Submissions`](crate::device::Submissions)), a freed block may still be read
//! or written by work already submitted, or recorded and not yet submitted. Handing its
//! range out again before that work is done would let a new owner's upload overwrite what
//! the old owner's kernel reads (on wgpu, `write_buffer` runs at the start of the next
//! submission, before command buffers recorded earlier).
//!
//! So a free on such a device goes to a pending list, tagged with the number of
//! submissions made so far (`t`); the block returns to the pool only once
//! `completed() > t`, i.e. the next submission after the free has finished. Pending
//! blocks are reclaimed at the start of each allocation on the device (before it can
//! grow) and at each trim; the pool never submits anything itself to make progress (the
//! user may hold a recorded, unsubmitted command buffer that still uses the block).
//!
//! Before the pool grows, pending bytes count: a request that would map a fresh chunk
//! (no free block or slab serves it) while pending blocks that would serve it wait only
//! for a submission *already made* (`tag < submitted()`) first waits for that submission
//! ([`Submissions::wait_for`](crate::device::Submissions::wait_for), at most
//! [`FENCE_WAIT`]) and reclaims them, instead of growing past them. This is PyTorch's
//! CUDA caching allocator's order (`process_events` before it searches and
//! `cudaMalloc`s, events of `record_stream` uses holding freed blocks back) with one step
//! more: where CUDA would grow, a GPU queue that finishes in order lets us wait for the
//! one submission that frees enough. A block whose next submission is not made yet is
//! never waited for (only the user can submit it), and a wait that times out just lets
//! the pool grow (and no later request waits for that submission again): the fence rule
//! holds either way, since reclaiming still checks
//! `completed() > tag`.
//!
//! Such a device keeps no thread caches, so the CPU's cached path never comes here: the
//! frees branch off on the paths only a cache-less class or a large block takes.

use super::*;
use std::time::Duration;

/// The longest a request waits for a submission before it grows the pool instead. Once a
/// wait for submission `n` timed out, no later request waits for `n` again (they grow):
/// a long-running submission costs one such wait, not one per request.
pub(super) const FENCE_WAIT: Duration = Duration::from_millis(500);

/// A freed block waiting for the device.
#[derive(Debug, Clone, Copy)]
pub(super) struct PendingBlock {
    /// Submissions made when it was freed.
    tag: u64,
    addr: usize,
    /// Its token (`SMALL | class` or the large pool's).
    token: u64,
    /// Block bytes (class size, or the large pool's block size).
    block: usize,
}

/// What the pending list holds, for the metrics.
#[derive(Debug, Default)]
pub(super) struct PendingSummary {
    /// Bytes of pending blocks.
    pub bytes: usize,
    /// Pending blocks per size class (indexed like the central lists).
    pub per_class: Vec<usize>,
    /// Pending large blocks and their bytes.
    pub large_blocks: usize,
    /// Bytes of those.
    pub large_bytes: usize,
    /// Addresses of every pending block.
    pub addrs: Vec<usize>,
}

impl DevicePool {
    fn submissions(&self) -> &dyn crate::device::Submissions {
        self.backend
            .submissions()
            .expect("a fenced pool's backend counts submissions")
    }

    /// Puts a freed block on the pending list (the caller has counted the free). Takes
    /// the pending lock, under the large pool's lock where the caller holds it.
    #[cold]
    pub(super) fn defer(&self, addr: usize, token: u64, block: usize) {
        let mut p = self.pending.lock();
        // Read under the lock: tags never decrease along the list.
        let tag = self.submissions().submitted();
        p.push_back(PendingBlock {
            tag,
            addr,
            token,
            block,
        });
        self.pending_blocks.store(p.len(), Relaxed);
    }

    /// Returns to the pool every pending block whose fence has passed (the next
    /// submission after its free has finished); how many went back. Never blocks on the
    /// device and never submits.
    pub(crate) fn reclaim(&self) -> usize {
        if !self.fenced || self.pending_blocks.load(Relaxed) == 0 {
            return 0;
        }
        let s = self.submissions();
        // No submission since the oldest pending free: no fence can have passed, and a
        // poll of the device (what `completed` does) costs microseconds.
        let oldest = self.pending.lock().front().map(|b| b.tag);
        if oldest.is_none_or(|t| t >= s.submitted()) {
            return 0;
        }
        let done = s.completed();
        let mut ready = Vec::new();
        {
            let mut p = self.pending.lock();
            while p.front().is_some_and(|b| b.tag < done) {
                ready.extend(p.pop_front());
            }
            self.pending_blocks.store(p.len(), Relaxed);
        }
        for b in &ready {
            if b.token & SMALL != 0 {
                self.return_blocks((b.token & !SMALL) as usize, &[b.addr]);
            } else {
                self.large
                    .lock()
                    .free_user_token(b.addr, b.token, &*self.backend);
            }
        }
        ready.len()
    }

    /// Bytes a request of `size` bytes served by `class` (`None`: the large pool) would map from the device if served now: `None`
    /// when a free class block, a free slab block or a free large block serves it (the
    /// large pool's largest free block is the judge, so an odd alignment may still grow;
    /// that only skips a wait). Requests of the dedicated size always map their own chunk.
    fn would_map(&self, class: Option<usize>, size: usize) -> Option<usize> {
        let need = match class {
            Some(c) if size_class::is_single(c) => size_class::class_size(c),
            Some(c) => {
                if self.central[c].lock().free_blocks() > 0 {
                    return None;
                }
                size_class::slab_size(c)
            }
            None => size,
        };
        let large = self.large.lock();
        let dedicated = class.is_none() && size >= large.dedicated_threshold;
        (dedicated || large.largest_free() < need).then_some(need)
    }

    /// Whether the pending block `b`, once reclaimed, goes where a request of `class`
    /// (`None`: a large request) is served from: its own class's list, or the large pool
    /// (large blocks, and one-block slabs of the big classes).
    fn serves(b: &PendingBlock, class: Option<usize>) -> bool {
        if b.token & SMALL == 0 {
            return true;
        }
        let c = (b.token & !SMALL) as usize;
        Some(c) == class || size_class::is_single(c)
    }

    /// Before a request grows the pool: when pending blocks that would serve it (at least
    /// the bytes it would map) wait only for submissions already made, waits for the
    /// first submission that covers enough of them (at most [`FENCE_WAIT`]) and reclaims
    /// them. Returns whether it waited. Called with no lock held, after [`reclaim`].
    pub(super) fn wait_before_growth(&self, size: usize, align: usize) -> bool {
        if self.pending_blocks.load(Relaxed) == 0 {
            return false;
        }
        let s = self.submissions();
        let submitted = s.submitted();
        // Cheap first: is any pending block covered by a submission already made?
        if self
            .pending
            .lock()
            .front()
            .is_none_or(|b| b.tag >= submitted)
        {
            return false;
        }
        let class = self.class_for(size, align);
        let Some(need) = self.would_map(class, size) else {
            return false;
        };
        let mut covered = 0usize;
        let mut target = None;
        for b in self.pending.lock().iter() {
            if b.tag >= submitted {
                break; // tags never decrease: the rest wait for a submission to be made
            }
            if Self::serves(b, class) {
                covered += b.block;
                if covered >= need {
                    target = Some(b.tag + 1);
                    break;
                }
            }
        }
        let Some(target) = target else {
            return false;
        };
        if target <= self.fence_gave_up.load(Relaxed) {
            return false;
        }
        if !s.wait_for(target, FENCE_WAIT) {
            self.fence_gave_up.fetch_max(target, Relaxed);
        }
        self.reclaim();
        true
    }

    /// What the pending list holds, by pool and class.
    pub(super) fn pending_summary(&self) -> PendingSummary {
        let mut s = PendingSummary {
            per_class: vec![0; self.central.len()],
            ..PendingSummary::default()
        };
        if self.pending_blocks.load(Relaxed) == 0 {
            return s;
        }
        for b in self.pending.lock().iter() {
            s.bytes += b.block;
            s.addrs.push(b.addr);
            if b.token & SMALL != 0 {
                s.per_class[(b.token & !SMALL) as usize] += 1;
            } else {
                s.large_blocks += 1;
                s.large_bytes += b.block;
            }
        }
        s
    }
}
