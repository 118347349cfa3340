//! Rotary position embedding.

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Rotates one head vector in place for position `pos`, in the "rotate half" layout used
/// by LLaMA-style models (BitNet b1.58 2B4T included): element `i` pairs with
/// `i + d/2`, rotated by `pos * theta^(-2i/d)`.
#[inline]
pub fn rope_head(x: &mut [f32], pos: usize, theta: f32) {
    let half = x.len() / 2;
    let d = x.len() as f32;
    let (lo, hi) = x.split_at_mut(half);
    for (i, (a, b)) in lo.iter_mut().zip(hi.iter_mut()).enumerate() {
        let freq = theta.powf(-2.0 * i as f32 / d);
        let (sin, cos) = (pos as f32 * freq).sin_cos();
        let (x0, x1) = (*a, *b);
        *a = x0 * cos - x1 * sin;
        *b = x0 * sin + x1 * cos;
    }
}

/// Applies rotary embedding in place to an F32 `[heads, head_dim]` tensor at `pos`
/// (`head_dim` even). One token, every head.
pub fn rope_in_place(x: &mut Tensor<'_>, pos: usize, theta: f32) -> Result<()> {
    x.expect_dims("rope", &[None, None])?;
    let d = x.dims()[1];
    if !d.is_multiple_of(2) {
        return Err(Error::InvalidShape {
            shape: x.shape(),
            reason: "rotary embedding needs an even head dimension".into(),
        });
    }
    if d == 0 {
        return Ok(());
    }
    for head in x.as_f32_mut()?.chunks_mut(d) {
        rope_head(head, pos, theta);
    }
    Ok(())
}
