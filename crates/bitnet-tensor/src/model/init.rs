//! Seeded weights: every value is a pure function of (seed, tensor id, row block), so a
//! model is the same for a seed whatever the thread count.

use crate::dtype::DType;
use crate::error::Result;
use crate::exec::Exec;
use crate::lifecycle;
use crate::ops::quant::{absmean, pack_ternary, TernaryWeight};
use crate::storage::Provider;
use crate::tensor::Tensor;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Rows generated from one seed: the unit of parallel work.
const ROW_BLOCK: usize = 16;

/// SplitMix64 finalizer: a seed per (model seed, tensor, block).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D1_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fills `out` (rows of `cols`) with `center + uniform(-amp, amp)`.
pub(crate) fn fill_uniform(
    out: &mut [f32],
    cols: usize,
    seed: u64,
    id: u64,
    center: f32,
    amp: f32,
    exec: &Exec,
) {
    let base = mix(seed ^ mix(id));
    exec.for_rows(
        out,
        (ROW_BLOCK * cols).max(1),
        4 * ROW_BLOCK * cols,
        |block, rows| {
            let mut rng = SmallRng::seed_from_u64(mix(base ^ block as u64));
            for v in rows {
                *v = center + amp * (2.0 * rng.gen::<f32>() - 1.0);
            }
        },
    );
}

/// A persistent F32 tensor of `center + uniform(-amp, amp)` values.
#[track_caller]
pub(crate) fn f32_tensor<'m>(
    p: &Provider<'m>,
    dims: &[usize],
    seed: u64,
    id: u64,
    (center, amp): (f32, f32),
    exec: &Exec,
    what: &'static str,
) -> Result<Tensor<'m>> {
    let mut t = Tensor::new(p, DType::F32, dims)?;
    let cols = *dims.last().unwrap_or(&1);
    fill_uniform(t.as_f32_mut()?, cols, seed, id, center, amp, exec);
    Ok(lifecycle::persistent(t, what))
}

/// A persistent BitLinear weight `[out, inp]`: F32 values drawn in a temporary buffer from
/// `p` (uniform, variance `1 / inp`), quantized with absmean, the temporary freed.
#[track_caller]
pub(crate) fn ternary_weight<'m>(
    p: &Provider<'m>,
    out: usize,
    inp: usize,
    seed: u64,
    id: u64,
    exec: &Exec,
) -> Result<TernaryWeight<'m>> {
    let amp = (3.0 / inp as f32).sqrt();
    let mut tmp = Tensor::new(p, DType::F32, &[out, inp])?;
    fill_uniform(tmp.as_f32_mut()?, inp, seed, id, 0.0, amp, exec);
    let mut q = Tensor::new(p, DType::Ternary, &[out, inp])?;
    // The mean is one in-order pass (as `absmean_quantize` computes it); packing is split
    // by rows across threads.
    let w = tmp.as_f32()?;
    let scale = absmean(w);
    let row_bytes = inp / 4;
    exec.for_rows(q.as_ternary_mut()?, row_bytes.max(1), inp, |r, bytes| {
        pack_ternary(&w[r * inp..(r + 1) * inp], scale, bytes);
    });
    drop(tmp);
    Ok(TernaryWeight {
        weight: lifecycle::persistent(q, "weight"),
        scale,
    })
}
