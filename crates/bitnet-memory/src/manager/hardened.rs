//! Hardened mode in the manager (see [`crate::security`]): guarded allocations with
//! canaries, their checked and wiped frees, `validate`, sensitive buffers, the audit log.

use super::{Inner, MemoryManager};
use crate::allocation::Allocation;
use crate::error::{MemoryError, Result};
use crate::pool::hybrid::DevicePool;
use crate::security::{canary, AuditLog, Corruption, Guarded, CANARY_BYTES};
use crate::tracking::Decision;
use std::alloc::Layout;
use std::panic::Location;

/// Alignments up to this get a canary before the block (a bigger one would cost a whole
/// alignment of padding per block).
const FRONT_ALIGN_MAX: usize = 4096;

impl MemoryManager {
    /// A guarded block of `size` bytes at `align` on `pool` (host-visible): canaries
    /// before (alignments up to 4 KiB) and after it, recorded for its free and for
    /// [`validate`](Self::validate).
    pub(super) fn allocate_guarded<'m>(
        &'m self,
        pool: &'m DevicePool,
        (size, align): (usize, usize),
        decision: Decision,
        site: &'static Location<'static>,
        sensitive: bool,
    ) -> Result<Allocation<'m>> {
        let front = if align <= FRONT_ALIGN_MAX {
            align.max(CANARY_BYTES)
        } else {
            0
        };
        let total = front
            .checked_add(size)
            .and_then(|t| t.checked_add(CANARY_BYTES))
            .filter(|&t| t <= isize::MAX as usize)
            .ok_or(MemoryError::InvalidLayout {
                size,
                align,
                reason: "size with its canaries exceeds isize::MAX",
            })?;
        let (block, token) = match pool.allocate_cached(total, align) {
            Some(r) => r,
            None => self.serve(pool, total, align, || pool.allocate_once(total, align))?,
        };
        let g = Guarded {
            block,
            total,
            front,
            size,
            site,
            sensitive,
        };
        // SAFETY: the pool just handed out `block`, `total` bytes on a host-visible device.
        unsafe { canary::arm(&g) };
        let addr = block + front;
        self.inner.security.insert(addr, g);
        let slot = self.record_allocation(pool.id, (addr, token), size, decision, site, None);
        Ok(Allocation::new(
            addr,
            size,
            token,
            slot,
            pool.id,
            &self.inner,
        ))
    }

    /// Allocates a buffer for secrets on the CPU: zeroed when it is freed, in any mode
    /// (and guarded by canaries like every block of hardened mode).
    #[track_caller]
    pub fn try_allocate_sensitive(&self, layout: Layout) -> Result<Allocation<'_>> {
        let pool = self.pool(crate::device::DeviceId::CPU)?;
        let (size, align) = (layout.size(), layout.align());
        if size == 0 {
            return self.try_allocate(layout);
        }
        super::check_layout(size, align)?;
        let decision = self.inner.tracker.decide(size);
        self.allocate_guarded(pool, (size, align), decision, Location::caller(), true)
    }

    /// Checks the canaries of every guarded block (hardened mode and sensitive buffers):
    /// the first overwritten one, or one found at a free since the last call, is
    /// [`MemoryError::CorruptionDetected`] with the block, its allocation site and the
    /// bytes found. Every corruption found also goes to the audit log.
    pub fn validate(&self) -> Result<()> {
        match self.inner.security.validate().into_iter().next() {
            None => Ok(()),
            Some(c) => Err(corruption_error(c)),
        }
    }

    /// The audit log of security events (corruption found, refused raw frees, sensitive
    /// buffers wiped).
    pub fn audit_log(&self) -> &AuditLog {
        &self.inner.security.audit
    }

    /// Corruptions found since the start (at frees and by [`validate`](Self::validate)).
    pub fn corruptions_found(&self) -> u64 {
        self.inner
            .security
            .corruptions
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

fn corruption_error(c: Corruption) -> MemoryError {
    MemoryError::CorruptionDetected {
        addr: c.addr,
        size: c.size,
        site: c.site,
        side: c.side,
        offset: c.offset,
        found: c.found.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

impl Inner {
    /// Frees the guarded block whose owner's address is `addr`, if there is one: canaries
    /// checked, bytes wiped, the pool block freed. `false` when `addr` is not guarded.
    #[cold]
    pub(super) fn free_guarded(&self, device: u8, addr: usize, token: u64, slot: u32) -> bool {
        // SAFETY: a guarded block is live until this free and host-visible.
        let Some(g) = (unsafe { self.security.take(addr) }) else {
            return false;
        };
        self.free_unguarded(device, g.block, token, g.total, slot);
        true
    }
}
