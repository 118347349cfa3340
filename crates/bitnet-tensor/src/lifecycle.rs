//! Where tensors meet the manager's lifetime tracking: the hooks of the leak-scope API.
//!
//! Every place that creates a persistent tensor (weights, KV cache), makes a view, or
//! begins and ends a decode step goes through this module, so the leak-detection layer of
//! `bitnet-memory` plugs in here and nowhere else. What will go in, once the manager has it:
//!
//! - `persistent` (crate-private): `mm.persist(&allocation, what)` on
//!   `t.storage().allocation()`, so weights and the KV cache are expected to outlive every
//!   step and are not reported as leaks of the step that made them (the model is built
//!   outside any step today, so nothing is misreported yet).
//! - `link` (crate-private): `mm.link(parent, view)`, recording that a view keeps its
//!   parent's storage alive (the relationship graph of the leak detector, which finds
//!   reference cycles).
//! - [`step_scope`]: `mm.scope("decode step")`; allocations made inside must die inside,
//!   or the scope reports them, grouped by site.
//!
//! Until then the step scope does the one check the manager's counters allow, and does it
//! for real: it compares live allocations and live bytes before and after each step. The
//! demo report's "tracking overhead" line says "not measured" until the tracking layer
//! exists; it will read the manager's overhead monitor in `demo.rs`.

use crate::storage::Provider;
use crate::tensor::Tensor;
use bitnet_memory::MemoryManager;

/// Marks a tensor as meant to live across decode steps (weights, KV cache).
///
/// Today it returns the tensor unchanged; with leak scopes it will call `mm.persist`.
pub(crate) fn persistent<'m>(t: Tensor<'m>, _what: &'static str) -> Tensor<'m> {
    t
}

/// Records that `view` keeps the storage of `parent` alive.
///
/// Today views share an `Arc` and nothing is recorded; with leak scopes it will call
/// `mm.link(parent, view)`.
pub(crate) fn link(_parent: &Tensor<'_>, _view: &Tensor<'_>) {}

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
}

/// Begins a decode step. With [`Provider::Vec`] there is nothing to check.
pub fn step_scope<'m>(p: &Provider<'m>) -> StepScope<'m> {
    let mm = p.manager();
    StepScope {
        mm,
        before: mm.map(live).unwrap_or_default(),
    }
}

fn live(mm: &MemoryManager) -> (usize, usize) {
    let m = mm.metrics();
    (m.live_allocations(), m.live_bytes())
}

impl StepScope<'_> {
    /// Ends the step: what it left live, or `None` when buffers are plain `Vec`s.
    pub fn finish(self) -> Option<StepLeaks> {
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
