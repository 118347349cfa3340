//! Offset assignment in one arena for blocks whose lifetimes are known: first fit (or best
//! fit) over a given order, and the online best fit of ggml's dynamic allocator.
#![deny(unsafe_code)]

use super::Interval;

/// How a block chooses among the gaps it fits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fit {
    /// The lowest offset.
    First,
    /// The smallest gap (the top of the arena only when no gap fits).
    Best,
}

/// Intervals of non-zero length sorted by start, with the largest end of every subtree of
/// an implicit segment tree, to list the intervals that overlap a time range.
pub(super) struct OverlapIndex {
    /// Interval indices, by start.
    order: Vec<usize>,
    starts: Vec<u64>,
    ends: Vec<u64>,
    max_end: Vec<u64>,
    /// Position in `order` of each interval (`usize::MAX` for those not indexed).
    pos: Vec<usize>,
}

/// Which intervals of an [`OverlapIndex`] are placed: the largest end of every subtree
/// counting placed intervals only (0 where none is), so a search visits placed ones only.
pub(super) struct Placed(Vec<u64>);

impl OverlapIndex {
    pub(super) fn new(iv: &[Interval]) -> Self {
        let mut order: Vec<usize> = (0..iv.len()).filter(|&i| iv[i].lives()).collect();
        order.sort_by_key(|&i| iv[i].start);
        let starts: Vec<u64> = order.iter().map(|&i| iv[i].start).collect();
        let ends: Vec<u64> = order.iter().map(|&i| iv[i].end).collect();
        let mut max_end = vec![0; 4 * ends.len().max(1)];
        if !ends.is_empty() {
            build(&mut max_end, &ends, 1, 0, ends.len());
        }
        let mut pos = vec![usize::MAX; iv.len()];
        for (at, &i) in order.iter().enumerate() {
            pos[i] = at;
        }
        Self {
            order,
            starts,
            ends,
            max_end,
            pos,
        }
    }

    /// No interval placed yet.
    pub(super) fn none_placed(&self) -> Placed {
        Placed(vec![0; self.max_end.len()])
    }

    /// Marks interval `i` placed (a no-op for one never live, which the index leaves out).
    pub(super) fn place(&self, placed: &mut Placed, i: usize) {
        let at = self.pos[i];
        if at == usize::MAX {
            return;
        }
        let end = self.ends[at];
        let (mut node, mut lo, mut hi) = (1, 0, self.ends.len());
        loop {
            placed.0[node] = placed.0[node].max(end);
            if hi - lo == 1 {
                return;
            }
            let mid = (lo + hi) / 2;
            if at < mid {
                (node, hi) = (2 * node, mid);
            } else {
                (node, lo) = (2 * node + 1, mid);
            }
        }
    }

    /// Calls `f` with the position (see [`position`](Self::position)) of every placed
    /// interval that overlaps `[start, end)`, in position order.
    pub(super) fn placed_overlapping(
        &self,
        placed: &Placed,
        start: u64,
        end: u64,
        f: &mut impl FnMut(usize),
    ) {
        if start >= end {
            return;
        }
        let p = self.starts.partition_point(|&s| s < end);
        if p > 0 {
            self.visit_in(&placed.0, 1, 0, self.ends.len(), p, start, f);
        }
    }

    /// Where interval `i` sits in the index (`usize::MAX` for one never live): the callers
    /// keep per-position tables, read in order while visiting.
    pub(super) fn position(&self, i: usize) -> usize {
        self.pos[i]
    }

    /// How many intervals the index holds.
    pub(super) fn len(&self) -> usize {
        self.order.len()
    }

    /// Calls `f` with every interval (of non-zero length) that overlaps `[start, end)`.
    pub(super) fn overlapping(&self, start: u64, end: u64, f: &mut impl FnMut(usize)) {
        if start >= end {
            return;
        }
        let p = self.starts.partition_point(|&s| s < end);
        if p > 0 {
            self.visit_in(&self.max_end, 1, 0, self.ends.len(), p, start, &mut |at| {
                f(self.order[at])
            });
        }
    }

    /// Visits the positions under `node` (covering `[lo, hi)` of `order`) before `p` whose
    /// subtree's largest end in `max_end` passes `start`.
    #[allow(clippy::too_many_arguments)]
    fn visit_in(
        &self,
        max_end: &[u64],
        node: usize,
        lo: usize,
        hi: usize,
        p: usize,
        start: u64,
        f: &mut impl FnMut(usize),
    ) {
        if lo >= p || max_end[node] <= start {
            return;
        }
        if hi - lo == 1 {
            f(lo);
            return;
        }
        let mid = (lo + hi) / 2;
        self.visit_in(max_end, 2 * node, lo, mid, p, start, f);
        self.visit_in(max_end, 2 * node + 1, mid, hi, p, start, f);
    }
}

fn build(t: &mut [u64], ends: &[u64], node: usize, lo: usize, hi: usize) -> u64 {
    let m = if hi - lo == 1 {
        ends[lo]
    } else {
        let mid = (lo + hi) / 2;
        build(t, ends, 2 * node, lo, mid).max(build(t, ends, 2 * node + 1, mid, hi))
    };
    t[node] = m;
    m
}

/// Places the blocks one by one in `order`, each at the lowest (or best-fitting) aligned
/// offset where it overlaps no block placed before it that is live at the same time.
/// Returns the offsets (indexed like `iv`) and the arena size.
pub(super) fn place_in_order(
    iv: &[Interval],
    index: &OverlapIndex,
    order: &[usize],
    fit: Fit,
) -> (Vec<usize>, usize) {
    let mut offsets = vec![usize::MAX; iv.len()];
    let mut arena = 0;
    let mut taken: Vec<(usize, usize)> = Vec::new();
    let mut scratch: Vec<(usize, usize)> = Vec::new();
    let mut placed = index.none_placed();
    // The placed blocks' ranges by index position, read in order while visiting.
    let mut range_at = vec![(0usize, 0usize); index.len()];
    for &i in order {
        let b = &iv[i];
        if b.size == 0 || !b.lives() {
            offsets[i] = 0;
            continue;
        }
        taken.clear();
        index.placed_overlapping(&placed, b.start, b.end, &mut |at| taken.push(range_at[at]));
        sort_by_start(&mut taken, &mut scratch);
        let mut cursor = 0usize;
        let mut best: Option<(usize, usize)> = None; // (gap slack, offset)
        for &(lo, hi) in &taken {
            let at = cursor.next_multiple_of(b.align);
            if lo >= at + b.size {
                let slack = lo - at - b.size;
                match fit {
                    Fit::First => {
                        best = Some((slack, at));
                        break;
                    }
                    Fit::Best => {
                        if best.is_none_or(|(s, _)| slack < s) {
                            best = Some((slack, at));
                        }
                    }
                }
            }
            cursor = cursor.max(hi);
        }
        let at = best.map_or_else(|| cursor.next_multiple_of(b.align), |(_, at)| at);
        offsets[i] = at;
        range_at[index.position(i)] = (at, at + b.size);
        index.place(&mut placed, i);
        arena = arena.max(at + b.size);
    }
    (offsets, arena)
}

/// Sorts `ranges` by their first field (ties in any order). A block overlaps thousands of
/// placed ones on long traces, and this sort ran once per block: a radix sort over the
/// 11-bit digits the largest start needs, with a comparison sort for short inputs.
pub(super) fn sort_by_start(ranges: &mut Vec<(usize, usize)>, scratch: &mut Vec<(usize, usize)>) {
    if ranges.len() < 256 {
        ranges.sort_unstable_by_key(|r| r.0);
        return;
    }
    let max = ranges.iter().map(|r| r.0).max().unwrap_or(0);
    const BITS: usize = 11;
    const BUCKETS: usize = 1 << BITS;
    let digits = (usize::BITS - max.leading_zeros()).div_ceil(BITS as u32) as usize;
    scratch.clear();
    scratch.resize(ranges.len(), (0, 0));
    for d in 0..digits {
        let shift = BITS * d;
        let mut count = [0usize; BUCKETS + 1];
        for r in ranges.iter() {
            count[((r.0 >> shift) & (BUCKETS - 1)) + 1] += 1;
        }
        for b in 0..BUCKETS {
            count[b + 1] += count[b];
        }
        for &r in ranges.iter() {
            let b = (r.0 >> shift) & (BUCKETS - 1);
            scratch[count[b]] = r;
            count[b] += 1;
        }
        std::mem::swap(ranges, scratch);
    }
}

/// ggml's dynamic allocator: blocks come and go in time order; each takes the free range
/// that fits it most tightly, else the top of the arena; freed ranges merge with free
/// neighbours. Returns the offsets and the arena size (the high-water mark).
pub(super) fn online_best_fit(iv: &[Interval]) -> (Vec<usize>, usize) {
    // Events: (time, 0 = free | 1 = alloc, index): frees before allocations at equal times.
    let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * iv.len());
    for (i, b) in iv.iter().enumerate() {
        if b.size > 0 && b.lives() {
            events.push((b.start, 1, i));
            events.push((b.end, 0, i));
        }
    }
    events.sort_unstable();
    let mut offsets = vec![0; iv.len()];
    // Free ranges below `top`, sorted by offset, never touching each other.
    let mut free: Vec<(usize, usize)> = Vec::new();
    let mut top = 0usize;
    for (_, kind, i) in events {
        let b = &iv[i];
        if kind == 0 {
            release(&mut free, &mut top, offsets[i], b.size);
            continue;
        }
        let mut best: Option<(usize, usize, usize)> = None; // (slack, slot, offset)
        for (slot, &(lo, len)) in free.iter().enumerate() {
            let at = lo.next_multiple_of(b.align);
            if at + b.size <= lo + len {
                let slack = lo + len - at - b.size;
                if best.is_none_or(|(s, _, _)| slack < s) {
                    best = Some((slack, slot, at));
                }
            }
        }
        let at = match best {
            Some((_, slot, at)) => {
                let (lo, len) = free.remove(slot);
                if at + b.size < lo + len {
                    free.insert(slot, (at + b.size, lo + len - at - b.size));
                }
                if at > lo {
                    free.insert(slot, (lo, at - lo));
                }
                at
            }
            None => {
                // Grow at the top; a free range ending at the top is used as the start.
                let base = match free.last() {
                    Some(&(lo, len)) if lo + len == top => {
                        free.pop();
                        lo
                    }
                    _ => top,
                };
                let at = base.next_multiple_of(b.align);
                if at > base {
                    free.push((base, at - base));
                }
                top = at + b.size;
                at
            }
        };
        offsets[i] = at;
    }
    let arena = iv
        .iter()
        .zip(&offsets)
        .filter(|(b, _)| b.size > 0 && b.lives())
        .map(|(b, &o)| o + b.size)
        .max()
        .unwrap_or(0);
    (offsets, arena)
}

/// Returns `[at, at + size)` to the free ranges, merging neighbours. `top` stays the
/// high-water mark: a range at the top stays a free range below it.
fn release(free: &mut Vec<(usize, usize)>, top: &mut usize, at: usize, size: usize) {
    debug_assert!(at + size <= *top);
    let slot = free.partition_point(|&(lo, _)| lo < at);
    let (mut lo, mut hi) = (at, at + size);
    let mut first = slot;
    if slot > 0 && free[slot - 1].0 + free[slot - 1].1 == lo {
        first = slot - 1;
        lo = free[first].0;
    }
    let mut last = slot;
    if slot < free.len() && free[slot].0 == hi {
        hi = free[slot].0 + free[slot].1;
        last = slot + 1;
    }
    free.splice(first..last, [(lo, hi - lo)]);
}

/// The optimum, by trying first fit over every order (depth first, cut where the arena
/// already reaches the best found or the lower bound is met). Exponential: small inputs.
pub(super) fn exhaustive(iv: &[Interval], lower_bound: usize, start: usize) -> (Vec<usize>, usize) {
    struct Search<'a> {
        iv: &'a [Interval],
        lower_bound: usize,
        offsets: Vec<usize>,
        placed: Vec<usize>,
        best: usize,
        best_offsets: Vec<usize>,
    }
    impl Search<'_> {
        fn lowest(&self, i: usize) -> usize {
            let b = &self.iv[i];
            let mut at = 0usize;
            loop {
                at = at.next_multiple_of(b.align);
                let clash = self
                    .placed
                    .iter()
                    .filter(|&&j| {
                        let c = &self.iv[j];
                        b.overlaps(c)
                            && at < self.offsets[j] + c.size
                            && self.offsets[j] < at + b.size
                    })
                    .map(|&j| self.offsets[j] + self.iv[j].size)
                    .max();
                match clash {
                    Some(end) => at = end,
                    None => return at,
                }
            }
        }
        fn go(&mut self, left: &mut Vec<usize>, arena: usize) {
            if arena >= self.best || self.best == self.lower_bound {
                return;
            }
            if left.is_empty() {
                self.best = arena;
                self.best_offsets.clone_from(&self.offsets);
                return;
            }
            for k in 0..left.len() {
                let i = left.swap_remove(k);
                let at = self.lowest(i);
                self.offsets[i] = at;
                self.placed.push(i);
                self.go(left, arena.max(at + self.iv[i].size));
                self.placed.pop();
                left.push(i);
                let last = left.len() - 1;
                left.swap(k, last);
            }
        }
    }
    let mut left: Vec<usize> = (0..iv.len())
        .filter(|&i| iv[i].size > 0 && iv[i].lives())
        .collect();
    let mut s = Search {
        iv,
        lower_bound,
        offsets: vec![0; iv.len()],
        placed: Vec::new(),
        best: start,
        best_offsets: Vec::new(),
    };
    s.go(&mut left, 0);
    if s.best_offsets.is_empty() {
        (Vec::new(), start)
    } else {
        (s.best_offsets, s.best)
    }
}

#[cfg(test)]
mod tests {
    use super::sort_by_start;
    use proptest::prelude::*;

    proptest! {
        /// The radix sort orders like a comparison sort, short inputs and long, small
        /// starts and starts past 32 bits.
        #[test]
        fn sort_by_start_sorts(
            v in prop::collection::vec((0usize..1 << 40, 0usize..1000), 0..1000),
            small in any::<bool>(),
        ) {
            let mut v: Vec<(usize, usize)> =
                v.into_iter().map(|(a, b)| (if small { a & 0xFFF } else { a }, b)).collect();
            let mut want = v.clone();
            want.sort_unstable();
            let mut scratch = Vec::new();
            sort_by_start(&mut v, &mut scratch);
            prop_assert!(v.windows(2).all(|w| w[0].0 <= w[1].0));
            v.sort_unstable();
            prop_assert_eq!(v, want);
        }
    }
}
