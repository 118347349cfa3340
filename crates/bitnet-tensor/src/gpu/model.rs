//! [`GpuModel`]: the decoder of [`Model`] on the GPU, every tensor a [`GpuTensor`] on a
//! [`MemoryManager`]'s GPU device.
//!
//! Weights are drawn on the CPU by [`Model::new`] itself (same seed, same code, same
//! values) and uploaded; the KV cache and every activation are GPU tensors too, each its
//! own pooled block, as the CPU model has one buffer per tensor. A step records every op
//! into one [`GpuRecorder`], dropping each activation as soon as its last op is
//! *recorded*, before anything is submitted. That is the case the pool's fence is for: a
//! block freed while recorded work that uses it is still unsubmitted stays pending
//! (neither live nor free) until the next submission through [`WgpuBackend::submit`] has
//! finished, so no later allocation can be handed its range and have an upload overwrite
//! it under the recorded kernels. The step then submits once through the backend,
//! downloads the logits (a second, counted submission) and takes the argmax on the CPU.

use super::tensor::{GpuDevice, GpuTensor, GpuTernaryWeight};
use super::{rope_table, GpuKernels, GpuRecorder};
use crate::error::{Error, Result};
use crate::exec::Exec;
use crate::model::{argmax, Generation, LeakCheck, Model, ModelConfig};
use crate::ops::KvCache;
use crate::storage::Provider;
use crate::tensor::Tensor;
use bitnet_memory::device::wgpu::WgpuBackend;
use bitnet_memory::{DeviceId, MemoryManager};
use std::time::Instant;

/// One decoder layer's weights on the GPU.
struct GpuLayer<'m> {
    attn_norm: GpuTensor<'m>,
    wq: GpuTernaryWeight<'m>,
    wk: GpuTernaryWeight<'m>,
    wv: GpuTernaryWeight<'m>,
    attn_sub_norm: GpuTensor<'m>,
    wo: GpuTernaryWeight<'m>,
    ffn_norm: GpuTensor<'m>,
    w_gate: GpuTernaryWeight<'m>,
    w_up: GpuTernaryWeight<'m>,
    ffn_sub_norm: GpuTensor<'m>,
    w_down: GpuTernaryWeight<'m>,
}

/// The BitNet b1.58 decoder of [`Model`] on a GPU: same weights, same steps, GPU kernels
/// on [`GpuTensor`]s of a [`MemoryManager`]'s GPU device.
///
/// See the [module docs](self) for how a step records, frees and submits.
pub struct GpuModel<'m> {
    config: ModelConfig,
    dev: GpuDevice<'m>,
    kernels: GpuKernels,
    embedding: GpuTensor<'m>,
    layers: Vec<GpuLayer<'m>>,
    final_norm: GpuTensor<'m>,
    /// Per layer, F32 `[capacity, kv_dim]`.
    keys: Vec<GpuTensor<'m>>,
    values: Vec<GpuTensor<'m>>,
    capacity: usize,
    len: usize,
}

impl std::fmt::Debug for GpuModel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuModel")
            .field("config", &self.config.name)
            .field("device", &self.dev)
            .field("positions", &self.len)
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl<'m> GpuModel<'m> {
    /// Builds the model of `config` and `seed` on `device` of `mm`, which must be `gpu`'s
    /// device, with a KV cache of `capacity` positions.
    ///
    /// The weights are [`Model::new`]'s own: the CPU model is built on plain `Vec`s with
    /// `exec` (values do not depend on the thread count), each weight uploaded as a GPU
    /// tensor of its own, then the CPU model is dropped. The KV cache is allocated after
    /// the weights, zeroed on the device, as the CPU cache is zeroed. Weights and cache
    /// are marked persistent for leak detection, as on the CPU.
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
        let dev = GpuDevice::new(mm, gpu, device);
        let up = |t: &Tensor<'_>| Ok::<_, Error>(dev.upload(t)?.persist());
        let tern = |w| -> Result<GpuTernaryWeight<'m>> {
            let mut g = GpuTernaryWeight::upload(&dev, w)?;
            g.weight = g.weight.persist();
            Ok(g)
        };
        let embedding = up(&cpu.embedding)?;
        let mut layers = Vec::with_capacity(cpu.layers.len());
        for l in &cpu.layers {
            layers.push(GpuLayer {
                attn_norm: up(&l.attn_norm)?,
                wq: tern(&l.wq)?,
                wk: tern(&l.wk)?,
                wv: tern(&l.wv)?,
                attn_sub_norm: up(&l.attn_sub_norm)?,
                wo: tern(&l.wo)?,
                ffn_norm: up(&l.ffn_norm)?,
                w_gate: tern(&l.w_gate)?,
                w_up: tern(&l.w_up)?,
                ffn_sub_norm: up(&l.ffn_sub_norm)?,
                w_down: tern(&l.w_down)?,
            });
        }
        let final_norm = up(&cpu.final_norm)?;
        drop(cpu);
        let dims = [capacity, config.kv_dim()];
        let (mut keys, mut values) = (Vec::new(), Vec::new());
        for _ in 0..config.layers {
            keys.push(dev.zeros(crate::DType::F32, &dims)?.persist());
            values.push(dev.zeros(crate::DType::F32, &dims)?.persist());
        }
        Ok(GpuModel {
            config: config.clone(),
            dev,
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
        self.dev.id()
    }

    /// The GPU device the model's tensors are on.
    pub fn gpu_device(&self) -> &GpuDevice<'m> {
        &self.dev
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

    /// Decodes `token` at the next position and returns the logits of the token after it
    /// (`vocab` values), as [`Model::forward`] does: every op of the step recorded into
    /// one encoder, one submission through the backend, then a download.
    pub fn forward(&mut self, token: u32) -> Result<Vec<f32>> {
        self.forward_on_gpu(token)?.to_vec_f32()
    }

    /// Decodes `token` at the next position and returns the logits (F32 `[1, vocab]`) as
    /// a GPU tensor: the step is submitted, maybe not finished.
    pub fn forward_on_gpu(&mut self, token: u32) -> Result<GpuTensor<'m>> {
        let c = &self.config;
        let pos = self.len;
        if pos >= self.capacity {
            return Err(Error::OutOfRange {
                what: "KV cache position",
                index: pos,
                bound: self.capacity,
            });
        }
        let (eps, d) = (c.norm_eps, c.head_dim());
        let dev = &self.dev;
        let table = dev.from_f32(&[d / 2 * 2], &rope_table(pos, c.rope_theta, d))?;
        let mut r = GpuRecorder::new(&self.kernels, dev);
        // RMSNorm, then absmax quantisation (the normed row dropped once recorded).
        let norm_quant = |r: &mut GpuRecorder<'_, 'm>, x: &GpuTensor<'_>, g: &GpuTensor<'_>| {
            let xn = r.rmsnorm(x, g, eps)?;
            r.absmax_quantize(&xn)
        };
        let mut x = r.embedding(&self.embedding, token)?;
        for (l, layer) in self.layers.iter().enumerate() {
            // Attention block.
            let a = {
                let hq = norm_quant(&mut r, &x, &layer.attn_norm)?;
                let mut q = r.bitlinear(&hq, &layer.wq)?.reshape(&[c.heads, d])?;
                let mut k = r.bitlinear(&hq, &layer.wk)?.reshape(&[c.kv_heads, d])?;
                let v = r.bitlinear(&hq, &layer.wv)?;
                drop(hq); // recorded, not submitted: the fence's case
                r.rope_in_place(&mut q, &table)?;
                r.rope_in_place(&mut k, &table)?;
                let (keys, values) = (&mut self.keys[l], &mut self.values[l]);
                r.kv_write(keys, values, pos, &k, &v)?;
                drop((k, v));
                let att = r
                    .attention(&q, keys, values, pos + 1)?
                    .reshape(&[1, c.hidden])?;
                drop(q);
                let aq = norm_quant(&mut r, &att, &layer.attn_sub_norm)?;
                drop(att);
                r.bitlinear(&aq, &layer.wo)?
            };
            r.add_in_place(&mut x, &a)?;
            drop(a);
            // FFN block.
            let dn = {
                let hq = norm_quant(&mut r, &x, &layer.ffn_norm)?;
                let gate = r.bitlinear(&hq, &layer.w_gate)?;
                let up = r.bitlinear(&hq, &layer.w_up)?;
                drop(hq);
                let act = r.swiglu(&gate, &up)?;
                drop((gate, up));
                let aq = norm_quant(&mut r, &act, &layer.ffn_sub_norm)?;
                drop(act);
                r.bitlinear(&aq, &layer.w_down)?
            };
            r.add_in_place(&mut x, &dn)?;
        }
        let xn = r.rmsnorm(&x, &self.final_norm, eps)?;
        drop(x);
        let logits = r.linear(&xn, &self.embedding)?;
        drop((xn, table));
        r.submit();
        self.len += 1;
        Ok(logits)
    }

    /// Live `(allocations, bytes)` of the model's device.
    fn live(&self) -> (usize, usize) {
        let m = self.dev.manager().metrics();
        m.device(self.dev.id())
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
