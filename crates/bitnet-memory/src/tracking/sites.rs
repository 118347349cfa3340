//! Allocation sites: where tracked allocations come from, and the pattern detector that
//! lowers the sampling rate of a site that keeps asking for the same size.
#![deny(unsafe_code)]

use parking_lot::Mutex;
use std::backtrace::Backtrace;
use std::collections::HashMap;
use std::panic::Location;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

/// Sampling is thinned by `2^-shift` for a site in a pattern, `shift` at most this.
pub const MAX_SHIFT: u8 = 6;
/// Samples of the same size in a row from one site before its rate halves again.
pub const PATTERN_REPEATS: u32 = 16;

const SEG: usize = 256;
const MAX_SITES: usize = 1 << 16;

/// State of one site.
#[derive(Default)]
pub struct SiteState {
    location: OnceLock<&'static Location<'static>>,
    last_size: AtomicUsize,
    repeats: AtomicU32,
    shift: AtomicU8,
    /// Samples taken from this site.
    pub samples: AtomicU64,
}

impl SiteState {
    /// Where the site is.
    pub fn location(&self) -> Option<&'static Location<'static>> {
        self.location.get().copied()
    }

    /// Current thinning of this site's sampling: the rate is multiplied by `2^-shift`.
    pub fn shift(&self) -> u8 {
        self.shift.load(Relaxed)
    }

    /// Feeds one sampled size; returns `Some(new_shift)` when the site's rate changed.
    /// Plain loads and stores: threads sampling one site at once may lose a count, which
    /// only delays a rate change; no read-modify-write on the sampling path.
    pub fn observe(&self, size: usize) -> Option<u8> {
        self.samples.store(self.samples.load(Relaxed) + 1, Relaxed);
        let shift = self.shift.load(Relaxed);
        if self.last_size.load(Relaxed) == size {
            let r = self.repeats.load(Relaxed) + 1;
            if r >= PATTERN_REPEATS && shift < MAX_SHIFT {
                self.repeats.store(0, Relaxed);
                self.shift.store(shift + 1, Relaxed);
                return Some(shift + 1);
            }
            self.repeats.store(r, Relaxed);
        } else {
            self.last_size.store(size, Relaxed);
            self.repeats.store(0, Relaxed);
            if shift > 0 {
                // The pattern broke: sample this site at the full rate again.
                self.shift.store(0, Relaxed);
                return Some(0);
            }
        }
        None
    }
}

/// Interned sites, found by index without a lock.
pub struct SiteTable {
    segments: Box<[OnceLock<Box<[SiteState]>>]>,
    index: Mutex<HashMap<usize, u16>>,
    backtraces: Mutex<HashMap<u32, Arc<Backtrace>>>,
    overflow: AtomicU64,
}

impl Default for SiteTable {
    fn default() -> Self {
        Self::new()
    }
}

impl SiteTable {
    /// An empty table.
    pub fn new() -> Self {
        Self {
            segments: (0..MAX_SITES / SEG).map(|_| OnceLock::new()).collect(),
            index: Mutex::new(HashMap::new()),
            backtraces: Mutex::new(HashMap::new()),
            overflow: AtomicU64::new(0),
        }
    }

    /// The index of `loc` (1-based; 0 when the table is full).
    pub fn intern(&self, loc: &'static Location<'static>) -> u16 {
        let key = loc as *const Location<'static> as usize;
        let mut index = self.index.lock();
        if let Some(&i) = index.get(&key) {
            return i;
        }
        let i = index.len() + 1;
        if i >= MAX_SITES {
            self.overflow.fetch_add(1, Relaxed);
            return 0;
        }
        let seg =
            self.segments[i / SEG].get_or_init(|| (0..SEG).map(|_| SiteState::default()).collect());
        let _ = seg[i % SEG].location.set(loc);
        index.insert(key, i as u16);
        i as u16
    }

    /// The state of site `i` (not 0).
    pub fn get(&self, i: u16) -> Option<&SiteState> {
        let i = i as usize;
        if i == 0 {
            return None;
        }
        self.segments[i / SEG].get().map(|s| &s[i % SEG])
    }

    /// Number of sites.
    pub fn len(&self) -> usize {
        self.index.lock().len()
    }

    /// Whether no site was seen yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores an unresolved backtrace for allocation `id`.
    pub fn store_backtrace(&self, id: u32, bt: Backtrace) {
        self.backtraces.lock().insert(id, Arc::new(bt));
    }

    /// Drops the backtrace of allocation `id`.
    pub fn drop_backtrace(&self, id: u32) {
        self.backtraces.lock().remove(&id);
    }

    /// The backtrace of allocation `id`, resolved when formatted.
    pub fn backtrace(&self, id: u32) -> Option<Arc<Backtrace>> {
        self.backtraces.lock().get(&id).cloned()
    }

    /// Bytes used by the table.
    pub fn memory_bytes(&self) -> usize {
        let segs = self.segments.iter().filter(|s| s.get().is_some()).count();
        segs * SEG * std::mem::size_of::<SiteState>() + self.index.lock().capacity() * 24
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeating_size_lowers_the_rate_and_a_new_size_restores_it() {
        let s = SiteState::default();
        let mut changes = Vec::new();
        for _ in 0..(PATTERN_REPEATS as usize * 3 + 1) {
            if let Some(c) = s.observe(4096) {
                changes.push(c);
            }
        }
        assert_eq!(changes, vec![1, 2, 3]);
        assert_eq!(s.shift(), 3);
        assert_eq!(s.observe(8192), Some(0), "pattern broken");
        assert_eq!(s.shift(), 0);
        // Alternating sizes never form a pattern.
        for i in 0..200 {
            assert_eq!(s.observe(100 + i % 2), None);
        }
    }

    #[test]
    #[track_caller]
    fn sites_intern_once() {
        let t = SiteTable::new();
        let here = Location::caller();
        let a = t.intern(here);
        assert_eq!(t.intern(here), a);
        assert_ne!(a, 0);
        assert_eq!(t.get(a).unwrap().location().unwrap(), here);
        assert_eq!(t.len(), 1);
    }
}
