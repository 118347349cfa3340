//! BitLinear: packed ternary weights times int8 activations, exact in integers.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::exec::Exec;
use crate::ops::quant::{QuantizedActivations, TernaryWeight};
use crate::storage::Provider;
use crate::tensor::Tensor;
use crate::ternary::DECODE_LUT;

/// Weights unpacked per block: 16 packed bytes, 64 weights, one `i8` block on the stack.
const BLOCK: usize = 64;

/// Dot product of one packed ternary row (`x.len() / 4` bytes) with int8 activations.
///
/// Exact: every product is -x, 0 or x, summed in `i32`. The row is unpacked 64 weights at
/// a time into a stack block through a 256-entry table, then multiplied in a loop the
/// compiler vectorizes (block sums fit in `i32` lanes with no overflow: |sum| <= 64 * 128).
#[inline]
pub fn ternary_dot(row: &[u8], x: &[i8]) -> i32 {
    debug_assert_eq!(row.len() * 4, x.len());
    let mut acc = 0i32;
    let mut w = [0i8; BLOCK];
    let mut rows = row.chunks_exact(BLOCK / 4);
    let mut xs = x.chunks_exact(BLOCK);
    for (pb, xb) in (&mut rows).zip(&mut xs) {
        for (dst, &b) in w.chunks_exact_mut(4).zip(pb) {
            dst.copy_from_slice(&DECODE_LUT[b as usize]);
        }
        acc += dot_block(&w, xb);
    }
    for (&b, xb) in rows.remainder().iter().zip(xs.remainder().chunks_exact(4)) {
        let d = DECODE_LUT[b as usize];
        acc += d.iter().zip(xb).map(|(&w, &x)| w as i32 * x as i32).sum::<i32>();
    }
    acc
}

#[inline(always)]
fn dot_block(w: &[i8; BLOCK], x: &[i8]) -> i32 {
    let x: &[i8; BLOCK] = x.try_into().expect("block of 64");
    let mut s = 0i32;
    for i in 0..BLOCK {
        s += w[i] as i32 * x[i] as i32;
    }
    s
}

/// Integer matrix product `out[r, o] = sum_i w[o, i] * x[r, i]` over packed ternary
/// weights `w` (`n` rows of `k / 4` bytes) and int8 activations `x` (`rows` of `k`).
pub fn ternary_matmul_i32(
    packed: &[u8],
    n: usize,
    k: usize,
    x: &[i8],
    out: &mut [i32],
    exec: &Exec,
) {
    assert!(k % 4 == 0, "k must be a multiple of 4");
    assert_eq!(packed.len(), n * k / 4, "packed weight size");
    let rows = if k == 0 { 0 } else { x.len() / k };
    assert_eq!(out.len(), rows * n, "output size");
    for r in 0..rows {
        let xr = &x[r * k..(r + 1) * k];
        let orow = &mut out[r * n..(r + 1) * n];
        exec.for_rows(orow, 1, k, |o, y| {
            y[0] = ternary_dot(&packed[o * k / 4..(o + 1) * k / 4], xr);
        });
    }
}

/// BitLinear forward: `y[r, o] = (sum_i q_w[o, i] * q_x[r, i]) as f32 * (w.scale * x.scales[r])`,
/// an `F32 [rows, out]` tensor from `p`. The integer sum is exact; one float multiply
/// pair per output dequantizes it.
pub fn bitlinear<'m>(
    x: &QuantizedActivations<'_>,
    w: &TernaryWeight<'_>,
    p: &Provider<'m>,
    exec: &Exec,
) -> Result<Tensor<'m>> {
    let (n, k) = w.dims();
    x.values.expect_dims("bitlinear", &[None, Some(k)])?;
    let rows = x.values.dims()[0];
    x.scales.expect_dims("bitlinear scales", &[Some(rows)])?;
    if w.weight.dtype() != DType::Ternary {
        return Err(Error::DType {
            op: "bitlinear",
            expected: DType::Ternary,
            got: w.weight.dtype(),
        });
    }
    let packed = w.weight.as_ternary()?;
    let xs = x.values.as_i8()?;
    let scales = x.scales.as_f32()?;
    let mut y = Tensor::new(p, DType::F32, &[rows, n])?;
    let out = y.as_f32_mut()?;
    let kb = k / 4;
    for r in 0..rows {
        let xr = &xs[r * k..(r + 1) * k];
        let s = w.scale * scales[r];
        exec.for_rows(&mut out[r * n..(r + 1) * n], 1, k, |o, yo| {
            yo[0] = ternary_dot(&packed[o * kb..(o + 1) * kb], xr) as f32 * s;
        });
    }
    Ok(y)
}
