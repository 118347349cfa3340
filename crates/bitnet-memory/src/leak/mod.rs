//! Leak detection: exact accounting, reports grouped by site, a shutdown report, a test
//! helper ([`LeakCheck`](crate::LeakCheck)) and four detectors behind the [`LeakDetector`] trait.
//!
//! - Accounting: the pool counts live blocks of every size class exactly; tracked
//!   allocations add id, size, age and site. [`MemoryManager::leak_report`](crate::MemoryManager::leak_report) groups what
//!   is live by site, largest first, and shows untracked live blocks as exact per-class
//!   counts without a site.
//! - Scopes ([`MemoryManager::scope`](crate::MemoryManager::scope)): what a scope allocated and did not free, and did
//!   not mark [`persist`](crate::Allocation::persist), is a suspect at its end and a
//!   confirmed leak once the grace period has passed with it still live.
//! - Growth: live non-persistent bytes sampled once per step; a Mann-Kendall trend test
//!   on both halves of a sliding window (see [`growth`]).
//! - Relationships ([`MemoryManager::link`](crate::MemoryManager::link)): an ownership cycle that no root reaches
//!   (see [`graph`]).
//! - Site signatures: suspects from one site become one finding with a count.
//!
//! See `docs/leaks.md` for the definitions and the limits of each.
#![deny(unsafe_code)]

mod counts;
pub mod graph;
pub mod growth;
pub mod report;
pub mod scope;
pub mod signatures;
pub mod strict;
#[cfg(test)]
mod tests;

pub use report::{ClassGroup, LeakReport, SiteGroup};
pub use scope::LeakScope;
pub use strict::StrictScope;

use crate::device::DeviceId;
use crate::events::{EventKind, MemoryEvent};
use crate::pool::hybrid::SMALL;
use crate::tracking::metadata::CompactAllocationMetadata;
use crate::view::ManagerView;
pub(crate) use counts::Counts;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::Relaxed};
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
    /// Every detector off, nothing said at shutdown (accounting and [`LeakCheck`](crate::LeakCheck) still
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

/// Verdicts of the scope detector so far, what its run-time accuracy is measured from: a
/// suspect (a block a scope left behind) is confirmed when still live past the grace
/// period, or retracted when freed before; a confirmed one freed later was a false
/// positive. Growth and relationship findings are confirmed by construction and not
/// counted here. A confirmed untracked suspect has no record to see freed: it is never
/// counted as a false positive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeakStats {
    /// Suspects raised.
    pub suspected: u64,
    /// Suspects confirmed as leaks.
    pub confirmed: u64,
    /// Suspects freed within their grace period.
    pub retracted: u64,
    /// Confirmed leaks freed later (false positives).
    pub confirmed_then_freed: u64,
}

impl LeakStats {
    /// Right verdicts over all verdicts: confirmed leaks that stayed, and suspects
    /// retracted, over every suspect judged. `None` before any verdict.
    pub fn accuracy(&self) -> Option<f64> {
        let judged = self.confirmed + self.retracted;
        (judged > 0).then(|| {
            (self.confirmed - self.confirmed_then_freed.min(self.confirmed) + self.retracted) as f64
                / judged as f64
        })
    }

    /// Confirmed leaks that were freed later, over confirmed leaks. `None` before any
    /// confirmation.
    pub fn false_positive_rate(&self) -> Option<f64> {
        (self.confirmed > 0)
            .then(|| self.confirmed_then_freed.min(self.confirmed) as f64 / self.confirmed as f64)
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
    pub(crate) cx: LeakCx<'a>,
    /// When the check runs.
    pub now: Instant,
}

impl DetectContext<'_> {
    /// Every live tracked allocation.
    pub fn live_records(&self) -> Vec<CompactAllocationMetadata> {
        self.cx.tracker.live().into_iter().map(|(_, m)| m).collect()
    }

    /// `file:line:column` of a site index.
    pub fn site_name(&self, site: u16) -> Option<String> {
        self.cx.tracker.site_name(site)
    }

    /// Exact live bytes (requested) over all devices.
    pub fn live_bytes(&self) -> usize {
        self.cx.live_bytes()
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

    /// Adds a detector of the user's; it runs after the built-in ones.
    pub(crate) fn add_custom(&self, d: Box<dyn LeakDetector>) {
        self.custom.write().push(d);
    }

    /// Switches every detector named `name` on or off; `false` when none has that name.
    pub(crate) fn set_enabled(&self, name: &str, on: bool) -> bool {
        let builtin: [&dyn LeakDetector; 4] =
            [&self.scopes, &self.growth, &self.graph, &self.signatures];
        let mut found = false;
        for d in builtin {
            if d.name() == name {
                d.set_enabled(on);
                found = true;
            }
        }
        for d in self.custom.read().iter() {
            if d.name() == name {
                d.set_enabled(on);
                found = true;
            }
        }
        found
    }

    pub(crate) fn persisted_bytes(&self) -> usize {
        self.persisted.lock().values().map(|&(_, b)| b).sum()
    }
}

/// What leak detection sees of one manager: the manager's narrow view and the detectors'
/// own state. `Copy`; the manager makes one for each call.
#[derive(Clone, Copy)]
pub(crate) struct LeakCx<'a> {
    /// The pools, tracker, bus and history.
    pub(crate) view: ManagerView<'a>,
    /// Scopes, links, persisted blocks, detectors.
    pub(crate) leak: &'a LeakState,
}

impl<'a> std::ops::Deref for LeakCx<'a> {
    type Target = ManagerView<'a>;
    fn deref(&self) -> &ManagerView<'a> {
        &self.view
    }
}

/// What leak detection needs of one live block handle (an `Allocation`): where the block
/// is, its size, pool token and tracking slot, and its leak-mark bits.
#[derive(Clone, Copy)]
pub(crate) struct BlockRef<'a> {
    pub(crate) device: DeviceId,
    pub(crate) addr: usize,
    pub(crate) len: usize,
    pub(crate) token: u64,
    pub(crate) slot: u32,
    pub(crate) marks: &'a AtomicU8,
}

impl BlockRef<'_> {
    /// Sets mark bits; returns the bits set before.
    pub(crate) fn set_marks(&self, m: u8) -> u8 {
        self.marks.fetch_or(m, Relaxed)
    }
}

impl LeakCx<'_> {
    /// Hook from the allocation slow path: a tracked allocation was made.
    #[inline]
    pub(crate) fn note_tracked_alloc(&self, slot: u32, device: DeviceId, token: u64) {
        self.leak.scopes.note_tracked(self, slot, device, token);
    }

    /// Hook from `Allocation::drop` for allocations with leak marks.
    #[cold]
    pub(crate) fn note_marked_drop(&self, a: BlockRef<'_>, m: u8) {
        let key = BlockKey::from_token(a.device, a.token);
        if m & marks::PERSISTED != 0 {
            let mut p = self.leak.persisted.lock();
            if let Some(e) = p.get_mut(&key) {
                e.0 -= 1;
                e.1 -= a.len;
                if e.0 == 0 {
                    p.remove(&key);
                }
            }
        }
        if m & marks::LINKED != 0 {
            self.leak.graph.remove(a.device, a.addr);
        }
    }

    /// `persist()` of an untracked allocation.
    pub(crate) fn persist_untracked(&self, a: BlockRef<'_>) {
        if a.set_marks(marks::PERSISTED) & marks::PERSISTED != 0 {
            return;
        }
        let key = BlockKey::from_token(a.device, a.token);
        let mut p = self.leak.persisted.lock();
        let e = p.entry(key).or_default();
        e.0 += 1;
        e.1 += a.len;
        drop(p);
        self.leak.graph.set_persistent(a.device, a.addr);
    }

    /// Runs every enabled detector; emits `LeakConfirmed` for newly confirmed findings.
    pub(crate) fn run_detectors(&self) -> Vec<LeakFinding> {
        let cx = DetectContext {
            cx: *self,
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

impl LeakCx<'_> {
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
