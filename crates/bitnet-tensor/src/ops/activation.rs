//! Elementwise activations and softmax.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::storage::Provider;
use crate::tensor::Tensor;

/// `x * sigmoid(x)`.
#[inline]
pub fn silu_scalar(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// SiLU of every element, into a new tensor.
#[track_caller]
pub fn silu<'m>(x: &Tensor<'_>, p: &Provider<'m>) -> Result<Tensor<'m>> {
    let mut y = Tensor::new(p, DType::F32, x.dims())?;
    for (o, &v) in y.as_f32_mut()?.iter_mut().zip(x.as_f32()?) {
        *o = silu_scalar(v);
    }
    Ok(y)
}

/// The gated FFN activation: `silu(gate) * up`, into a new tensor.
#[track_caller]
pub fn swiglu<'m>(gate: &Tensor<'_>, up: &Tensor<'_>, p: &Provider<'m>) -> Result<Tensor<'m>> {
    if gate.dims() != up.dims() {
        return Err(Error::ShapeMismatch {
            op: "swiglu",
            expected: gate.shape().to_string(),
            got: up.shape(),
        });
    }
    let mut y = Tensor::new(p, DType::F32, gate.dims())?;
    for ((o, &g), &u) in y
        .as_f32_mut()?
        .iter_mut()
        .zip(gate.as_f32()?)
        .zip(up.as_f32()?)
    {
        *o = silu_scalar(g) * u;
    }
    Ok(y)
}

/// Softmax of a slice in place: `exp(x - max) / sum`, stable for large inputs.
#[inline]
pub fn softmax_in_place(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// Softmax of every row of an F32 `[rows, n]` tensor, into a new tensor.
#[track_caller]
pub fn softmax<'m>(x: &Tensor<'_>, p: &Provider<'m>) -> Result<Tensor<'m>> {
    x.expect_dims("softmax", &[None, None])?;
    let n = x.dims()[1];
    let mut y = Tensor::from_f32(p, x.dims(), x.as_f32()?)?;
    if n > 0 {
        for row in y.as_f32_mut()?.chunks_mut(n) {
            softmax_in_place(row);
        }
    }
    Ok(y)
}
