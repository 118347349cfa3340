//! The f32 GPU kernels (RMSNorm, linear, softmax, attention) against the CPU ops, with
//! operands in one pooled buffer at non-zero offsets and outputs between guards. `linear`
//! is held to bit equality unless the driver fuses multiply-adds (probed); the others to a
//! relative 2e-6 (RMSNorm) or 1e-5 (softmax, attention) plus a small absolute slack.
//! Skips (saying why) when no GPU adapter exists, unless `BITNET_REQUIRE_GPU=1`.
#![cfg(feature = "wgpu")]

mod gpu_util;

use bitnet_tensor::gpu::{AttentionArgs, LinearArgs, RmsNormArgs, SoftmaxArgs};
use bitnet_tensor::ops::{self, KvCache};
use bitnet_tensor::{Exec, Provider, Tensor};
use gpu_util::{gpu, ulps, Pool};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn randn(rng: &mut SmallRng, n: usize, amp: f32) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-amp..amp)).collect()
}

/// Asserts `|got - want| <= rel * |want| + abs` elementwise, and prints the largest gap in
/// ulp and in absolute value.
fn assert_close(got: &[f32], want: &[f32], rel: f32, abs: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let (mut worst_ulp, mut worst_abs) = (0, 0.0f32);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let tol = rel * w.abs() + abs;
        assert!((g - w).abs() <= tol, "{what}[{i}]: gpu {g} cpu {w}");
        worst_ulp = worst_ulp.max(ulps(g, w));
        worst_abs = worst_abs.max((g - w).abs());
    }
    eprintln!("{what}: worst gap {worst_ulp} ulp, {worst_abs:e} absolute");
}

#[test]
fn rmsnorm_matches_cpu_closely() {
    let Some((ctx, kernels)) = gpu() else { return };
    let mut rng = SmallRng::seed_from_u64(1);
    for (rows, n) in [(1, 1), (3, 37), (5, 64), (2, 2560), (4, 129)] {
        let x = randn(&mut rng, rows * n, 3.0);
        let g = randn(&mut rng, n, 2.0);
        let eps = 1e-5;
        let mut want = vec![0.0; rows * n];
        for (xr, yr) in x.chunks(n).zip(want.chunks_mut(n)) {
            ops::rmsnorm_row(xr, &g, eps, yr);
        }
        let mut pool = Pool::new(ctx, kernels, 8 * (rows * n) as u64 + 8192);
        let xr = pool.put_f32(&x);
        let gr = pool.put_f32(&g);
        let y = pool.output(4 * (rows * n) as u64);
        let args = RmsNormArgs {
            rows: rows as u32,
            n: n as u32,
            eps,
            x: pool.slice(xr),
            g: pool.slice(gr),
            y: pool.slice(y),
        };
        let mut enc = ctx.encoder();
        kernels.rmsnorm(&mut enc, &args).unwrap();
        ctx.submit(enc);
        let what = format!("rmsnorm [{rows}x{n}]");
        assert_close(&pool.read_f32(y), &want, 2e-6, 0.0, &what);
        pool.check_guards();
    }
}

/// Runs `linear` on the GPU; the output values.
fn gpu_linear(x: &[f32], w: &[f32], (rows, n, k): (usize, usize, usize)) -> Option<Vec<f32>> {
    let (ctx, kernels) = gpu()?;
    let mut pool = Pool::new(
        ctx,
        kernels,
        4 * (x.len() + w.len() + rows * n) as u64 + 8192,
    );
    let xr = pool.put_f32(x);
    pool.skip_to(4096);
    let wr = pool.put_f32(w);
    let y = pool.output(4 * (rows * n) as u64);
    let args = LinearArgs {
        rows: rows as u32,
        n: n as u32,
        k: k as u32,
        x: pool.slice(xr),
        w: pool.slice(wr),
        y: pool.slice(y),
    };
    let mut enc = ctx.encoder();
    kernels.linear(&mut enc, &args).unwrap();
    ctx.submit(enc);
    let got = pool.read_f32(y);
    pool.check_guards();
    Some(got)
}

fn cpu_linear(x: &[f32], w: &[f32], (rows, n, k): (usize, usize, usize)) -> Vec<f32> {
    let p = Provider::Vec;
    let xt = Tensor::from_f32(&p, &[rows, k], x).unwrap();
    let wt = Tensor::from_f32(&p, &[n, k], w).unwrap();
    ops::linear(&xt, &wt, &p, &Exec::sequential())
        .unwrap()
        .to_vec_f32()
}

/// Whether the driver fuses `s + w * x` into one fma: with `w = x = 1 + 2^-12` the product
/// rounds (a tie, to even) unless fused, so `-1 + w * x` tells the two apart.
fn driver_fuses_multiply_add() -> Option<bool> {
    let v = 1.0 + f32::EPSILON * 2048.0;
    let (x, w) = ([1.0, v], [-1.0, v]);
    let got = gpu_linear(&x, &w, (1, 1, 2))?;
    let want = cpu_linear(&x, &w, (1, 1, 2));
    Some(got[0].to_bits() != want[0].to_bits())
}

#[test]
fn linear_matches_cpu_bit_for_bit_unless_the_driver_fuses() {
    let Some(fused) = driver_fuses_multiply_add() else {
        return;
    };
    eprintln!("driver fuses multiply-adds: {fused}");
    let mut rng = SmallRng::seed_from_u64(2);
    // k under, at and over the 16 lanes with and without a tail; outputs not a multiple of 4.
    let shapes = [
        (1, 1, 1),
        (3, 5, 17),
        (2, 7, 64),
        (4, 33, 100),
        (1, 65, 2560),
    ];
    for (rows, n, k) in shapes {
        let x = randn(&mut rng, rows * k, 2.0);
        let w = randn(&mut rng, n * k, 1.0);
        let want = cpu_linear(&x, &w, (rows, n, k));
        let got = gpu_linear(&x, &w, (rows, n, k)).expect("gpu");
        let what = format!("linear {:?}", (rows, n, k));
        if fused {
            // Each fma saves one rounding: far below k ulp of the sum of |w x|.
            let bound = k as f32 * f32::EPSILON * 2.0 * (k as f32);
            assert_close(&got, &want, 0.0, bound, &what);
        } else {
            for (i, (g, c)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.to_bits(), c.to_bits(), "{what}[{i}]: gpu {g} cpu {c}");
            }
        }
    }
}

#[test]
fn softmax_matches_cpu_closely() {
    let Some((ctx, kernels)) = gpu() else { return };
    let mut rng = SmallRng::seed_from_u64(3);
    // The last shape's rows sit near 100, where exp overflows unless the max is taken off.
    for (rows, n) in [(1, 1), (3, 37), (4, 1000), (2, 64), (2, 50)] {
        let shift = if n == 50 { 100.0 } else { 0.0 };
        let x: Vec<f32> = randn(&mut rng, rows * n, 8.0)
            .iter()
            .map(|v| v + shift)
            .collect();
        let mut want = x.clone();
        for row in want.chunks_mut(n) {
            ops::softmax_in_place(row);
        }
        let mut pool = Pool::new(ctx, kernels, 4 * (rows * n) as u64 + 8192);
        let xr = pool.output(4 * (rows * n) as u64);
        ctx.upload_f32(pool.slice(xr), &x).unwrap();
        let args = SoftmaxArgs {
            rows: rows as u32,
            n: n as u32,
            x: pool.slice(xr),
        };
        let mut enc = ctx.encoder();
        kernels.softmax(&mut enc, &args).unwrap();
        ctx.submit(enc);
        let what = format!("softmax [{rows}x{n}]");
        assert_close(&pool.read_f32(xr), &want, 1e-5, 1e-9, &what);
        pool.check_guards();
    }
}

#[test]
fn attention_matches_cpu_closely() {
    let Some((ctx, kernels)) = gpu() else { return };
    let mut rng = SmallRng::seed_from_u64(4);
    // (heads, kv_heads, head_dim, positions, capacity): grouped heads, d with and without
    // a 16-lane tail, positions under and over a workgroup.
    for (heads, kvh, d, positions, cap) in [(4, 2, 16, 1, 4), (8, 8, 20, 70, 80), (6, 2, 64, 9, 9)]
    {
        let p = Provider::Vec;
        let mut cache = KvCache::new(&p, 1, cap, kvh, d).unwrap();
        for _ in 0..positions {
            let k = Tensor::from_f32(&p, &[kvh * d], &randn(&mut rng, kvh * d, 1.0)).unwrap();
            let v = Tensor::from_f32(&p, &[kvh * d], &randn(&mut rng, kvh * d, 3.0)).unwrap();
            cache.write(0, &k, &v).unwrap();
            cache.advance().unwrap();
        }
        let q = randn(&mut rng, heads * d, 1.0);
        let qt = Tensor::from_f32(&p, &[heads, d], &q).unwrap();
        let want = ops::attention(&qt, &cache, 0, positions, &p, &Exec::sequential())
            .unwrap()
            .to_vec_f32();
        let (keys, values) = (cache.keys(0).to_vec_f32(), cache.values(0).to_vec_f32());
        let mut pool = Pool::new(ctx, kernels, 4 * (2 * keys.len() + 4 * heads * cap) as u64);
        let qr = pool.put_f32(&q);
        let kr = pool.put_f32(&keys); // the whole cache: capacity rows, positions read
        let vr = pool.put_f32(&values);
        let sr = pool.output(4 * (heads * positions) as u64);
        let out = pool.output(4 * (heads * d) as u64);
        let args = AttentionArgs {
            heads: heads as u32,
            kv_heads: kvh as u32,
            head_dim: d as u32,
            positions: positions as u32,
            q: pool.slice(qr),
            keys: pool.slice(kr),
            values: pool.slice(vr),
            scores: pool.slice(sr),
            out: pool.slice(out),
        };
        let mut enc = ctx.encoder();
        kernels.attention(&mut enc, &args).unwrap();
        ctx.submit(enc);
        let what = format!("attention {:?}", (heads, kvh, d, positions));
        // Outputs are averages of values of magnitude up to 3.
        assert_close(&pool.read_f32(out), &want, 1e-5, 3e-6, &what);
        pool.check_guards();
    }
}
