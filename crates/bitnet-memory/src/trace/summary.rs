//! What a checked trace answers: live bytes after every event, the peak, each block's
//! lifetime and counts over the whole trace.

use super::{Event, Op, Trace};
use std::collections::HashMap;

/// The highest live-byte count of a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Peak {
    /// Sum of the requested sizes of the blocks live at the peak.
    pub live_bytes: u64,
    /// Number of blocks live at the peak.
    pub live_blocks: usize,
    /// Index (into [`Trace::events`]) of the event after which the peak was first reached;
    /// 0 for an empty trace.
    pub event_index: usize,
}

/// One block's life in a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    /// The block's id.
    pub id: u64,
    /// Requested size.
    pub size: u64,
    /// Requested alignment.
    pub align: u64,
    /// Thread that allocated it.
    pub thread: u32,
    /// Index of its allocation event.
    pub alloc_index: usize,
    /// Index of its free event; `None` if it is live at the end.
    pub free_index: Option<usize>,
    /// Thread that freed it.
    pub free_thread: Option<u32>,
}

/// Counts over a whole trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Events.
    pub events: usize,
    /// Allocation events.
    pub allocs: usize,
    /// Free events.
    pub frees: usize,
    /// Sum of all allocation sizes.
    pub bytes_allocated: u64,
    /// Largest allocation.
    pub largest: u64,
    /// Distinct thread numbers.
    pub threads: usize,
    /// Frees made by another thread than the allocation.
    pub cross_thread_frees: usize,
    /// Largest `t_ns`.
    pub duration_ns: u64,
    /// The peak of live bytes.
    pub peak: Peak,
    /// Blocks live after the last event.
    pub live_blocks_at_end: usize,
    /// Their bytes.
    pub live_bytes_at_end: u64,
}

impl Trace {
    /// Live bytes (sum of requested sizes) after each event, one item per event.
    pub fn live_bytes(&self) -> LiveBytes<'_> {
        LiveBytes {
            events: self.events.iter(),
            sizes: HashMap::new(),
            live: 0,
            blocks: 0,
        }
    }

    /// The highest live-byte count and where it was first reached.
    pub fn peak(&self) -> Peak {
        let mut peak = Peak::default();
        let mut it = self.live_bytes();
        let mut i = 0;
        while let Some(live) = it.next() {
            if live > peak.live_bytes {
                peak = Peak {
                    live_bytes: live,
                    live_blocks: it.live_blocks(),
                    event_index: i,
                };
            }
            i += 1;
        }
        peak
    }

    /// Every block's life, in the order of allocation.
    pub fn lifetimes(&self) -> Vec<Lifetime> {
        let mut out: Vec<Lifetime> = Vec::new();
        let mut index: HashMap<u64, usize> = HashMap::new();
        for (i, e) in self.events.iter().enumerate() {
            match e.op {
                Op::Alloc => {
                    index.insert(e.id, out.len());
                    out.push(Lifetime {
                        id: e.id,
                        size: e.size,
                        align: e.align,
                        thread: e.thread,
                        alloc_index: i,
                        free_index: None,
                        free_thread: None,
                    });
                }
                Op::Free => {
                    let l = &mut out[index[&e.id]];
                    l.free_index = Some(i);
                    l.free_thread = Some(e.thread);
                }
            }
        }
        out
    }

    /// Counts over the whole trace.
    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            events: self.events.len(),
            peak: self.peak(),
            ..Summary::default()
        };
        let mut threads = std::collections::HashSet::new();
        for e in &self.events {
            threads.insert(e.thread);
            s.duration_ns = s.duration_ns.max(e.t_ns);
            match e.op {
                Op::Alloc => {
                    s.allocs += 1;
                    s.bytes_allocated += e.size;
                    s.largest = s.largest.max(e.size);
                }
                Op::Free => s.frees += 1,
            }
        }
        s.threads = threads.len();
        for l in self.lifetimes() {
            match l.free_thread {
                Some(t) if t != l.thread => s.cross_thread_frees += 1,
                Some(_) => {}
                None => {
                    s.live_blocks_at_end += 1;
                    s.live_bytes_at_end += l.size;
                }
            }
        }
        s
    }
}

/// Iterator over live bytes after each event of a trace; see [`Trace::live_bytes`].
pub struct LiveBytes<'t> {
    events: std::slice::Iter<'t, Event>,
    sizes: HashMap<u64, u64>,
    live: u64,
    blocks: usize,
}

impl LiveBytes<'_> {
    /// Blocks live after the last event returned.
    pub fn live_blocks(&self) -> usize {
        self.blocks
    }
}

impl Iterator for LiveBytes<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        let e = self.events.next()?;
        match e.op {
            Op::Alloc => {
                self.sizes.insert(e.id, e.size);
                self.live += e.size;
                self.blocks += 1;
            }
            Op::Free => {
                // A `Trace` is checked on construction: every free names a live block.
                let size = self.sizes.remove(&e.id).expect("checked trace");
                self.live -= size;
                self.blocks -= 1;
            }
        }
        Some(self.live)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.events.size_hint()
    }
}
