//! Replay of a trace through a memory manager, to measure what the pool reserves.

use crate::error::{ReportError, Result};
use bitnet_memory::trace::{LineEvent, Op};
use bitnet_memory::{Allocation, MemoryManager};
use std::alloc::Layout;
use std::collections::HashMap;

/// Pool figures read from the manager's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolReading {
    pub(crate) reserved: u64,
    pub(crate) free: u64,
    pub(crate) largest_free: u64,
}

/// Holds the replayed allocations; they are freed when the replayer is dropped.
pub(crate) struct Replayer<'m> {
    mm: &'m MemoryManager,
    live: HashMap<u64, Allocation<'m>>,
}

impl<'m> Replayer<'m> {
    pub(crate) fn new(mm: &'m MemoryManager) -> Self {
        Self {
            mm,
            live: HashMap::new(),
        }
    }

    /// Applies one event. The caller has checked that ids match up.
    pub(crate) fn apply(&mut self, le: &LineEvent) -> Result<()> {
        let fail = |message: String| ReportError::Replay {
            line: le.line,
            message,
        };
        let ev = &le.event;
        match ev.op {
            Op::Alloc => {
                let size = usize::try_from(ev.size)
                    .map_err(|_| fail(format!("size {} does not fit this machine", ev.size)))?;
                let align = usize::try_from(ev.align)
                    .map_err(|_| fail(format!("align {} does not fit this machine", ev.align)))?;
                let layout = Layout::from_size_align(size, align)
                    .map_err(|e| fail(format!("layout {size} B at align {align}: {e}")))?;
                let a = self
                    .mm
                    .try_allocate(layout)
                    .map_err(|e| fail(e.to_string()))?;
                self.live.insert(ev.id, a);
            }
            Op::Free => {
                self.live.remove(&ev.id);
            }
        }
        Ok(())
    }

    /// The address the pool gave block `id`, while it is live.
    pub(crate) fn addr(&self, id: u64) -> Option<u64> {
        self.live.get(&id).map(|a| a.as_ptr().addr() as u64)
    }

    /// Reads the manager's figures now.
    pub(crate) fn read(&self) -> PoolReading {
        let m = self.mm.metrics();
        let free: u64 = m.devices.iter().map(|d| d.free_bytes() as u64).sum();
        PoolReading {
            reserved: m.reserved_bytes() as u64,
            free,
            // `reserved` counts committed memory only; a free block may reach into mapped
            // pages never touched, so its committed part is at most the free bytes.
            largest_free: m
                .devices
                .iter()
                .map(|d| d.large.largest_free as u64)
                .max()
                .unwrap_or(0)
                .min(free),
        }
    }
}
