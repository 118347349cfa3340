//! The target ours is held to, and how a verdict against it reads: shared by the peak
//! reserved / peak live section of `bench` and the trace verdict of `replay`, so the two
//! judge alike.

/// The allocators ours must be lower than (the `limit` row is shown but not compared: it
/// is a speed floor that pre-fills every size class, not an allocator).
pub const RATIO_PEERS: [&str; 3] = ["glibc", "mimalloc", "jemalloc"];
/// Ours' target for peak reserved / peak live.
pub const RATIO_TARGET: f64 = 1.10;

/// Why ours' peak reserved / peak live misses [`RATIO_TARGET`], if it does.
pub(super) fn over_target(ours: f64) -> Option<String> {
    (ours > RATIO_TARGET).then(|| format!("ours {ours:.2} > {RATIO_TARGET:.2}"))
}

/// A verdict from the reasons for a miss: `(true, met)` when there are none, else
/// `(false, "missed (reason; ...)")`.
pub(super) fn judge(why: &[String], met: String) -> (bool, String) {
    if why.is_empty() {
        (true, met)
    } else {
        (false, format!("missed ({})", why.join("; ")))
    }
}
