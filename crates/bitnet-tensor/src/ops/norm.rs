//! RMSNorm.

use crate::dtype::DType;
use crate::error::Result;
use crate::storage::Provider;
use crate::tensor::Tensor;

/// One row: `out = x / sqrt(mean(x²) + eps) * g` (the mean summed in `f32`, in order).
#[inline]
pub fn rmsnorm_row(x: &[f32], g: &[f32], eps: f32, out: &mut [f32]) {
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32;
    let inv = 1.0 / (ms + eps).sqrt();
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(g) {
        *o = v * inv * w;
    }
}

/// RMSNorm of every row of an F32 `[rows, n]` tensor with gain `g` `[n]`.
#[track_caller]
pub fn rmsnorm<'m>(
    x: &Tensor<'_>,
    g: &Tensor<'_>,
    eps: f32,
    p: &Provider<'m>,
) -> Result<Tensor<'m>> {
    x.expect_dims("rmsnorm", &[None, None])?;
    let n = x.dims()[1];
    g.expect_dims("rmsnorm gain", &[Some(n)])?;
    let mut y = Tensor::new(p, DType::F32, x.dims())?;
    let (xs, gs) = (x.as_f32()?, g.as_f32()?);
    if n > 0 {
        for (xr, yr) in xs.chunks(n).zip(y.as_f32_mut()?.chunks_mut(n)) {
            rmsnorm_row(xr, gs, eps, yr);
        }
    }
    Ok(y)
}
