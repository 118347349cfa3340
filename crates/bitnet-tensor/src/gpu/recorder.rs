//! [`GpuRecorder`]: the tensor ops of [`crate::ops`] on [`GpuTensor`]s, recorded into one
//! command encoder.
//!
//! Each op checks dtypes and shapes as its CPU counterpart does ([`Error::DType`],
//! [`Error::ShapeMismatch`]), allocates its outputs on the recorder's [`GpuDevice`] and
//! records the [`GpuKernels`] kernel over the tensors' ranges: the same kernels as the
//! slice-level entry points, so the same results (bit for bit for quantisation and
//! BitLinear). Nothing runs until [`submit`](GpuRecorder::submit); inputs may be dropped
//! as soon as the op that reads them is recorded (the pool's fence keeps their ranges out
//! of reach until the submission after the drop has finished).
//!
//! ```
//! use bitnet_memory::device::wgpu::{WgpuBackend, WgpuOptions};
//! use bitnet_memory::{CpuBackend, DeviceId, MemoryConfig, MemoryManager};
//! use bitnet_tensor::gpu::{GpuDevice, GpuKernels, GpuRecorder, GpuTernaryWeight};
//! use bitnet_tensor::{ops, Exec, Provider, Tensor};
//!
//! let Ok(gpu) = WgpuBackend::new(&WgpuOptions::default()) else { return Ok(()) }; // no GPU
//! let mm = MemoryManager::builder(MemoryConfig::default())
//!     .device(CpuBackend::new(), None)
//!     .device(gpu.clone(), None)
//!     .build()?;
//! let (dev, p) = (GpuDevice::new(&mm, &gpu, DeviceId(1)), Provider::Vec);
//! let kernels = GpuKernels::new(gpu.device())?;
//! let w = ops::absmean_quantize(&Tensor::from_f32(&p, &[2, 4], &[0.9, -0.1, -1.2, 0.4, 0.0, 0.5, -0.6, 1.0])?, &p)?;
//! let x = Tensor::from_f32(&p, &[1, 4], &[1.0, 2.0, 3.0, 4.0])?;
//! let mut rec = GpuRecorder::new(&kernels, &dev);
//! let xq = rec.absmax_quantize(&dev.upload(&x)?)?;
//! let y = rec.bitlinear(&xq, &GpuTernaryWeight::upload(&dev, &w)?)?;
//! rec.submit();
//! let want = ops::bitlinear(&ops::absmax_quantize(&x, &p)?, &w, &p, &Exec::sequential())?;
//! assert_eq!(y.to_cpu(&p)?.to_vec_f32(), want.to_vec_f32()); // bit for bit
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::tensor::{GpuDevice, GpuQuantized, GpuTensor, GpuTernaryWeight};
use super::{
    AddArgs, AttentionArgs, BitLinearArgs, EmbeddingArgs, GpuKernels, KvWriteArgs, LinearArgs,
    QuantizeArgs, RmsNormArgs, RopeArgs, SoftmaxArgs, SwigluArgs,
};
use crate::dtype::DType::{self, F32};
use crate::error::{Error, Result};

/// Records tensor ops on one GPU device into one command encoder; see the
/// [module docs](self).
pub struct GpuRecorder<'d, 'm> {
    kernels: &'d GpuKernels,
    dev: &'d GpuDevice<'m>,
    enc: wgpu::CommandEncoder,
}

impl std::fmt::Debug for GpuRecorder<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuRecorder")
            .field("device", &self.dev)
            .finish()
    }
}

/// Narrows a size for a kernel's `u32` shape arguments.
fn u32_of(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Config(format!("{what} = {v} does not fit in u32")))
}

impl<'d, 'm> GpuRecorder<'d, 'm> {
    /// A recorder with a new encoder; `kernels` must be compiled for `dev`'s device.
    pub fn new(kernels: &'d GpuKernels, dev: &'d GpuDevice<'m>) -> Self {
        GpuRecorder {
            kernels,
            dev,
            enc: dev.encoder(),
        }
    }

    /// The device outputs are made on.
    pub fn device(&self) -> &'d GpuDevice<'m> {
        self.dev
    }

    /// The encoder, to record work of your own between the ops.
    pub fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        &mut self.enc
    }

    /// Submits everything recorded through the backend (counted, so the pool's fences
    /// pass once it has finished).
    pub fn submit(self) -> wgpu::SubmissionIndex {
        self.dev.submit(self.enc)
    }

    /// The recorded work as a command buffer, to submit yourself through
    /// [`WgpuBackend::submit`](bitnet_memory::device::wgpu::WgpuBackend::submit).
    pub fn finish(self) -> wgpu::CommandBuffer {
        self.enc.finish()
    }

    fn out(&self, dtype: DType, dims: &[usize]) -> Result<GpuTensor<'m>> {
        self.dev.tensor(dtype, dims)
    }

    /// Absmax int8 quantisation of an F32 `[rows, features]` tensor, per row: the int8
    /// values and scales of [`ops::absmax_quantize`](crate::ops::absmax_quantize), bit for
    /// bit.
    pub fn absmax_quantize(&mut self, x: &GpuTensor<'_>) -> Result<GpuQuantized<'m>> {
        const OP: &str = "absmax_quantize";
        x.expect(OP, F32, &[None, None])?;
        let (rows, k) = (x.dims()[0], x.dims()[1]);
        let values = self.out(DType::I8, &[rows, k])?;
        let scales = self.out(F32, &[rows])?;
        let args = QuantizeArgs {
            rows: u32_of(rows, "rows")?,
            k: u32_of(k, "features")?,
            x: x.slice(),
            q: values.slice(),
            scales: scales.slice(),
        };
        self.kernels.absmax_quantize(&mut self.enc, &args)?;
        Ok(GpuQuantized { values, scales })
    }

    /// BitLinear: `x` int8 `[rows, in]` times the ternary weight `[out, in]`ᵀ, an F32
    /// `[rows, out]` tensor equal bit for bit to [`ops::bitlinear`](fn@crate::ops::bitlinear).
    pub fn bitlinear(
        &mut self,
        x: &GpuQuantized<'_>,
        w: &GpuTernaryWeight<'_>,
    ) -> Result<GpuTensor<'m>> {
        const OP: &str = "bitlinear";
        w.weight.expect(OP, DType::Ternary, &[None, None])?;
        let (n, k) = w.dims();
        x.values.expect(OP, DType::I8, &[None, Some(k)])?;
        let rows = x.values.dims()[0];
        x.scales.expect("bitlinear scales", F32, &[Some(rows)])?;
        let y = self.out(F32, &[rows, n])?;
        let args = BitLinearArgs {
            rows: u32_of(rows, "rows")?,
            n: u32_of(n, "out features")?,
            k: u32_of(k, "in features")?,
            x: x.values.slice(),
            x_scales: x.scales.slice(),
            w: w.weight.slice(),
            w_scale: w.scale,
            y: y.slice(),
        };
        self.kernels.bitlinear(&mut self.enc, &args)?;
        Ok(y)
    }

    /// RMSNorm of every row of an F32 `[rows, n]` tensor with gain `g` (`[n]`).
    pub fn rmsnorm(
        &mut self,
        x: &GpuTensor<'_>,
        g: &GpuTensor<'_>,
        eps: f32,
    ) -> Result<GpuTensor<'m>> {
        const OP: &str = "rmsnorm";
        x.expect(OP, F32, &[None, None])?;
        let (rows, n) = (x.dims()[0], x.dims()[1]);
        g.expect("rmsnorm gain", F32, &[Some(n)])?;
        let y = self.out(F32, &[rows, n])?;
        let args = RmsNormArgs {
            rows: u32_of(rows, "rows")?,
            n: u32_of(n, "features")?,
            eps,
            x: x.slice(),
            g: g.slice(),
            y: y.slice(),
        };
        self.kernels.rmsnorm(&mut self.enc, &args)?;
        Ok(y)
    }

    /// `x · wᵀ` for F32 `x` `[rows, k]` and `w` `[n, k]`: `[rows, n]`.
    pub fn linear(&mut self, x: &GpuTensor<'_>, w: &GpuTensor<'_>) -> Result<GpuTensor<'m>> {
        const OP: &str = "linear";
        w.expect(OP, F32, &[None, None])?;
        let (n, k) = (w.dims()[0], w.dims()[1]);
        x.expect(OP, F32, &[None, Some(k)])?;
        let rows = x.dims()[0];
        let y = self.out(F32, &[rows, n])?;
        let args = LinearArgs {
            rows: u32_of(rows, "rows")?,
            n: u32_of(n, "outputs")?,
            k: u32_of(k, "inputs")?,
            x: x.slice(),
            w: w.slice(),
            y: y.slice(),
        };
        self.kernels.linear(&mut self.enc, &args)?;
        Ok(y)
    }

    /// Softmax of every row of an F32 `[rows, n]` tensor, in place.
    pub fn softmax_in_place(&mut self, x: &mut GpuTensor<'_>) -> Result<()> {
        x.expect("softmax", F32, &[None, None])?;
        let args = SoftmaxArgs {
            rows: u32_of(x.dims()[0], "rows")?,
            n: u32_of(x.dims()[1], "features")?,
            x: x.slice(),
        };
        self.kernels.softmax(&mut self.enc, &args)
    }

    /// Attention of one token's queries `q` (`[heads, d]`) over the first `positions`
    /// rows of a layer's caches `keys` and `values` (`[capacity, kv_heads * d]`), as
    /// [`ops::attention`](fn@crate::ops::attention): `[heads, d]`. The scores scratch
    /// (`[heads, positions]`) is allocated and dropped here, once recorded.
    pub fn attention(
        &mut self,
        q: &GpuTensor<'_>,
        keys: &GpuTensor<'_>,
        values: &GpuTensor<'_>,
        positions: usize,
    ) -> Result<GpuTensor<'m>> {
        const OP: &str = "attention";
        q.expect(OP, F32, &[None, None])?;
        let (heads, d) = (q.dims()[0], q.dims()[1]);
        keys.expect("attention keys", F32, &[None, None])?;
        let (cap, kvd) = (keys.dims()[0], keys.dims()[1]);
        values.expect("attention values", F32, &[Some(cap), Some(kvd)])?;
        let kv_heads = kvd / d;
        if kv_heads == 0 || kvd % d != 0 || heads % kv_heads != 0 {
            return Err(Error::ShapeMismatch {
                op: "attention (a cache row is KV heads of the query's head size, dividing the query heads)",
                expected: format!("[?, k * {d}] with {heads} a multiple of k"),
                got: keys.shape(),
            });
        }
        if positions == 0 || positions > cap {
            return Err(Error::OutOfRange {
                what: "attention positions",
                index: positions,
                bound: cap + 1,
            });
        }
        let scores = self.out(F32, &[heads, positions])?;
        let out = self.out(F32, &[heads, d])?;
        let args = AttentionArgs {
            heads: u32_of(heads, "heads")?,
            kv_heads: u32_of(kv_heads, "KV heads")?,
            head_dim: u32_of(d, "head size")?,
            positions: u32_of(positions, "positions")?,
            q: q.slice(),
            keys: keys.slice(),
            values: values.slice(),
            scores: scores.slice(),
            out: out.slice(),
        };
        self.kernels.attention(&mut self.enc, &args)?;
        Ok(out)
    }

    /// Rotary embedding of every head of an F32 `[heads, d]` tensor in place, by the
    /// angles of `table` ([`rope_table`](super::rope_table) of the position, uploaded).
    pub fn rope_in_place(&mut self, x: &mut GpuTensor<'_>, table: &GpuTensor<'_>) -> Result<()> {
        const OP: &str = "rope";
        x.expect(OP, F32, &[None, None])?;
        let (heads, d) = (x.dims()[0], x.dims()[1]);
        table.expect("rope table", F32, &[Some(d / 2 * 2)])?;
        let args = RopeArgs {
            heads: u32_of(heads, "heads")?,
            head_dim: u32_of(d, "head size")?,
            x: x.slice(),
            table: table.slice(),
        };
        self.kernels.rope(&mut self.enc, &args)
    }

    /// `silu(gate) * up`, elementwise over two F32 tensors of one shape.
    pub fn swiglu(&mut self, gate: &GpuTensor<'_>, up: &GpuTensor<'_>) -> Result<GpuTensor<'m>> {
        const OP: &str = "swiglu";
        gate.expect_dtype(OP, F32)?;
        let dims: Vec<Option<usize>> = gate.dims().iter().map(|&d| Some(d)).collect();
        up.expect(OP, F32, &dims)?;
        let y = self.out(F32, gate.dims())?;
        let args = SwigluArgs {
            n: u32_of(gate.numel(), "elements")?,
            gate: gate.slice(),
            up: up.slice(),
            y: y.slice(),
        };
        self.kernels.swiglu(&mut self.enc, &args)?;
        Ok(y)
    }

    /// `x += y`, elementwise over two F32 tensors of one shape.
    pub fn add_in_place(&mut self, x: &mut GpuTensor<'_>, y: &GpuTensor<'_>) -> Result<()> {
        const OP: &str = "add";
        x.expect_dtype(OP, F32)?;
        let dims: Vec<Option<usize>> = x.dims().iter().map(|&d| Some(d)).collect();
        y.expect(OP, F32, &dims)?;
        let args = AddArgs {
            n: u32_of(x.numel(), "elements")?,
            x: x.slice(),
            y: y.slice(),
        };
        self.kernels.add(&mut self.enc, &args)
    }

    /// Row `token` of an F32 `[vocab, hidden]` table: `[1, hidden]`.
    pub fn embedding(&mut self, table: &GpuTensor<'_>, token: u32) -> Result<GpuTensor<'m>> {
        table.expect("embedding", F32, &[None, None])?;
        let (vocab, hidden) = (table.dims()[0], table.dims()[1]);
        if token as usize >= vocab {
            return Err(Error::OutOfRange {
                what: "token id",
                index: token as usize,
                bound: vocab,
            });
        }
        let out = self.out(F32, &[1, hidden])?;
        let args = EmbeddingArgs {
            vocab: u32_of(vocab, "vocabulary")?,
            hidden: u32_of(hidden, "hidden size")?,
            token,
            table: table.slice(),
            out: out.slice(),
        };
        self.kernels.embedding(&mut self.enc, &args)?;
        Ok(out)
    }

    /// Writes `k` and `v` (`kv_dim` values each, any shape) into row `pos` of a layer's
    /// caches `keys` and `values` (F32 `[capacity, kv_dim]`).
    pub fn kv_write(
        &mut self,
        keys: &mut GpuTensor<'_>,
        values: &mut GpuTensor<'_>,
        pos: usize,
        k: &GpuTensor<'_>,
        v: &GpuTensor<'_>,
    ) -> Result<()> {
        const OP: &str = "kv_write";
        keys.expect(OP, F32, &[None, None])?;
        let (cap, kvd) = (keys.dims()[0], keys.dims()[1]);
        values.expect(OP, F32, &[Some(cap), Some(kvd)])?;
        for t in [k, v] {
            t.expect_dtype(OP, F32)?;
            if t.numel() != kvd {
                return Err(Error::ShapeMismatch {
                    op: "kv_write (a key or value row)",
                    expected: format!("{kvd} elements"),
                    got: t.shape(),
                });
            }
        }
        if pos >= cap {
            return Err(Error::OutOfRange {
                what: "KV cache position",
                index: pos,
                bound: cap,
            });
        }
        let args = KvWriteArgs {
            kv_dim: u32_of(kvd, "KV width")?,
            capacity: u32_of(cap, "capacity")?,
            pos: u32_of(pos, "position")?,
            k: k.slice(),
            v: v.slice(),
            keys: keys.slice(),
            values: values.slice(),
        };
        self.kernels.kv_write(&mut self.enc, &args)
    }
}
