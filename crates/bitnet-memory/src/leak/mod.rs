//! Leak detection: exact accounting, reports grouped by site, a shutdown report, a test
//! helper ([`LeakCheck`]) and four detectors behind the [`LeakDetector`] trait.
//!
//! - Accounting: the pool counts live blocks of every size class exactly; tracked
//!   allocations add id, size, age and site. [`MemoryManager::leak_report`] groups what
//!   is live by site, largest first, and shows untracked live blocks as exact per-class
//!   counts without a site.
//! - Scopes ([`MemoryManager::scope`]): what a scope allocated and did not free, and did
//!   not mark [`persist`](crate::Allocation::persist), is a suspect at its end and a
//!   confirmed leak once the grace period has passed with it still live.
//! - Growth: live non-persistent bytes sampled once per step; a Mann-Kendall trend test
//!   on both halves of a sliding window (see [`growth`]).
//! - Relationships ([`MemoryManager::link`]): an ownership cycle that no root reaches
//!   (see [`graph`]).
//! - Site signatures: suspects from one site become one finding with a count.
//!
//! See `docs/leaks.md` for the definitions and the limits of each.
#![deny(unsafe_code)]

pub mod check;
mod counts;
pub mod graph;
pub mod growth;
pub mod report;
pub mod scope;
pub mod signatures;
#[cfg(test)]
mod tests;

pub use check::LeakCheck;
pub use report::{ClassGroup, LeakReport, SiteGroup};
pub use scope::LeakScope;

use crate::allocation::Allocation;
use crate::device::DeviceId;
use crate::error::{MemoryError, Result};
use crate::events::{EventKind, MemoryEvent};
use crate::manager::Inner;
use crate::pool::hybrid::SMALL;
use crate::tracking::metadata::CompactAllocationMetadata;
use crate::MemoryManager;
use counts::Counts;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// Bits of an allocation's leak marks.
pub(crate) mod marks {
    /// An untracked allocation counted in the persisted-block counts.
    pub const PERSISTED: u8 = 1;
    /// A node of the relationship graph.
    pub const LINKED: u8 = 2;
}

/// What a manager does when its last handle drops while allocations are still live
/// (forgotten with `mem::forget`, or raw blocks never freed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShutdownMode {
    /// Print the leak report to standard error. The default.
    #[default]
    Log,
    /// Panic with the report (for tests); only prints when the thread is already
    /// panicking.
    Panic,
    /// Say nothing.
    Silent,
}

/// Leak detection settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LeakConfig {
    /// Shutdown report. Default: [`ShutdownMode::Log`].
    pub on_shutdown: ShutdownMode,
    /// Scope detector on. Default: `true`.
    pub scopes: bool,
    /// Time a scope's survivor may still be freed before it is confirmed as a leak.
    /// Confirmation happens at the first check (scope end, `check_leaks`, report) after
    /// it. Default: 0 (confirmed at the next check).
    pub scope_grace: Duration,
    /// Compare the pool's exact per-class counts at scope start and end, so that untracked
    /// allocations left behind are found too (costs one pass over the size classes per
    /// scope start and end). Default: `true`.
    pub scope_exact_counts: bool,
    /// Growth detector on. Default: `true`.
    pub growth: bool,
    /// Steps in the growth detector's window (even, at least 8). Default: 16.
    pub growth_window: usize,
    /// Probability that the growth test fires, at one evaluation, when live bytes do not
    /// trend (exchangeable step values). Default: `1e-4`.
    pub growth_false_alarm: f64,
    /// Relationship (cycle) detector on. Default: `true`.
    pub relationships: bool,
    /// Group suspects by allocation site. Default: `true`.
    pub site_signatures: bool,
}

impl Default for LeakConfig {
    fn default() -> Self {
        Self {
            on_shutdown: ShutdownMode::Log,
            scopes: true,
            scope_grace: Duration::ZERO,
            scope_exact_counts: true,
            growth: true,
            growth_window: 16,
            growth_false_alarm: 1e-4,
            relationships: true,
            site_signatures: true,
        }
    }
}

impl LeakConfig {
    /// Every detector off, nothing said at shutdown (accounting and [`LeakCheck`] still
    /// work: they read the pool's counts).
    pub fn off() -> Self {
        Self {
            on_shutdown: ShutdownMode::Silent,
            scopes: false,
            growth: false,
            relationships: false,
            site_signatures: false,
            ..Self::default()
        }
    }
}

/// Which pool blocks: a device and a size class (`None`: a block of the large pool).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockKey {
    /// Device.
    pub device: DeviceId,
    /// Size class index, `None` for large blocks.
    pub class: Option<u16>,
}

impl BlockKey {
    pub(crate) fn from_token(device: DeviceId, token: u64) -> Self {
        Self {
            device,
            class: (token & SMALL != 0).then_some((token & !SMALL) as u16),
        }
    }

    /// Bytes of one block of the class (`None` for large blocks, whose sizes vary).
    pub fn block_size(&self) -> Option<usize> {
        self.class
            .map(|c| crate::pool::size_class::class_size(c as usize))
    }
}

/// One leak (or a group of them from one site) found by a detector.
#[derive(Debug, Clone, PartialEq)]
pub struct LeakFinding {
    /// Detector that found it (`"scope"`, `"growth"`, `"relationship"`, or a custom
    /// detector's name).
    pub detector: &'static str,
    /// Allocation site (`file:line:column`), when a tracked allocation carries it.
    pub site: Option<String>,
    /// Tracking ids of the allocations (empty for untracked ones).
    pub ids: Vec<u32>,
    /// Allocations in the finding.
    pub count: usize,
    /// Their bytes (requested sizes of tracked ones, block sizes of untracked ones; the
    /// growth detector gives the growth).
    pub bytes: usize,
    /// Confirmed (past the grace period, or certain by construction), or only suspected.
    pub confirmed: bool,
    /// What was found, for people.
    pub info: String,
}

impl std::fmt::Display for LeakFinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{}{}] {} allocation(s), {} B at {}: {}",
            self.detector,
            if self.confirmed { "" } else { ", suspected" },
            self.count,
            self.bytes,
            self.site.as_deref().unwrap_or("(no site: untracked)"),
            self.info
        )
    }
}

/// What a detector may look at.
pub struct DetectContext<'a> {
    pub(crate) inner: &'a Inner,
    /// When the check runs.
    pub now: Instant,
}

impl DetectContext<'_> {
    /// Every live tracked allocation.
    pub fn live_records(&self) -> Vec<CompactAllocationMetadata> {
        self.inner
            .tracker
            .live()
            .into_iter()
            .map(|(_, m)| m)
            .collect()
    }

    /// `file:line:column` of a site index.
    pub fn site_name(&self, site: u16) -> Option<String> {
        self.inner.tracker.site_name(site)
    }

    /// Exact live bytes (requested) over all devices.
    pub fn live_bytes(&self) -> usize {
        self.inner
            .devices
            .iter()
            .map(|d| d.metrics().live_bytes)
            .sum()
    }
}

/// A leak detector: looks at the manager's state (and its own) and adds findings; it may
/// also rewrite the findings of the detectors before it (site signatures group them).
pub trait LeakDetector: Send + Sync {
    /// Short name, used in findings and events.
    fn name(&self) -> &'static str;
    /// Whether it runs.
    fn enabled(&self) -> bool;
    /// Switches it on or off.
    fn set_enabled(&self, on: bool);
    /// Adds what it finds to `findings`.
    fn detect(&self, cx: &DetectContext<'_>, findings: &mut Vec<LeakFinding>);
}

/// The leak-detection state of one manager.
pub(crate) struct LeakState {
    pub(crate) shutdown: ShutdownMode,
    pub(crate) scopes: scope::ScopeDetector,
    pub(crate) growth: growth::GrowthDetector,
    pub(crate) graph: graph::RelationshipDetector,
    pub(crate) signatures: signatures::SiteSignatures,
    custom: RwLock<Vec<Box<dyn LeakDetector>>>,
    /// Untracked blocks marked persistent and still live: (count, requested bytes).
    persisted: Mutex<HashMap<BlockKey, (usize, usize)>>,
}

impl LeakState {
    pub(crate) fn new(c: &LeakConfig) -> Self {
        Self {
            shutdown: c.on_shutdown,
            scopes: scope::ScopeDetector::new(c),
            growth: growth::GrowthDetector::new(c),
            graph: graph::RelationshipDetector::new(c.relationships),
            signatures: signatures::SiteSignatures {
                enabled: AtomicBool::new(c.site_signatures),
            },
            custom: RwLock::new(Vec::new()),
            persisted: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn persisted_counts(&self) -> HashMap<BlockKey, usize> {
        self.persisted
            .lock()
            .iter()
            .map(|(k, &(n, _))| (*k, n))
            .collect()
    }

    pub(crate) fn persisted_bytes(&self) -> usize {
        self.persisted.lock().values().map(|&(_, b)| b).sum()
    }
}

impl Inner {
    /// Hook from the allocation slow path: a tracked allocation was made.
    #[inline]
    pub(crate) fn note_tracked_alloc(&self, slot: u32, device: DeviceId, token: u64) {
        self.leak.scopes.note_tracked(self, slot, device, token);
    }

    /// Hook from `Allocation::drop` for allocations with leak marks.
    #[cold]
    pub(crate) fn note_marked_drop(&self, a: &Allocation<'_>, m: u8) {
        let key = BlockKey::from_token(a.device(), a.token());
        if m & marks::PERSISTED != 0 {
            let mut p = self.leak.persisted.lock();
            if let Some(e) = p.get_mut(&key) {
                e.0 -= 1;
                e.1 -= a.len();
                if e.0 == 0 {
                    p.remove(&key);
                }
            }
        }
        if m & marks::LINKED != 0 {
            self.leak.graph.remove(a.device(), a.as_ptr().addr());
        }
    }

    /// `persist()` of an untracked allocation.
    pub(crate) fn persist_untracked(&self, a: &Allocation<'_>) {
        if a.set_marks(marks::PERSISTED) & marks::PERSISTED != 0 {
            return;
        }
        let key = BlockKey::from_token(a.device(), a.token());
        let mut p = self.leak.persisted.lock();
        let e = p.entry(key).or_default();
        e.0 += 1;
        e.1 += a.len();
        drop(p);
        self.leak
            .graph
            .set_persistent(a.device(), a.as_ptr().addr());
    }

    /// Runs every enabled detector; emits `LeakConfirmed` for newly confirmed findings.
    pub(crate) fn run_detectors(&self) -> Vec<LeakFinding> {
        let cx = DetectContext {
            inner: self,
            now: Instant::now(),
        };
        let mut findings = Vec::new();
        let builtin: [&dyn LeakDetector; 3] =
            [&self.leak.scopes, &self.leak.growth, &self.leak.graph];
        for d in builtin {
            if d.enabled() {
                d.detect(&cx, &mut findings);
            }
        }
        for d in self.leak.custom.read().iter() {
            if d.enabled() {
                d.detect(&cx, &mut findings);
            }
        }
        if self.leak.signatures.enabled() {
            self.leak.signatures.detect(&cx, &mut findings);
        }
        findings
    }

    pub(crate) fn emit_potential(&self, id: u32, method: &str) {
        self.bus.emit(EventKind::PotentialLeakDetected, || {
            MemoryEvent::PotentialLeakDetected {
                id,
                detection_method: method.to_string(),
            }
        });
    }

    pub(crate) fn emit_confirmed(&self, id: u32, info: &dyn Fn() -> String) {
        self.bus
            .emit(EventKind::LeakConfirmed, || MemoryEvent::LeakConfirmed {
                id,
                leak_info: info(),
            });
    }

    /// Everything live, grouped (the shutdown report and `leak_report`'s first part).
    pub(crate) fn live_report(&self) -> LeakReport {
        let counts = Counts::now(self);
        let live = self.tracker.live();
        report::build(self, &counts, None, live.into_iter().map(|(_, m)| m))
    }
}

impl Inner {
    /// The shutdown report: called when the last handle drops (from `Inner`'s `Drop`).
    pub(crate) fn report_at_shutdown(&self) {
        if self.leak.shutdown == ShutdownMode::Silent {
            return;
        }
        let r = self.live_report();
        if r.allocations == 0 {
            return;
        }
        let msg =
            format!("bitnet-memory: memory manager dropped with live allocations (leaks)\n{r}");
        match self.leak.shutdown {
            ShutdownMode::Panic if !std::thread::panicking() => panic!("{msg}"),
            _ => eprintln!("{msg}"),
        }
    }
}

impl MemoryManager {
    /// Everything live now, grouped by allocation site, largest first; untracked live
    /// blocks as exact per-class counts (no site); and what the detectors find.
    pub fn leak_report(&self) -> LeakReport {
        let inner = self.inner();
        let mut r = inner.live_report();
        r.findings = inner.run_detectors();
        r
    }

    /// Runs the detectors: confirmed and suspected leaks, grouped by site.
    pub fn check_leaks(&self) -> Vec<LeakFinding> {
        self.inner().run_detectors()
    }

    /// [`check_leaks`](Self::check_leaks) as an error for runs that must fail on a
    /// leak: [`MemoryError::MemoryLeakDetected`] when any confirmed leak stands.
    pub fn check_no_leaks(&self) -> Result<()> {
        let (mut n, mut bytes) = (0, 0);
        for f in self.check_leaks().iter().filter(|f| f.confirmed) {
            n += f.count;
            bytes += f.bytes;
        }
        if n == 0 {
            Ok(())
        } else {
            Err(MemoryError::MemoryLeakDetected {
                leak_count: n,
                memory_size: bytes,
            })
        }
    }

    /// Records that `owner` keeps `owned` alive (a tensor view keeps its parent). Both
    /// become nodes of the relationship graph until dropped. Returns `false` (and records
    /// nothing) when the detector is off or either allocation is zero-sized.
    pub fn link(&self, owner: &Allocation<'_>, owned: &Allocation<'_>) -> bool {
        self.inner().leak.graph.link(self.inner(), owner, owned)
    }

    /// Allocations that are nodes of the relationship graph now (linked and not dropped).
    pub fn linked_allocations(&self) -> usize {
        self.inner().leak.graph.nodes()
    }

    /// Removes the record that `owner` keeps `owned` alive.
    pub fn unlink(&self, owner: &Allocation<'_>, owned: &Allocation<'_>) {
        self.inner().leak.graph.unlink(owner, owned)
    }

    /// Ends one step for the growth detector without a scope (scopes end steps by
    /// themselves when the outermost one ends).
    pub fn leak_step(&self) {
        let inner = self.inner();
        inner.leak.growth.sample(inner, None);
    }

    /// Adds a detector of your own; it runs after the built-in ones, before site
    /// signatures group the findings.
    pub fn add_leak_detector(&self, d: Box<dyn LeakDetector>) {
        self.inner().leak.custom.write().push(d);
    }

    /// Switches a detector on or off by name (`"scope"`, `"growth"`, `"relationship"`,
    /// `"site"`, or a custom one); returns `false` when no detector has that name.
    pub fn set_leak_detector(&self, name: &str, on: bool) -> bool {
        let l = &self.inner().leak;
        let builtin: [&dyn LeakDetector; 4] = [&l.scopes, &l.growth, &l.graph, &l.signatures];
        let mut found = false;
        for d in builtin {
            if d.name() == name {
                d.set_enabled(on);
                found = true;
            }
        }
        for d in l.custom.read().iter() {
            if d.name() == name {
                d.set_enabled(on);
                found = true;
            }
        }
        found
    }
}
