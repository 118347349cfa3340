//! The node arena and the free lists of TLSF: taking and giving back nodes, linking a
//! free block into its bin and out again, splitting a block, and the arithmetic of the
//! dirty ranges blocks carry through splits and merges.
#![deny(unsafe_code)]

use super::bins::mapping_insert;
use super::{Node, State, Tlsf, GRANULE, NIL};

#[inline]
/// The part of the range `(off, len)` that lies in `[from, to)`, as `(off, len)` from
/// `from`; `(0, 0)` when none does.
pub(super) fn clip(off: usize, len: usize, from: usize, to: usize) -> (usize, usize) {
    let (lo, hi) = (off.max(from), (off + len).min(to));
    if len > 0 && hi > lo {
        (lo - from, hi - lo)
    } else {
        (0, 0)
    }
}

/// The smallest range `(off, len)` covering both (an empty range covers nothing).
pub(super) fn hull(a: (usize, usize), b: (usize, usize)) -> (usize, usize) {
    match (a.1 > 0, b.1 > 0) {
        (false, false) => (0, 0),
        (true, false) => a,
        (false, true) => b,
        (true, true) => {
            let lo = a.0.min(b.0);
            (lo, (a.0 + a.1).max(b.0 + b.1) - lo)
        }
    }
}

impl Tlsf {
    /// Stores `node` in a vacant slot of the arena, or a new one; returns its index.
    pub(super) fn new_node(&mut self, node: Node) -> u32 {
        if self.vacant != NIL {
            let idx = self.vacant;
            self.vacant = self.nodes[idx as usize].next_free;
            self.nodes[idx as usize] = node;
            idx
        } else {
            let idx = u32::try_from(self.nodes.len()).expect("fewer than 2^32 blocks");
            assert!(idx != NIL, "fewer than 2^32 - 1 blocks");
            self.nodes.push(node);
            idx
        }
    }

    /// Puts node `idx` on the vacant list for reuse.
    pub(super) fn vacate(&mut self, idx: u32) {
        let n = &mut self.nodes[idx as usize];
        n.state = State::Vacant;
        n.next_free = self.vacant;
        self.vacant = idx;
    }

    /// Links node `idx` into the free list of its bin and counts its bytes as free.
    pub(super) fn insert_free(&mut self, idx: u32) {
        let size = self.nodes[idx as usize].size;
        let (fl, sl) = mapping_insert(size);
        let head = self.heads[fl][sl];
        {
            let n = &mut self.nodes[idx as usize];
            n.state = State::Free;
            n.prev_free = NIL;
            n.next_free = head;
        }
        if head != NIL {
            self.nodes[head as usize].prev_free = idx;
        }
        self.heads[fl][sl] = idx;
        self.sl_bitmap[fl] |= 1 << sl;
        self.fl_bitmap |= 1 << fl;
        self.free_bytes += size;
        self.dirty_bytes += self.nodes[idx as usize].dirty;
    }

    /// Unlinks free node `idx` from its bin; it is used from here on.
    pub(super) fn remove_free(&mut self, idx: u32) {
        let Node {
            size,
            prev_free,
            next_free,
            ..
        } = self.nodes[idx as usize];
        debug_assert_eq!(self.nodes[idx as usize].state, State::Free);
        if prev_free != NIL {
            self.nodes[prev_free as usize].next_free = next_free;
        } else {
            let (fl, sl) = mapping_insert(size);
            self.heads[fl][sl] = next_free;
            if next_free == NIL {
                self.sl_bitmap[fl] &= !(1 << sl);
                if self.sl_bitmap[fl] == 0 {
                    self.fl_bitmap &= !(1 << fl);
                }
            }
        }
        if next_free != NIL {
            self.nodes[next_free as usize].prev_free = prev_free;
        }
        self.nodes[idx as usize].state = State::Used;
        self.free_bytes -= size;
        self.dirty_bytes -= self.nodes[idx as usize].dirty;
    }

    /// Merges the free physical successor of node `idx` into it (out of its free list,
    /// its slot vacated) and returns the successor as it was. What may be resident of it
    /// stays counted in `idx`'s dirty range (the hull of both: an over-estimate where it
    /// spans a clean gap, which only makes a purge hand back clean pages). Used by a free
    /// (coalescing) and by growth in place.
    pub(super) fn absorb_next(&mut self, idx: u32) -> Node {
        let next = self.nodes[idx as usize].next_phys;
        debug_assert_eq!(self.nodes[next as usize].state, State::Free);
        self.remove_free(next);
        let nx = self.nodes[next as usize];
        let n = &mut self.nodes[idx as usize];
        (n.dirty_off, n.dirty) = hull((n.dirty_off, n.dirty), (n.size + nx.dirty_off, nx.dirty));
        n.size += nx.size;
        n.next_phys = nx.next_phys;
        if nx.next_phys != NIL {
            self.nodes[nx.next_phys as usize].prev_phys = idx;
        }
        self.vacate(next);
        nx
    }

    /// Splits `size` bytes off the front of used node `idx`; the rest becomes free.
    pub(super) fn split_tail(&mut self, idx: u32, size: usize) {
        let n = self.nodes[idx as usize];
        let rest = n.size - size;
        if rest < GRANULE {
            return;
        }
        let tail = self.new_node(Node {
            chunk: n.chunk,
            offset: n.offset + size,
            size: rest,
            prev_phys: idx,
            next_phys: n.next_phys,
            prev_free: NIL,
            next_free: NIL,
            state: State::Used,
            dirty: 0,
            dirty_off: 0,
            freed_at: n.freed_at,
            freed_seq: n.freed_seq,
        });
        let (off, len) = clip(n.dirty_off, n.dirty, size, n.size);
        self.nodes[tail as usize].dirty = len;
        self.nodes[tail as usize].dirty_off = off;
        if n.next_phys != NIL {
            self.nodes[n.next_phys as usize].prev_phys = tail;
        }
        let node = &mut self.nodes[idx as usize];
        node.size = size;
        node.next_phys = tail;
        self.insert_free(tail);
    }

    /// Splits `pad` bytes off the front of used node `idx` as a free block; returns the
    /// node that now holds the rest.
    pub(super) fn split_head(&mut self, idx: u32, pad: usize) -> u32 {
        let n = self.nodes[idx as usize];
        let rest = self.new_node(Node {
            chunk: n.chunk,
            offset: n.offset + pad,
            size: n.size - pad,
            prev_phys: idx,
            next_phys: n.next_phys,
            prev_free: NIL,
            next_free: NIL,
            state: State::Used,
            dirty: 0,
            dirty_off: 0,
            freed_at: n.freed_at,
            freed_seq: n.freed_seq,
        });
        let (off, len) = clip(n.dirty_off, n.dirty, pad, n.size);
        self.nodes[rest as usize].dirty = len;
        self.nodes[rest as usize].dirty_off = off;
        let (head_off, head_len) = clip(n.dirty_off, n.dirty, 0, pad);
        if n.next_phys != NIL {
            self.nodes[n.next_phys as usize].prev_phys = rest;
        }
        let head = &mut self.nodes[idx as usize];
        head.size = pad;
        head.dirty = head_len;
        head.dirty_off = head_off;
        head.next_phys = rest;
        // The head's physical predecessor is used (free neighbours never touch), so the
        // head goes straight into a free list.
        self.insert_free(idx);
        rest
    }

    /// Address of node `idx` in the pool's address space.
    pub(super) fn addr(&self, idx: u32) -> usize {
        let n = &self.nodes[idx as usize];
        self.chunks[n.chunk as usize].expect("live chunk").base + n.offset
    }
}
