//! What compaction needs of TLSF: usage per chunk, fencing a chunk's free blocks out of
//! the bins, and removing one chunk once it is empty.
#![deny(unsafe_code)]

use super::{State, Tlsf, NIL};
use crate::pool::large::compact::ChunkFence;
use crate::pool::strategy::SysVec;

impl Tlsf {
    /// Sum of the sizes of the blocks of `chunk` that are (`free`) or are not free.
    fn chunk_bytes(&self, chunk: u32, free: bool) -> usize {
        let Some(Some(slot)) = self.chunks.get(chunk as usize) else {
            return 0;
        };
        let mut total = 0;
        let mut i = slot.first;
        while i != NIL {
            let n = &self.nodes[i as usize];
            if (n.state == State::Free) == free {
                total += n.size;
            }
            i = n.next_phys;
        }
        total
    }
}

impl ChunkFence for Tlsf {
    fn chunk_used_bytes(&self, chunk: u32) -> usize {
        self.chunk_bytes(chunk, false)
    }

    fn chunk_free_bytes(&self, chunk: u32) -> usize {
        self.chunk_bytes(chunk, true)
    }

    fn fence(&mut self, chunk: u32, out: &mut SysVec<u64>) {
        let slot = self.chunks[chunk as usize].expect("live chunk");
        let mut i = slot.first;
        while i != NIL {
            let next = self.nodes[i as usize].next_phys;
            if self.nodes[i as usize].state == State::Free {
                // Out of its bin: the node now looks used (and keeps its dirty bytes and
                // age for `unfence`).
                self.remove_free(i);
                out.push(u64::from(i));
            }
            i = next;
        }
    }

    fn unfence(&mut self, fenced: &[u64]) {
        for &t in fenced {
            let i = t as u32;
            let n = self.nodes[i as usize];
            debug_assert_eq!(n.state, State::Used, "fenced block changed state");
            // Nothing in a fenced chunk was freed, so the neighbours of a fenced block are
            // still used: it goes back as it was, without merging.
            debug_assert!(
                n.prev_phys == NIL || self.nodes[n.prev_phys as usize].state != State::Free
            );
            debug_assert!(
                n.next_phys == NIL || self.nodes[n.next_phys as usize].state != State::Free
            );
            self.insert_free(i);
        }
    }

    fn take_empty_chunk(&mut self, chunk: u32) -> bool {
        let Some(Some(slot)) = self.chunks.get(chunk as usize).copied() else {
            return false;
        };
        let first = self.nodes[slot.first as usize];
        if first.state != State::Free || first.size != slot.size {
            return false;
        }
        self.remove_free(slot.first);
        self.vacate(slot.first);
        self.chunks[chunk as usize] = None;
        true
    }
}
