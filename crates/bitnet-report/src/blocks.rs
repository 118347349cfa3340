//! Blocks over time, for the per-block timeline (in the manner of PyTorch's memory_viz
//! "active memory timeline"): each block is one span from its allocation to its free (or
//! to the end of the input), with its size, thread, site and, where known, an address to
//! stack it by. Large inputs keep their largest blocks; the rest are counted.

use crate::model::BlockSpan;
use std::collections::HashMap;

/// Blocks a report keeps for the per-block timeline: the page draws each one as a band,
/// and memory_viz likewise draws a few thousand and folds the rest.
pub const MAX_BLOCKS: usize = 3_000;

/// Collects spans as the input is read.
#[derive(Default)]
pub(crate) struct Spans {
    open: HashMap<u64, BlockSpan>,
    closed: Vec<BlockSpan>,
}

impl Spans {
    /// Block `id` was allocated.
    pub(crate) fn alloc(&mut self, span: BlockSpan) {
        self.open.insert(span.id, span);
    }

    /// Block `id` was freed at `t_ns` (a free of an unknown id is ignored: the block was
    /// allocated before the input began).
    pub(crate) fn free(&mut self, id: u64, t_ns: u64) {
        if let Some(mut s) = self.open.remove(&id) {
            s.t_free_ns = Some(t_ns.max(s.t_alloc_ns));
            self.closed.push(s);
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
    pub(crate) fn finish(self, max: usize) -> (Vec<BlockSpan>, u64) {
        let mut all = self.closed;
        all.extend(self.open.into_values());
        let dropped = all.len().saturating_sub(max) as u64;
        if all.len() > max {
            all.sort_unstable_by(|a, b| b.size.cmp(&a.size).then(a.id.cmp(&b.id)));
            all.truncate(max);
        }
        all.sort_unstable_by(|a, b| a.t_alloc_ns.cmp(&b.t_alloc_ns).then(a.id.cmp(&b.id)));
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
        let mut s = Spans::default();
        s.alloc(span(1, 100, 0));
        s.alloc(span(2, 300, 5));
        s.alloc(span(3, 200, 7));
        s.set_addr(2, 4096);
        s.free(1, 10);
        s.free(9, 11); // allocated before the input: ignored
        let (all, dropped) = Spans {
            open: s.open.clone(),
            closed: s.closed.clone(),
        }
        .finish(10);
        assert_eq!(dropped, 0);
        let ids: Vec<u64> = all.iter().map(|b| b.id).collect();
        assert_eq!(ids, [1, 2, 3], "allocation order");
        assert_eq!(all[0].t_free_ns, Some(10));
        assert_eq!(all[1].t_free_ns, None, "live at the end");
        assert_eq!(all[1].addr, Some(4096));
        let (two, dropped) = s.finish(2);
        assert_eq!(dropped, 1);
        let ids: Vec<u64> = two.iter().map(|b| b.id).collect();
        assert_eq!(ids, [2, 3], "the two largest, in allocation order");
    }
}
