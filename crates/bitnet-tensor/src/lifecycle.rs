//! Where tensors meet the manager's leak detection: every place that creates a persistent
//! tensor (weights, KV cache), makes a view, or begins and ends a decode step goes through
//! this module.
//!
//! - `persistent` (crate-private): `allocation.persist()`, so weights and the KV cache are
//!   expected to outlive every step and are not reported as leaks of the step that made
//!   them.
//! - `link` (crate-private): views share their parent's `Arc` storage, so they keep it
//!   alive by construction; `mm.link` would record a view with storage of its own.
//! - [`step_scope`]: `mm.scope("decode step")`; allocations made inside must die inside,
//!   or the scope reports them. [`StepScope::finish`] also compares live allocations and
//!   bytes before and after the step, exactly, from the pool's counters.

use crate::storage::Provider;
use crate::tensor::Tensor;
use bitnet_memory::MemoryManager;

/// Marks a tensor as meant to live across decode steps (weights, KV cache).
pub(crate) fn persistent<'m>(t: Tensor<'m>, _what: &'static str) -> Tensor<'m> {
    if let Some(a) = t.storage().allocation() {
        a.persist();
    }
    t
}

/// Where a view is made from `parent`. Every view here shares its parent's storage (one
/// `Arc`), so it keeps the parent's allocation alive by construction and the relationship
/// detector needs no `mm.link` record; a view with storage of its own would be linked
/// here. The check keeps that assumption honest.
pub(crate) fn link(parent: &Tensor<'_>, view: &Tensor<'_>) {
    debug_assert!(
        std::ptr::eq(parent.storage(), view.storage()),
        "a view with storage of its own needs mm.link"
    );
}

/// What a finished step left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StepLeaks {
    /// Live allocations after the step minus before it.
    pub allocations: isize,
    /// Live bytes after the step minus before it.
    pub bytes: isize,
}

impl StepLeaks {
    /// Whether the step left nothing behind.
    pub fn is_clean(&self) -> bool {
        self.allocations <= 0 && self.bytes <= 0
    }
}

/// The scope of one decode step; [`finish`](Self::finish) says what it left behind.
#[derive(Debug)]
pub struct StepScope<'m> {
    mm: Option<&'m MemoryManager>,
    before: (usize, usize),
    _scope: Option<bitnet_memory::leak::LeakScope<'m>>,
}

/// Begins a decode step. With [`Provider::Vec`] there is nothing to check.
pub fn step_scope<'m>(p: &Provider<'m>) -> StepScope<'m> {
    let mm = p.manager();
    StepScope {
        mm,
        before: mm.map(live).unwrap_or_default(),
        _scope: mm.map(|mm| mm.scope("decode step")),
    }
}

fn live(mm: &MemoryManager) -> (usize, usize) {
    let m = mm.metrics();
    (m.live_allocations(), m.live_bytes())
}

impl StepScope<'_> {
    /// Ends the step: what it left live, or `None` when buffers are plain `Vec`s.
    pub fn finish(mut self) -> Option<StepLeaks> {
        // Ends the leak scope first: what the step left is then reported by the manager.
        drop(self._scope.take());
        let (a0, b0) = self.before;
        self.mm.map(|mm| {
            let (a1, b1) = live(mm);
            StepLeaks {
                allocations: a1 as isize - a0 as isize,
                bytes: b1 as isize - b0 as isize,
            }
        })
    }
}
