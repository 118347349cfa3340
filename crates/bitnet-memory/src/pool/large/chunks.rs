//! The chunk table of the large pool: growth by one chunk, where a chunk lies in the
//! pool's address space, which chunk holds an address, and chunks handed back.
#![deny(unsafe_code)]

use super::{Grant, GrowError, Held, LargePool, Released};
use crate::device::{Chunk, DeviceBackend, DeviceError};
use crate::pool::strategy::BlockStrategy as _;
use crate::pool::strategy::SysVec;
use std::alloc::System;

/// Where the pool's own address space for chunks without a host address starts: above
/// every user-space host address of x86-64 and aarch64 (48-bit), so a synthetic block
/// address never equals a host one in tables keyed by address.
pub(super) const SYNTHETIC_BASE: usize = 1 << 48;

impl LargePool {
    /// Bytes the next chunk should have: an eighth of what is held in shared chunks
    /// (dedicated ones left out), rounded up to whole 2 MiB, within the pool's chunk sizes.
    pub(super) fn growth(&self) -> usize {
        ((self.reserved - self.dedicated_bytes) / 8)
            .next_multiple_of(2 << 20)
            .clamp(self.min_chunk, self.max_chunk)
    }

    /// Adds a chunk that serves `size` bytes at `align`: of the usual growth where the
    /// budget of `g` allows, else just big enough.
    pub(super) fn grow(
        &mut self,
        size: usize,
        align: usize,
        g: &Grant<'_>,
    ) -> Result<(), GrowError> {
        let budget = g.budget;
        let (limit, name) = self.chunk_limit;
        let (mut csize, mut calign) = self.strategy.chunk_request(size, align, self.growth());
        if self.reserved.saturating_add(csize) > budget || csize > limit {
            // Shrink the growth to what this request needs before giving up.
            (csize, calign) = self.strategy.chunk_request(size, align, 0);
            if csize > limit {
                return Err(GrowError::TooLarge { limit, name });
            }
            if self.reserved.saturating_add(csize) > budget {
                return Err(GrowError::Budget { needed: csize });
            }
        }
        let chunk = g
            .backend
            .allocate_chunk(csize, calign)
            .map_err(GrowError::Device)?;
        let chunk = self.place(chunk, calign, g.backend)?;
        let id = self.insert_chunk(chunk);
        self.strategy.add_chunk(id, chunk.base, chunk.size);
        Ok(())
    }

    /// Puts a placed chunk into the tables; its id.
    pub(super) fn insert_chunk(&mut self, chunk: Held) -> u32 {
        let id = match self.free_ids.pop() {
            Some(id) => id,
            None => {
                self.chunks.push(None);
                u32::try_from(self.chunks.len() - 1).expect("fewer than 2^32 chunks")
            }
        };
        self.chunks[id as usize] = Some(chunk);
        let at = self.by_base.partition_point(|&(b, _)| b < chunk.base);
        self.by_base.insert(at, (chunk.base, id));
        self.reserved += chunk.size;
        self.grown_total += chunk.size;
        if chunk.dedicated {
            self.dedicated_bytes += chunk.size;
        }
        self.resident.add_chunk(id, chunk.size);
        id
    }

    /// Gives a fresh chunk its base in the pool's address space: its host address on a
    /// host-visible device (which must give one, aligned), else the next synthetic range
    /// aligned to `align`, never reused.
    pub(super) fn place(
        &mut self,
        chunk: Chunk,
        align: usize,
        backend: &dyn DeviceBackend,
    ) -> Result<Held, GrowError> {
        let bad = |reason: &str| {
            GrowError::Device(DeviceError {
                size: chunk.size,
                align,
                reason: format!("{}: {reason}", backend.name()),
                lost: false,
            })
        };
        let base = if backend.host_visible() {
            match chunk.host {
                Some(h) if h != 0 && h.is_multiple_of(align) => h,
                _ => {
                    backend.release_chunk(chunk);
                    return Err(bad(
                        "a host-visible backend gave a chunk without an aligned host address",
                    ));
                }
            }
        } else {
            let base = self.next_synthetic.next_multiple_of(align.max(4096));
            let Some(end) = base.checked_add(chunk.size) else {
                backend.release_chunk(chunk);
                return Err(bad("the pool's address space for device chunks is used up"));
            };
            self.next_synthetic = end;
            base
        };
        Ok(Held {
            chunk,
            base,
            size: chunk.size,
            dedicated: false,
        })
    }

    /// Every free block as `(chunk, chunk id, offset in the chunk, length)`, in address
    /// order within each chunk.
    pub(super) fn free_spans(&self) -> SysVec<(Held, u32, usize, usize)> {
        let mut spans = SysVec::new_in(System);
        self.strategy.free_block_spans(&mut spans);
        let mut out = SysVec::with_capacity_in(spans.len(), System);
        for (addr, len) in spans {
            // The chunk holding `addr`: the last one starting at or before it.
            let i = self.by_base.partition_point(|&(b, _)| b <= addr);
            let id = self.by_base[i.checked_sub(1).expect("a free block in a chunk")].1;
            let c = self.chunks[id as usize].expect("live chunk");
            debug_assert!(addr < c.base + c.size, "a free block in a chunk");
            out.push((c, id, addr - c.base, len));
        }
        out
    }

    /// The chunk holding `addr` and the offset of `addr` in it, if a chunk holds it.
    pub fn locate(&self, addr: usize) -> Option<(Chunk, usize)> {
        let i = self.by_base.partition_point(|&(b, _)| b <= addr);
        let id = self.by_base[i.checked_sub(1)?].1;
        let c = self.chunks[id as usize]?;
        (addr < c.base + c.size).then(|| (c.chunk, addr - c.base))
    }

    /// Takes chunk `id` out of the tables (its memory goes back to the device after) and
    /// counts it as released.
    pub(super) fn forget_chunk(&mut self, id: u32) -> Chunk {
        let held = self.chunks[id as usize].take().expect("live chunk");
        self.by_base.retain(|&(_, i)| i != id);
        self.free_ids.push(id);
        self.reserved -= held.size;
        if held.dedicated {
            self.dedicated_bytes -= held.size;
        }
        self.released_total.0 += 1;
        self.released_total.1 += held.size;
        self.resident.remove_chunk(id);
        held.chunk
    }

    /// Gives every wholly free chunk back to the device.
    pub fn release_empty(&mut self, backend: &dyn DeviceBackend) -> Released {
        self.release_idle(backend, u64::MAX)
    }

    /// Gives back every wholly free chunk whose last block was freed before
    /// `idle_before` (ms on [`now_ms`](Self::now_ms)'s clock).
    pub fn release_idle(&mut self, backend: &dyn DeviceBackend, idle_before: u64) -> Released {
        let mut ids = SysVec::new_in(System);
        self.strategy.remove_empty_chunks(&mut ids, idle_before);
        let mut r = Released::default();
        for id in ids {
            let chunk = self.forget_chunk(id);
            r.chunks += 1;
            r.bytes += chunk.size;
            backend.release_chunk(chunk);
        }
        r
    }

    /// Gives every chunk back, owned or not. Only for the pool's own drop.
    pub fn release_all(&mut self, backend: &dyn DeviceBackend) {
        for c in self.chunks.iter_mut() {
            if let Some(held) = c.take() {
                backend.release_chunk(held.chunk);
            }
        }
        self.reserved = 0;
        self.by_base.clear();
    }
}
