//! The manager's leak-detection API: reports, checks, links, scopes. The detectors live in
//! [`crate::leak`] and see the manager only through a [`LeakCx`]; this file hands them one.

use super::{Inner, MemoryManager};
use crate::allocation::Allocation;
use crate::error::{MemoryError, Result};
use crate::leak::{LeakCx, LeakDetector, LeakFinding, LeakReport, LeakScope, StrictScope};

impl Inner {
    /// What leak detection sees of this manager.
    #[inline]
    pub(crate) fn leak_cx(&self) -> LeakCx<'_> {
        LeakCx {
            view: self.view(),
            leak: &self.leak,
        }
    }
}

impl MemoryManager {
    /// Everything live now, grouped by allocation site, largest first; untracked live
    /// blocks as exact per-class counts (no site); and what the detectors find.
    pub fn leak_report(&self) -> LeakReport {
        let cx = self.inner.leak_cx();
        let mut r = cx.live_report();
        r.findings = cx.run_detectors();
        r.resources = self.inner.resources.list();
        r
    }

    /// Runs the detectors: confirmed and suspected leaks, grouped by site.
    pub fn check_leaks(&self) -> Vec<LeakFinding> {
        self.inner.leak_cx().run_detectors()
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
        let cx = self.inner.leak_cx();
        cx.leak
            .graph
            .link(&cx, &owner.block_ref(), &owned.block_ref())
    }

    /// The edges whose downgrade from a strong to a weak hold breaks each leaked cycle of
    /// shared handles or links, as the last leak check
    /// ([`check_leaks`](Self::check_leaks), [`leak_report`](Self::leak_report)) found them.
    pub fn cycle_breaks(&self) -> Vec<crate::leak::graph::CycleBreak> {
        self.inner.leak.graph.breaks()
    }

    /// Allocations that are nodes of the relationship graph now (linked and not dropped).
    pub fn linked_allocations(&self) -> usize {
        self.inner.leak.graph.nodes()
    }

    /// Removes the record that `owner` keeps `owned` alive.
    pub fn unlink(&self, owner: &Allocation<'_>, owned: &Allocation<'_>) {
        self.inner
            .leak
            .graph
            .unlink(&owner.block_ref(), &owned.block_ref())
    }

    /// Ends one step for the growth detector without a scope (scopes end steps by
    /// themselves when the outermost one ends).
    pub fn leak_step(&self) {
        let cx = self.inner.leak_cx();
        cx.leak.growth.sample(&cx, None);
    }

    /// Adds a detector of your own; it runs after the built-in ones, before site
    /// signatures group the findings.
    pub fn add_leak_detector(&self, d: Box<dyn LeakDetector>) {
        self.inner.leak.add_custom(d);
    }

    /// Switches a detector on or off by name (`"scope"`, `"growth"`, `"relationship"`,
    /// `"site"`, or a custom one); returns `false` when no detector has that name.
    pub fn set_leak_detector(&self, name: &str, on: bool) -> bool {
        self.inner.leak.set_enabled(name, on)
    }

    /// Opens a leak scope on this thread: allocations made inside that are still live
    /// (and not persistent) when it ends are suspects, and leaks once the grace period
    /// passed. The end of an outermost scope is also one step of the growth detector.
    pub fn scope(&self, name: &str) -> LeakScope<'_> {
        LeakScope::open(self.inner.leak_cx(), name)
    }

    /// Opens a strict scope on this thread (opt-in prevention): its
    /// [`close`](StrictScope::close) is [`MemoryError::ScopeLeaked`], naming the sites,
    /// when blocks made inside it are still alive and not persisted.
    ///
    /// ```
    /// use bitnet_memory::{MemoryConfig, MemoryManager};
    /// use std::alloc::Layout;
    ///
    /// let mm = MemoryManager::new(MemoryConfig::default())?;
    /// let step = mm.strict_scope("decode step");
    /// let kept = mm.try_allocate(Layout::from_size_align(4 << 20, 64)?)?;
    /// let err = step.close().unwrap_err();
    /// assert!(err.to_string().contains("decode step"));
    /// # drop(kept);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn strict_scope(&self, name: &str) -> StrictScope<'_> {
        StrictScope::open(self.inner.leak_cx(), name)
    }
}
