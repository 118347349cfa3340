//! Growing a used block in place, into the front of its free physical successor: what
//! `realloc` needs to keep a pointer instead of copying.
#![deny(unsafe_code)]

use super::{State, Tlsf, GRANULE, NIL};
use crate::pool::strategy::Block;

impl Tlsf {
    /// Grows used block `token` to at least `size` bytes where it lies: a block already
    /// that big is returned as it is; otherwise its physical successor must be free and
    /// big enough, and the block takes what it needs of it (the rest stays free). `None`,
    /// with nothing changed, when it cannot.
    pub(super) fn grow_used(&mut self, token: u64, size: usize) -> Option<Block> {
        let idx = u32::try_from(token).ok()?;
        let size = size.max(GRANULE).checked_next_multiple_of(GRANULE)?;
        let n = *self.nodes.get(idx as usize)?;
        if n.state != State::Used {
            return None;
        }
        if n.size < size {
            let next = n.next_phys;
            if next == NIL {
                return None;
            }
            let nx = self.nodes[next as usize];
            if nx.state != State::Free || n.size.checked_add(nx.size)? < size {
                return None;
            }
            let nx = self.absorb_next(idx);
            // The part left free is as old as the successor was.
            let node = &mut self.nodes[idx as usize];
            node.freed_at = nx.freed_at;
            node.freed_seq = nx.freed_seq;
            // Free blocks never touch, and the successor's successor is used: the tail
            // split off here goes straight into a free list.
            self.split_tail(idx, size);
        }
        let n = self.nodes[idx as usize];
        Some(Block {
            token,
            chunk: n.chunk,
            addr: self.addr(idx),
            size: n.size,
        })
    }
}
