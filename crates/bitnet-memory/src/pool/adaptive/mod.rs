//! Dynamic strategy selection for [`Strategy::Hybrid`](crate::Strategy::Hybrid): the
//! threshold between size classes (thread caches, one-block slabs from 64 KiB up) and best
//! fit (one lock, 16 B rounding) moves with the waste and the traffic the pool sees.
//!
//! - **Down to the cached sizes** when requests came for one-block classes that no thread
//!   cache may keep (classes bigger than `thread_cache_bytes`, the default's case from
//!   64 KiB up): each took the class's lock and the large pool's, and was rounded up to its
//!   class, for nothing a cache could give back. The threshold drops to the largest cached
//!   class (no less than 64 KiB), so those sizes take one lock and 16 B rounding.
//! - **Down** (by halves, to no less than 64 KiB) when the thread caches hold idle blocks of
//!   the classes above the lower threshold worth at least a quarter of those classes' live
//!   bytes and of the pool's overhead (committed minus live), while the overhead is above
//!   10% of live bytes: those sizes then go to best fit, which keeps no per-thread stock.
//! - **Up** (by doubling, to no more than the configured `small_threshold` nor past the
//!   largest cached class) when at least [`RAISE_RATE`] requests per second between the two
//!   thresholds took the large pool's lock: those sizes are frequent enough for the caches
//!   to pay.
//!
//! A switch waits [`COOLDOWN`] evaluations after the previous one. Each is reported with
//! its reason (`MemoryEvent::StrategyChanged`). A fixed strategy (`BestFit`, `BuddySystem`,
//! `SlabAllocator`) never moves, nor does a pool that an allocator adapter has used (they
//! free by size, so the class of a size must not change under them).
#![deny(unsafe_code)]

pub mod large;

use super::size_class::{self, SINGLE_BLOCK_CLASS};
use super::stats::PoolStats;
use crate::units::fmt_bytes;

/// Evaluations (background ticks, one per second by default) between two switches.
pub const COOLDOWN: u32 = 10;
/// Requests per second above the current threshold (and under the configured one) served
/// by the large pool from which the threshold goes up.
pub const RAISE_RATE: f64 = 1000.0;
/// The threshold never goes below the first class with one-block slabs.
pub const MIN_THRESHOLD: usize = SINGLE_BLOCK_CLASS;

/// What one evaluation looks at.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    /// The current threshold (largest request served by classes).
    pub threshold: usize,
    /// The configured threshold, the highest it may go.
    pub max_threshold: usize,
    /// The pool's counters now.
    pub metrics: &'a PoolStats,
    /// Requests above the current threshold and at or under `max_threshold` served by the
    /// large pool since the last evaluation.
    pub band_requests: u64,
    /// Seconds since the last evaluation.
    pub seconds: f64,
    /// Evaluations since the last switch.
    pub since_switch: u32,
    /// The largest class a thread cache may keep blocks of (0: none).
    pub cached_limit: usize,
    /// Requests served by one-block classes no thread cache keeps, since the last
    /// evaluation.
    pub uncacheable_requests: u64,
}

/// A move of the threshold, as
/// [`MemoryManager::adapt_strategy_now`](crate::MemoryManager::adapt_strategy_now) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThresholdChange {
    /// Device.
    pub device: crate::DeviceId,
    /// Largest request served by size classes before.
    pub old_threshold: usize,
    /// And from now on.
    pub new_threshold: usize,
    /// Why.
    pub reason: String,
}

/// A decision to move the threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Switch {
    /// The new threshold.
    pub threshold: usize,
    /// Why, with the figures.
    pub reason: String,
}

/// The class size at or under `bytes`: thresholds are class sizes.
fn class_floor(bytes: usize) -> usize {
    let c = size_class::class_of(bytes);
    if size_class::class_size(c) > bytes && c > 0 {
        size_class::class_size(c - 1)
    } else {
        size_class::class_size(c)
    }
}

/// Whether (and where) to move the threshold.
pub fn decide(o: &Observation<'_>) -> Option<Switch> {
    if o.since_switch < COOLDOWN {
        return None;
    }
    let m = o.metrics;
    let cached_floor = o.cached_limit.max(MIN_THRESHOLD);
    if o.threshold > cached_floor && o.uncacheable_requests > 0 {
        return Some(Switch {
            threshold: cached_floor,
            reason: format!(
                "{} requests in {:.1} s for one-block classes of {}..{}, which no thread cache keeps (it keeps blocks up to {}): each took two locks and its class's rounding; sizes above {} go to best fit",
                o.uncacheable_requests,
                o.seconds,
                fmt_bytes(cached_floor + 1),
                fmt_bytes(o.threshold),
                fmt_bytes(o.cached_limit),
                fmt_bytes(cached_floor),
            ),
        });
    }
    if o.threshold > MIN_THRESHOLD {
        let lower = class_floor(o.threshold / 2).max(MIN_THRESHOLD);
        let band = m
            .small
            .classes
            .iter()
            .filter(|c| c.block_size > lower && c.block_size <= o.threshold);
        let (idle, live) = band.fold((0, 0), |(i, l), c| {
            (
                i + c.cached_blocks * c.block_size,
                l + c.live_blocks * c.block_size,
            )
        });
        let overhead = m.reserved_bytes.saturating_sub(m.live_bytes);
        if idle > 0
            && idle >= live / 4
            && idle >= overhead / 4
            && overhead as f64 > 0.10 * m.live_bytes as f64
        {
            return Some(Switch {
                threshold: lower,
                reason: format!(
                    "thread caches hold {} idle in blocks of {}..{} ({} live there; overhead {} over {} live): sizes above {} go to best fit",
                    fmt_bytes(idle),
                    fmt_bytes(lower + 1),
                    fmt_bytes(o.threshold),
                    fmt_bytes(live),
                    fmt_bytes(overhead),
                    fmt_bytes(m.live_bytes),
                    fmt_bytes(lower),
                ),
            });
        }
    }
    // Raising past the cached classes would bring back what the first rule took away.
    let ceiling = o.max_threshold.min(cached_floor);
    if o.threshold < ceiling && o.seconds > 0.0 {
        let rate = o.band_requests as f64 / o.seconds;
        if rate >= RAISE_RATE {
            let upper = class_floor(o.threshold.saturating_mul(2)).min(ceiling);
            return Some(Switch {
                threshold: upper,
                reason: format!(
                    "{rate:.0} requests/s of {}..{} took the large pool's lock: sizes up to {} go to size classes again",
                    fmt_bytes(o.threshold + 1),
                    fmt_bytes(ceiling),
                    fmt_bytes(upper),
                ),
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::stats::ClassStats as ClassMetrics;
    use crate::pool::stats::PoolStats as DeviceMetrics;

    fn metrics(live: usize, reserved: usize, classes: &[(usize, usize, usize)]) -> DeviceMetrics {
        let mut m = DeviceMetrics {
            live_bytes: live,
            reserved_bytes: reserved,
            ..DeviceMetrics::default()
        };
        m.small.classes = classes
            .iter()
            .map(|&(block_size, live_blocks, cached_blocks)| ClassMetrics {
                block_size,
                live_blocks,
                cached_blocks,
                ..ClassMetrics::default()
            })
            .collect();
        m
    }

    fn obs(m: &DeviceMetrics, threshold: usize, band: u64) -> Observation<'_> {
        Observation {
            threshold,
            max_threshold: 1 << 20,
            metrics: m,
            band_requests: band,
            seconds: 1.0,
            since_switch: COOLDOWN,
            cached_limit: 1 << 20,
            uncacheable_requests: 0,
        }
    }

    #[test]
    fn idle_cached_big_blocks_lower_the_threshold_by_half() {
        // 8 MiB idle in 768 KiB blocks, 1 MiB live there, 40 MiB live in all, 52 reserved.
        let m = metrics(40 << 20, 52 << 20, &[(768 << 10, 1, 10), (4096, 100, 3)]);
        let s = decide(&obs(&m, 1 << 20, 0)).expect("a switch");
        assert_eq!(s.threshold, 512 << 10);
        assert!(s.reason.contains("idle"), "{}", s.reason);
        // Not while cooling down, and not when the overhead is small.
        let mut o = obs(&m, 1 << 20, 0);
        o.since_switch = COOLDOWN - 1;
        assert_eq!(decide(&o), None);
        let small_overhead = metrics(100 << 20, 105 << 20, &[(768 << 10, 1, 10)]);
        assert_eq!(decide(&obs(&small_overhead, 1 << 20, 0)), None);
        // Idle blocks below the lower threshold are not this switch's business.
        let below = metrics(40 << 20, 52 << 20, &[(256 << 10, 0, 40)]);
        assert_eq!(decide(&obs(&below, 1 << 20, 0)), None);
    }

    #[test]
    fn the_threshold_stays_between_64k_and_the_configured_one() {
        let m = metrics(1 << 20, 8 << 20, &[(80 << 10, 0, 50)]);
        assert_eq!(
            decide(&obs(&m, 96 << 10, 0)).unwrap().threshold,
            MIN_THRESHOLD
        );
        assert_eq!(decide(&obs(&m, MIN_THRESHOLD, 0)), None);
        let quiet = metrics(1 << 20, 1 << 20, &[]);
        let up = decide(&obs(&quiet, 512 << 10, 5000)).unwrap();
        assert_eq!(up.threshold, 1 << 20);
        assert!(up.reason.contains("requests/s"), "{}", up.reason);
        assert_eq!(decide(&obs(&quiet, 1 << 20, 50_000)), None, "at the top");
        assert_eq!(decide(&obs(&quiet, 512 << 10, 500)), None, "too few");
    }

    #[test]
    fn uncacheable_traffic_lowers_the_threshold_to_the_cached_classes() {
        // The default: caches keep blocks up to 64 KiB, classes run to 1 MiB.
        let m = metrics(10 << 20, 11 << 20, &[]);
        let mut o = obs(&m, 1 << 20, 0);
        o.cached_limit = 64 << 10;
        assert_eq!(decide(&o), None, "no request came for the uncached classes");
        o.uncacheable_requests = 3;
        let s = decide(&o).expect("a switch");
        assert_eq!(s.threshold, 64 << 10);
        assert!(s.reason.contains("no thread cache keeps"), "{}", s.reason);
        // Bigger caches: down to the largest cached class, not below 64 KiB.
        o.cached_limit = 256 << 10;
        assert_eq!(decide(&o).unwrap().threshold, 256 << 10);
        o.cached_limit = 0;
        assert_eq!(decide(&o).unwrap().threshold, MIN_THRESHOLD);
        // Nothing to do once there, and no raise past the cached classes however busy
        // best fit is.
        let mut at = obs(&m, 64 << 10, 50_000);
        at.cached_limit = 64 << 10;
        at.uncacheable_requests = 10;
        assert_eq!(decide(&at), None);
        at.cached_limit = 256 << 10;
        at.uncacheable_requests = 0;
        assert_eq!(decide(&at).unwrap().threshold, 128 << 10, "one doubling");
        // Cooling down.
        o.since_switch = 0;
        assert_eq!(decide(&o), None);
    }
}
