//! [`GpuModel`]: the decoder of [`Model`] on the GPU, every tensor a block of a
//! [`MemoryManager`]'s GPU device.
//!
//! Weights are drawn on the CPU by [`Model::new`] itself (same seed, same code, same
//! values) and uploaded; the KV cache and every activation live in pooled GPU blocks, one
//! [`Allocation`] per tensor as the CPU model has one buffer per tensor. A step records
//! every kernel into one command encoder, dropping each activation as soon as its last
//! kernel is *recorded* — before anything is submitted. That is the case the pool's fence
//! is for: a block freed while recorded work that uses it is still unsubmitted stays
//! pending (neither live nor free) until the next submission through
//! [`WgpuBackend::submit`] has finished, so no later allocation can be handed its range
//! and have an upload overwrite it under the recorded kernels. The step then submits once
//! through the backend, downloads the logits (a second, counted submission) and takes the
//! argmax on the CPU.

use super::{
    rope_table, AddArgs, AttentionArgs, BitLinearArgs, EmbeddingArgs, GpuKernels, GpuSlice,
    KvWriteArgs, LinearArgs, QuantizeArgs, RmsNormArgs, RopeArgs, SwigluArgs,
};
use crate::error::{Error, Result};
use crate::exec::Exec;
use crate::model::{argmax, Generation, LeakCheck, Model, ModelConfig};
use crate::ops::{KvCache, TernaryWeight};
use crate::storage::Provider;
use crate::tensor::Tensor;
use bitnet_memory::device::wgpu::{GpuRange, WgpuBackend};
use bitnet_memory::{Allocation, DeviceId, MemoryManager};
use std::alloc::Layout;
use std::time::Instant;

/// One tensor on the GPU: its pooled block and the block's buffer range. The range is
/// dropped with the block: no copy of it outlives the allocation.
struct GpuTensor<'m> {
    /// Kept for its `Drop`: freeing the block is what the pool's fence watches.
    alloc: Allocation<'m>,
    range: GpuRange,
}

impl GpuTensor<'_> {
    /// The block as a kernel operand (its size rounded up to a word, inside the block's
    /// own padding).
    fn slice(&self) -> GpuSlice<'_> {
        GpuSlice::new(
            &self.range.buffer,
            self.range.offset,
            self.range.binding_size(),
        )
    }
}

/// A BitLinear weight on the GPU.
struct GpuWeight<'m> {
    w: GpuTensor<'m>,
    scale: f32,
    out: u32,
    inp: u32,
}

/// One decoder layer's weights on the GPU.
struct GpuLayer<'m> {
    attn_norm: GpuTensor<'m>,
    wq: GpuWeight<'m>,
    wk: GpuWeight<'m>,
    wv: GpuWeight<'m>,
    attn_sub_norm: GpuTensor<'m>,
    wo: GpuWeight<'m>,
    ffn_norm: GpuTensor<'m>,
    w_gate: GpuWeight<'m>,
    w_up: GpuWeight<'m>,
    ffn_sub_norm: GpuTensor<'m>,
    w_down: GpuWeight<'m>,
}

/// The BitNet b1.58 decoder of [`Model`] on a GPU: same weights, same steps, GPU kernels
/// on blocks of a [`MemoryManager`]'s GPU device.
///
/// See the [module docs](self) for how a step records, frees and submits.
pub struct GpuModel<'m> {
    config: ModelConfig,
    mm: &'m MemoryManager,
    gpu: WgpuBackend,
    device: DeviceId,
    kernels: GpuKernels,
    embedding: GpuTensor<'m>,
    layers: Vec<GpuLayer<'m>>,
    final_norm: GpuTensor<'m>,
    keys: Vec<GpuTensor<'m>>,
    values: Vec<GpuTensor<'m>>,
    capacity: usize,
    len: usize,
}

impl std::fmt::Debug for GpuModel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuModel")
            .field("config", &self.config.name)
            .field("device", &self.device)
            .field("gpu", &self.gpu)
            .field("positions", &self.len)
            .field("capacity", &self.capacity)
            .finish()
    }
}

/// Narrows a size for a kernel's `u32` shape arguments.
fn u32_of(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Config(format!("{what} = {v} does not fit in u32")))
}

impl<'m> GpuModel<'m> {
    /// Builds the model of `config` and `seed` on `device` of `mm`, which must be `gpu`'s
    /// device, with a KV cache of `capacity` positions.
    ///
    /// The weights are [`Model::new`]'s own: the CPU model is built on plain `Vec`s with
    /// `exec` (values do not depend on the thread count), each weight uploaded into a
    /// block of its own, then the CPU model is dropped. The KV cache is allocated after
    /// the weights and cleared on the GPU, as the CPU cache is zeroed.
    pub fn new(
        config: &ModelConfig,
        mm: &'m MemoryManager,
        gpu: &WgpuBackend,
        device: DeviceId,
        seed: u64,
        capacity: usize,
        exec: Exec,
    ) -> Result<Self> {
        let cpu = Model::new(config, Provider::Vec, exec, seed, capacity)?;
        let kernels = GpuKernels::new(gpu.device())?;
        let up = |bytes: &[u8]| upload(mm, gpu, device, bytes);
        let f32s = |t: &Tensor<'_>| up(bytemuck::cast_slice(t.as_f32()?));
        let tern = |t: &TernaryWeight<'_>| -> Result<GpuWeight<'m>> {
            let dims = t.weight.dims();
            Ok(GpuWeight {
                w: up(t.weight.as_ternary()?)?,
                scale: t.scale,
                out: u32_of(dims[0], "weight rows")?,
                inp: u32_of(dims[1], "weight columns")?,
            })
        };
        let embedding = f32s(&cpu.embedding)?;
        let mut layers = Vec::with_capacity(cpu.layers.len());
        for l in &cpu.layers {
            layers.push(GpuLayer {
                attn_norm: f32s(&l.attn_norm)?,
                wq: tern(&l.wq)?,
                wk: tern(&l.wk)?,
                wv: tern(&l.wv)?,
                attn_sub_norm: f32s(&l.attn_sub_norm)?,
                wo: tern(&l.wo)?,
                ffn_norm: f32s(&l.ffn_norm)?,
                w_gate: tern(&l.w_gate)?,
                w_up: tern(&l.w_up)?,
                ffn_sub_norm: f32s(&l.ffn_sub_norm)?,
                w_down: tern(&l.w_down)?,
            });
        }
        let final_norm = f32s(&cpu.final_norm)?;
        drop(cpu);
        let cache_bytes = 4 * capacity * config.kv_dim();
        let mut enc = encoder(gpu);
        let (mut keys, mut values) = (Vec::new(), Vec::new());
        for _ in 0..config.layers {
            for v in [&mut keys, &mut values] {
                let t = alloc(mm, gpu, device, cache_bytes)?;
                let r = &t.range;
                enc.clear_buffer(&r.buffer, r.offset, Some(r.binding_size()));
                v.push(t);
            }
        }
        gpu.submit([enc.finish()]);
        Ok(GpuModel {
            config: config.clone(),
            mm,
            gpu: gpu.clone(),
            device,
            kernels,
            embedding,
            layers,
            final_norm,
            keys,
            values,
            capacity,
            len: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Positions decoded so far (in the KV cache).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is decoded yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions the KV cache holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The manager's device the model lives on.
    pub fn device(&self) -> DeviceId {
        self.device
    }

    /// Bytes the model keeps live on its device: the weights
    /// ([`ModelConfig::weight_bytes`]) plus the KV cache
    /// ([`KvCache::bytes_for`] at the capacity). Between steps the device holds exactly
    /// this many live bytes of this model.
    pub fn resident_bytes(&self) -> usize {
        let c = &self.config;
        c.weight_bytes() + KvCache::bytes_for(c.layers, self.capacity, c.kv_heads, c.head_dim())
    }

    /// Forgets the context (the KV cache keeps its blocks).
    pub fn reset(&mut self) {
        self.len = 0;
    }

    /// A new activation of `bytes` bytes on the model's device.
    fn t(&self, bytes: usize) -> Result<GpuTensor<'m>> {
        alloc(self.mm, &self.gpu, self.device, bytes)
    }

    /// Decodes `token` at the next position and returns the logits of the token after it
    /// (`vocab` values), as [`Model::forward`] does: every kernel of the step recorded
    /// into one encoder, one submission through the backend, then a download.
    pub fn forward(&mut self, token: u32) -> Result<Vec<f32>> {
        let logits = self.forward_on_gpu(token)?;
        let bytes = self.gpu.download(&logits.alloc)?;
        drop(logits);
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// The step up to the logits, which stay on the GPU (submitted, maybe not finished).
    fn forward_on_gpu(&mut self, token: u32) -> Result<GpuTensor<'m>> {
        let c = &self.config;
        let pos = self.len;
        if pos >= self.capacity {
            return Err(Error::OutOfRange {
                what: "KV cache position",
                index: pos,
                bound: self.capacity,
            });
        }
        let (h, f, kv, d) = (c.hidden, c.ffn, c.kv_dim(), c.head_dim());
        let u = |v: usize| u32_of(v, "model dimension");
        let (hidden, ffn, heads, kv_heads, hd) = (u(h)?, u(f)?, u(c.heads)?, u(c.kv_heads)?, u(d)?);
        let eps = c.norm_eps;
        let k = &self.kernels;
        let mut enc = encoder(&self.gpu);
        let table = self.t(4 * d)?;
        self.gpu.upload(
            &table.alloc,
            bytemuck::cast_slice(&rope_table(pos, c.rope_theta, d)),
        )?;
        let x = self.t(4 * h)?;
        k.embedding(
            &mut enc,
            &EmbeddingArgs {
                vocab: u(c.vocab)?,
                hidden,
                token,
                table: self.embedding.slice(),
                out: x.slice(),
            },
        )?;
        // rmsnorm, then absmax quantisation: the int8 row and its scale.
        let norm_quant =
            |enc: &mut wgpu::CommandEncoder, x: &GpuTensor<'m>, g: &GpuTensor<'m>, n| {
                let xn = self.t(4 * n as usize)?;
                let (rows, y) = (1, xn.slice());
                k.rmsnorm(
                    enc,
                    &RmsNormArgs {
                        rows,
                        n,
                        eps,
                        x: x.slice(),
                        g: g.slice(),
                        y,
                    },
                )?;
                let (q, s) = (self.t(n as usize)?, self.t(4)?);
                let args = QuantizeArgs {
                    rows,
                    k: n,
                    x: xn.slice(),
                    q: q.slice(),
                    scales: s.slice(),
                };
                k.absmax_quantize(enc, &args)?;
                drop(xn); // recorded, not submitted: the fence's case
                Ok::<_, Error>((q, s))
            };
        let bitlinear = |enc: &mut wgpu::CommandEncoder,
                         xq: &(GpuTensor<'m>, GpuTensor<'m>),
                         w: &GpuWeight<'m>| {
            let y = self.t(4 * w.out as usize)?;
            let args = BitLinearArgs {
                rows: 1,
                n: w.out,
                k: w.inp,
                x: xq.0.slice(),
                x_scales: xq.1.slice(),
                w: w.w.slice(),
                w_scale: w.scale,
                y: y.slice(),
            };
            k.bitlinear(enc, &args)?;
            Ok::<_, Error>(y)
        };
        for (l, layer) in self.layers.iter().enumerate() {
            // Attention block.
            let a = {
                let hq = norm_quant(&mut enc, &x, &layer.attn_norm, hidden)?;
                let q = bitlinear(&mut enc, &hq, &layer.wq)?;
                let kk = bitlinear(&mut enc, &hq, &layer.wk)?;
                let v = bitlinear(&mut enc, &hq, &layer.wv)?;
                drop(hq);
                let t = table.slice();
                k.rope(
                    &mut enc,
                    &RopeArgs {
                        heads,
                        head_dim: hd,
                        x: q.slice(),
                        table: t,
                    },
                )?;
                let args = RopeArgs {
                    heads: kv_heads,
                    head_dim: hd,
                    x: kk.slice(),
                    table: t,
                };
                k.rope(&mut enc, &args)?;
                let args = KvWriteArgs {
                    kv_dim: u(kv)?,
                    capacity: u(self.capacity)?,
                    pos: u(pos)?,
                    k: kk.slice(),
                    v: v.slice(),
                    keys: self.keys[l].slice(),
                    values: self.values[l].slice(),
                };
                k.kv_write(&mut enc, &args)?;
                drop((kk, v));
                let scores = self.t(4 * c.heads * (pos + 1))?;
                let att = self.t(4 * h)?;
                let args = AttentionArgs {
                    heads,
                    kv_heads,
                    head_dim: hd,
                    positions: u(pos + 1)?,
                    q: q.slice(),
                    keys: self.keys[l].slice(),
                    values: self.values[l].slice(),
                    scores: scores.slice(),
                    out: att.slice(),
                };
                k.attention(&mut enc, &args)?;
                drop((q, scores));
                let aq = norm_quant(&mut enc, &att, &layer.attn_sub_norm, hidden)?;
                drop(att);
                bitlinear(&mut enc, &aq, &layer.wo)?
            };
            k.add(
                &mut enc,
                &AddArgs {
                    n: hidden,
                    x: x.slice(),
                    y: a.slice(),
                },
            )?;
            drop(a);
            // FFN block.
            let dn = {
                let hq = norm_quant(&mut enc, &x, &layer.ffn_norm, hidden)?;
                let gate = bitlinear(&mut enc, &hq, &layer.w_gate)?;
                let up = bitlinear(&mut enc, &hq, &layer.w_up)?;
                drop(hq);
                let act = self.t(4 * f)?;
                let args = SwigluArgs {
                    n: ffn,
                    gate: gate.slice(),
                    up: up.slice(),
                    y: act.slice(),
                };
                k.swiglu(&mut enc, &args)?;
                drop((gate, up));
                let aq = norm_quant(&mut enc, &act, &layer.ffn_sub_norm, ffn)?;
                drop(act);
                bitlinear(&mut enc, &aq, &layer.w_down)?
            };
            k.add(
                &mut enc,
                &AddArgs {
                    n: hidden,
                    x: x.slice(),
                    y: dn.slice(),
                },
            )?;
        }
        let xn = self.t(4 * h)?;
        let g = self.final_norm.slice();
        k.rmsnorm(
            &mut enc,
            &RmsNormArgs {
                rows: 1,
                n: hidden,
                eps,
                x: x.slice(),
                g,
                y: xn.slice(),
            },
        )?;
        drop(x);
        let logits = self.t(4 * c.vocab)?;
        let args = LinearArgs {
            rows: 1,
            n: u(c.vocab)?,
            k: hidden,
            x: xn.slice(),
            w: self.embedding.slice(),
            y: logits.slice(),
        };
        k.linear(&mut enc, &args)?;
        drop((xn, table));
        self.gpu.submit([enc.finish()]);
        self.len += 1;
        Ok(logits)
    }

    /// Live `(allocations, bytes)` of the model's device.
    fn live(&self) -> (usize, usize) {
        let m = self.mm.metrics();
        m.device(self.device)
            .map_or((0, 0), |d| (d.live_allocations, d.live_bytes))
    }

    /// Decodes `token` and returns the greedy next token (argmax of the downloaded
    /// logits, first on ties as [`argmax`] does) and the live `(allocations, bytes)` the
    /// step added on the device (0 unless it leaked).
    pub fn step(&mut self, token: u32) -> Result<(u32, (isize, isize))> {
        let before = self.live();
        let next = argmax(&self.forward(token)?);
        let after = self.live();
        let delta = (
            after.0 as isize - before.0 as isize,
            after.1 as isize - before.1 as isize,
        );
        Ok((next, delta))
    }

    /// Decodes `prompt` and then generates `n` tokens greedily, as [`Model::generate`]
    /// does (same steps, same token order); `on_step` is called after every step with the
    /// number of steps done. [`Generation::leaks`] counts what steps left live on the
    /// GPU device.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        n: usize,
        mut on_step: impl FnMut(usize),
    ) -> Result<Generation> {
        if prompt.is_empty() {
            return Err(Error::Config("the prompt needs at least one token".into()));
        }
        let steps = prompt.len() + n.saturating_sub(1);
        if self.len + steps > self.capacity {
            return Err(Error::OutOfRange {
                what: "positions of prompt and generated tokens",
                index: self.len + steps,
                bound: self.capacity,
            });
        }
        let mut leaks = LeakCheck::default();
        let mut record = |(allocs, bytes): (isize, isize)| {
            leaks.steps += 1;
            if allocs > 0 || bytes > 0 {
                leaks.leaking_steps += 1;
                leaks.allocations += allocs.max(0) as usize;
                leaks.bytes += bytes.max(0) as usize;
            }
        };
        let mut tokens = Vec::with_capacity(n);
        let start = Instant::now();
        let mut next = 0;
        for (i, &t) in prompt.iter().enumerate() {
            let (tok, l) = self.step(t)?;
            next = tok;
            record(l);
            on_step(i + 1);
        }
        let mut done = prompt.len();
        while tokens.len() < n {
            tokens.push(next);
            if tokens.len() == n {
                break;
            }
            let (tok, l) = self.step(next)?;
            next = tok;
            record(l);
            done += 1;
            on_step(done);
        }
        Ok(Generation {
            tokens,
            steps: done,
            elapsed: start.elapsed(),
            leaks: Some(leaks),
        })
    }
}

/// A command encoder on `gpu`'s device.
fn encoder(gpu: &WgpuBackend) -> wgpu::CommandEncoder {
    gpu.device()
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("bitnet-tensor GpuModel"),
        })
}

/// A block of `bytes` bytes on `device` (word aligned) and its buffer range; the
/// caller's line is the block's site.
#[track_caller]
fn alloc<'m>(
    mm: &'m MemoryManager,
    gpu: &WgpuBackend,
    device: DeviceId,
    bytes: usize,
) -> Result<GpuTensor<'m>> {
    let layout = Layout::from_size_align(bytes, 4)
        .map_err(|e| Error::Config(format!("a block of {bytes} B: {e}")))?;
    let a = mm.try_allocate_on(device, layout)?;
    let range = gpu.binding(&a)?;
    Ok(GpuTensor { alloc: a, range })
}

/// A block holding `bytes` (uploaded: lands before the next submission).
#[track_caller]
fn upload<'m>(
    mm: &'m MemoryManager,
    gpu: &WgpuBackend,
    device: DeviceId,
    bytes: &[u8],
) -> Result<GpuTensor<'m>> {
    let t = alloc(mm, gpu, device, bytes.len())?;
    gpu.upload(&t.alloc, bytes)?;
    Ok(t)
}
