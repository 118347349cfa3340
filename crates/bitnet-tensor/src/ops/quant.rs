//! BitNet b1.58 quantizers: absmean ternary weights, absmax int8 activations.

use crate::dtype::DType;
use crate::error::Result;
use crate::storage::Provider;
use crate::tensor::Tensor;

/// Smallest scale denominator, as in the BitNet reference code (`clamp(min=1e-5)`).
pub const QUANT_EPS: f32 = 1e-5;

/// A BitLinear weight: ternary values and the one scale that dequantizes them.
#[derive(Debug)]
pub struct TernaryWeight<'m> {
    /// Packed ternary values, `[out_features, in_features]`.
    pub weight: Tensor<'m>,
    /// Dequantization scale: `w ≈ q * scale` (the mean absolute value of the weights).
    pub scale: f32,
}

impl TernaryWeight<'_> {
    /// `(out_features, in_features)`.
    pub fn dims(&self) -> (usize, usize) {
        (self.weight.dims()[0], self.weight.dims()[1])
    }
}

/// Quantizes `w` to ternary with the absmean rule of BitNet b1.58 and packs it into
/// `packed` (`w.len() / 4` bytes): `gamma = max(mean |w|, eps)`,
/// `q = clamp(round(w / gamma), -1, 1)`. Returns `gamma`, the dequantization scale.
///
/// The mean is summed in `f64`, in order.
pub fn absmean_quantize_into(w: &[f32], packed: &mut [u8]) -> f32 {
    let gamma = absmean(w);
    pack_ternary(w, gamma, packed);
    gamma
}

/// Packs `clamp(round(w / gamma), -1, 1)` into `packed` (`w.len().div_ceil(4)` bytes).
/// Chunks of `w` starting at multiples of 4 may be packed separately (in parallel).
pub fn pack_ternary(w: &[f32], gamma: f32, packed: &mut [u8]) {
    let inv = 1.0 / gamma;
    assert_eq!(packed.len(), w.len().div_ceil(4), "packed length");
    for (o, chunk) in packed.iter_mut().zip(w.chunks(4)) {
        let mut b = 0u8;
        for (j, &x) in chunk.iter().enumerate() {
            // clamp(round(v), -1, 1) without a call to `round`: round half away from
            // zero reaches 1 exactly from 0.5 up, and -1 from -0.5 down.
            let v = x * inv;
            let code = if v >= 0.5 {
                0b01
            } else if v <= -0.5 {
                0b10
            } else {
                0b00
            };
            b |= code << (2 * j);
        }
        *o = b;
    }
}

/// `max(mean |w|, eps)`, summed in `f64` in order.
pub fn absmean(w: &[f32]) -> f32 {
    if w.is_empty() {
        return QUANT_EPS;
    }
    let sum: f64 = w.iter().map(|&x| f64::from(x.abs())).sum();
    ((sum / w.len() as f64) as f32).max(QUANT_EPS)
}

/// Absmean ternary quantization of an F32 `[out, in]` weight (`in` a multiple of 4).
#[track_caller]
pub fn absmean_quantize<'m>(w: &Tensor<'_>, p: &Provider<'m>) -> Result<TernaryWeight<'m>> {
    w.expect_dims("absmean_quantize", &[None, None])?;
    let mut q = Tensor::new(p, DType::Ternary, w.dims())?;
    let scale = absmean_quantize_into(w.as_f32()?, q.as_ternary_mut()?);
    Ok(TernaryWeight { weight: q, scale })
}

/// Quantizes one row of activations to int8 with the absmax rule:
/// `s = 127 / max(max |x|, eps)`, `q = clamp(round(x * s), -128, 127)`. Returns `1 / s`,
/// the dequantization scale.
#[inline]
pub fn absmax_quantize_row(x: &[f32], out: &mut [i8]) -> f32 {
    debug_assert_eq!(x.len(), out.len());
    let max = x.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(QUANT_EPS);
    let s = 127.0 / max;
    for (o, &v) in out.iter_mut().zip(x) {
        *o = (v * s).round().clamp(-128.0, 127.0) as i8;
    }
    1.0 / s
}

/// Int8 activations with one dequantization scale per row (per token).
#[derive(Debug)]
pub struct QuantizedActivations<'m> {
    /// I8 values, `[rows, features]`.
    pub values: Tensor<'m>,
    /// F32 dequantization scales, `[rows]`: `x ≈ q * scale`.
    pub scales: Tensor<'m>,
}

/// Absmax int8 quantization of an F32 `[rows, features]` tensor, per row.
#[track_caller]
pub fn absmax_quantize<'m>(x: &Tensor<'_>, p: &Provider<'m>) -> Result<QuantizedActivations<'m>> {
    x.expect_dims("absmax_quantize", &[None, None])?;
    let (rows, n) = (x.dims()[0], x.dims()[1]);
    let mut values = Tensor::new(p, DType::I8, &[rows, n])?;
    let mut scales = Tensor::new(p, DType::F32, &[rows])?;
    let xs = x.as_f32()?;
    let (qs, ss) = (values.as_i8_mut()?, scales.as_f32_mut()?);
    if n > 0 {
        for ((xr, qr), s) in xs.chunks(n).zip(qs.chunks_mut(n)).zip(ss.iter_mut()) {
            *s = absmax_quantize_row(xr, qr);
        }
    }
    Ok(QuantizedActivations { values, scales })
}
