//! Model shapes and what they cost in memory.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ops::KvCache;
use std::fmt;

/// Shapes of a BitNet b1.58 decoder (LLaMA layout: RMSNorm, GQA attention with rotary
/// embedding, gated FFN; BitLinear with sub-norms before the output projections; the
/// embedding is tied to the output head and kept in F32).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// Name shown in reports.
    pub name: String,
    /// Model (residual) width.
    pub hidden: usize,
    /// FFN inner width.
    pub ffn: usize,
    /// Decoder layers.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (grouped-query attention: `heads` a multiple of it).
    pub kv_heads: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// Longest context, in positions.
    pub max_seq: usize,
    /// Rotary embedding base.
    pub rope_theta: f32,
    /// RMSNorm epsilon.
    pub norm_eps: f32,
}

impl Default for ModelConfig {
    /// [`ModelConfig::small`].
    fn default() -> Self {
        Self::small()
    }
}

impl ModelConfig {
    /// A small model that decodes dozens of tokens per second on two cores: 8 layers of
    /// width 512 (8 heads of 64, 2 KV heads), FFN 1376, vocabulary 8192.
    pub fn small() -> Self {
        ModelConfig {
            name: "small".into(),
            hidden: 512,
            ffn: 1376,
            layers: 8,
            heads: 8,
            kv_heads: 2,
            vocab: 8192,
            max_seq: 2048,
            rope_theta: 500_000.0,
            norm_eps: 1e-5,
        }
    }

    /// The shapes of BitNet b1.58 2B4T: hidden 2560, FFN 6912, 30 layers, 20 heads /
    /// 5 KV heads, vocabulary 128256, context 4096.
    pub fn bitnet_2b4t() -> Self {
        ModelConfig {
            name: "2b4t".into(),
            hidden: 2560,
            ffn: 6912,
            layers: 30,
            heads: 20,
            kv_heads: 5,
            vocab: 128_256,
            max_seq: 4096,
            rope_theta: 500_000.0,
            norm_eps: 1e-5,
        }
    }

    /// 2B4T scaled by `f` in (0, 1]: head size 128 and the 4:1 GQA ratio kept, heads,
    /// layers, FFN and vocabulary scaled (FFN and vocabulary rounded to multiples of 64).
    pub fn scaled(f: f64) -> Result<Self> {
        if !(f > 0.0 && f <= 1.0) {
            return Err(Error::Config(format!("scale {f} is not in (0, 1]")));
        }
        let base = Self::bitnet_2b4t();
        let round64 = |v: f64| ((v / 64.0).round() as usize).max(1) * 64;
        let kv_heads = ((base.kv_heads as f64 * f).round() as usize).max(1);
        Ok(ModelConfig {
            name: format!("2b4t x {f}"),
            hidden: kv_heads * 4 * 128,
            ffn: round64(base.ffn as f64 * f),
            layers: ((base.layers as f64 * f).round() as usize).max(1),
            heads: kv_heads * 4,
            kv_heads,
            vocab: round64(base.vocab as f64 * f).max(256),
            ..base
        })
    }

    /// Size of one head.
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads.max(1)
    }

    /// Width of the keys (and of the values) of one position: `kv_heads * head_dim`.
    pub fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim()
    }

    /// Fails with a message naming the first shape that cannot work.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(format!("model {}: {m}", self.name)));
        if self.hidden == 0 || self.ffn == 0 || self.layers == 0 || self.vocab == 0 {
            return bad("hidden, ffn, layers and vocab must be positive".into());
        }
        if self.heads == 0 || self.kv_heads == 0 || !self.heads.is_multiple_of(self.kv_heads) {
            return bad(format!(
                "{} heads is not a positive multiple of {} KV heads",
                self.heads, self.kv_heads
            ));
        }
        if !self.hidden.is_multiple_of(self.heads) || !self.head_dim().is_multiple_of(2) {
            return bad(format!(
                "hidden {} must split into {} heads of even size",
                self.hidden, self.heads
            ));
        }
        if !self.hidden.is_multiple_of(4) || !self.ffn.is_multiple_of(4) {
            return bad("hidden and ffn must be multiples of 4 (ternary packing)".into());
        }
        if self.vocab > u32::MAX as usize {
            return bad("vocab must fit in u32".into());
        }
        Ok(())
    }

    /// The ternary matrices of one layer as `(out, in)`: q, k, v, o, gate, up, down.
    pub fn layer_matrices(&self) -> [(usize, usize); 7] {
        let (h, f, kv) = (self.hidden, self.ffn, self.kv_dim());
        [(h, h), (kv, h), (kv, h), (h, h), (f, h), (f, h), (h, f)]
    }

    /// Bytes of all weights: ternary matrices packed, embedding and norms in F32.
    pub fn weight_bytes(&self) -> usize {
        let per_layer: usize = self
            .layer_matrices()
            .iter()
            .map(|&(o, i)| DType::Ternary.storage_bytes(o * i))
            .sum::<usize>()
            + 4 * (3 * self.hidden + self.ffn);
        4 * self.vocab * self.hidden + self.layers * per_layer + 4 * self.hidden
    }

    /// What a run of `positions` positions needs live at its peak, in bytes.
    pub fn memory_needs(&self, positions: usize) -> MemoryNeeds {
        let (h, f, kv, v) = (self.hidden, self.ffn, self.kv_dim(), self.vocab);
        let weights = self.weight_bytes();
        let kv_cache = KvCache::bytes_for(self.layers, positions, self.kv_heads, self.head_dim());
        // Building: one matrix in F32 before it is quantized, plus the activation row of
        // a quantized scale. Decoding: the residual row plus the largest of the attention
        // block, the FFN block and the output head, each counted as if all of its
        // temporaries were live at once (an upper bound; see `Model::step`).
        let build = self
            .layer_matrices()
            .iter()
            .map(|&(o, i)| 4 * o * i)
            .max()
            .unwrap_or(0);
        // BitLinear adds a scratch row of its input width in `i16`.
        let attn = 4 * h
            + (h + 4)
            + 4 * h
            + 8 * kv
            + 4 * h
            + 4 * self.heads * positions
            + 4 * h
            + (h + 4)
            + 4 * h
            + 2 * h;
        let ffn = 4 * h + (h + 4) + 3 * 4 * f + 4 * f + (f + 4) + 4 * h + 2 * f;
        let head = 4 * h + 4 * v;
        let step = 4 * h + attn.max(ffn).max(head);
        MemoryNeeds {
            weights,
            kv_cache,
            activations: build.max(kv_cache + step) - kv_cache,
        }
    }
}

impl fmt::Display for ModelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: hidden {}, FFN {}, {} layers, {}/{} heads of {}, vocab {}",
            self.name,
            self.hidden,
            self.ffn,
            self.layers,
            self.heads,
            self.kv_heads,
            self.head_dim(),
            self.vocab
        )
    }
}

/// Live bytes a model run needs at its peak, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryNeeds {
    /// Weights (persistent).
    pub weights: usize,
    /// KV cache at the run's capacity (persistent).
    pub kv_cache: usize,
    /// Peak bytes beyond weights and KV cache: one decode step's activations and scratch,
    /// or, when larger, what building needs beyond the weights (a weight matrix in F32
    /// before it is quantized; the KV cache is allocated after the weights) minus the KV
    /// cache, so that [`total`](Self::total) is the peak of the whole run.
    pub activations: usize,
}

impl MemoryNeeds {
    /// Peak live bytes: weights, KV cache and the peak of temporaries.
    pub fn total(&self) -> usize {
        self.weights + self.kv_cache + self.activations
    }

    /// A budget that holds the run with room for the pool's rounding and chunk growth:
    /// the total plus a quarter, plus 16 MiB.
    pub fn recommended_budget(&self) -> usize {
        self.total() + self.total() / 4 + (16 << 20)
    }
}
