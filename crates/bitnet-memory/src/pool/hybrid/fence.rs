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
//! Such a device keeps no thread caches, so the CPU's cached path never comes here: the
//! frees branch off on the paths only a cache-less class or a large block takes.

use super::*;

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
