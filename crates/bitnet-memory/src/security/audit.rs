//! The audit log of security events (the seed's `MemorySecuritySystem`): a bounded ring,
//! the oldest entries dropped first and counted.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What kind of security event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    /// A canary was found overwritten (at a free or by `validate`).
    Corruption,
    /// A raw block free or use was refused (double free, stale or foreign handle).
    InvalidFree,
    /// A sensitive block was zeroed at its free.
    SensitiveWiped,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// Number of the event since the manager started (entries dropped keep theirs).
    pub seq: u64,
    /// Time since the manager started.
    pub at: Duration,
    /// What happened.
    pub kind: AuditKind,
    /// The block's address.
    pub addr: usize,
    /// The block's size in bytes.
    pub size: usize,
    /// What was found.
    pub detail: String,
}

/// The audit log: the last `capacity` events.
#[derive(Debug)]
pub struct AuditLog {
    started: Instant,
    capacity: usize,
    ring: Mutex<(VecDeque<AuditEvent>, u64)>,
}

impl AuditLog {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            started: Instant::now(),
            capacity,
            ring: Mutex::new((VecDeque::new(), 0)),
        }
    }

    /// Appends an event, dropping the oldest past the capacity.
    pub(crate) fn push(&self, kind: AuditKind, addr: usize, size: usize, detail: String) {
        let mut r = self.ring.lock();
        let seq = r.1;
        r.1 += 1;
        if self.capacity == 0 {
            return;
        }
        if r.0.len() == self.capacity {
            r.0.pop_front();
        }
        r.0.push_back(AuditEvent {
            seq,
            at: self.started.elapsed(),
            kind,
            addr,
            size,
            detail,
        });
    }

    /// The events kept, oldest first.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.ring.lock().0.iter().cloned().collect()
    }

    /// Events dropped because the log was full.
    pub fn dropped(&self) -> u64 {
        let r = self.ring.lock();
        r.1 - r.0.len() as u64
    }
}
