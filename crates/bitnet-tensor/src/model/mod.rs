//! A BitNet b1.58 decoder on seeded weights, decoding greedily one token per step.

mod config;
mod init;

pub use config::{MemoryNeeds, ModelConfig};

use crate::error::{Error, Result};
use crate::exec::Exec;
use crate::lifecycle::{self, StepLeaks};
use crate::ops::{self, KvCache, TernaryWeight};
use crate::storage::Provider;
use crate::tensor::Tensor;
use std::time::{Duration, Instant};

/// Weights of one decoder layer.
#[derive(Debug)]
pub(crate) struct Layer<'m> {
    pub(crate) attn_norm: Tensor<'m>,
    pub(crate) wq: TernaryWeight<'m>,
    pub(crate) wk: TernaryWeight<'m>,
    pub(crate) wv: TernaryWeight<'m>,
    pub(crate) attn_sub_norm: Tensor<'m>,
    pub(crate) wo: TernaryWeight<'m>,
    pub(crate) ffn_norm: Tensor<'m>,
    pub(crate) w_gate: TernaryWeight<'m>,
    pub(crate) w_up: TernaryWeight<'m>,
    pub(crate) ffn_sub_norm: Tensor<'m>,
    pub(crate) w_down: TernaryWeight<'m>,
}

/// A decoder model: weights, KV cache, and the provider every step allocates from.
///
/// Its weights are a pure function of the config and the seed, and so is everything it
/// generates: the same seed gives the same tokens with either provider and any thread
/// count.
#[derive(Debug)]
pub struct Model<'m> {
    config: ModelConfig,
    p: Provider<'m>,
    exec: Exec,
    pub(crate) embedding: Tensor<'m>,
    pub(crate) layers: Vec<Layer<'m>>,
    pub(crate) final_norm: Tensor<'m>,
    cache: KvCache<'m>,
}

/// What [`Model::generate`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The generated tokens (the prompt not included).
    pub tokens: Vec<u32>,
    /// Decode steps run: one per prompt token, then one per generated token but the last.
    pub steps: usize,
    /// Wall time of all steps.
    pub elapsed: Duration,
    /// Per-step check of what each step left live (with a memory manager only).
    pub leaks: Option<LeakCheck>,
}

impl Generation {
    /// Decode steps per second: the throughput of the step loop (prompt tokens are decoded
    /// one at a time, like generated ones).
    pub fn steps_per_second(&self) -> f64 {
        self.steps as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Live allocations and bytes left behind by decode steps (see [`lifecycle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeakCheck {
    /// Steps checked.
    pub steps: usize,
    /// Steps after which more was live than before.
    pub leaking_steps: usize,
    /// Allocations left behind, summed over leaking steps.
    pub allocations: usize,
    /// Bytes left behind, summed over leaking steps.
    pub bytes: usize,
}

impl LeakCheck {
    fn add(&mut self, s: StepLeaks) {
        self.steps += 1;
        if !s.is_clean() {
            self.leaking_steps += 1;
            self.allocations += s.allocations.max(0) as usize;
            self.bytes += s.bytes.max(0) as usize;
        }
    }
}

/// Per-tensor ids of the seeded generator.
const EMBEDDING: u64 = 1;
const FINAL_NORM: u64 = 2;
/// Half-width of the uniform embedding values. Small next to what the layers add to the
/// residual (values near 1), as in trained models: with a tied head and large embeddings,
/// every random token would predict itself and greedy decoding would repeat it forever.
const EMBEDDING_AMP: f32 = 0.05;
fn layer_id(layer: usize, which: u64) -> u64 {
    1000 + layer as u64 * 16 + which
}

impl<'m> Model<'m> {
    /// Builds a model with weights drawn from `seed` and a KV cache of `capacity` positions,
    /// every buffer from `p`; ops run on `exec`.
    ///
    /// Ternary weights are drawn in F32 into a temporary buffer and quantized with absmean,
    /// as a checkpoint would be; the KV cache is allocated after the weights.
    pub fn new(
        config: &ModelConfig,
        p: Provider<'m>,
        exec: Exec,
        seed: u64,
        capacity: usize,
    ) -> Result<Self> {
        config.validate()?;
        if capacity == 0 || capacity > config.max_seq {
            return Err(Error::Config(format!(
                "KV cache capacity {capacity} must be in 1..={} (max_seq)",
                config.max_seq
            )));
        }
        let c = config;
        let (h, f) = (c.hidden, c.ffn);
        let gain = (1.0, 0.1);
        let embedding = init::f32_tensor(
            &p,
            &[c.vocab, h],
            seed,
            EMBEDDING,
            (0.0, EMBEDDING_AMP),
            &exec,
            "embedding",
        )?;
        let mut layers = Vec::with_capacity(c.layers);
        for l in 0..c.layers {
            let id = |w| layer_id(l, w);
            let m = c.layer_matrices();
            let tw = |i: usize| init::ternary_weight(&p, m[i].0, m[i].1, seed, id(i as u64), &exec);
            let norm =
                |n: usize, w: u64| init::f32_tensor(&p, &[n], seed, id(w), gain, &exec, "norm");
            layers.push(Layer {
                attn_norm: norm(h, 8)?,
                wq: tw(0)?,
                wk: tw(1)?,
                wv: tw(2)?,
                attn_sub_norm: norm(h, 9)?,
                wo: tw(3)?,
                ffn_norm: norm(h, 10)?,
                w_gate: tw(4)?,
                w_up: tw(5)?,
                ffn_sub_norm: norm(f, 11)?,
                w_down: tw(6)?,
            });
        }
        let final_norm = init::f32_tensor(&p, &[h], seed, FINAL_NORM, gain, &exec, "norm")?;
        let cache = KvCache::new(&p, c.layers, capacity, c.kv_heads, c.head_dim())?;
        Ok(Model {
            config: config.clone(),
            p,
            exec,
            embedding,
            layers,
            final_norm,
            cache,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The KV cache.
    pub fn cache(&self) -> &KvCache<'m> {
        &self.cache
    }

    /// The executor.
    pub fn exec(&self) -> &Exec {
        &self.exec
    }

    /// Forgets the context (the KV cache keeps its buffers).
    pub fn reset(&mut self) {
        self.cache.clear();
    }

    /// Decodes `token` at the next position: the logits `[1, vocab]` of the token after it.
    ///
    /// Every activation is a new tensor from the provider, dropped as soon as it is used,
    /// so a step allocates and frees a few dozen buffers per layer, as a tensor runtime
    /// does. [`MemoryNeeds`] counts them as an upper bound.
    pub fn forward(&mut self, token: u32) -> Result<Tensor<'m>> {
        let p = self.p;
        let c = &self.config;
        let (eps, pos) = (c.norm_eps, self.cache.len());
        let exec = &self.exec;
        let mut x = ops::embedding(&self.embedding, &[token], &p)?;
        for (l, layer) in self.layers.iter().enumerate() {
            // Attention block.
            let a = {
                let hq = ops::absmax_quantize(&ops::rmsnorm(&x, &layer.attn_norm, eps, &p)?, &p)?;
                let mut q =
                    ops::bitlinear(&hq, &layer.wq, &p, exec)?.reshape(&[c.heads, c.head_dim()])?;
                let mut k = ops::bitlinear(&hq, &layer.wk, &p, exec)?
                    .reshape(&[c.kv_heads, c.head_dim()])?;
                let v = ops::bitlinear(&hq, &layer.wv, &p, exec)?;
                drop(hq);
                ops::rope_in_place(&mut q, pos, c.rope_theta)?;
                ops::rope_in_place(&mut k, pos, c.rope_theta)?;
                self.cache.write(l, &k, &v)?;
                drop((k, v));
                let att = ops::attention(&q, &self.cache, l, pos + 1, &p, exec)?
                    .reshape(&[1, c.hidden])?;
                drop(q);
                let aq =
                    ops::absmax_quantize(&ops::rmsnorm(&att, &layer.attn_sub_norm, eps, &p)?, &p)?;
                drop(att);
                ops::bitlinear(&aq, &layer.wo, &p, exec)?
            };
            add_in_place(&mut x, &a)?;
            drop(a);
            // FFN block.
            let d = {
                let hq = ops::absmax_quantize(&ops::rmsnorm(&x, &layer.ffn_norm, eps, &p)?, &p)?;
                let gate = ops::bitlinear(&hq, &layer.w_gate, &p, exec)?;
                let up = ops::bitlinear(&hq, &layer.w_up, &p, exec)?;
                drop(hq);
                let act = ops::swiglu(&gate, &up, &p)?;
                drop((gate, up));
                let aq =
                    ops::absmax_quantize(&ops::rmsnorm(&act, &layer.ffn_sub_norm, eps, &p)?, &p)?;
                drop(act);
                ops::bitlinear(&aq, &layer.w_down, &p, exec)?
            };
            add_in_place(&mut x, &d)?;
        }
        self.cache.advance()?;
        let xn = ops::rmsnorm(&x, &self.final_norm, eps, &p)?;
        drop(x);
        ops::linear(&xn, &self.embedding, &p, exec)
    }

    /// Decodes `token` inside a step scope and returns the greedy next token and what the
    /// step left live (`None` with plain `Vec`s).
    pub fn step(&mut self, token: u32) -> Result<(u32, Option<StepLeaks>)> {
        let scope = lifecycle::step_scope(&self.p);
        let next = argmax(self.forward(token)?.as_f32()?);
        Ok((next, scope.finish()))
    }

    /// Decodes `prompt` and then generates `n` tokens greedily; `on_step` is called after
    /// every step with the number of steps done.
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
        if self.cache.len() + steps > self.cache.capacity() {
            return Err(Error::OutOfRange {
                what: "positions of prompt and generated tokens",
                index: self.cache.len() + steps,
                bound: self.cache.capacity(),
            });
        }
        let mut leaks: Option<LeakCheck> = None;
        let mut tokens = Vec::with_capacity(n);
        let start = Instant::now();
        let mut next = 0;
        for (i, &t) in prompt.iter().enumerate() {
            let (tok, l) = self.step(t)?;
            next = tok;
            record(&mut leaks, l);
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
            record(&mut leaks, l);
            done += 1;
            on_step(done);
        }
        Ok(Generation {
            tokens,
            steps: done,
            elapsed: start.elapsed(),
            leaks,
        })
    }
}

fn record(acc: &mut Option<LeakCheck>, step: Option<StepLeaks>) {
    if let Some(s) = step {
        acc.get_or_insert_with(LeakCheck::default).add(s);
    }
}

/// `x += y` elementwise.
fn add_in_place(x: &mut Tensor<'_>, y: &Tensor<'_>) -> Result<()> {
    if x.dims() != y.dims() {
        return Err(Error::ShapeMismatch {
            op: "add",
            expected: x.shape().to_string(),
            got: y.shape(),
        });
    }
    for (a, b) in x.as_f32_mut()?.iter_mut().zip(y.as_f32()?) {
        *a += b;
    }
    Ok(())
}

/// Index of the largest value (the first one on ties; NaN never wins).
pub fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// A prompt of `len` tokens drawn from `seed` (what the demo decodes before generating).
pub fn seeded_prompt(seed: u64, len: usize, vocab: usize) -> Vec<u32> {
    use rand::{rngs::SmallRng, Rng, SeedableRng};
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x005E_ED0F_7E57);
    (0..len)
        .map(|_| rng.gen_range(0..vocab.max(1)) as u32)
        .collect()
}
