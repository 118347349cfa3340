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
//! ```
//! use bitnet_tensor::gpu::{BitLinearArgs, GpuContext, GpuKernels, GpuSlice, QuantizeArgs};
//!
//! let Ok(ctx) = GpuContext::new() else { return Ok(()) }; // no GPU here: nothing to show
//! let kernels = GpuKernels::new(ctx.device())?;
//! let pool = ctx.storage_buffer(8192); // one pooled buffer, operands at aligned offsets
//! let x = GpuSlice::new(&pool, 256, 16); // f32 [1, 4]
//! let (q, s) = (GpuSlice::new(&pool, 512, 4), GpuSlice::new(&pool, 768, 4));
//! let w = GpuSlice::new(&pool, 4096, 4); // ternary [2, 4]: 2 bytes, padded to a word
//! let y = GpuSlice::new(&pool, 1024, 8); // f32 [1, 2]
//! ctx.upload_f32(x, &[1.0, -2.0, 3.0, 4.0])?;
//! let mut packed = [0u8; 2];
//! bitnet_tensor::ternary::pack(&[1, 0, -1, 1, 0, 1, -1, 1], &mut packed);
//! ctx.upload(w, &packed)?;
//! let mut enc = ctx.encoder();
//! kernels.absmax_quantize(&mut enc, &QuantizeArgs { rows: 1, k: 4, x, q, scales: s })?;
//! let (rows, n, k, w_scale) = (1, 2, 4, 0.5);
//! let args = BitLinearArgs { rows, n, k, x: q, x_scales: s, w, w_scale, y };
//! kernels.bitlinear(&mut enc, &args)?;
//! ctx.submit(enc); // the caller submits, once for both kernels
//! assert_eq!(ctx.read(q)?, [32u8, (-64i8) as u8, 95, 127]);
//! let out = ctx.read_f32(y)?;
//! assert!((out[0] - 1.0).abs() < 0.01 && (out[1] + 0.5).abs() < 0.01); // x · wᵀ / 2
//! # Ok::<(), bitnet_tensor::Error>(())
//! ```
//!
//! # The kernels
//!
//! | kernel | computes | matches |
//! |---|---|---|
//! | [`absmax_quantize`](GpuKernels::absmax_quantize) | f32 `[rows, k]` → int8 `[rows, k]` + f32 scale per row | [`absmax_quantize_row`](crate::ops::absmax_quantize_row), bit for bit |
//! | [`bitlinear`](GpuKernels::bitlinear) | int8 `[rows, k]` × ternary `[n, k]`ᵀ → f32 `[rows, n]` | [`bitlinear`](fn@crate::ops::bitlinear), bit for bit |
//! | [`rmsnorm`](GpuKernels::rmsnorm) | f32 `[rows, n]`, gain `[n]` → f32 `[rows, n]` | [`rmsnorm_row`](crate::ops::rmsnorm_row), within a few ulp |
//! | [`linear`](GpuKernels::linear) | f32 `[rows, k]` × f32 `[n, k]`ᵀ → f32 `[rows, n]` | [`linear`](crate::ops::linear), bit for bit unless the driver fuses multiply-adds |
//! | [`softmax`](GpuKernels::softmax) | f32 `[rows, n]` in place | [`softmax_in_place`](crate::ops::softmax_in_place), within a few ulp |
//! | [`attention`](GpuKernels::attention) | one token's `q` `[heads, d]` over a layer's KV cache → `[heads, d]` | [`attention`](fn@crate::ops::attention), within 1e-5 relative |
//! | [`rope`](GpuKernels::rope) | f32 `[heads, d]` in place, angles from [`rope_table`] | [`rope_in_place`](crate::ops::rope_in_place), bit for bit unless the driver fuses |
//! | [`swiglu`](GpuKernels::swiglu) | `silu(gate) * up`, f32 `[n]` | [`swiglu`](fn@crate::ops::swiglu), within a few ulp |
//! | [`add`](GpuKernels::add) | `x += y`, f32 `[n]` | the model's residual add, bit for bit |
//! | [`embedding`](GpuKernels::embedding) | row `token` of f32 `[vocab, h]` → `[h]` | [`embedding`](fn@crate::ops::embedding), bit for bit |
//! | [`kv_write`](GpuKernels::kv_write) | `k`, `v` `[kv_dim]` → row `pos` of a layer's caches | [`KvCache::write`](crate::ops::KvCache::write), bit for bit |
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
//! **The f32 kernels** cannot all be bit for bit: WGSL's `exp`, `sqrt` and `/` are not
//! correctly rounded, and RMSNorm's and softmax's sums are trees over a workgroup where the
//! CPU sums in order. `linear` (and attention's scores) replay
//! [`dot_f32`](crate::ops::dot_f32)'s own order — 16 lanes, folded 8, 4, 2, 1, then the
//! `k % 16` tail — so they match the CPU bit for bit on a driver that keeps `a + b * c` as
//! two roundings (lavapipe does); a driver may fuse them into an fma (SPIR-V allows it
//! without `NoContraction`, which naga does not emit), and then the last bits can differ.
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
//! uniform is a **per-call buffer** (16 or 32 bytes, created initialised): a ring written with
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
//! | `rmsnorm` | `x`, `g`, `y` f32 | `rows` workgroups |
//! | `linear` | `x`, `w`, `y` f32 | `ceil(rows * n / 4)` workgroups (16 invocations per output) |
//! | `softmax` | `x` f32, in place | `rows` workgroups |
//! | `attention` | `q`, `keys`, `values`, `scores` (scratch), `out` f32 | `heads` workgroups |
//! | `rope` | `x`, `table` | `ceil(heads * d / 2 / 64)` workgroups |
//! | `swiglu` | `gate`, `up`, `y` f32 | `ceil(n / 64)` workgroups |
//! | `add` | `x`, `y` | `ceil(n / 64)` workgroups |
//! | `embedding`, `kv_write` | source, destination words (a compute copy: `copy_buffer_to_buffer` refuses one buffer as both, and pooled operands often share one) | `ceil(words / 64)` workgroups per copy |
//!
//! Every kernel uses 256 bytes of workgroup memory (one reduction array). Attention reads
//! the first `positions` rows of a cache of any capacity (`keys`/`values` may be the whole
//! cache tensor) and needs a `[heads, positions]` scratch range for the scores, as the CPU
//! op does; its uniform is 32 bytes, the others' 16.

mod bitnet;
mod context;
mod demo;
mod elementwise;
mod float;
mod kernels;
mod model;
mod recorder;
mod tensor;

pub use bitnet::{BitLinearArgs, QuantizeArgs};
pub use context::GpuContext;
pub use demo::{run_gpu_demo, run_gpu_demo_with, GpuDemoReport, GPU_DEVICE};
pub use elementwise::{rope_table, AddArgs, EmbeddingArgs, KvWriteArgs, RopeArgs, SwigluArgs};
pub use float::{AttentionArgs, LinearArgs, RmsNormArgs, SoftmaxArgs};
pub use kernels::{GpuKernels, WORKGROUP_SIZE};
pub use model::GpuModel;
pub use recorder::GpuRecorder;
pub use tensor::{GpuDevice, GpuQuantized, GpuTensor, GpuTernaryWeight};
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
