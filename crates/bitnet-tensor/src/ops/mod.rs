//! BitNet b1.58 ops. Each takes its inputs as tensors and returns a new tensor whose buffer
//! comes from the given [`Provider`](crate::Provider); slice-level kernels (`*_row`,
//! `*_in_place`, `ternary_dot`) are public too, for callers that manage buffers.

pub mod activation;
pub mod attention;
pub mod bitlinear;
pub mod embedding;
pub mod matmul;
pub mod norm;
pub mod quant;
pub mod rope;

pub use activation::{silu, softmax, softmax_in_place, swiglu};
pub use attention::{attention, KvCache};
pub use bitlinear::{
    bitlinear, ternary_dot, ternary_dot_i16, ternary_matmul_i32, widen_activations,
};
pub use embedding::embedding;
pub use matmul::{dot_f32, linear, matmul};
pub use norm::{rmsnorm, rmsnorm_row};
pub use quant::{
    absmax_quantize, absmax_quantize_row, absmean, absmean_quantize, absmean_quantize_into,
    pack_ternary, QuantizedActivations, TernaryWeight,
};
pub use rope::{rope_head, rope_in_place};
