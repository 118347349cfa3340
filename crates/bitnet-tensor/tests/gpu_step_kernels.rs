//! The step kernels (rotary embedding, SwiGLU, residual add, embedding lookup, KV cache
//! write) against the CPU ops, with operands in one pooled buffer at non-zero offsets and
//! outputs (or in-place operands) between guards. Rotary embedding and the add are held
//! to bit equality (rope unless the driver fuses multiply-adds, probed), the copies to
//! byte equality including the untouched rest of the cache, SwiGLU to a relative 1e-5.
//! Skips (saying why) when no GPU adapter exists, unless `BITNET_REQUIRE_GPU=1`.
#![cfg(feature = "wgpu")]

mod gpu_util;

use bitnet_tensor::gpu::{rope_table, AddArgs, EmbeddingArgs, KvWriteArgs, RopeArgs, SwigluArgs};
use bitnet_tensor::ops::{self, KvCache};
use bitnet_tensor::{Error, Provider, Tensor};
use gpu_util::{gpu, ulps, Pool, GUARD};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn randn(rng: &mut SmallRng, n: usize, amp: f32) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-amp..amp)).collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Rotates `x` `[heads, d]` at `pos` on the GPU (in place between guards); the result.
fn gpu_rope(x: &[f32], heads: usize, d: usize, pos: usize, theta: f32) -> Option<Vec<f32>> {
    let (ctx, kernels) = gpu()?;
    let mut pool = Pool::new(ctx, kernels, 4 * (x.len() + d) as u64 + 8192);
    let table = pool.put_f32(&rope_table(pos, theta, d));
    let xr = pool.output(4 * x.len() as u64);
    ctx.upload_f32(pool.slice(xr), x).unwrap();
    let args = RopeArgs {
        heads: heads as u32,
        head_dim: d as u32,
        x: pool.slice(xr),
        table: pool.slice(table),
    };
    let mut enc = ctx.encoder();
    kernels.rope(&mut enc, &args).unwrap();
    ctx.submit(enc);
    let got = pool.read_f32(xr);
    pool.check_guards();
    Some(got)
}

fn cpu_rope(x: &[f32], heads: usize, d: usize, pos: usize, theta: f32) -> Vec<f32> {
    let mut t = Tensor::from_f32(&Provider::Vec, &[heads, d], x).unwrap();
    ops::rope_in_place(&mut t, pos, theta).unwrap();
    t.to_vec_f32()
}

#[test]
fn rope_matches_cpu_bit_for_bit_unless_the_driver_fuses() {
    // No separate fma probe: a result that is not bit-equal is accepted only within the
    // ulp or two a fused `a * c - b * s` can move it (|x| < 2 here), and reported.
    let Some(_) = gpu() else { return };
    let mut rng = SmallRng::seed_from_u64(11);
    let theta = 500_000.0;
    let mut fused_seen = false;
    // Odd head counts, d not a multiple of 4, d over a workgroup; late positions (large
    // angles, where a GPU sin/cos would be far off).
    for (heads, d, pos) in [
        (1, 2, 1),
        (3, 10, 7),
        (8, 64, 0),
        (5, 128, 2047),
        (2, 130, 333),
    ] {
        let x = randn(&mut rng, heads * d, 2.0);
        let want = cpu_rope(&x, heads, d, pos, theta);
        let got = gpu_rope(&x, heads, d, pos, theta).expect("gpu");
        let worst = got.iter().zip(&want).map(|(&g, &w)| ulps(g, w)).max();
        eprintln!("rope {:?}: worst gap {worst:?} ulp", (heads, d, pos));
        if bits(&got) != bits(&want) {
            fused_seen = true;
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 4.0 * f32::EPSILON * 2.0,
                    "rope[{i}]: gpu {g} cpu {w}"
                );
            }
        }
        // The position matters: the next position's rotation is not this one's.
        if pos > 0 {
            let other = cpu_rope(&x, heads, d, pos + 1, theta);
            assert_ne!(bits(&other), bits(&got), "rope ignores the position");
        }
    }
    eprintln!("rope: inexact results seen (a fusing driver): {fused_seen}");
}

#[test]
fn rope_refuses_an_odd_head_and_a_short_table() {
    let Some((ctx, kernels)) = gpu() else { return };
    let mut pool = Pool::new(ctx, kernels, 4096);
    let x = pool.output(4 * 12);
    let t = pool.put_f32(&rope_table(3, 10_000.0, 4));
    let mut enc = ctx.encoder();
    let odd = RopeArgs {
        heads: 4,
        head_dim: 3,
        x: pool.slice(x),
        table: pool.slice(t),
    };
    assert!(matches!(
        kernels.rope(&mut enc, &odd),
        Err(Error::Gpu { .. })
    ));
    let short = RopeArgs {
        heads: 1,
        head_dim: 12,
        x: pool.slice(x),
        table: pool.slice(t),
    };
    assert!(matches!(
        kernels.rope(&mut enc, &short),
        Err(Error::Gpu { .. })
    ));
}

#[test]
fn swiglu_matches_cpu_closely() {
    let Some((ctx, kernels)) = gpu() else { return };
    let mut rng = SmallRng::seed_from_u64(12);
    for n in [1, 37, 64, 1000, 1376] {
        let g = randn(&mut rng, n, 8.0);
        let u = randn(&mut rng, n, 4.0);
        let p = Provider::Vec;
        let (gt, ut) = (
            Tensor::from_f32(&p, &[n], &g).unwrap(),
            Tensor::from_f32(&p, &[n], &u).unwrap(),
        );
        let want = ops::swiglu(&gt, &ut, &p).unwrap().to_vec_f32();
        let mut pool = Pool::new(ctx, kernels, 12 * n as u64 + 8192);
        let gr = pool.put_f32(&g);
        let ur = pool.put_f32(&u);
        let y = pool.output(4 * n as u64);
        let args = SwigluArgs {
            n: n as u32,
            gate: pool.slice(gr),
            up: pool.slice(ur),
            y: pool.slice(y),
        };
        let mut enc = ctx.encoder();
        kernels.swiglu(&mut enc, &args).unwrap();
        ctx.submit(enc);
        let got = pool.read_f32(y);
        let mut worst = 0;
        for (i, (&a, &b)) in got.iter().zip(&want).enumerate() {
            // exp within a few ulp of |g| <= 8 and one division: 1e-5 relative is ample.
            assert!(
                (a - b).abs() <= 1e-5 * b.abs() + 1e-30,
                "swiglu[{i}]: gpu {a} cpu {b}"
            );
            worst = worst.max(ulps(a, b));
        }
        eprintln!("swiglu [{n}]: worst gap {worst} ulp");
        // Not silu(up) * gate: the operands are not interchangeable.
        let swapped = ops::swiglu(&ut, &gt, &p).unwrap().to_vec_f32();
        assert!(got
            .iter()
            .zip(&swapped)
            .any(|(a, b)| (a - b).abs() > 1e-3 * b.abs().max(1e-3)));
        pool.check_guards();
    }
}

#[test]
fn add_in_place_is_bit_exact() {
    let Some((ctx, kernels)) = gpu() else { return };
    let mut rng = SmallRng::seed_from_u64(13);
    for n in [1, 5, 64, 65, 2561] {
        let x = randn(&mut rng, n, 3.0);
        let y = randn(&mut rng, n, 1e-3);
        let want: Vec<f32> = x.iter().zip(&y).map(|(a, b)| a + b).collect();
        let mut pool = Pool::new(ctx, kernels, 8 * n as u64 + 8192);
        let yr = pool.put_f32(&y);
        let xr = pool.output(4 * n as u64);
        ctx.upload_f32(pool.slice(xr), &x).unwrap();
        let mut enc = ctx.encoder();
        let args = AddArgs {
            n: n as u32,
            x: pool.slice(xr),
            y: pool.slice(yr),
        };
        kernels.add(&mut enc, &args).unwrap();
        ctx.submit(enc);
        assert_eq!(bits(&pool.read_f32(xr)), bits(&want), "add [{n}]");
        assert_eq!(
            bits(&pool.read_f32(yr)),
            bits(&y),
            "add [{n}] wrote its addend"
        );
        pool.check_guards();
    }
}

#[test]
fn embedding_copies_one_row_exactly() {
    let Some((ctx, kernels)) = gpu() else { return };
    let mut rng = SmallRng::seed_from_u64(14);
    for (vocab, h, token) in [(1, 4, 0), (7, 37, 6), (100, 64, 41), (33, 130, 0)] {
        let table = randn(&mut rng, vocab * h, 1.0);
        let p = Provider::Vec;
        let tt = Tensor::from_f32(&p, &[vocab, h], &table).unwrap();
        let want = ops::embedding(&tt, &[token], &p).unwrap().to_vec_f32();
        let mut pool = Pool::new(ctx, kernels, 4 * (table.len() + h) as u64 + 8192);
        let tr = pool.put_f32(&table);
        let out = pool.output(4 * h as u64);
        let args = EmbeddingArgs {
            vocab: vocab as u32,
            hidden: h as u32,
            token,
            table: pool.slice(tr),
            out: pool.slice(out),
        };
        let mut enc = ctx.encoder();
        kernels.embedding(&mut enc, &args).unwrap();
        ctx.submit(enc);
        assert_eq!(
            bits(&pool.read_f32(out)),
            bits(&want),
            "embedding row {token}"
        );
        pool.check_guards();
        let bad = EmbeddingArgs {
            token: vocab as u32,
            ..args
        };
        let mut enc = ctx.encoder();
        assert!(matches!(
            kernels.embedding(&mut enc, &bad),
            Err(Error::OutOfRange { .. })
        ));
    }
}

#[test]
fn kv_write_fills_exactly_one_row_of_each_cache() {
    let Some((ctx, kernels)) = gpu() else { return };
    let mut rng = SmallRng::seed_from_u64(15);
    for (kvh, d, cap, pos) in [(1, 2, 1, 0), (2, 10, 9, 4), (2, 64, 70, 69)] {
        let w = kvh * d;
        let (k, v) = (randn(&mut rng, w, 1.0), randn(&mut rng, w, 1.0));
        let p = Provider::Vec;
        let mut cache = KvCache::new(&p, 1, cap, kvh, d).unwrap();
        for _ in 0..pos {
            cache.advance().unwrap();
        }
        let (kt, vt) = (
            Tensor::from_f32(&p, &[w], &k).unwrap(),
            Tensor::from_f32(&p, &[w], &v).unwrap(),
        );
        cache.write(0, &kt, &vt).unwrap();
        let mut pool = Pool::new(ctx, kernels, 4 * (2 * w + 2 * w * cap) as u64 + 8192);
        let kr = pool.put_f32(&k);
        let vr = pool.put_f32(&v);
        let keys = pool.output(4 * (w * cap) as u64);
        let values = pool.output(4 * (w * cap) as u64);
        let args = KvWriteArgs {
            kv_dim: w as u32,
            capacity: cap as u32,
            pos: pos as u32,
            k: pool.slice(kr),
            v: pool.slice(vr),
            keys: pool.slice(keys),
            values: pool.slice(values),
        };
        let mut enc = ctx.encoder();
        kernels.kv_write(&mut enc, &args).unwrap();
        ctx.submit(enc);
        // The written row is the CPU cache's row; every other byte is still the guard.
        for (name, got, cpu) in [
            ("keys", pool.read(keys), cache.keys(0).to_vec_f32()),
            ("values", pool.read(values), cache.values(0).to_vec_f32()),
        ] {
            let row = 4 * pos * w..4 * (pos + 1) * w;
            let want: Vec<u8> = cpu[pos * w..(pos + 1) * w]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect();
            assert_eq!(got[row.clone()], want[..], "{name} row {pos}");
            assert!(
                got[..row.start]
                    .iter()
                    .chain(&got[row.end..])
                    .all(|&b| b == GUARD),
                "{name}: other rows written"
            );
        }
        pool.check_guards();
        let past = KvWriteArgs {
            pos: cap as u32,
            ..args
        };
        let mut enc = ctx.encoder();
        assert!(matches!(
            kernels.kv_write(&mut enc, &past),
            Err(Error::OutOfRange { .. })
        ));
    }
}
