//! The remaining kernels of a decoder step: rotary embedding in place, the SwiGLU
//! activation, residual add in place, and word copies (an embedding row, a KV cache row).

use super::kernels::{check_count, check_disjoint, GpuKernels, WORKGROUP_SIZE};
use super::GpuSlice;
use crate::error::{Error, Result};

/// Entry points of `elementwise.wgsl`.
pub(super) const ELEMENTWISE_ENTRIES: [&str; 3] = ["rope", "add", "copy"];
const ROPE: usize = 0;
const ADD: usize = 1;
const COPY: usize = 2;

/// Operands of [`GpuKernels::rope`]: `heads` head vectors of `head_dim`, rotated in place.
#[derive(Debug, Clone, Copy)]
pub struct RopeArgs<'a> {
    /// Heads (rows of `x`).
    pub heads: u32,
    /// Dimension of a head (even).
    pub head_dim: u32,
    /// F32 `[heads, head_dim]`, read and overwritten: `4 * heads * head_dim` bytes.
    pub x: GpuSlice<'a>,
    /// F32 `[head_dim / 2, 2]`: `(cos, sin)` of every pair at the position, as
    /// [`rope_table`] computes them: `4 * head_dim` bytes.
    pub table: GpuSlice<'a>,
}

/// Operands of [`GpuKernels::swiglu`]: `y = silu(gate) * up` over `n` elements.
#[derive(Debug, Clone, Copy)]
pub struct SwigluArgs<'a> {
    /// Elements.
    pub n: u32,
    /// F32 `[n]`.
    pub gate: GpuSlice<'a>,
    /// F32 `[n]`.
    pub up: GpuSlice<'a>,
    /// Output: f32 `[n]`, `4 * n` bytes.
    pub y: GpuSlice<'a>,
}

/// Operands of [`GpuKernels::add`]: `x += y` over `n` elements.
#[derive(Debug, Clone, Copy)]
pub struct AddArgs<'a> {
    /// Elements.
    pub n: u32,
    /// F32 `[n]`, read and overwritten.
    pub x: GpuSlice<'a>,
    /// F32 `[n]`.
    pub y: GpuSlice<'a>,
}

/// Operands of [`GpuKernels::embedding`]: row `token` of a `[vocab, hidden]` table.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddingArgs<'a> {
    /// Rows of the table.
    pub vocab: u32,
    /// Width of a row.
    pub hidden: u32,
    /// The row to copy (`< vocab`).
    pub token: u32,
    /// F32 `[vocab, hidden]`.
    pub table: GpuSlice<'a>,
    /// Output: f32 `[hidden]`.
    pub out: GpuSlice<'a>,
}

/// Operands of [`GpuKernels::kv_write`]: one position's keys and values into one layer's
/// cache, as [`KvCache::write`](crate::ops::KvCache::write) stores them.
#[derive(Debug, Clone, Copy)]
pub struct KvWriteArgs<'a> {
    /// Width of a position: `kv_heads * head_dim`.
    pub kv_dim: u32,
    /// Positions the cache holds.
    pub capacity: u32,
    /// The position written (`< capacity`).
    pub pos: u32,
    /// F32 keys `[kv_dim]` (after rotary embedding).
    pub k: GpuSlice<'a>,
    /// F32 values `[kv_dim]`.
    pub v: GpuSlice<'a>,
    /// The layer's key cache, f32 `[capacity, kv_dim]`.
    pub keys: GpuSlice<'a>,
    /// The layer's value cache, f32 `[capacity, kv_dim]`.
    pub values: GpuSlice<'a>,
}

/// The `(cos, sin)` pairs [`GpuKernels::rope`] rotates by at `pos`: for `i < head_dim / 2`,
/// the angle `pos * theta^(-2i / head_dim)`, computed on the CPU exactly as
/// [`rope_head`](crate::ops::rope_head) computes it (WGSL's `pow`, `sin` and `cos` are far
/// from correctly rounded at large angles).
pub fn rope_table(pos: usize, theta: f32, head_dim: usize) -> Vec<f32> {
    let d = head_dim as f32;
    let mut t = Vec::with_capacity(head_dim);
    for i in 0..head_dim / 2 {
        let freq = theta.powf(-2.0 * i as f32 / d);
        let (sin, cos) = (pos as f32 * freq).sin_cos();
        t.extend([cos, sin]);
    }
    t
}

impl GpuKernels {
    /// Records rotary embedding of every head in place, as
    /// [`rope_in_place`](crate::ops::rope_in_place) computes it with the angles of
    /// [`rope_table`]: the CPU's products and sums in the CPU's order, bit for bit unless
    /// the driver fuses multiply-adds. One invocation per rotated pair.
    pub fn rope(&self, enc: &mut wgpu::CommandEncoder, a: &RopeArgs<'_>) -> Result<()> {
        const OP: &str = "rope";
        if !a.head_dim.is_multiple_of(2) {
            return Err(Error::Gpu {
                op: OP,
                reason: format!("head_dim {} is odd", a.head_dim),
            });
        }
        let (heads, d) = (u64::from(a.heads), u64::from(a.head_dim));
        if heads == 0 || d == 0 {
            return Ok(());
        }
        check_count(OP, "heads * head_dim", heads * d)?;
        self.check(OP, "x", &a.x, 4 * heads * d)?;
        self.check(OP, "table", &a.table, 4 * d)?;
        check_disjoint(OP, ("x", &a.x), &[("table", &a.table)])?;
        let pairs = heads * d / 2;
        let params = [pairs as u32, a.head_dim / 2, 0, 0];
        let grid = self.grid(OP, pairs.div_ceil(u64::from(WORKGROUP_SIZE)))?;
        let slices = [a.x, a.table];
        self.launch(
            enc,
            &self.elementwise,
            OP,
            &params,
            &slices,
            &[(ROPE, grid)],
        );
        Ok(())
    }

    /// Records `y = silu(gate) * up`, as [`swiglu`](fn@crate::ops::swiglu) computes it,
    /// within a few ulp (WGSL's `exp` and `/` are not correctly rounded).
    pub fn swiglu(&self, enc: &mut wgpu::CommandEncoder, a: &SwigluArgs<'_>) -> Result<()> {
        const OP: &str = "swiglu";
        let n = u64::from(a.n);
        if n == 0 {
            return Ok(());
        }
        check_count(OP, "n", n)?;
        self.check(OP, "gate", &a.gate, 4 * n)?;
        self.check(OP, "up", &a.up, 4 * n)?;
        self.check(OP, "y", &a.y, 4 * n)?;
        check_disjoint(OP, ("y", &a.y), &[("gate", &a.gate), ("up", &a.up)])?;
        let grid = self.grid(OP, n.div_ceil(u64::from(WORKGROUP_SIZE)))?;
        let slices = [a.gate, a.up, a.y];
        self.launch(
            enc,
            &self.swiglu,
            OP,
            &[a.n, 0, 0, 0],
            &slices,
            &[(0, grid)],
        );
        Ok(())
    }

    /// Records `x += y` elementwise (the residual add of a decoder block), bit for bit.
    pub fn add(&self, enc: &mut wgpu::CommandEncoder, a: &AddArgs<'_>) -> Result<()> {
        const OP: &str = "add";
        let n = u64::from(a.n);
        if n == 0 {
            return Ok(());
        }
        check_count(OP, "n", n)?;
        self.check(OP, "x", &a.x, 4 * n)?;
        self.check(OP, "y", &a.y, 4 * n)?;
        check_disjoint(OP, ("x", &a.x), &[("y", &a.y)])?;
        let grid = self.grid(OP, n.div_ceil(u64::from(WORKGROUP_SIZE)))?;
        let slices = [a.x, a.y];
        self.launch(
            enc,
            &self.elementwise,
            OP,
            &[a.n, 0, 0, 0],
            &slices,
            &[(ADD, grid)],
        );
        Ok(())
    }

    /// Records the copy of row `token` of the table into `out`, as
    /// [`embedding`](fn@crate::ops::embedding) looks one token up. A compute copy rather
    /// than `copy_buffer_to_buffer`, which refuses a source and destination in the same
    /// buffer (pooled operands often are).
    pub fn embedding(&self, enc: &mut wgpu::CommandEncoder, a: &EmbeddingArgs<'_>) -> Result<()> {
        const OP: &str = "embedding";
        if a.token >= a.vocab {
            return Err(Error::OutOfRange {
                what: "token id",
                index: a.token as usize,
                bound: a.vocab as usize,
            });
        }
        let (vocab, h) = (u64::from(a.vocab), u64::from(a.hidden));
        check_count(OP, "vocab * hidden", vocab * h)?;
        self.check(OP, "table", &a.table, 4 * vocab * h)?;
        self.check(OP, "out", &a.out, 4 * h)?;
        check_disjoint(OP, ("out", &a.out), &[("table", &a.table)])?;
        let src = u64::from(a.token) * h;
        self.copy_words(enc, OP, (a.table, src), (a.out, 0), h)
    }

    /// Records the copy of `k` and `v` into row `pos` of a layer's key and value caches,
    /// as [`KvCache::write`](crate::ops::KvCache::write) stores them (bit for bit).
    pub fn kv_write(&self, enc: &mut wgpu::CommandEncoder, a: &KvWriteArgs<'_>) -> Result<()> {
        const OP: &str = "kv_write";
        if a.pos >= a.capacity {
            return Err(Error::OutOfRange {
                what: "KV cache position",
                index: a.pos as usize,
                bound: a.capacity as usize,
            });
        }
        let (w, cap) = (u64::from(a.kv_dim), u64::from(a.capacity));
        if w == 0 {
            return Ok(());
        }
        check_count(OP, "capacity * kv_dim", cap * w)?;
        self.check(OP, "k", &a.k, 4 * w)?;
        self.check(OP, "v", &a.v, 4 * w)?;
        self.check(OP, "keys", &a.keys, 4 * cap * w)?;
        self.check(OP, "values", &a.values, 4 * cap * w)?;
        let inputs = [("k", &a.k), ("v", &a.v)];
        check_disjoint(OP, ("keys", &a.keys), &inputs)?;
        check_disjoint(OP, ("values", &a.values), &inputs)?;
        check_disjoint(OP, ("keys", &a.keys), &[("values", &a.values)])?;
        let dst = u64::from(a.pos) * w;
        self.copy_words(enc, OP, (a.k, 0), (a.keys, dst), w)?;
        self.copy_words(enc, OP, (a.v, 0), (a.values, dst), w)
    }

    /// Records `dst.0[dst.1 + i] = src.0[src.1 + i]` for `words` words (offsets in words;
    /// the caller has checked both ranges).
    fn copy_words(
        &self,
        enc: &mut wgpu::CommandEncoder,
        op: &'static str,
        src: (GpuSlice<'_>, u64),
        dst: (GpuSlice<'_>, u64),
        words: u64,
    ) -> Result<()> {
        let grid = self.grid(op, words.div_ceil(u64::from(WORKGROUP_SIZE)))?;
        let params = [words as u32, 0, src.1 as u32, dst.1 as u32];
        let slices = [src.0, dst.0];
        self.launch(
            enc,
            &self.elementwise,
            op,
            &params,
            &slices,
            &[(COPY, grid)],
        );
        Ok(())
    }
}
