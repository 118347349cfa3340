//! The BitNet kernels: absmax int8 quantisation of activations, and BitLinear (int8
//! activations times packed ternary weights).

use super::kernels::{check_count, check_disjoint, GpuKernels, QUANT_ENTRIES, WORKGROUP_SIZE};
use super::GpuSlice;
use crate::error::{Error, Result};
use crate::ops::quant::QUANT_EPS;

/// Operands of [`GpuKernels::absmax_quantize`]: `rows` rows of `k` activations.
#[derive(Debug, Clone, Copy)]
pub struct QuantizeArgs<'a> {
    /// Rows (tokens).
    pub rows: u32,
    /// Activations per row (any `k >= 1`).
    pub k: u32,
    /// F32 activations `[rows, k]`, row-major: at least `4 * rows * k` bytes.
    pub x: GpuSlice<'a>,
    /// Output: int8 values `[rows, k]`, row-major, 4 per word, first in the low byte (the
    /// bytes of an `I8` tensor): at least `rows * k` bytes rounded up to a word. Bytes of
    /// the last word past `rows * k` are written as 0; nothing else is written.
    pub q: GpuSlice<'a>,
    /// Output: f32 dequantization scales `[rows]` (`x ≈ q * scale`): `4 * rows` bytes.
    pub scales: GpuSlice<'a>,
}

/// Operands of [`GpuKernels::bitlinear`]: `y = x · wᵀ` for `rows` rows, `n` outputs and
/// `k` inputs.
#[derive(Debug, Clone, Copy)]
pub struct BitLinearArgs<'a> {
    /// Rows (tokens).
    pub rows: u32,
    /// Output features: rows of the weight.
    pub n: u32,
    /// Input features (any `k >= 1`; a `Ternary` tensor has `k % 4 == 0`).
    pub k: u32,
    /// Int8 activations `[rows, k]` as [`absmax_quantize`](GpuKernels::absmax_quantize)
    /// writes them: at least `rows * k` bytes rounded up to a word.
    pub x: GpuSlice<'a>,
    /// F32 activation scales `[rows]`: `4 * rows` bytes.
    pub x_scales: GpuSlice<'a>,
    /// Ternary weights `[n, k]` packed as [`crate::ternary`] packs them (the bytes of a
    /// `Ternary` tensor): at least `n * k / 4` bytes rounded up to a word.
    pub w: GpuSlice<'a>,
    /// The weight's dequantization scale ([`TernaryWeight::scale`](crate::ops::TernaryWeight)).
    pub w_scale: f32,
    /// Output: f32 `[rows, n]`, `4 * rows * n` bytes; nothing past it is written.
    pub y: GpuSlice<'a>,
}

/// Bytes of `count` int8 values rounded up to whole words.
fn i8_words(count: u64) -> u64 {
    count.div_ceil(4) * 4
}

impl GpuKernels {
    /// Records absmax int8 quantisation of every row, exactly as
    /// [`absmax_quantize_row`](crate::ops::absmax_quantize_row) computes it: the same int8
    /// values and the same scale bits. Three dispatches in one pass: one workgroup per row
    /// takes the absmax and the multiplier `s = 127 / max`; one invocation per output word
    /// quantizes 4 values; one invocation per row turns `s` into `1 / s`.
    ///
    /// `rows == 0` records nothing; `k == 0` is refused (an operand would be empty).
    pub fn absmax_quantize(
        &self,
        enc: &mut wgpu::CommandEncoder,
        a: &QuantizeArgs<'_>,
    ) -> Result<()> {
        const OP: &str = "absmax_quantize";
        let (rows, k) = (u64::from(a.rows), u64::from(a.k));
        if a.rows == 0 {
            return Ok(());
        }
        if a.k == 0 {
            return Err(zero_k(OP));
        }
        check_count(OP, "rows * k", rows * k)?;
        self.check(OP, "x", &a.x, 4 * rows * k)?;
        self.check(OP, "q", &a.q, i8_words(rows * k))?;
        self.check(OP, "scales", &a.scales, 4 * rows)?;
        check_disjoint(OP, ("q", &a.q), &[("x", &a.x), ("scales", &a.scales)])?;
        check_disjoint(OP, ("scales", &a.scales), &[("x", &a.x)])?;
        let words = (rows * k).div_ceil(4);
        let wg = u64::from(WORKGROUP_SIZE);
        let params = [a.rows, a.k, QUANT_EPS.to_bits(), words as u32];
        let dispatches = [
            (0, self.grid(OP, rows)?),
            (1, self.grid(OP, words.div_ceil(wg))?),
            (2, self.grid(OP, rows.div_ceil(wg))?),
        ];
        debug_assert_eq!(dispatches.len(), QUANT_ENTRIES.len());
        let slices = [a.x, a.q, a.scales];
        self.launch(enc, &self.quant, OP, &params, &slices, &dispatches);
        Ok(())
    }

    /// Records BitLinear, exactly as [`bitlinear`](fn@crate::ops::bitlinear) computes it:
    /// `y[r, o] = (sum_i w[o, i] * x[r, i]) as f32 * (w_scale * x_scales[r])`, the sum
    /// exact in `i32`. One workgroup per output element.
    ///
    /// `rows == 0` or `n == 0` records nothing; `k == 0` is refused.
    pub fn bitlinear(&self, enc: &mut wgpu::CommandEncoder, a: &BitLinearArgs<'_>) -> Result<()> {
        const OP: &str = "bitlinear";
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
        self.check(OP, "x", &a.x, i8_words(rows * k))?;
        self.check(OP, "x_scales", &a.x_scales, 4 * rows)?;
        self.check(OP, "w", &a.w, (n * k).div_ceil(16) * 4)?;
        self.check(OP, "y", &a.y, 4 * rows * n)?;
        let inputs = [("x", &a.x), ("x_scales", &a.x_scales), ("w", &a.w)];
        check_disjoint(OP, ("y", &a.y), &inputs)?;
        let params = [a.rows, a.n, a.k, a.w_scale.to_bits()];
        let grid = self.grid(OP, rows * n)?;
        let slices = [a.x, a.x_scales, a.w, a.y];
        self.launch(enc, &self.bitlinear, OP, &params, &slices, &[(0, grid)]);
        Ok(())
    }
}

pub(super) fn zero_k(op: &'static str) -> Error {
    Error::Gpu {
        op,
        reason: "k = 0: an operand would be empty".into(),
    }
}
