//! Causal attention of one new token over a KV cache, with grouped-query heads.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::exec::Exec;
use crate::lifecycle;
use crate::ops::activation::softmax_in_place;
use crate::ops::matmul::dot_f32;
use crate::storage::Provider;
use crate::tensor::Tensor;

/// Keys and values of every layer for up to `capacity` positions.
///
/// The buffers are allocated once, at full capacity, as persistent tensors; the cache
/// grows by one position per decoded token ([`advance`](Self::advance)) without
/// allocating, so a decode step's memory pattern does not drift with the position.
#[derive(Debug)]
pub struct KvCache<'m> {
    keys: Vec<Tensor<'m>>,
    values: Vec<Tensor<'m>>,
    kv_heads: usize,
    head_dim: usize,
    capacity: usize,
    len: usize,
}

impl<'m> KvCache<'m> {
    /// A cache for `layers` layers of `kv_heads` heads of `head_dim`, `capacity` positions.
    #[track_caller]
    pub fn new(
        p: &Provider<'m>,
        layers: usize,
        capacity: usize,
        kv_heads: usize,
        head_dim: usize,
    ) -> Result<Self> {
        let mut keys = Vec::with_capacity(layers);
        let mut values = Vec::with_capacity(layers);
        for _ in 0..layers {
            let dims = [capacity, kv_heads * head_dim];
            keys.push(lifecycle::persistent(
                Tensor::zeros(p, DType::F32, &dims)?,
                "kv cache",
            ));
            values.push(lifecycle::persistent(
                Tensor::zeros(p, DType::F32, &dims)?,
                "kv cache",
            ));
        }
        Ok(KvCache {
            keys,
            values,
            kv_heads,
            head_dim,
            capacity,
            len: 0,
        })
    }

    /// Bytes a cache of these dimensions holds.
    pub fn bytes_for(layers: usize, capacity: usize, kv_heads: usize, head_dim: usize) -> usize {
        2 * layers * DType::F32.storage_bytes(capacity * kv_heads * head_dim)
    }

    /// Positions committed so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is committed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions the cache can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// KV heads per layer.
    pub fn kv_heads(&self) -> usize {
        self.kv_heads
    }

    /// Dimension of a head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// Keys `[capacity, kv_heads * head_dim]` of `layer`.
    pub fn keys(&self, layer: usize) -> &Tensor<'m> {
        &self.keys[layer]
    }

    /// Values `[capacity, kv_heads * head_dim]` of `layer`.
    pub fn values(&self, layer: usize) -> &Tensor<'m> {
        &self.values[layer]
    }

    /// Writes the key and value of the next position (`len()`) of `layer`. `k` and `v`
    /// hold `kv_heads * head_dim` elements in any shape.
    pub fn write(&mut self, layer: usize, k: &Tensor<'_>, v: &Tensor<'_>) -> Result<()> {
        let pos = self.len;
        if pos >= self.capacity {
            return Err(Error::OutOfRange {
                what: "KV cache position",
                index: pos,
                bound: self.capacity,
            });
        }
        if layer >= self.keys.len() {
            return Err(Error::OutOfRange {
                what: "layer",
                index: layer,
                bound: self.keys.len(),
            });
        }
        let w = self.kv_heads * self.head_dim;
        for (src, dst) in [(k, &mut self.keys[layer]), (v, &mut self.values[layer])] {
            if src.numel() != w {
                return Err(Error::ShapeMismatch {
                    op: "KvCache::write",
                    expected: format!("{w} elements"),
                    got: src.shape(),
                });
            }
            dst.as_f32_mut()?[pos * w..(pos + 1) * w].copy_from_slice(src.as_f32()?);
        }
        Ok(())
    }

    /// Commits the position every layer has just written.
    pub fn advance(&mut self) -> Result<()> {
        if self.len >= self.capacity {
            return Err(Error::OutOfRange {
                what: "KV cache position",
                index: self.len,
                bound: self.capacity,
            });
        }
        self.len += 1;
        Ok(())
    }

    /// Forgets every position (keeps the buffers).
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// Attention of one token's queries `q` (`[heads, head_dim]`) over the first `positions`
/// positions of `layer` in `cache` (the new token's key and value already written at
/// `positions - 1`). Query head `h` reads KV head `h / (heads / kv_heads)`. Returns
/// `[heads, head_dim]` from `p`; the scores scratch, one row of `capacity` per head, comes
/// from `p` too and is sized by capacity, not position, so steps allocate alike.
#[track_caller]
pub fn attention<'m>(
    q: &Tensor<'_>,
    cache: &KvCache<'_>,
    layer: usize,
    positions: usize,
    p: &Provider<'m>,
    exec: &Exec,
) -> Result<Tensor<'m>> {
    let (kvh, d) = (cache.kv_heads, cache.head_dim);
    q.expect_dims("attention", &[None, Some(d)])?;
    let heads = q.dims()[0];
    if kvh == 0 || !heads.is_multiple_of(kvh) {
        return Err(Error::ShapeMismatch {
            op: "attention (query heads must be a multiple of KV heads)",
            expected: format!("[k * {kvh}, {d}]"),
            got: q.shape(),
        });
    }
    if positions == 0 || positions > cache.len + 1 || positions > cache.capacity {
        return Err(Error::OutOfRange {
            what: "attention positions",
            index: positions,
            bound: (cache.len + 1).min(cache.capacity) + 1,
        });
    }
    let group = heads / kvh;
    let w = kvh * d;
    let (ks, vs) = (cache.keys[layer].as_f32()?, cache.values[layer].as_f32()?);
    let qs = q.as_f32()?;
    let scale = 1.0 / (d as f32).sqrt();
    let cap = cache.capacity;
    let mut out = Tensor::new(p, DType::F32, &[heads, d])?;
    let mut scores = Tensor::new(p, DType::F32, &[heads, cap])?;
    exec.for_rows2(
        out.as_f32_mut()?,
        d,
        scores.as_f32_mut()?,
        cap,
        2 * positions * d,
        |h, o, s| {
            let g = h / group;
            let qh = &qs[h * d..(h + 1) * d];
            let s = &mut s[..positions];
            for (t, st) in s.iter_mut().enumerate() {
                *st = dot_f32(qh, &ks[t * w + g * d..t * w + (g + 1) * d]) * scale;
            }
            softmax_in_place(s);
            o.fill(0.0);
            for (t, &pt) in s.iter().enumerate() {
                for (ov, &vv) in o.iter_mut().zip(&vs[t * w + g * d..t * w + (g + 1) * d]) {
                    *ov += pt * vv;
                }
            }
        },
    );
    Ok(out)
}
