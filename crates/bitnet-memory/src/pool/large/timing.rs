//! Measured cost of the large pool's operations, per strategy: one allocate or free in
//! eight is timed (two clock reads under the pool's lock), so the figures the optimizer
//! compares strategies by are measured, not estimated.
#![deny(unsafe_code)]

use super::LargePool;
use crate::pool::strategy::BlockStrategy as _;
use crate::pool::strategy::SysVec;
use std::alloc::System;
use std::time::Instant;

/// One operation in this many is timed.
pub const SAMPLE_EVERY: u64 = 8;

impl LargePool {
    /// Runs `f` (one user allocate or free), timing it when its turn comes.
    pub(super) fn timed<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        self.ops += 1;
        if !self.ops.is_multiple_of(SAMPLE_EVERY) {
            return f(self);
        }
        let t = Instant::now();
        let r = f(self);
        let ns = t.elapsed().as_nanos() as u64;
        let name = self.strategy.name();
        // On the system allocator: this runs under the pool's lock, and the pool may be
        // the global allocator.
        match self.timing.iter_mut().find(|t| t.0 == name) {
            Some(e) => {
                e.1 += 1;
                e.2 += ns;
            }
            None => self.timing.push((name, 1, ns)),
        }
        r
    }

    /// `(strategy, timed operations, their ns)` of every strategy this pool has used,
    /// copied on the system allocator (callers hold the pool's lock).
    pub fn timing(&self) -> SysVec<(&'static str, u64, u64)> {
        let mut out = SysVec::new_in(System);
        out.extend(self.timing.iter().copied());
        out
    }
}
