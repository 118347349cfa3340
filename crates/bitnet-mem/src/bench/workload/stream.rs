//! The operations of a workload and how one is built: slots handed out and reused, counts
//! kept (allocations, live peak, largest alignment) as the operations are added.

/// One operation of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    /// Bytes to allocate (> 0); unused for a free.
    pub size: usize,
    /// Slot the block is kept in.
    pub slot: u32,
    /// log2 of the alignment.
    pub align_log2: u8,
    /// Free the block in `slot` rather than allocate.
    pub free: bool,
}

/// A list of operations for one thread.
#[derive(Debug, Clone, Default)]
pub struct Stream {
    /// The operations, in order.
    pub ops: Vec<Op>,
    /// Slots used (the most blocks live at once).
    pub slots: usize,
    /// Allocations (= alloc+free pairs, counting blocks freed after the run).
    pub allocs: u64,
    /// Highest sum of live requested bytes.
    pub peak_live: u64,
    /// Largest alignment asked for.
    pub max_align: usize,
}

impl Stream {
    /// For each class (by `class_of(size, align)`), the most blocks of it live at once.
    pub fn max_live_per_class(&self, class_of: impl Fn(usize, usize) -> usize) -> Vec<usize> {
        let mut live: Vec<usize> = Vec::new();
        let mut max: Vec<usize> = Vec::new();
        let mut slot_class = vec![usize::MAX; self.slots];
        for op in &self.ops {
            if op.free {
                let c = std::mem::replace(&mut slot_class[op.slot as usize], usize::MAX);
                live[c] -= 1;
            } else {
                let c = class_of(op.size, 1 << op.align_log2);
                if c >= live.len() {
                    live.resize(c + 1, 0);
                    max.resize(c + 1, 0);
                }
                live[c] += 1;
                max[c] = max[c].max(live[c]);
                slot_class[op.slot as usize] = c;
            }
        }
        max
    }

    /// The first operation with which the live bytes pass `limit`, and the live bytes
    /// with it; `None` if they never do.
    pub fn first_live_over(&self, limit: u64) -> Option<(usize, u64)> {
        let mut slot_size = vec![0u64; self.slots];
        let mut live = 0u64;
        for (i, op) in self.ops.iter().enumerate() {
            let size = &mut slot_size[op.slot as usize];
            if op.free {
                live -= std::mem::take(size);
            } else {
                *size = op.size as u64;
                live += *size;
                if live > limit {
                    return Some((i, live));
                }
            }
        }
        None
    }
}

/// Builds a stream: hands out slots (reusing freed ones) and keeps the counts.
#[derive(Default)]
pub struct StreamBuilder {
    s: Stream,
    free_slots: Vec<u32>,
    sizes: Vec<usize>,
    live: u64,
}

impl StreamBuilder {
    /// An empty stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allocates `size` bytes (0 is served as 1) aligned to `align`; returns the slot.
    pub fn alloc(&mut self, size: usize, align: usize) -> u32 {
        let size = size.max(1);
        debug_assert!(align.is_power_of_two());
        let slot = match self.free_slots.pop() {
            Some(s) => s,
            None => {
                self.sizes.push(0);
                (self.sizes.len() - 1) as u32
            }
        };
        self.sizes[slot as usize] = size;
        self.s.ops.push(Op {
            size,
            slot,
            align_log2: align.trailing_zeros() as u8,
            free: false,
        });
        self.s.allocs += 1;
        self.s.max_align = self.s.max_align.max(align);
        self.live += size as u64;
        self.s.peak_live = self.s.peak_live.max(self.live);
        slot
    }

    /// Frees the block in `slot`.
    pub fn free(&mut self, slot: u32) {
        self.live -= self.sizes[slot as usize] as u64;
        self.free_slots.push(slot);
        self.s.ops.push(Op {
            size: 0,
            slot,
            align_log2: 0,
            free: true,
        });
    }

    /// Allocations so far.
    pub fn allocs(&self) -> u64 {
        self.s.allocs
    }

    /// The stream.
    pub fn finish(mut self) -> Stream {
        self.s.slots = self.sizes.len();
        self.s
    }
}
