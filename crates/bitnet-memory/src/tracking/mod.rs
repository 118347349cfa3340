//! The lightweight tracking layer: which allocations are live, where they come from, at a
//! cost users leave on.
//!
//! - Every allocation at or above the large threshold is tracked; smaller ones are sampled
//!   at a configurable rate by a per-thread countdown with geometric gaps (unbiased, no
//!   shared state on the way).
//! - A sampled allocation from a call site that keeps asking for the same size lowers that
//!   site's rate (halving, down to 1/64 of it); a different size restores it
//!   ([`sites::SiteState::observe`]).
//! - Each tracked allocation gets a 16-byte record in a lock-free slot store; its handle
//!   carries the slot, so forgetting it on free is O(1).
//! - Counts and bytes of sampled allocations are weighted by `1 / probability` into
//!   unbiased estimates ([`TrackingStats`]); exact counts per size class come from the pool.
//! - The layer times a sub-sample of its own records and of pool allocations, and lowers
//!   the sampling rate when its share passes the configured limit.
#![deny(unsafe_code)]

pub mod metadata;
mod settings;
pub mod sites;

pub use settings::{TrackingConfig, TrackingStats};

use metadata::{flags, CompactAllocationMetadata, MetadataStore};
use parking_lot::Mutex;
use sites::SiteTable;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Instant;
use thread_local::ThreadLocal;

/// What to do for one allocation, decided before it is made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Nothing.
    Skip,
    /// Track it, weighting by `weight`; `time` asks to time the allocation and the record.
    Track {
        /// Inverse of the probability the allocation had to be tracked.
        weight: f64,
        /// Whether to time this one.
        time: bool,
    },
}

/// How reports name an allocation site: `file:line:column`.
pub fn location_name(loc: &Location<'_>) -> String {
    format!("{}:{}:{}", loc.file(), loc.line(), loc.column())
}

/// Records between two clock reads of a thread.
const CLOCK_EVERY: u32 = 32;
/// Timed samples needed before the overhead is reported or enforced.
const MIN_TIMED: u64 = 32;
/// Times one sampled allocation in every this many tracked ones.
const TIME_EVERY: u32 = 16;
const SLOT_CACHE: usize = 64;

struct ThreadState {
    countdown: AtomicU64,
    time_countdown: AtomicU32,
    rng: AtomicU64,
    slots: Box<[AtomicU32]>,
    nslots: AtomicU32,
    next_id: AtomicU32,
    id_end: AtomicU32,
    site_cache_key: AtomicUsize,
    site_cache_val: AtomicU32,
    /// This thread's idea of the time (ms), refreshed every `CLOCK_EVERY` records: reading
    /// the clock costs about as much as the rest of a record.
    now_ms: AtomicU32,
    clock_countdown: AtomicU32,
    est_count: AtomicU64,
    est_bytes: AtomicU64,
    tracked: AtomicU64,
    timed: AtomicU64,
    timed_track_ns: AtomicU64,
    /// This thread's timed allocation latencies (ns): written by this thread only, so
    /// its lock is never contended on the allocation path; readers merge every thread's.
    latency: Mutex<hdrhistogram::Histogram<u64>>,
}

fn add_f64(a: &AtomicU64, v: f64) {
    a.store((f64::from_bits(a.load(Relaxed)) + v).to_bits(), Relaxed);
}
fn bump(a: &AtomicU64, v: u64) {
    a.store(a.load(Relaxed) + v, Relaxed);
}

impl ThreadState {
    fn new(seed: u64) -> Self {
        Self {
            countdown: AtomicU64::new(0),
            time_countdown: AtomicU32::new(1),
            rng: AtomicU64::new(seed | 1),
            slots: (0..SLOT_CACHE).map(|_| AtomicU32::new(0)).collect(),
            nslots: AtomicU32::new(0),
            next_id: AtomicU32::new(0),
            id_end: AtomicU32::new(0),
            site_cache_key: AtomicUsize::new(0),
            site_cache_val: AtomicU32::new(0),
            now_ms: AtomicU32::new(0),
            latency: Mutex::new(hdrhistogram::Histogram::new(3).expect("3 significant digits")),
            clock_countdown: AtomicU32::new(0),
            est_count: AtomicU64::new(0f64.to_bits()),
            est_bytes: AtomicU64::new(0f64.to_bits()),
            tracked: AtomicU64::new(0),
            timed: AtomicU64::new(0),
            timed_track_ns: AtomicU64::new(0),
        }
    }

    /// xorshift64*: a uniform number in (0, 1].
    fn uniform(&self) -> f64 {
        let mut x = self.rng.load(Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.store(x, Relaxed);
        ((x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Allocations to skip before the next sample at `rate` (geometric gaps).
    fn gap(&self, rate: f64) -> u64 {
        if rate >= 1.0 {
            1
        } else if rate <= 0.0 {
            u64::MAX
        } else {
            (self.uniform().ln() / (1.0 - rate).ln()).floor() as u64 + 1
        }
    }
}

/// The tracking layer of one manager.
pub struct Tracker {
    start: Instant,
    enabled: AtomicBool,
    rate: AtomicU64,
    large_threshold: AtomicUsize,
    backtraces: AtomicBool,
    overhead_limit: AtomicU64,
    store: MetadataStore,
    /// Interned allocation sites.
    pub sites: SiteTable,
    /// Each thread's state, on cache lines of its own: `decide` writes its countdown at
    /// every allocation, and two threads must not share that line.
    threads: ThreadLocal<crossbeam_utils::CachePadded<ThreadState>>,
    ids: AtomicU32,
    seeds: AtomicU64,
    dropped: AtomicU64,
}

impl Tracker {
    /// A tracker with `config`.
    pub fn new(config: &TrackingConfig) -> Self {
        let t = Self {
            start: Instant::now(),
            enabled: AtomicBool::new(config.enabled),
            rate: AtomicU64::new(0),
            large_threshold: AtomicUsize::new(config.large_threshold),
            backtraces: AtomicBool::new(config.capture_backtraces),
            overhead_limit: AtomicU64::new(config.overhead_limit_percent.to_bits()),
            store: MetadataStore::new(),
            sites: SiteTable::new(),
            threads: ThreadLocal::new(),
            ids: AtomicU32::new(1),
            seeds: AtomicU64::new(0x9E37_79B9_7F4A_7C15),
            dropped: AtomicU64::new(0),
        };
        t.set_sample_rate(config.sample_rate);
        t
    }

    /// Changes the sampling rate of small allocations (clamped to `0..=1`).
    pub fn set_sample_rate(&self, rate: f64) {
        let rate = if rate.is_nan() {
            0.0
        } else {
            rate.clamp(0.0, 1.0)
        };
        self.rate.store(rate.to_bits(), Relaxed);
        // Threads draw a new gap at their next allocation.
        for t in self.threads.iter() {
            t.countdown.store(0, Relaxed);
        }
    }

    /// The sampling rate of small allocations.
    pub fn sample_rate(&self) -> f64 {
        f64::from_bits(self.rate.load(Relaxed))
    }

    /// Changes the size from which every allocation is tracked.
    pub fn set_large_threshold(&self, bytes: usize) {
        self.large_threshold.store(bytes, Relaxed);
    }

    /// The size from which every allocation is tracked.
    pub fn large_threshold(&self) -> usize {
        self.large_threshold.load(Relaxed)
    }

    /// Switches tracking on or off (live records stay until their allocations are freed).
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Relaxed);
    }

    /// Switches backtrace capture on or off.
    pub fn set_capture_backtraces(&self, on: bool) {
        self.backtraces.store(on, Relaxed);
    }

    /// Changes the overhead limit, in percent.
    pub fn set_overhead_limit(&self, percent: f64) {
        self.overhead_limit.store(percent.to_bits(), Relaxed);
    }

    #[inline]
    fn thread(&self) -> &ThreadState {
        match self.threads.get() {
            Some(t) => t,
            None => self.thread_slow(),
        }
    }

    #[cold]
    fn thread_slow(&self) -> &ThreadState {
        self.threads.get_or(|| {
            let seed = self.seeds.fetch_add(0x9E37_79B9_7F4A_7C15, Relaxed);
            crossbeam_utils::CachePadded::new(ThreadState::new(seed))
        })
    }

    /// Decides, before an allocation of `size` bytes, whether to track it. The common
    /// case is a load, a compare and a store in this thread's state.
    #[inline]
    pub fn decide(&self, size: usize) -> Decision {
        if !self.enabled.load(Relaxed) {
            return Decision::Skip;
        }
        let t = self.thread();
        let n = t.countdown.load(Relaxed);
        if n > 1 && size < self.large_threshold.load(Relaxed) {
            t.countdown.store(n - 1, Relaxed);
            return Decision::Skip;
        }
        self.decide_slow(t, size)
    }

    #[cold]
    fn decide_slow(&self, t: &ThreadState, size: usize) -> Decision {
        let time = || {
            let n = t.time_countdown.load(Relaxed);
            if n <= 1 {
                t.time_countdown.store(TIME_EVERY, Relaxed);
                true
            } else {
                t.time_countdown.store(n - 1, Relaxed);
                false
            }
        };
        if size >= self.large_threshold.load(Relaxed) {
            return Decision::Track {
                weight: 1.0,
                time: time(),
            };
        }
        let mut n = t.countdown.load(Relaxed);
        if n == 0 {
            // A fresh thread, or the rate changed: draw the first gap at the current rate.
            n = t.gap(self.sample_rate());
        }
        if n > 1 {
            t.countdown.store(n - 1, Relaxed);
            return Decision::Skip;
        }
        let rate = self.sample_rate();
        t.countdown.store(t.gap(rate), Relaxed);
        if rate <= 0.0 {
            return Decision::Skip;
        }
        Decision::Track {
            weight: 1.0 / rate,
            time: time(),
        }
    }

    /// Records a tracked allocation; returns its slot (0 when it could not be recorded or
    /// the site's pattern thinned it out).
    pub fn record(
        &self,
        addr: usize,
        size: usize,
        device: u8,
        weight: f64,
        site: &'static Location<'static>,
    ) -> u32 {
        let t = self.thread();
        let large = weight == 1.0 && size >= self.large_threshold.load(Relaxed);
        let site_idx = self.site_index(t, site);
        let mut weight = weight;
        if !large {
            if let Some(s) = self.sites.get(site_idx) {
                s.observe(size);
                let shift = s.shift();
                if shift > 0 {
                    // Thinning: keep this sample with probability 2^-shift.
                    if t.uniform() > 1.0 / f64::from(1u32 << shift) {
                        return 0;
                    }
                    weight *= f64::from(1u32 << shift);
                }
            }
        }
        add_f64(&t.est_count, weight);
        add_f64(&t.est_bytes, weight * size as f64);
        bump(&t.tracked, 1);
        let Some(slot) = self.take_slot(t) else {
            self.dropped.fetch_add(1, Relaxed);
            return 0;
        };
        let id = self.next_id(t);
        let (size_field, size_flags) = CompactAllocationMetadata::encode_size(size);
        let mut f = size_flags | if large { flags::LARGE } else { 0 };
        if self.backtraces.load(Relaxed) {
            self.sites
                .store_backtrace(id, std::backtrace::Backtrace::force_capture());
            f |= flags::BACKTRACE;
        }
        self.store.write(
            slot,
            CompactAllocationMetadata {
                id,
                timestamp_ms: self.thread_now_ms(t),
                size: size_field,
                site: site_idx,
                device,
                flags: f,
            },
            addr,
        );
        slot
    }

    /// Adds a timed sample: the pool's allocation latency and the tracking record's cost.
    /// Returns `true` every 256th timed sample of this thread, when the caller should
    /// check the overhead limit.
    pub fn note_timing(&self, alloc_ns: u64, track_ns: u64) -> bool {
        let t = self.thread();
        bump(&t.timed, 1);
        bump(&t.timed_track_ns, track_ns);
        let _ = t.latency.lock().record(alloc_ns.max(1));
        t.timed.load(Relaxed).is_multiple_of(256)
    }

    /// Forgets the record in `slot`; returns it.
    pub fn forget(&self, slot: u32) -> CompactAllocationMetadata {
        let meta = self.store.clear(slot);
        if meta.flags & flags::BACKTRACE != 0 {
            self.sites.drop_backtrace(meta.id);
        }
        let t = self.thread();
        let n = t.nslots.load(Relaxed) as usize;
        if n == SLOT_CACHE {
            let keep = SLOT_CACHE / 2;
            self.store
                .give_slots((keep..SLOT_CACHE).map(|i| t.slots[i].load(Relaxed)));
            t.slots[keep].store(slot, Relaxed);
            t.nslots.store(keep as u32 + 1, Relaxed);
        } else {
            t.slots[n].store(slot, Relaxed);
            t.nslots.store(n as u32 + 1, Relaxed);
        }
        meta
    }

    /// Marks the allocation in `slot` persistent.
    pub fn mark_persistent(&self, slot: u32) {
        self.store.set_flags(slot, flags::PERSISTENT);
    }

    /// The record in `slot`, if live.
    pub fn read(&self, slot: u32) -> Option<CompactAllocationMetadata> {
        self.store.read(slot)
    }

    /// Every live record.
    pub fn live(&self) -> Vec<(u32, CompactAllocationMetadata)> {
        self.store.live()
    }

    /// Address of the block recorded in `slot`.
    pub fn addr(&self, slot: u32) -> usize {
        self.store.addr(slot)
    }

    /// Points the record in `slot` at a moved block.
    pub fn set_addr(&self, slot: u32, addr: usize) {
        self.store.set_addr(slot, addr)
    }

    /// `file:line:column` of site index `site` (0 or unknown: `None`).
    pub fn site_name(&self, site: u16) -> Option<String> {
        Some(location_name(self.sites.get(site)?.location()?))
    }

    fn thread_now_ms(&self, t: &ThreadState) -> u32 {
        let n = t.clock_countdown.load(Relaxed);
        if n == 0 {
            t.now_ms.store(self.now_ms(), Relaxed);
            t.clock_countdown.store(CLOCK_EVERY, Relaxed);
        } else {
            t.clock_countdown.store(n - 1, Relaxed);
        }
        t.now_ms.load(Relaxed)
    }

    /// Milliseconds since the tracker started.
    pub fn now_ms(&self) -> u32 {
        self.start.elapsed().as_millis().min(u32::MAX as u128) as u32
    }

    fn take_slot(&self, t: &ThreadState) -> Option<u32> {
        let mut n = t.nslots.load(Relaxed) as usize;
        if n == 0 {
            let mut got = Vec::with_capacity(SLOT_CACHE / 2);
            self.store.take_slots(SLOT_CACHE / 2, &mut got);
            for (i, s) in got.iter().enumerate() {
                t.slots[i].store(*s, Relaxed);
            }
            n = got.len();
            if n == 0 {
                return None;
            }
        }
        t.nslots.store(n as u32 - 1, Relaxed);
        Some(t.slots[n - 1].load(Relaxed))
    }

    fn next_id(&self, t: &ThreadState) -> u32 {
        let mut id = t.next_id.load(Relaxed);
        if id >= t.id_end.load(Relaxed) {
            id = self.ids.fetch_add(1024, Relaxed);
            t.id_end.store(id.saturating_add(1024), Relaxed);
        }
        t.next_id.store(id + 1, Relaxed);
        id
    }

    fn site_index(&self, t: &ThreadState, site: &'static Location<'static>) -> u16 {
        let key = site as *const Location<'static> as usize;
        if t.site_cache_key.load(Relaxed) == key {
            return t.site_cache_val.load(Relaxed) as u16;
        }
        let idx = self.sites.intern(site);
        t.site_cache_key.store(key, Relaxed);
        t.site_cache_val.store(u32::from(idx), Relaxed);
        idx
    }

    /// Every thread's timed latencies in one histogram (allocates: a read path).
    fn merged_latency(&self) -> hdrhistogram::Histogram<u64> {
        let mut all = hdrhistogram::Histogram::new(3).expect("3 significant digits");
        for t in self.threads.iter() {
            // Same precision, auto-resizing: adding cannot fail.
            let _ = all.add(&*t.latency.lock());
        }
        all
    }

    /// Allocation latency percentiles (ns) from the timed sub-sample:
    /// `(p50, p90, p99, p999, max, samples)`.
    pub fn latency(&self) -> crate::metrics::LatencyPercentiles {
        let h = self.merged_latency();
        crate::metrics::LatencyPercentiles {
            samples: h.len(),
            p50_ns: h.value_at_quantile(0.5),
            p90_ns: h.value_at_quantile(0.9),
            p99_ns: h.value_at_quantile(0.99),
            p999_ns: h.value_at_quantile(0.999),
            max_ns: h.max(),
            mean_ns: if h.is_empty() { 0.0 } else { h.mean() },
        }
    }

    /// Estimates and costs.
    pub fn stats(&self) -> TrackingStats {
        let mut s = TrackingStats {
            sample_rate: self.sample_rate(),
            ..Default::default()
        };
        for t in self.threads.iter() {
            s.estimated_allocations += f64::from_bits(t.est_count.load(Relaxed));
            s.estimated_bytes += f64::from_bits(t.est_bytes.load(Relaxed));
            s.tracked_total += t.tracked.load(Relaxed);
        }
        s.tracked_live = self.store.live().len();
        s.sites = self.sites.len();
        s.dropped_samples = self.dropped.load(Relaxed);
        let hist_bytes: usize = self
            .threads
            .iter()
            .map(|t| t.latency.lock().distinct_values() * 8)
            .sum();
        s.tracking_memory_overhead =
            self.store.memory_bytes() + self.sites.memory_bytes() + hist_bytes;
        s.tracking_overhead_percentage = self.overhead_percentage();
        s
    }

    /// Measured share of allocation time spent tracking, in percent: the mean cost of a
    /// timed record times the records made, over the mean timed allocation latency times
    /// the (estimated) allocations made.
    pub fn overhead_percentage(&self) -> f64 {
        let (mut timed, mut track_ns, mut tracked, mut allocs) = (0u64, 0u64, 0u64, 0f64);
        for t in self.threads.iter() {
            timed += t.timed.load(Relaxed);
            track_ns += t.timed_track_ns.load(Relaxed);
            tracked += t.tracked.load(Relaxed);
            allocs += f64::from_bits(t.est_count.load(Relaxed));
        }
        let mean_latency = {
            let h = self.merged_latency();
            if h.is_empty() {
                0.0
            } else {
                h.mean()
            }
        };
        // Too few timed samples say more about warm-up (first chunk, first record segment)
        // than about the steady state: report nothing until there are enough.
        if timed < MIN_TIMED || mean_latency <= 0.0 || allocs <= 0.0 {
            return 0.0;
        }
        let tracking = track_ns as f64 / timed as f64 * tracked as f64;
        100.0 * tracking / (mean_latency * allocs)
    }

    /// Lowers the sampling rate when the measured overhead passes the limit; returns
    /// `(old, new, overhead)` when it did.
    pub fn enforce_overhead_limit(&self) -> Option<(f64, f64, f64)> {
        let limit = f64::from_bits(self.overhead_limit.load(Relaxed));
        let overhead = self.overhead_percentage();
        let old = self.sample_rate();
        if overhead > limit && old > 0.001 {
            let new = (old / 2.0).max(0.001);
            self.set_sample_rate(new);
            return Some((old, new, overhead));
        }
        None
    }
}

#[cfg(test)]
mod tests;
