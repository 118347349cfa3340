//! The cleanup completion validator: what a cleanup says it gave back is held against
//! what the pools' ledgers moved while it ran.
//!
//! Before a run the engine reads every device's [`PoolLedger`]; after it, again. Two
//! things must hold:
//! - **Accounting**: mapped bytes moved only by growth and release
//!   (`before.mapped + grown - released == after.mapped`, per device). A cleanup that
//!   dropped a chunk without the pool counting it breaks this.
//! - **Claims**: the chunk bytes the run reports as released are no more than the pools
//!   released meanwhile, and the purged bytes no more than the pools purged. Frees on
//!   other threads may release chunks too (a GPU device releases a chunk at the free
//!   that empties it), so the pools may have given back more than the run claims, never
//!   less.
//!
//! A run that fails either check is a mismatch: an event
//! ([`MemoryEvent::CleanupMismatch`](crate::MemoryEvent::CleanupMismatch)), a count in
//! [`CleanupStats::mismatches`](super::CleanupStats::mismatches), and an error for a
//! caller that waits on the run ([`MemoryManager::try_trim`](crate::MemoryManager::try_trim)).
#![deny(unsafe_code)]

use crate::pool::{PoolLedger, TrimReport};

/// What the validator found of one cleanup run.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Validation {
    /// Mapped bytes over every device before the run.
    pub mapped_before: usize,
    /// And after it.
    pub mapped_after: usize,
    /// Committed (possibly resident) bytes before the run.
    pub committed_before: usize,
    /// And after it.
    pub committed_after: usize,
    /// Chunk bytes the run claims it released.
    pub claimed_released: usize,
    /// Chunk bytes the pools released while it ran.
    pub observed_released: usize,
    /// Page bytes the run claims it handed back.
    pub claimed_purged: usize,
    /// Page bytes the pools handed back while it ran.
    pub observed_purged: usize,
    /// Whether both checks held.
    pub ok: bool,
    /// What failed, for people (empty when `ok`).
    pub detail: String,
}

/// The ledgers of every device, read one after the other.
pub(crate) fn sample(devices: &[crate::pool::hybrid::DevicePool]) -> Vec<PoolLedger> {
    devices.iter().map(|d| d.ledger()).collect()
}

/// Checks a run's claim `claim` against the ledgers read before and after it.
pub fn validate(before: &[PoolLedger], after: &[PoolLedger], claim: &TrimReport) -> Validation {
    let mut v = Validation {
        claimed_released: claim.bytes_released,
        claimed_purged: claim.bytes_purged,
        ..Validation::default()
    };
    let mut problems = Vec::new();
    for (i, (b, a)) in before.iter().zip(after).enumerate() {
        v.mapped_before += b.mapped;
        v.mapped_after += a.mapped;
        v.committed_before += b.committed;
        v.committed_after += a.committed;
        let grown = a.grown.wrapping_sub(b.grown);
        let released = a.released.wrapping_sub(b.released);
        v.observed_released += released;
        v.observed_purged += a.purged.wrapping_sub(b.purged);
        let expected = (b.mapped + grown).checked_sub(released);
        if expected != Some(a.mapped) {
            problems.push(format!(
                "device {i}: {} B mapped before, {grown} B grown, {released} B released, \
                 but {} B mapped after",
                b.mapped, a.mapped
            ));
        }
    }
    if before.len() != after.len() {
        problems.push(format!(
            "{} devices before, {} after",
            before.len(),
            after.len()
        ));
    }
    if v.claimed_released > v.observed_released {
        problems.push(format!(
            "claims {} B of chunks released, the pools released {} B",
            v.claimed_released, v.observed_released
        ));
    }
    if v.claimed_purged > v.observed_purged {
        problems.push(format!(
            "claims {} B of pages handed back, the pools handed back {} B",
            v.claimed_purged, v.observed_purged
        ));
    }
    v.ok = problems.is_empty();
    v.detail = problems.join("; ");
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(mapped: usize, grown: usize, released: usize, purged: usize) -> PoolLedger {
        PoolLedger {
            mapped,
            committed: mapped,
            grown,
            released,
            purged,
        }
    }

    #[test]
    fn an_honest_claim_passes_and_a_larger_one_fails() {
        let before = [l(10 << 20, 10 << 20, 0, 0)];
        let after = [l(6 << 20, 10 << 20, 4 << 20, 1 << 20)];
        let honest = TrimReport {
            bytes_released: 4 << 20,
            bytes_purged: 1 << 20,
            ..TrimReport::default()
        };
        let v = validate(&before, &after, &honest);
        assert!(v.ok, "{}", v.detail);
        assert_eq!((v.mapped_before, v.mapped_after), (10 << 20, 6 << 20));
        let boast = TrimReport {
            bytes_released: 5 << 20,
            ..honest
        };
        let v = validate(&before, &after, &boast);
        assert!(!v.ok);
        assert!(v.detail.contains("claims 5242880 B"), "{}", v.detail);
        let purge_boast = TrimReport {
            bytes_purged: 2 << 20,
            ..honest
        };
        assert!(!validate(&before, &after, &purge_boast).ok);
    }

    #[test]
    fn mapped_bytes_that_moved_without_growth_or_release_fail() {
        // 4 MiB vanished from the mapped bytes with no release counted.
        let before = [l(10 << 20, 10 << 20, 0, 0)];
        let after = [l(6 << 20, 10 << 20, 0, 0)];
        let v = validate(&before, &after, &TrimReport::default());
        assert!(!v.ok);
        assert!(v.detail.contains("mapped after"), "{}", v.detail);
        // Growth on another thread meanwhile is accounted for.
        let after = [l(14 << 20, 14 << 20, 0, 0)];
        assert!(validate(&before, &after, &TrimReport::default()).ok);
    }
}
