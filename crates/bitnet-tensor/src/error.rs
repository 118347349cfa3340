//! The one error type of this crate.

use crate::dtype::{DType, Shape};
use bitnet_memory::MemoryError;

/// What went wrong in a tensor op, the model or the demo.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The memory manager refused a buffer.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// Operand shapes do not fit together.
    #[error("{op}: shape mismatch: expected {expected}, got {got}")]
    ShapeMismatch {
        /// The op that checked.
        op: &'static str,
        /// What the op needed (may contain `?` for free dimensions).
        expected: String,
        /// What it was given.
        got: Shape,
    },
    /// An operand has the wrong element type.
    #[error("{op}: expected dtype {expected:?}, got {got:?}")]
    DType {
        /// The op that checked.
        op: &'static str,
        /// The dtype the op needs.
        expected: DType,
        /// The dtype it was given.
        got: DType,
    },
    /// A shape or a view that cannot exist (rank, zero-sized packing, out-of-range slice).
    #[error("invalid shape {shape}: {reason}")]
    InvalidShape {
        /// The shape in question.
        shape: Shape,
        /// Why it is refused.
        reason: String,
    },
    /// The op needs a contiguous tensor; call `contiguous` first.
    #[error("{op}: tensor is not contiguous (strides {strides:?})")]
    NotContiguous {
        /// The op that checked.
        op: &'static str,
        /// The strides of the tensor, in elements.
        strides: Vec<usize>,
    },
    /// Writing needs sole ownership of the storage, but a view shares it.
    #[error("{op}: storage is shared with {views} other view(s); drop them or copy first")]
    Shared {
        /// The op that wanted to write.
        op: &'static str,
        /// How many other handles hold the storage.
        views: usize,
    },
    /// An index (token id, position) past its bound.
    #[error("{what} {index} out of range (bound {bound})")]
    OutOfRange {
        /// What the index is.
        what: &'static str,
        /// The index.
        index: usize,
        /// The exclusive bound.
        bound: usize,
    },
    /// No GPU could be opened (feature `wgpu`): no backend compiled in, no adapter found,
    /// or the device request failed. The reason says which.
    #[error("no GPU available: {0}")]
    GpuUnavailable(String),
    /// A GPU kernel refused its operands (a misaligned, short or overlapping buffer range,
    /// a shape past the dispatch limits), or the GPU failed (shader compilation, mapping).
    #[error("GPU {op}: {reason}")]
    Gpu {
        /// The kernel or helper that refused or failed.
        op: &'static str,
        /// Why.
        reason: String,
    },
    /// A model or demo configuration that cannot run.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The memory budget cannot hold the model.
    #[error(
        "memory budget of {budget} B is too small for this model: it needs {needed} B live \
         (weights {weights} B, KV cache {kv_cache} B, activations {activations} B) plus pool \
         overhead; try a budget of at least {recommended} B{}",
        source.as_ref().map(|e| format!(" (the pool refused: {e})")).unwrap_or_default()
    )]
    BudgetTooSmall {
        /// The budget, in bytes.
        budget: usize,
        /// Live bytes the model needs at its peak.
        needed: usize,
        /// Bytes of weights.
        weights: usize,
        /// Bytes of the KV cache.
        kv_cache: usize,
        /// Bytes of the peak of temporaries (weight construction or a decode step).
        activations: usize,
        /// A budget that holds the model with room for pool rounding, in bytes.
        recommended: usize,
        /// The pool's own error, when the budget was hit while running.
        source: Option<Box<MemoryError>>,
    },
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
