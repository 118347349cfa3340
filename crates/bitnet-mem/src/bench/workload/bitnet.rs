//! The allocations of a BitNet b1.58 decode loop, with the model's shapes from
//! bitnet-tensor ([`ModelConfig`]) so that the 2B4T numbers are written down once.

use super::{Stream, StreamBuilder};
use bitnet_tensor::ModelConfig;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The model whose decode loop [`bitnet_inference`] allocates for: BitNet b1.58 2B4T as
/// bitnet-tensor defines it ([`ModelConfig::bitnet_2b4t`]) with its widths (hidden, FFN,
/// vocabulary) divided by `scale` (0 counts as 1), layers and heads kept.
///
/// This is the benchmark's own scaling, not [`ModelConfig::scaled`] (which keeps the head
/// size and scales heads and layers to make a smaller runnable model): the bench has
/// always divided widths by `--scale`, and keeping that rule keeps its figures comparable
/// with earlier runs. The hidden width is rounded up to a multiple of the head count so
/// the head size stays whole; FFN and vocabulary are at least 16. At some scales (3, for
/// one) the result is a set of allocation sizes, not a model that
/// [`ModelConfig::validate`] accepts: nothing runs it.
pub fn inference_model(scale: usize) -> ModelConfig {
    let base = ModelConfig::bitnet_2b4t();
    let s = scale.max(1);
    ModelConfig {
        name: format!("{} widths / {s}", base.name),
        hidden: (base.hidden / s)
            .max(base.heads)
            .next_multiple_of(base.heads),
        ffn: (base.ffn / s).max(16),
        vocab: (base.vocab / s).max(16),
        ..base
    }
}

/// The allocations of a decode loop of the model `shape` (only its widths, layers and
/// heads are read; the bench passes [`inference_model`]): sequences of a random prompt
/// length (16..256 tokens, its KV cache allocated at once) then decoded token by token
/// (32..256 tokens) until `tokens` tokens were decoded. Per token and layer: the norm output and its int8
/// quantized copy, Q/K/V projections, scores and probabilities over the context, attention
/// output, its sub-norm and quantized copy, O projection, residual; post-attention norm
/// and quantized copy, gate and up projections, ReLU² product, FFN sub-norm and its
/// quantized copy, down projection, residual. Then the final norm, logits and
/// probabilities. f32 activations, f16 KV cache (K and V per layer) grown by doubling.
/// Weights are not allocated (a runtime maps them from the model file).
pub fn bitnet_inference(seed: u64, shape: &ModelConfig, tokens: u64) -> Stream {
    const A: usize = 64;
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut b = StreamBuilder::new();
    let (h, f, kv) = (shape.hidden, shape.ffn, shape.kv_dim());
    let mut decoded = 0;
    while decoded < tokens {
        let prompt = rng.gen_range(16..=256usize);
        let gen = rng.gen_range(32..=256u64).min(tokens - decoded);
        let mut cap = prompt.next_power_of_two();
        let mut caches: Vec<(u32, u32)> = (0..shape.layers)
            .map(|_| (b.alloc(cap * kv * 2, A), b.alloc(cap * kv * 2, A)))
            .collect();
        for t in 0..gen as usize {
            let ctx = prompt + t + 1;
            let new_cap = if ctx > cap { cap * 2 } else { cap };
            let mut x = b.alloc(h * 4, A);
            for cache in caches.iter_mut() {
                let n1 = b.alloc(h * 4, A);
                let xq = b.alloc(h, A);
                let q = b.alloc(h * 4, A);
                let k = b.alloc(kv * 4, A);
                let v = b.alloc(kv * 4, A);
                b.free(xq);
                b.free(n1);
                if new_cap > cap {
                    let nk = b.alloc(new_cap * kv * 2, A);
                    let nv = b.alloc(new_cap * kv * 2, A);
                    b.free(cache.0);
                    b.free(cache.1);
                    *cache = (nk, nv);
                }
                b.free(k);
                b.free(v);
                let scores = b.alloc(shape.heads * ctx * 4, A);
                let probs = b.alloc(shape.heads * ctx * 4, A);
                b.free(scores);
                let attn = b.alloc(h * 4, A);
                b.free(probs);
                b.free(q);
                let an = b.alloc(h * 4, A);
                let aq = b.alloc(h, A);
                let o = b.alloc(h * 4, A);
                b.free(aq);
                b.free(an);
                b.free(attn);
                let x2 = b.alloc(h * 4, A);
                b.free(o);
                b.free(x);
                x = x2;
                let n2 = b.alloc(h * 4, A);
                let nq = b.alloc(h, A);
                let gate = b.alloc(f * 4, A);
                let up = b.alloc(f * 4, A);
                b.free(nq);
                b.free(n2);
                let act = b.alloc(f * 4, A);
                b.free(gate);
                b.free(up);
                let sn = b.alloc(f * 4, A);
                b.free(act);
                let sq = b.alloc(f, A);
                b.free(sn);
                let down = b.alloc(h * 4, A);
                b.free(sq);
                let x3 = b.alloc(h * 4, A);
                b.free(down);
                b.free(x);
                x = x3;
            }
            let nf = b.alloc(h * 4, A);
            let nq = b.alloc(h, A);
            let logits = b.alloc(shape.vocab * 4, A);
            b.free(nq);
            b.free(nf);
            let probs = b.alloc(shape.vocab * 4, A);
            b.free(logits);
            b.free(probs);
            b.free(x);
            cap = new_cap;
        }
        decoded += gen;
        for (k, v) in caches {
            b.free(k);
            b.free(v);
        }
    }
    b.finish()
}
