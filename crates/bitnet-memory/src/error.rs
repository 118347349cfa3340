//! Errors of the memory manager.
//!
//! Every variant carries the sizes that explain it and answers one question for the caller
//! through [`MemoryError::is_retryable`]: can trying again (after freeing something, or
//! later) help?

use crate::device::DeviceId;

/// What went wrong with a request to the memory manager.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MemoryError {
    /// The layout can never be served: retrying cannot help.
    #[error("invalid layout (size {size} B, align {align} B): {reason}")]
    InvalidLayout {
        /// Requested size in bytes.
        size: usize,
        /// Requested alignment in bytes.
        align: usize,
        /// Why the layout is refused.
        reason: &'static str,
    },
    /// Serving the request would take the device past its configured budget, even after
    /// the caches were trimmed. Freeing live allocations (or raising the budget) helps.
    #[error(
        "budget exceeded on {device}: requested {requested} B needs {needed} B more reserved, \
         budget {budget} B, reserved {reserved} B, live {live} B"
    )]
    BudgetExceeded {
        /// Device whose budget was hit.
        device: DeviceId,
        /// Requested size in bytes.
        requested: usize,
        /// Bytes of new device memory the request needed.
        needed: usize,
        /// The device budget in bytes.
        budget: usize,
        /// Bytes reserved from the device when the request failed.
        reserved: usize,
        /// Bytes live in allocations when the request failed.
        live: usize,
    },
    /// The device refused memory after the caches were trimmed and the request retried.
    #[error(
        "out of memory on {device}: requested {requested} B; reserved {reserved} B, live {live} B, \
         largest free block {largest_free} B, free {free} B (external fragmentation {fragmentation:.1}%); \
         device: {cause}; pool: {pool_report}"
    )]
    OutOfMemory {
        /// Device that refused.
        device: DeviceId,
        /// Requested size in bytes.
        requested: usize,
        /// Bytes reserved from the device when the request failed.
        reserved: usize,
        /// Bytes live in allocations when the request failed.
        live: usize,
        /// Largest free block in the pool, in bytes.
        largest_free: usize,
        /// Free bytes held by the pool (reserved but not live).
        free: usize,
        /// External fragmentation in percent: `100 * (1 - largest_free / free)`.
        fragmentation: f64,
        /// What the device said.
        cause: String,
        /// The pool's fragmentation report at the failure: utilization, internal waste,
        /// cached, stranded and free bytes per pool, free block sizes.
        pool_report: String,
    },
    /// The request is above a limit of the device (its largest buffer, its largest
    /// binding): it never fits, whatever is freed; retrying cannot help. Distinct from
    /// [`BudgetExceeded`](Self::BudgetExceeded) and [`OutOfMemory`](Self::OutOfMemory),
    /// which say the device is full now.
    #[error(
        "request of {size} B on {device} is larger than the device's {limit_name} \
         ({limit} B): it never fits, retrying cannot help"
    )]
    TooLarge {
        /// Device whose limit it is.
        device: DeviceId,
        /// Requested size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
        /// The device's name for the limit (e.g. `max_storage_buffer_binding_size`).
        limit_name: &'static str,
    },
    /// No device could be had, or the device is gone (a lost GPU device): `what` says
    /// what was looked for (backends tried, name filter) or what happened. Retrying the
    /// same request cannot help; making a new device may.
    #[error("device unavailable: {what}")]
    DeviceUnavailable {
        /// What was looked for, or what happened to the device.
        what: String,
    },
    /// A device operation on a block (an upload, a download, a binding) asked for what
    /// the block cannot give: a block of another device, data longer than the block.
    /// Retrying cannot help.
    #[error("invalid device access: {reason}")]
    InvalidDeviceAccess {
        /// What was wrong.
        reason: String,
    },
    /// A configuration field is out of range.
    #[error("invalid configuration: {reason}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The device named in the request is not configured in this manager.
    #[error("no device {0} in this memory manager")]
    UnknownDevice(DeviceId),
    /// A raw block was freed twice, or was never allocated by this manager.
    #[error("invalid free of {addr:#x} ({size} B): {reason}")]
    InvalidFree {
        /// Address of the block.
        addr: usize,
        /// Size the caller passed, in bytes.
        size: usize,
        /// Why the free is refused (double free, unknown block, size mismatch).
        reason: &'static str,
    },
    /// A cleanup's claim of what it gave back does not match what the pools' ledgers
    /// show (see `cleanup::validate`): a bug in the pool or the engine, not the caller's.
    #[error(
        "cleanup ({strategy}) claims {claimed} B given back, the pools show {observed} B: {detail}"
    )]
    CleanupMismatch {
        /// Why the cleanup ran.
        strategy: String,
        /// Bytes claimed.
        claimed: usize,
        /// Bytes the ledgers show.
        observed: usize,
        /// What failed.
        detail: String,
    },
    /// A strict scope ended with allocations made inside it still live and not persisted
    /// ([`MemoryManager::strict_scope`](crate::MemoryManager::strict_scope)).
    #[error("scope '{scope}' leaked {count} allocation(s), {bytes} B, from: {}", sites.join(", "))]
    ScopeLeaked {
        /// The scope's name.
        scope: String,
        /// Allocations still live.
        count: usize,
        /// Their bytes.
        bytes: usize,
        /// Their sites (`file:line:column`, with a count when several came from one);
        /// untracked ones as `(untracked, N B blocks)`.
        sites: Vec<String>,
    },
    /// A raw block handle names a block that was freed, and maybe handed out again since
    /// (generation-tagged handles, [`RawBlock::generation`](crate::RawBlock::generation)):
    /// the call is refused and changes nothing. Retrying cannot help.
    #[error("stale raw block handle {addr:#x} ({size} B, generation {generation}): {reason}")]
    StaleHandle {
        /// Address of the block.
        addr: usize,
        /// Size the handle gives, in bytes.
        size: usize,
        /// The handle's generation.
        generation: u64,
        /// What happened to the block (freed; freed and handed out again as generation n).
        reason: String,
    },
    /// Hardened mode found a canary before or after a block overwritten (an underflow or
    /// an overflow by its owner), at the block's free or by
    /// [`MemoryManager::validate`](crate::MemoryManager::validate). Retrying cannot help:
    /// the program wrote where it must not.
    #[error(
        "memory corruption: canary {side} the block {addr:#x} ({size} B, allocated at {site}) \
         overwritten: first wrong byte at offset {offset}, found {found}"
    )]
    CorruptionDetected {
        /// The owner's first byte.
        addr: usize,
        /// The owner's size in bytes.
        size: usize,
        /// Where the block was allocated (`file:line:column`).
        site: String,
        /// `before` (underflow) or `after` (overflow).
        side: &'static str,
        /// Offset of the first wrong byte from the owner's first byte.
        offset: isize,
        /// The canary's bytes as found, in hex.
        found: String,
    },
    /// Leak detection found allocations that should have been freed (see
    /// [`MemoryManager::check_leaks`](crate::MemoryManager::check_leaks)). Retrying cannot
    /// help: the program must free them.
    #[error("memory leak detected: {leak_count} allocation(s), {memory_size} B")]
    MemoryLeakDetected {
        /// Leaked allocations.
        leak_count: usize,
        /// Their bytes (requested sizes where known, block sizes otherwise).
        memory_size: usize,
    },
}

impl MemoryError {
    /// Whether the same request can succeed later: after live memory is freed
    /// (`BudgetExceeded`, `OutOfMemory`). Invalid layouts and invalid frees never can.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::BudgetExceeded { .. } | Self::OutOfMemory { .. })
    }

    /// The size in bytes of the request that failed, where the error has one.
    pub fn requested(&self) -> Option<usize> {
        match self {
            Self::InvalidLayout { size, .. }
            | Self::InvalidFree { size, .. }
            | Self::StaleHandle { size, .. }
            | Self::CorruptionDetected { size, .. } => Some(*size),
            Self::BudgetExceeded { requested, .. } | Self::OutOfMemory { requested, .. } => {
                Some(*requested)
            }
            Self::TooLarge { size, .. } => Some(*size),
            Self::UnknownDevice(_)
            | Self::DeviceUnavailable { .. }
            | Self::InvalidDeviceAccess { .. }
            | Self::InvalidConfig { .. }
            | Self::MemoryLeakDetected { .. }
            | Self::CleanupMismatch { .. }
            | Self::ScopeLeaked { .. } => None,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = MemoryError> = std::result::Result<T, E>;
