//! The BitNet GPU kernels against the CPU ops, bit for bit, on operands placed in one
//! pooled buffer at non-zero offsets, outputs between guards. Skips (saying why) when no
//! GPU adapter exists, unless `BITNET_REQUIRE_GPU=1`.
#![cfg(feature = "wgpu")]

mod gpu_util;

use bitnet_tensor::gpu::{wgpu, BitLinearArgs, GpuKernels, QuantizeArgs};
use bitnet_tensor::ops::{self, QuantizedActivations, TernaryWeight};
use bitnet_tensor::{ternary, Error, Exec, Provider, Tensor};
use gpu_util::{gpu, Pool, Range};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Activations with a spread of magnitudes, exact ties and zero rows.
fn activations(rng: &mut SmallRng, rows: usize, k: usize) -> Vec<f32> {
    let mut x = Vec::with_capacity(rows * k);
    for r in 0..rows {
        let mag = 10f32.powi(rng.gen_range(-6..6));
        for i in 0..k {
            x.push(match r % 5 {
                // 127 sets s = 1 exactly, so halves are ties: 2.5 must give 3, -0.5 -1.
                0 if i == 0 => 127.0,
                0 => (rng.gen_range(-254i32..=254) as f32) * 0.5,
                1 => 0.0,
                _ => rng.gen_range(-1.0f32..1.0) * mag,
            });
        }
    }
    x
}

/// The CPU reference: `ops::absmax_quantize` on a tensor.
fn cpu_quantize(x: &[f32], rows: usize, k: usize) -> (Vec<i8>, Vec<f32>) {
    let p = Provider::Vec;
    let t = Tensor::from_f32(&p, &[rows, k], x).unwrap();
    let q = ops::absmax_quantize(&t, &p).unwrap();
    (q.values.to_vec_i8(), q.scales.to_vec_f32())
}

/// Records `absmax_quantize` on `x` placed in `pool`; returns the q and scales ranges.
fn gpu_quantize(
    kernels: &GpuKernels,
    pool: &mut Pool<'_>,
    enc: &mut wgpu::CommandEncoder,
    x: Range,
    rows: usize,
    k: usize,
) -> (Range, Range) {
    let q = pool.output((rows * k) as u64);
    let s = pool.output(4 * rows as u64);
    let args = QuantizeArgs {
        rows: rows as u32,
        k: k as u32,
        x: pool.slice(x),
        q: pool.slice(q),
        scales: pool.slice(s),
    };
    kernels.absmax_quantize(enc, &args).unwrap();
    (q, s)
}

fn check_quantize(rows: usize, k: usize, seed: u64) {
    let Some((ctx, kernels)) = gpu() else { return };
    let mut rng = SmallRng::seed_from_u64(seed);
    let x = activations(&mut rng, rows, k);
    let (want_q, want_s) = cpu_quantize(&x, rows, k);
    let mut pool = Pool::new(ctx, kernels, 2 * 4 * (rows * k) as u64 + 8 * 4096);
    let xr = pool.put_f32(&x);
    let mut enc = ctx.encoder();
    let (q, s) = gpu_quantize(kernels, &mut pool, &mut enc, xr, rows, k);
    ctx.submit(enc);
    let got_q = pool.read(q);
    let mut want_bytes: Vec<u8> = want_q.iter().map(|&v| v as u8).collect();
    want_bytes.resize(got_q.len(), 0); // the last word's padding is written as 0
    if let Some(i) = (0..got_q.len()).find(|&i| got_q[i] != want_bytes[i]) {
        let (r, c) = (i / k.max(1), i % k.max(1));
        panic!(
            "[{rows}x{k}] q[{r},{c}]: gpu {} cpu {} (x = {:?}, scale {})",
            got_q[i] as i8,
            want_bytes[i] as i8,
            x.get(i),
            want_s.get(r).copied().unwrap_or(0.0)
        );
    }
    let got_s = pool.read_f32(s);
    for (r, (g, w)) in got_s.iter().zip(&want_s).enumerate() {
        assert_eq!(
            g.to_bits(),
            w.to_bits(),
            "[{rows}x{k}] scale[{r}]: gpu {g} cpu {w}"
        );
    }
    pool.check_guards();
}

#[test]
fn quantize_matches_cpu_bit_for_bit() {
    // Odd k (rows share boundary words), k under and over the workgroup, many rows.
    for (i, &(rows, k)) in [
        (1, 1),
        (1, 3),
        (3, 37),
        (5, 64),
        (7, 129),
        (2, 1000),
        (11, 2560),
    ]
    .iter()
    .enumerate()
    {
        check_quantize(rows, k, i as u64);
    }
}

#[test]
fn quantize_scales_are_correctly_rounded_over_many_magnitudes() {
    // 3000 rows of random maxima from 1e-7 to 1e30: both divisions against the CPU's.
    check_quantize(3000, 3, 42);
}

#[test]
fn quantize_folds_grids_past_the_dispatch_limit() {
    // 70000 rows: more workgroups than one grid dimension holds.
    check_quantize(70_000, 2, 7);
}

/// Random ternary weights `[n, k]` and their packed bytes (flat, as a Ternary tensor).
fn weights(rng: &mut SmallRng, n: usize, k: usize) -> (Vec<i8>, Vec<u8>) {
    let w: Vec<i8> = (0..n * k).map(|_| rng.gen_range(-1i8..=1)).collect();
    let mut packed = vec![0u8; (n * k).div_ceil(4)];
    ternary::pack(&w, &mut packed);
    (w, packed)
}

/// The CPU reference: `ops::bitlinear` when `k % 4 == 0` (a Ternary tensor's rows), else
/// the same float steps over flat indices (and the two agree when both apply).
fn cpu_bitlinear(
    x: &[i8],
    scales: &[f32],
    packed: &[u8],
    w_scale: f32,
    (rows, n, k): (usize, usize, usize),
) -> Vec<f32> {
    let flat: Vec<f32> = (0..rows * n)
        .map(|idx| {
            let (r, o) = (idx / n, idx % n);
            let acc: i32 = (0..k)
                .map(|i| ternary::get(packed, o * k + i) as i32 * x[r * k + i] as i32)
                .sum();
            acc as f32 * (w_scale * scales[r])
        })
        .collect();
    if k % 4 != 0 {
        return flat;
    }
    let p = Provider::Vec;
    let mut wt = Tensor::zeros(&p, bitnet_tensor::DType::Ternary, &[n, k]).unwrap();
    wt.as_ternary_mut().unwrap().copy_from_slice(packed);
    let w = TernaryWeight {
        weight: wt,
        scale: w_scale,
    };
    let xq = QuantizedActivations {
        values: Tensor::from_i8(&p, &[rows, k], x).unwrap(),
        scales: Tensor::from_f32(&p, &[rows], scales).unwrap(),
    };
    let y = ops::bitlinear(&xq, &w, &p, &Exec::sequential())
        .unwrap()
        .to_vec_f32();
    let same = y.iter().zip(&flat).all(|(a, b)| a.to_bits() == b.to_bits());
    assert!(same, "the flat reference disagrees with ops::bitlinear");
    y
}

fn assert_bits_eq(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.to_bits(), w.to_bits(), "{what}[{i}]: gpu {g} cpu {w}");
    }
}

fn check_bitlinear(x: &[i8], scales: &[f32], w: &[u8], w_scale: f32, shape: (usize, usize, usize)) {
    let Some((ctx, kernels)) = gpu() else { return };
    let (rows, n, k) = shape;
    let want = cpu_bitlinear(x, scales, w, w_scale, shape);
    let cap = (x.len() + w.len() + 4 * rows * n) as u64 + 16 * 4096;
    let mut pool = Pool::new(ctx, kernels, cap);
    let bytes: Vec<u8> = x.iter().map(|&v| v as u8).collect();
    let xr = pool.put(&bytes); // at 256
    let sr = pool.put_f32(scales);
    pool.skip_to(4096);
    let wr = pool.put(w); // at 4096 or the next aligned offset past the activations
    let y = pool.output(4 * (rows * n) as u64);
    let args = BitLinearArgs {
        rows: rows as u32,
        n: n as u32,
        k: k as u32,
        x: pool.slice(xr),
        x_scales: pool.slice(sr),
        w: pool.slice(wr),
        w_scale,
        y: pool.slice(y),
    };
    let mut enc = ctx.encoder();
    kernels.bitlinear(&mut enc, &args).unwrap();
    ctx.submit(enc);
    assert_bits_eq(&pool.read_f32(y), &want, &format!("bitlinear {shape:?}"));
    pool.check_guards();
}

#[test]
fn bitlinear_matches_cpu_bit_for_bit() {
    let mut rng = SmallRng::seed_from_u64(3);
    // k % 16 == 0 (fast path), k % 4 == 0 only, k odd (flat reference), n over 64.
    let shapes = [
        (1, 1, 4),
        (3, 5, 36),
        (2, 7, 64),
        (4, 33, 100),
        (1, 65, 256),
        (5, 3, 37),
        (2, 9, 1),
        (3, 17, 1030),
        (2, 70, 2560),
    ];
    for (rows, n, k) in shapes {
        let x: Vec<i8> = (0..rows * k).map(|_| rng.gen()).collect();
        let scales: Vec<f32> = (0..rows).map(|_| rng.gen_range(1e-4f32..0.1)).collect();
        let (_, w) = weights(&mut rng, n, k);
        check_bitlinear(&x, &scales, &w, rng.gen_range(0.01f32..2.0), (rows, n, k));
    }
}

#[test]
fn bitlinear_rounds_sums_past_2_pow_24_like_the_cpu() {
    // |acc| near 127 * k > 2^25, where f32 steps by 4: rows hit each residue mod 4
    // (one a tie, rounded to even) and both signs.
    let (n, k) = (2, 270_000);
    let mut x = Vec::new();
    for r in 0..4 {
        let mut row = vec![127i8; k];
        row[0] = 127 - r as i8;
        x.extend(row);
    }
    let mut w = vec![1i8; n * k];
    w[k..].fill(-1);
    let mut packed = vec![0u8; n * k / 4];
    ternary::pack(&w, &mut packed);
    check_bitlinear(&x, &[0.5, 1.0, 0.25, 3.0], &packed, 1.5, (4, n, k));
}

#[test]
fn quantize_then_bitlinear_in_one_encoder_matches_cpu() {
    let Some((ctx, kernels)) = gpu() else { return };
    let mut rng = SmallRng::seed_from_u64(11);
    let (rows, n, k) = (3, 40, 96);
    let x: Vec<f32> = (0..rows * k).map(|_| rng.gen_range(-3.0f32..3.0)).collect();
    let (_, w) = weights(&mut rng, n, k);
    let (cq, cs) = cpu_quantize(&x, rows, k);
    let want = cpu_bitlinear(&cq, &cs, &w, 0.7, (rows, n, k));
    let mut pool = Pool::new(ctx, kernels, 64 * 1024);
    let xr = pool.put_f32(&x);
    let wr = pool.put(&w);
    let mut enc = ctx.encoder();
    let (q, s) = gpu_quantize(kernels, &mut pool, &mut enc, xr, rows, k);
    let y = pool.output(4 * (rows * n) as u64);
    let args = BitLinearArgs {
        rows: rows as u32,
        n: n as u32,
        k: k as u32,
        x: pool.slice(q),
        x_scales: pool.slice(s),
        w: pool.slice(wr),
        w_scale: 0.7,
        y: pool.slice(y),
    };
    kernels.bitlinear(&mut enc, &args).unwrap();
    ctx.submit(enc);
    assert_bits_eq(&pool.read_f32(y), &want, "quantize + bitlinear");
    pool.check_guards();
}

#[test]
fn bad_ranges_are_refused_before_recording() {
    let Some((ctx, kernels)) = gpu() else { return };
    let buf = ctx.storage_buffer(64 * 1024);
    let s = |offset, size| bitnet_tensor::gpu::GpuSlice::new(&buf, offset, size);
    let args = |x, q, scales| QuantizeArgs {
        rows: 2,
        k: 8,
        x,
        q,
        scales,
    };
    let good = args(s(256, 64), s(512, 16), s(768, 8));
    let cases = [
        ("misaligned", args(s(260, 64), s(512, 16), s(768, 8))),
        ("short", args(s(256, 60), s(512, 16), s(768, 8))),
        (
            "past the end",
            args(s(256, 64), s(512, 16), s(64 * 1024, 8)),
        ),
        ("overlap", args(s(256, 64), s(256, 16), s(768, 8))),
        ("odd size", args(s(256, 64), s(512, 18), s(768, 8))),
    ];
    let mut enc = ctx.encoder();
    kernels.absmax_quantize(&mut enc, &good).unwrap();
    for (what, a) in cases {
        let r = kernels.absmax_quantize(&mut enc, &a);
        assert!(matches!(r, Err(Error::Gpu { .. })), "{what}: {r:?}");
    }
    let zero_k = QuantizeArgs { k: 0, ..good };
    assert!(kernels.absmax_quantize(&mut enc, &zero_k).is_err());
    ctx.submit(enc);
}
