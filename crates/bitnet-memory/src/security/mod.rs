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
