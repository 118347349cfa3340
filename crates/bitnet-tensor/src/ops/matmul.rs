//! F32 matrix products.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::exec::Exec;
use crate::storage::Provider;
use crate::tensor::Tensor;

/// Dot product in 16 independent lanes (so the compiler can vectorize the float sum),
/// folded in a fixed order: the result does not depend on threads.
#[inline]
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    const L: usize = 16;
    let mut acc = [0.0f32; L];
    let (ac, bc) = (a.chunks_exact(L), b.chunks_exact(L));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        let x: &[f32; L] = x.try_into().expect("chunk of L");
        let y: &[f32; L] = y.try_into().expect("chunk of L");
        for i in 0..L {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = 0.0;
    for (x, y) in ar.iter().zip(br) {
        s += x * y;
    }
    for half in [8, 4, 2, 1] {
        for i in 0..half {
            acc[i] += acc[i + half];
        }
    }
    acc[0] + s
}

fn f32_check(t: &Tensor<'_>, op: &'static str) -> Result<()> {
    if t.dtype() != DType::F32 {
        return Err(Error::DType {
            op,
            expected: DType::F32,
            got: t.dtype(),
        });
    }
    Ok(())
}

/// `y = x · wᵀ`: `x` is `[rows, k]`, `w` is `[n, k]` (a linear layer's weight), `y` is
/// `[rows, n]`. Each output is one contiguous dot product.
#[track_caller]
pub fn linear<'m>(
    x: &Tensor<'_>,
    w: &Tensor<'_>,
    p: &Provider<'m>,
    exec: &Exec,
) -> Result<Tensor<'m>> {
    f32_check(x, "linear")?;
    f32_check(w, "linear")?;
    w.expect_dims("linear weight", &[None, None])?;
    let (n, k) = (w.dims()[0], w.dims()[1]);
    x.expect_dims("linear", &[None, Some(k)])?;
    let rows = x.dims()[0];
    let (xs, ws) = (x.as_f32()?, w.as_f32()?);
    let mut y = Tensor::new(p, DType::F32, &[rows, n])?;
    let out = y.as_f32_mut()?;
    for r in 0..rows {
        let xr = &xs[r * k..(r + 1) * k];
        exec.for_rows(&mut out[r * n..(r + 1) * n], 1, k, |o, yo| {
            yo[0] = dot_f32(&ws[o * k..(o + 1) * k], xr);
        });
    }
    Ok(y)
}

/// `c = a · b` for `a` `[m, k]` and `b` `[k, n]`, giving `[m, n]`.
///
/// `b` may be contiguous (rows of `c` accumulate rows of `b`: i-k-j order, streaming) or
/// the transpose of a contiguous `[n, k]` tensor (then each output is a dot product, as in
/// [`linear`]). Any other layout is copied to contiguous first.
#[track_caller]
pub fn matmul<'m>(
    a: &Tensor<'_>,
    b: &Tensor<'_>,
    p: &Provider<'m>,
    exec: &Exec,
) -> Result<Tensor<'m>> {
    f32_check(a, "matmul")?;
    f32_check(b, "matmul")?;
    a.expect_dims("matmul lhs", &[None, None])?;
    let (m, k) = (a.dims()[0], a.dims()[1]);
    b.expect_dims("matmul rhs", &[Some(k), None])?;
    let n = b.dims()[1];
    let bt = b.transpose(0, 1)?;
    if !b.is_contiguous() && bt.is_contiguous() {
        return linear(a, &bt, p, exec);
    }
    let b = b.contiguous(p)?;
    let (xs, bs) = (a.as_f32()?, b.as_f32()?);
    let mut c = Tensor::new(p, DType::F32, &[m, n])?;
    exec.for_rows(c.as_f32_mut()?, n.max(1), k * n, |i, crow| {
        crow.fill(0.0);
        for (kk, &aik) in xs[i * k..(i + 1) * k].iter().enumerate() {
            for (c, &bv) in crow.iter_mut().zip(&bs[kk * n..(kk + 1) * n]) {
                *c += aik * bv;
            }
        }
    });
    Ok(c)
}
