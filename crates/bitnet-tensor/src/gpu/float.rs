//! The f32 kernels of a decoder step besides BitLinear: RMSNorm, `x · wᵀ`, row softmax and
//! one token's attention over a KV cache.

use super::bitnet::zero_k;
use super::kernels::{check_count, check_disjoint, GpuKernels};
use super::GpuSlice;
use crate::error::{Error, Result};

/// Operands of [`GpuKernels::rmsnorm`]: `rows` rows of `n`.
#[derive(Debug, Clone, Copy)]
pub struct RmsNormArgs<'a> {
    /// Rows.
    pub rows: u32,
    /// Elements per row.
    pub n: u32,
    /// Added to the mean square before the square root.
    pub eps: f32,
    /// F32 input `[rows, n]`: `4 * rows * n` bytes.
    pub x: GpuSlice<'a>,
    /// F32 gain `[n]`: `4 * n` bytes.
    pub g: GpuSlice<'a>,
    /// Output: f32 `[rows, n]`, `4 * rows * n` bytes.
    pub y: GpuSlice<'a>,
}

/// Operands of [`GpuKernels::linear`]: `y = x · wᵀ`.
#[derive(Debug, Clone, Copy)]
pub struct LinearArgs<'a> {
    /// Rows of `x`.
    pub rows: u32,
    /// Rows of `w` (outputs).
    pub n: u32,
    /// Inner dimension.
    pub k: u32,
    /// F32 `[rows, k]`: `4 * rows * k` bytes.
    pub x: GpuSlice<'a>,
    /// F32 `[n, k]`: `4 * n * k` bytes.
    pub w: GpuSlice<'a>,
    /// Output: f32 `[rows, n]`, `4 * rows * n` bytes.
    pub y: GpuSlice<'a>,
}

/// Operand of [`GpuKernels::softmax`]: `rows` rows of `n`, in place.
#[derive(Debug, Clone, Copy)]
pub struct SoftmaxArgs<'a> {
    /// Rows.
    pub rows: u32,
    /// Elements per row.
    pub n: u32,
    /// F32 `[rows, n]`, read and overwritten: `4 * rows * n` bytes.
    pub x: GpuSlice<'a>,
}

/// Operands of [`GpuKernels::attention`]: one token's queries over the first `positions`
/// positions of one layer's KV cache.
#[derive(Debug, Clone, Copy)]
pub struct AttentionArgs<'a> {
    /// Query heads (a multiple of `kv_heads`).
    pub heads: u32,
    /// KV heads.
    pub kv_heads: u32,
    /// Dimension of a head.
    pub head_dim: u32,
    /// Positions attended to (the new token's key and value already at `positions - 1`).
    pub positions: u32,
    /// F32 queries `[heads, head_dim]`.
    pub q: GpuSlice<'a>,
    /// F32 keys `[positions.., kv_heads * head_dim]` (a cache of any capacity: only the
    /// first `positions` rows are read).
    pub keys: GpuSlice<'a>,
    /// F32 values, laid out as `keys`.
    pub values: GpuSlice<'a>,
    /// Scratch: f32 `[heads, positions]`, overwritten with the attention weights.
    pub scores: GpuSlice<'a>,
    /// Output: f32 `[heads, head_dim]`.
    pub out: GpuSlice<'a>,
}

impl GpuKernels {
    /// Records RMSNorm of every row, as [`rmsnorm_row`](crate::ops::rmsnorm_row) computes
    /// it, within a few ulp (the sum of squares is a tree, the CPU's is in order; WGSL's
    /// `sqrt` and `/` are not correctly rounded). One workgroup per row.
    pub fn rmsnorm(&self, enc: &mut wgpu::CommandEncoder, a: &RmsNormArgs<'_>) -> Result<()> {
        const OP: &str = "rmsnorm";
        let (rows, n) = (u64::from(a.rows), u64::from(a.n));
        if rows == 0 || n == 0 {
            return Ok(());
        }
        check_count(OP, "rows * n", rows * n)?;
        self.check(OP, "x", &a.x, 4 * rows * n)?;
        self.check(OP, "g", &a.g, 4 * n)?;
        self.check(OP, "y", &a.y, 4 * rows * n)?;
        check_disjoint(OP, ("y", &a.y), &[("x", &a.x), ("g", &a.g)])?;
        let params = [a.rows, a.n, a.eps.to_bits(), 0];
        let grid = self.grid(OP, rows)?;
        let slices = [a.x, a.g, a.y];
        self.launch(enc, &self.norm, OP, &params, &slices, &[(0, grid)]);
        Ok(())
    }

    /// Records `y = x · wᵀ`, as [`linear`](crate::ops::linear) computes it: each output is
    /// [`dot_f32`](crate::ops::dot_f32) with its own summation order, so the result is the
    /// CPU's bit for bit unless the driver fuses multiply-adds. Four outputs per workgroup.
    pub fn linear(&self, enc: &mut wgpu::CommandEncoder, a: &LinearArgs<'_>) -> Result<()> {
        const OP: &str = "linear";
        let (rows, n, k) = (u64::from(a.rows), u64::from(a.n), u64::from(a.k));
        if rows == 0 || n == 0 {
            return Ok(());
        }
        if k == 0 {
            return Err(zero_k(OP));
        }
        check_count(OP, "rows * k", rows * k)?;
        check_count(OP, "n * k", n * k)?;
        check_count(OP, "rows * n", rows * n)?;
        self.check(OP, "x", &a.x, 4 * rows * k)?;
        self.check(OP, "w", &a.w, 4 * n * k)?;
        self.check(OP, "y", &a.y, 4 * rows * n)?;
        check_disjoint(OP, ("y", &a.y), &[("x", &a.x), ("w", &a.w)])?;
        let params = [a.rows, a.n, a.k, 0];
        let grid = self.grid(OP, (rows * n).div_ceil(4))?;
        let slices = [a.x, a.w, a.y];
        self.launch(enc, &self.linear, OP, &params, &slices, &[(0, grid)]);
        Ok(())
    }

    /// Records softmax of every row in place, as
    /// [`softmax_in_place`](crate::ops::softmax_in_place) computes it, within a few ulp
    /// (`exp` and the order of the sum differ). One workgroup per row.
    pub fn softmax(&self, enc: &mut wgpu::CommandEncoder, a: &SoftmaxArgs<'_>) -> Result<()> {
        const OP: &str = "softmax";
        let (rows, n) = (u64::from(a.rows), u64::from(a.n));
        if rows == 0 || n == 0 {
            return Ok(());
        }
        check_count(OP, "rows * n", rows * n)?;
        self.check(OP, "x", &a.x, 4 * rows * n)?;
        let grid = self.grid(OP, rows)?;
        let params = [a.rows, a.n, 0, 0];
        self.launch(enc, &self.softmax, OP, &params, &[a.x], &[(0, grid)]);
        Ok(())
    }

    /// Records attention of one token, as [`attention`](fn@crate::ops::attention) computes it
    /// (grouped-query heads, `scale = 1 / sqrt(head_dim)` computed on the CPU the same way),
    /// within a few ulp: the scores are `dot_f32` in its order, the softmax as
    /// [`softmax`](Self::softmax), the weighted sum of values over positions in order. One
    /// workgroup per query head.
    pub fn attention(&self, enc: &mut wgpu::CommandEncoder, a: &AttentionArgs<'_>) -> Result<()> {
        const OP: &str = "attention";
        let fail = |reason: String| Error::Gpu { op: OP, reason };
        if a.kv_heads == 0 || a.heads == 0 || !a.heads.is_multiple_of(a.kv_heads) {
            let (h, kv) = (a.heads, a.kv_heads);
            return Err(fail(format!(
                "{h} query heads are not a multiple of {kv} KV heads"
            )));
        }
        if a.head_dim == 0 || a.positions == 0 {
            return Err(fail("head_dim and positions must be at least 1".into()));
        }
        let (heads, d, t) = (
            u64::from(a.heads),
            u64::from(a.head_dim),
            u64::from(a.positions),
        );
        let row = u64::from(a.kv_heads) * d;
        check_count(OP, "positions * kv_heads * head_dim", t * row)?;
        check_count(OP, "heads * positions", heads * t)?;
        check_count(OP, "heads * head_dim", heads * d)?;
        self.check(OP, "q", &a.q, 4 * heads * d)?;
        self.check(OP, "keys", &a.keys, 4 * t * row)?;
        self.check(OP, "values", &a.values, 4 * t * row)?;
        self.check(OP, "scores", &a.scores, 4 * heads * t)?;
        self.check(OP, "out", &a.out, 4 * heads * d)?;
        let inputs = [("q", &a.q), ("keys", &a.keys), ("values", &a.values)];
        check_disjoint(OP, ("scores", &a.scores), &inputs)?;
        check_disjoint(OP, ("out", &a.out), &inputs)?;
        check_disjoint(OP, ("out", &a.out), &[("scores", &a.scores)])?;
        let scale = 1.0 / (a.head_dim as f32).sqrt();
        let params = [
            a.heads,
            a.kv_heads,
            a.head_dim,
            a.positions,
            scale.to_bits(),
            0,
            0,
            0,
        ];
        let grid = self.grid(OP, heads)?;
        let slices = [a.q, a.keys, a.values, a.scores, a.out];
        self.launch(enc, &self.attention, OP, &params, &slices, &[(0, grid)]);
        Ok(())
    }
}
