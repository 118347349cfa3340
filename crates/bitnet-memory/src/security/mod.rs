//! Security: hardened mode (canaries, poisoning, zero-on-free, exact checks of the
//! allocator adapter's frees) and its audit log of security events, the seed's
//! `MemorySecuritySystem`.

/// Settings of hardened mode, off by default: [`MemoryConfig::hardened`](crate::MemoryConfig::hardened).
///
/// When `enabled`:
/// - every allocation of the manager (not movable ones) gets a canary of
///   [`CANARY_BYTES`] before it (alignments up to 4 KiB; a larger alignment would cost
///   a whole alignment of padding) and after it, checked when it is freed and by
///   [`MemoryManager::validate`](crate::MemoryManager::validate): an overwritten canary is
///   [`CorruptionDetected`](crate::MemoryError::CorruptionDetected) with the block, its
///   site and the bytes found;
/// - freed bytes are poisoned with [`POISON`] (or zeroed, see `zero_on_free`);
/// - [`PoolAlloc`](crate::global::PoolAlloc) checks every free exactly (a set of live
///   blocks) and puts a canary after each block;
/// - security events go to an audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct HardenedConfig {
    /// Turns hardened mode on. Default: `false`.
    pub enabled: bool,
    /// Fill the bytes of each freed block with [`POISON`], so a use after free reads
    /// garbage that stands out instead of the old owner's data. Default: `true`.
    pub poison_on_free: bool,
    /// Zero every freed block instead of poisoning it: every buffer is handled as
    /// sensitive. (Allocations made with
    /// [`try_allocate_sensitive`](crate::MemoryManager::try_allocate_sensitive) are zeroed
    /// when freed in any mode.) Default: `false`.
    pub zero_on_free: bool,
    /// Entries the audit log keeps, the oldest dropped first (and counted). Default: 1024.
    pub audit_capacity: usize,
}

impl Default for HardenedConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            poison_on_free: true,
            zero_on_free: false,
            audit_capacity: 1024,
        }
    }
}

/// Bytes of each canary of hardened mode.
pub const CANARY_BYTES: usize = 16;
/// The byte freed memory is filled with in hardened mode.
pub const POISON: u8 = 0xDD;

mod audit;
pub(crate) mod canary;

pub use audit::{AuditEvent, AuditKind, AuditLog};

use parking_lot::Mutex;
use std::collections::HashMap;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// A guarded block: what hardened mode remembers of one allocation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Guarded {
    /// The pool block (front canary first).
    pub(crate) block: usize,
    /// Its size in the pool: front + size + back canary.
    pub(crate) total: usize,
    /// Bytes before the owner's first byte (0: no front canary).
    pub(crate) front: usize,
    /// The owner's size.
    pub(crate) size: usize,
    /// Where it was allocated.
    pub(crate) site: &'static Location<'static>,
    /// Zeroed when freed, whatever the mode.
    pub(crate) sensitive: bool,
}

/// An overwritten canary: which block, where, what was found.
#[derive(Debug, Clone, PartialEq)]
pub struct Corruption {
    /// The owner's first byte.
    pub addr: usize,
    /// The owner's size.
    pub size: usize,
    /// Where the block was allocated (`file:line:column`).
    pub site: String,
    /// `"before"` (underflow) or `"after"` (overflow) the block.
    pub side: &'static str,
    /// Offset of the first wrong byte from the owner's first byte (negative: before it).
    pub offset: isize,
    /// The canary's bytes as found.
    pub found: Vec<u8>,
}

/// Hardened-mode state of one manager: the guarded blocks, the audit log.
#[derive(Debug)]
pub(crate) struct Security {
    /// Hardened mode is on: every allocation of a host-visible device is guarded.
    pub(crate) enabled: bool,
    pub(crate) config: HardenedConfig,
    /// Some block is guarded (hardened mode, or a sensitive allocation): frees look.
    active: AtomicBool,
    guarded: Mutex<HashMap<usize, Guarded>>,
    /// Corruption found at frees, not yet reported by `validate`.
    found_at_free: Mutex<Vec<Corruption>>,
    /// Corruptions found since the start (at frees and by validation).
    pub(crate) corruptions: AtomicU64,
    pub(crate) audit: AuditLog,
}

impl Security {
    pub(crate) fn new(config: &HardenedConfig) -> Self {
        Self {
            enabled: config.enabled,
            config: config.clone(),
            active: AtomicBool::new(config.enabled),
            guarded: Mutex::new(HashMap::new()),
            found_at_free: Mutex::new(Vec::new()),
            corruptions: AtomicU64::new(0),
            audit: AuditLog::new(config.audit_capacity),
        }
    }

    /// Whether a free must look for a guarded block.
    #[inline]
    pub(crate) fn active(&self) -> bool {
        self.active.load(Relaxed)
    }

    /// Records a guarded block, its canaries written, under the owner's address.
    pub(crate) fn insert(&self, addr: usize, g: Guarded) {
        self.active.store(true, Relaxed);
        self.guarded.lock().insert(addr, g);
    }

    /// Takes the guarded block at `addr` out (its free), if there is one: checks its
    /// canaries (a corruption goes to the audit log and to the next `validate`), wipes it
    /// (zeros when sensitive or `zero_on_free`, else poison when `poison_on_free`).
    ///
    /// # Safety
    /// A block found under `addr` is live and host-visible (the manager guards only
    /// such blocks and removes each once, at its free).
    pub(crate) unsafe fn take(&self, addr: usize) -> Option<Guarded> {
        let g = self.guarded.lock().remove(&addr)?;
        // SAFETY: the caller's contract: the block is live and the host may touch it.
        if let Some(c) = unsafe { canary::check(addr, &g) } {
            self.report(c.clone(), "at its free");
            self.found_at_free.lock().push(c);
        }
        let wipe = if g.sensitive || self.config.zero_on_free {
            Some(0)
        } else {
            self.config.poison_on_free.then_some(POISON)
        };
        if let Some(byte) = wipe {
            // SAFETY: as above; the whole pool block is the owner's until it is freed.
            unsafe { canary::wipe(&g, byte) };
            if g.sensitive {
                self.audit
                    .push(AuditKind::SensitiveWiped, addr, g.size, String::new());
            }
        }
        Some(g)
    }

    /// Counts a corruption and writes it to the audit log.
    fn report(&self, c: Corruption, when: &str) {
        self.corruptions.fetch_add(1, Relaxed);
        self.audit.push(
            AuditKind::Corruption,
            c.addr,
            c.size,
            format!(
                "canary {} the block overwritten (found {:02x?} at offset {}), found {when}; allocated at {}",
                c.side, c.found, c.offset, c.site
            ),
        );
    }

    /// Checks every guarded block's canaries; returns what was found at frees since the
    /// last call, then what is found now, first first.
    pub(crate) fn validate(&self) -> Vec<Corruption> {
        let mut out = std::mem::take(&mut *self.found_at_free.lock());
        let guarded = self.guarded.lock();
        for (&addr, g) in guarded.iter() {
            // SAFETY: every guarded block is live (removed at its free, under this lock)
            // and host-visible.
            if let Some(c) = unsafe { canary::check(addr, g) } {
                self.report(c.clone(), "by validate");
                out.push(c);
            }
        }
        out
    }
}
