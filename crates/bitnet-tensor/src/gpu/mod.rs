//! GPU compute kernels on wgpu (feature `wgpu`): the CPU ops of [`crate::ops`], in WGSL.
//!
//! [`GpuKernels::new`] compiles every shader and pipeline once for a [`wgpu::Device`].
//! Each kernel then takes its operands as [`GpuSlice`]s — ranges of buffers, because
//! tensors live as sub-ranges of big pooled buffers — and *records* one compute pass into
//! a caller's [`wgpu::CommandEncoder`]: the caller decides when to submit, and may record
//! many kernels before it does. Kernels never submit, never wait and never read back.
//! [`GpuContext`] is a thin helper around them (open a device, make a buffer, upload,
//! submit, read back) for tests and tools.
//!
//! # The kernels
//!
//! | kernel | computes | matches |
//! |---|---|---|
//! | [`absmax_quantize`](GpuKernels::absmax_quantize) | f32 `[rows, k]` → int8 `[rows, k]` + f32 scale per row | [`absmax_quantize_row`](crate::ops::absmax_quantize_row), bit for bit |
//! | [`bitlinear`](GpuKernels::bitlinear) | int8 `[rows, k]` × ternary `[n, k]`ᵀ → f32 `[rows, n]` | [`bitlinear`](crate::ops::bitlinear), bit for bit |
//!
//! **Quantisation** follows the CPU exactly: the row absmax (order-free), `max(·, eps)` with
//! the CPU's [`QUANT_EPS`](crate::ops::quant::QUANT_EPS) passed as bits, `s = 127 / max`,
//! `q = clamp(round(x * s), -128, 127)` with `round` **half away from zero** (Rust's
//! `f32::round`; WGSL's `round` ties to even, so the shader rounds by `trunc` and the exact
//! fraction), and `scale = 1 / s`. WGSL only promises 2.5 ulp for `/`, so both divisions are
//! done in integers on the mantissas, correctly rounded; `*` is correctly rounded in WGSL.
//! Inputs must be finite (a NaN or infinity has no defined result).
//!
//! **BitLinear** sums `w * x` in `i32` (exact, so the order is free), converts the sum to
//! f32 rounded to nearest (in two exact halves, since WGSL leaves `f32(i32)` past 2^24 free
//! to round either way), then does the CPU's two float multiplies in the CPU's order:
//! `acc as f32 * (w_scale * x_scale[r])`. No addition follows a multiply, so no fused
//! multiply-add can change a bit. The integer sum is exact while `128 * k < 2^31`.
//!
//! # Data layout
//!
//! Operands are the bytes of the CPU tensors, row-major: f32 as is; int8 4 per `u32` word,
//! first value in the low byte; ternary 16 per word, 2 bits each, first weight in the low
//! bits (the bytes of a `Ternary` tensor, see [`crate::ternary`]). Element `(r, i)` of a
//! `[rows, k]` operand is flat index `r * k + i`, so rows need not start on a word: any
//! `k >= 1` works, including `k` not a multiple of 4 or 16 (kernels take a faster path
//! when `k % 16 == 0`).
//!
//! # Passing pooled buffer ranges
//!
//! A [`GpuSlice`] is `{ buffer, offset, size }`, bound as a `wgpu::BufferBinding`. The
//! offset must be a multiple of the device's `min_storage_buffer_offset_alignment`
//! ([`GpuKernels::offset_alignment`], 256 on most devices), the size a positive multiple
//! of 4, at least what the shape needs and at most the device's
//! `max_storage_buffer_binding_size`; the buffer needs `BufferUsages::STORAGE`. Operands
//! may sit in the same buffer (the pool's case) but outputs must not overlap any other
//! operand. Every check fails with [`Error::Gpu`](crate::Error::Gpu) before anything is
//! recorded, so a bad range never reaches wgpu's validation (which would panic).
//!
//! Every storage binding is declared `read_write`, even an input: wgpu forbids one buffer
//! being read-only and read-write storage in the same dispatch, and pooled operands share
//! buffers. Kernels write only their output ranges (see each kernel for exactly which
//! bytes).
//!
//! # Bindings, workgroups, limits
//!
//! Binding 0 of every kernel is a small uniform buffer of its shape (and scalars such as
//! `eps` or `w_scale`), bindings 1.. its operands in the order of its `*Args` struct. The
//! uniform is a **per-call buffer** (16 bytes, created initialised): a ring written with
//! `Queue::write_buffer` would be wrong, since every write lands before the next submit, so
//! two calls recorded into one encoder would both see the last write. The cost is one small
//! buffer and one bind group per call; wgpu keeps them alive until the work is done.
//!
//! Workgroups are [`WORKGROUP_SIZE`] (64) invocations. Grids larger than the device's
//! `max_compute_workgroups_per_dimension` (65535 by default) are folded into two
//! dimensions, so the limits are the index arithmetic's: element counts (`rows * k`,
//! `n * k`, `rows * n`) below 2^31, and the binding size.
//!
//! | kernel | bindings (after the uniform) | grid |
//! |---|---|---|
//! | `absmax_quantize` | `x` f32, `q` int8 words, `scales` f32 | `rows` workgroups, then `ceil(rows*k/4)` invocations, then `rows` invocations |
//! | `bitlinear` | `x` int8 words, `x_scales` f32, `w` ternary words, `y` f32 | `rows * n` workgroups |

mod bitnet;
mod context;
mod float;
mod kernels;

pub use bitnet::{BitLinearArgs, QuantizeArgs};
pub use context::GpuContext;
pub use float::{AttentionArgs, LinearArgs, RmsNormArgs, SoftmaxArgs};
pub use kernels::{GpuKernels, WORKGROUP_SIZE};
/// The wgpu this module is built on, for callers to name its types at the same version.
pub use wgpu;

use std::num::NonZeroU64;

/// A range of a GPU buffer holding one operand: `size` bytes at `offset`.
///
/// See the [module docs](self) for the alignment and size rules the kernels check.
#[derive(Debug, Clone, Copy)]
pub struct GpuSlice<'a> {
    /// The buffer, typically a big pooled one.
    pub buffer: &'a wgpu::Buffer,
    /// Byte offset of the range in `buffer`.
    pub offset: u64,
    /// Byte length of the range.
    pub size: u64,
}

impl<'a> GpuSlice<'a> {
    /// `size` bytes of `buffer` at `offset`.
    pub fn new(buffer: &'a wgpu::Buffer, offset: u64, size: u64) -> Self {
        GpuSlice {
            buffer,
            offset,
            size,
        }
    }

    /// The whole of `buffer`.
    pub fn whole(buffer: &'a wgpu::Buffer) -> Self {
        GpuSlice::new(buffer, 0, buffer.size())
    }

    /// The range as a binding resource.
    fn binding(&self) -> wgpu::BindingResource<'a> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: self.buffer,
            offset: self.offset,
            size: NonZeroU64::new(self.size),
        })
    }
}
