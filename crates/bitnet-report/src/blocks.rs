//! Blocks over time, for the per-block timeline (in the manner of PyTorch's memory_viz
//! "active memory timeline"): each block is one span from its allocation to its free (or
//! to the end of the input), with its size, thread, site and, where known, an address to
//! stack it by. Large inputs keep their largest blocks; the rest are counted.

use crate::model::BlockSpan;
use std::collections::HashMap;

/// Blocks a report keeps for the per-block timeline: the page draws each one as a band,
/// and memory_viz likewise draws a few thousand and folds the rest.
pub const MAX_BLOCKS: usize = 3_000;

/// Collects spans as the input is read, keeping memory bounded: freed blocks are pruned
/// to the `max` largest whenever twice that many have gathered, so a trace of a hundred
/// million events holds a few thousand spans, not all of them.
pub(crate) struct Spans {
    max: usize,
    open: HashMap<u64, BlockSpan>,
    closed: Vec<BlockSpan>,
    /// Blocks seen in all.
    total: u64,
}

/// Keeps the `max` largest of `v` (ties: the lower id).
fn keep_largest(v: &mut Vec<BlockSpan>, max: usize) {
    if v.len() > max {
        v.sort_unstable_by(|a, b| b.size.cmp(&a.size).then(a.id.cmp(&b.id)));
        v.truncate(max);
    }
}

impl Spans {
    /// Spans of which at most `max` are kept.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            open: HashMap::new(),
            closed: Vec::new(),
            total: 0,
        }
    }

    /// Block `id` was allocated.
    pub(crate) fn alloc(&mut self, span: BlockSpan) {
        self.total += 1;
        self.open.insert(span.id, span);
    }

    /// Block `id` was freed at `t_ns` (a free of an unknown id is ignored: the block was
    /// allocated before the input began).
    pub(crate) fn free(&mut self, id: u64, t_ns: u64) {
        if let Some(mut s) = self.open.remove(&id) {
            s.t_free_ns = Some(t_ns.max(s.t_alloc_ns));
            self.closed.push(s);
            if self.closed.len() >= 2 * self.max.max(1) {
                keep_largest(&mut self.closed, self.max);
            }
        }
    }

    /// Gives an open block its address (known after the allocation was served).
    pub(crate) fn set_addr(&mut self, id: u64, addr: u64) {
        if let Some(s) = self.open.get_mut(&id) {
            s.addr = Some(addr);
        }
    }

    /// The spans, at most `max`: the largest kept (ties: the lower id), in allocation
    /// order; and how many were left out.
    pub(crate) fn finish(self) -> (Vec<BlockSpan>, u64) {
        let mut all = self.closed;
        all.extend(self.open.into_values());
        keep_largest(&mut all, self.max);
        all.sort_unstable_by(|a, b| a.t_alloc_ns.cmp(&b.t_alloc_ns).then(a.id.cmp(&b.id)));
        let dropped = self.total - all.len() as u64;
        (all, dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: u64, size: u64, t: u64) -> BlockSpan {
        BlockSpan {
            id,
            size,
            t_alloc_ns: t,
            t_free_ns: None,
            thread: Some(0),
            site: None,
            addr: None,
        }
    }

    #[test]
    fn spans_close_at_their_free_and_the_largest_are_kept() {
        let run = |max| {
            let mut s = Spans::new(max);
            s.alloc(span(1, 100, 0));
            s.alloc(span(2, 300, 5));
            s.alloc(span(3, 200, 7));
            s.set_addr(2, 4096);
            s.free(1, 10);
            s.free(9, 11); // allocated before the input: ignored
            s.finish()
        };
        let (all, dropped) = run(10);
        assert_eq!(dropped, 0);
        let ids: Vec<u64> = all.iter().map(|b| b.id).collect();
        assert_eq!(ids, [1, 2, 3], "allocation order");
        assert_eq!(all[0].t_free_ns, Some(10));
        assert_eq!(all[1].t_free_ns, None, "live at the end");
        assert_eq!(all[1].addr, Some(4096));
        let (two, dropped) = run(2);
        assert_eq!(dropped, 1);
        let ids: Vec<u64> = two.iter().map(|b| b.id).collect();
        assert_eq!(ids, [2, 3], "the two largest, in allocation order");
    }

    #[test]
    fn freed_spans_are_pruned_as_they_gather_and_the_count_stays_exact() {
        let mut s = Spans::new(3);
        for id in 0..100u64 {
            // Sizes go up and down: the largest are spread over the run.
            s.alloc(span(id, (id * 37) % 101, id));
            s.free(id, id);
            assert!(s.closed.len() < 6, "pruned at twice the cap");
        }
        let (kept, dropped) = s.finish();
        assert_eq!((kept.len(), dropped), (3, 97));
        let mut sizes: Vec<u64> = kept.iter().map(|b| b.size).collect();
        sizes.sort_unstable();
        let mut all: Vec<u64> = (0..100u64).map(|id| (id * 37) % 101).collect();
        all.sort_unstable();
        assert_eq!(sizes, all[97..], "the three largest of all");
    }
}
