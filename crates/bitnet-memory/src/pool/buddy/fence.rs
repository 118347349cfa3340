//! What compaction needs of the buddy system: usage per arena, fencing an arena's free
//! blocks out of the order lists, and removing one arena once it is empty.
#![deny(unsafe_code)]

use super::{block_size, pack, unpack, Buddy};
use crate::pool::large::compact::ChunkFence;
use crate::pool::strategy::SysVec;
use std::alloc::System;

impl ChunkFence for Buddy {
    fn chunk_used_bytes(&self, chunk: u32) -> usize {
        match self.arenas.get(chunk as usize) {
            Some(Some(a)) => block_size(a.order) - self.chunk_free_bytes(chunk),
            _ => 0,
        }
    }

    fn chunk_free_bytes(&self, chunk: u32) -> usize {
        self.orders
            .iter()
            .enumerate()
            .map(|(o, order)| order.set.iter().filter(|e| e.0 == chunk).count() * block_size(o))
            .sum()
    }

    fn fence(&mut self, chunk: u32, out: &mut SysVec<u64>) {
        let mut offsets: SysVec<usize> = SysVec::new_in(System);
        for o in 0..self.orders.len() {
            offsets.clear();
            offsets.extend(
                self.orders[o]
                    .set
                    .iter()
                    .filter(|e| e.0 == chunk)
                    .map(|e| e.1),
            );
            for &off in offsets.iter() {
                // Out of the set: the stack entry is now stale and skipped by `pop`.
                self.orders[o].set.remove(&(chunk, off));
                self.free_bytes -= block_size(o);
                out.push(pack(chunk, off, o));
            }
        }
    }

    fn unfence(&mut self, fenced: &[u64]) {
        for &t in fenced {
            // Nothing in a fenced arena was freed, so no buddy of a fenced block became
            // free: each goes back as it was.
            let (arena, offset, order) = unpack(t);
            self.push_free(arena, offset, order);
        }
    }

    fn take_empty_chunk(&mut self, chunk: u32) -> bool {
        let Some(Some(arena)) = self.arenas.get(chunk as usize).copied() else {
            return false;
        };
        if !self.orders[arena.order].set.remove(&(chunk, 0)) {
            return false;
        }
        self.free_bytes -= block_size(arena.order);
        self.arenas[chunk as usize] = None;
        true
    }
}
