//! Every op against a naive reference: exact for integer paths, a tolerance for floats.

use bitnet_memory::{MemoryConfig, MemoryManager};
use bitnet_tensor::ops::{self, KvCache};
use bitnet_tensor::{DType, Error, Exec, Provider, Tensor};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn mm() -> MemoryManager {
    MemoryManager::new(MemoryConfig::default()).unwrap()
}

fn randn(rng: &mut SmallRng, n: usize, amp: f32) -> Vec<f32> {
    (0..n)
        .map(|_| amp * (2.0 * rng.gen::<f32>() - 1.0))
        .collect()
}

fn assert_close(got: &[f32], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs();
        assert!(
            err <= tol * (1.0 + w.abs()),
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

/// Reference absmean: gamma = max(mean |w|, 1e-5) summed in f64, q = clamp(round(w / gamma)).
fn ref_absmean(w: &[f32]) -> (Vec<i8>, f32) {
    let mean = w.iter().map(|&x| x.abs() as f64).sum::<f64>() / w.len() as f64;
    let gamma = (mean as f32).max(1e-5);
    let inv = 1.0 / gamma;
    let q = w
        .iter()
        .map(|&x| (x * inv).round().clamp(-1.0, 1.0) as i8)
        .collect();
    (q, gamma)
}

#[test]
fn absmean_quantization_matches_reference_exactly() {
    let mm = mm();
    let p = Provider::Manager(&mm);
    let mut rng = SmallRng::seed_from_u64(1);
    for (o, i) in [(1, 4), (7, 12), (64, 256), (33, 100)] {
        let w = randn(&mut rng, o * i, 0.7);
        let t = Tensor::from_f32(&p, &[o, i], &w).unwrap();
        let q = ops::absmean_quantize(&t, &p).unwrap();
        let (want, gamma) = ref_absmean(&w);
        assert_eq!(q.weight.dtype(), DType::Ternary);
        assert_eq!(q.weight.to_vec_i8(), want, "{o}x{i}");
        assert_eq!(q.scale, gamma);
        assert!(want.contains(&1) && want.contains(&-1) && want.contains(&0) || o * i < 16);
    }
    // Values exactly at the rounding edge: +-0.5 * gamma rounds away from zero.
    let t = Tensor::from_f32(&p, &[1, 4], &[0.5, -0.5, 1.5, -1.5]).unwrap();
    let q = ops::absmean_quantize(&t, &p).unwrap();
    assert_eq!(q.scale, 1.0);
    assert_eq!(q.weight.to_vec_i8(), vec![1, -1, 1, -1]);
}

#[test]
fn absmax_quantization_matches_reference_exactly() {
    let mm = mm();
    let p = Provider::Manager(&mm);
    let mut rng = SmallRng::seed_from_u64(2);
    let (rows, n) = (3, 50);
    let mut x = randn(&mut rng, rows * n, 3.0);
    x[n..2 * n].fill(0.0); // an all-zero row must not divide by zero
    let q = ops::absmax_quantize(&Tensor::from_f32(&p, &[rows, n], &x).unwrap(), &p).unwrap();
    for r in 0..rows {
        let row = &x[r * n..(r + 1) * n];
        let max = row.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-5);
        let s = 127.0 / max;
        let want: Vec<i8> = row
            .iter()
            .map(|v| (v * s).round().clamp(-128.0, 127.0) as i8)
            .collect();
        assert_eq!(
            q.values.as_i8().unwrap()[r * n..(r + 1) * n],
            want[..],
            "row {r}"
        );
        assert_eq!(q.scales.as_f32().unwrap()[r], 1.0 / s);
    }
    assert!(q.values.as_i8().unwrap()[..n]
        .iter()
        .any(|&v| v.abs() == 127));
}

fn naive_ternary_matmul(w: &[i8], n: usize, k: usize, x: &[i8]) -> Vec<i32> {
    let rows = x.len() / k;
    let mut out = vec![0i32; rows * n];
    for r in 0..rows {
        for o in 0..n {
            out[r * n + o] = (0..k)
                .map(|i| w[o * k + i] as i32 * x[r * k + i] as i32)
                .sum();
        }
    }
    out
}

fn random_ternary(rng: &mut SmallRng, len: usize) -> Vec<i8> {
    (0..len).map(|_| rng.gen_range(-1i8..=1)).collect()
}

#[test]
fn ternary_matmul_is_exact() {
    let mm = mm();
    let p = Provider::Manager(&mm);
    let mut rng = SmallRng::seed_from_u64(3);
    let exec2 = Exec::new(2).unwrap();
    // k covers: under a block, exactly a block, block plus a tail, many blocks.
    for (rows, n, k) in [
        (1, 3, 4),
        (2, 5, 60),
        (1, 7, 64),
        (3, 4, 68),
        (1, 300, 512),
        (2, 9, 1000),
    ] {
        let w = random_ternary(&mut rng, n * k);
        let x: Vec<i8> = (0..rows * k).map(|_| rng.gen()).collect();
        let wt = Tensor::from_ternary(&p, &[n, k], &w).unwrap();
        let want = naive_ternary_matmul(&w, n, k, &x);
        for exec in [&Exec::sequential(), &exec2] {
            let mut out = vec![0i32; rows * n];
            let mut scratch = vec![0i16; k];
            ops::ternary_matmul_i32(
                wt.as_ternary().unwrap(),
                n,
                k,
                &x,
                &mut scratch,
                &mut out,
                exec,
            );
            assert_eq!(
                out,
                want,
                "{rows}x{k} . {n}x{k}, {} threads",
                exec.threads()
            );
        }
        for (o, row) in wt.as_ternary().unwrap().chunks(k / 4).enumerate() {
            assert_eq!(ops::ternary_dot(row, &x[..k]), want[o]);
        }
    }
}

#[test]
fn ternary_matmul_survives_extreme_values_past_the_lane_widening() {
    // Every product is +128: the 16-bit lanes must be widened before they overflow.
    let mm = mm();
    let p = Provider::Manager(&mm);
    for k in [64 * 255, 64 * 256, 64 * 300 + 8] {
        let w = vec![-1i8; k];
        let x = vec![-128i8; k];
        let wt = Tensor::from_ternary(&p, &[1, k], &w).unwrap();
        let mut out = [0i32; 1];
        let mut scratch = vec![0i16; k];
        ops::ternary_matmul_i32(
            wt.as_ternary().unwrap(),
            1,
            k,
            &x,
            &mut scratch,
            &mut out,
            &Exec::sequential(),
        );
        assert_eq!(out[0], 128 * k as i32, "k = {k}");
    }
}

#[test]
fn bitlinear_is_the_exact_integer_product_scaled() {
    let mm = mm();
    let p = Provider::Manager(&mm);
    let mut rng = SmallRng::seed_from_u64(4);
    let (rows, n, k) = (2, 37, 200);
    let wf = randn(&mut rng, n * k, 0.3);
    let w = ops::absmean_quantize(&Tensor::from_f32(&p, &[n, k], &wf).unwrap(), &p).unwrap();
    let xf = randn(&mut rng, rows * k, 2.0);
    let xq = ops::absmax_quantize(&Tensor::from_f32(&p, &[rows, k], &xf).unwrap(), &p).unwrap();
    let y = ops::bitlinear(&xq, &w, &p, &Exec::new(2).unwrap()).unwrap();
    let ints = naive_ternary_matmul(&w.weight.to_vec_i8(), n, k, xq.values.as_i8().unwrap());
    let scales = xq.scales.as_f32().unwrap();
    let want: Vec<f32> = (0..rows * n)
        .map(|i| ints[i] as f32 * (w.scale * scales[i / n]))
        .collect();
    assert_eq!(y.as_f32().unwrap(), &want[..]);
    // And it approximates the float product it stands for.
    let wd = w.weight.to_vec_f32();
    for r in 0..rows {
        for o in 0..n {
            let exact: f32 = (0..k)
                .map(|i| wd[o * k + i] * w.scale * xf[r * k + i])
                .sum();
            let got = y.as_f32().unwrap()[r * n + o];
            assert!(
                (got - exact).abs() < 0.05 * (1.0 + exact.abs()),
                "{got} vs {exact}"
            );
        }
    }
    let bad = ops::absmax_quantize(&Tensor::from_f32(&p, &[1, 8], &[0.0; 8]).unwrap(), &p).unwrap();
    assert!(matches!(
        ops::bitlinear(&bad, &w, &p, &Exec::sequential()),
        Err(Error::ShapeMismatch { .. })
    ));
}

fn naive_matmul(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k)
                .map(|t| a[i * k + t] as f64 * b[t * n + j] as f64)
                .sum();
        }
    }
    c
}

#[test]
fn f32_matmul_matches_reference_for_both_layouts() {
    let mm = mm();
    let p = Provider::Manager(&mm);
    let mut rng = SmallRng::seed_from_u64(5);
    for (m, k, n) in [(1, 1, 1), (3, 17, 5), (4, 64, 33), (2, 300, 130)] {
        let a = randn(&mut rng, m * k, 1.0);
        let b = randn(&mut rng, k * n, 1.0);
        let want = naive_matmul(&a, &b, m, k, n);
        let at = Tensor::from_f32(&p, &[m, k], &a).unwrap();
        let bt = Tensor::from_f32(&p, &[k, n], &b).unwrap();
        for exec in [Exec::sequential(), Exec::new(2).unwrap()] {
            let c = ops::matmul(&at, &bt, &p, &exec).unwrap();
            assert_close(c.as_f32().unwrap(), &want, 1e-5, "matmul");
            // b given as the transpose of a contiguous [n, k]: the dot-product path.
            let b_nk = bt.transpose(0, 1).unwrap().contiguous(&p).unwrap();
            let c2 = ops::matmul(&at, &b_nk.transpose(0, 1).unwrap(), &p, &exec).unwrap();
            assert_close(c2.as_f32().unwrap(), &want, 1e-5, "matmul transposed");
            let c3 = ops::linear(&at, &b_nk, &p, &exec).unwrap();
            assert_eq!(c3.as_f32().unwrap(), c2.as_f32().unwrap());
        }
    }
    let a = Tensor::zeros(&p, DType::F32, &[2, 3]).unwrap();
    assert!(matches!(
        ops::matmul(&a, &a, &p, &Exec::sequential()),
        Err(Error::ShapeMismatch { .. })
    ));
}

#[test]
fn rmsnorm_silu_swiglu_softmax_match_references() {
    let mm = mm();
    let p = Provider::Manager(&mm);
    let mut rng = SmallRng::seed_from_u64(6);
    let (rows, n) = (3, 40);
    let x = randn(&mut rng, rows * n, 4.0);
    let g = randn(&mut rng, n, 1.0);
    let xt = Tensor::from_f32(&p, &[rows, n], &x).unwrap();
    let gt = Tensor::from_f32(&p, &[n], &g).unwrap();

    let y = ops::rmsnorm(&xt, &gt, 1e-5, &p).unwrap();
    let mut want = vec![];
    for r in x.chunks(n) {
        let ms = r.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / n as f64;
        let inv = 1.0 / (ms + 1e-5).sqrt();
        want.extend(r.iter().zip(&g).map(|(&v, &w)| v as f64 * inv * w as f64));
    }
    assert_close(y.as_f32().unwrap(), &want, 1e-5, "rmsnorm");

    let silu = |v: f64| v / (1.0 + (-v).exp());
    let s = ops::silu(&xt, &p).unwrap();
    let want: Vec<f64> = x.iter().map(|&v| silu(v as f64)).collect();
    assert_close(s.as_f32().unwrap(), &want, 1e-6, "silu");

    let up = Tensor::from_f32(&p, &[rows, n], &randn(&mut rng, rows * n, 1.0)).unwrap();
    let sw = ops::swiglu(&xt, &up, &p).unwrap();
    let want: Vec<f64> = x
        .iter()
        .zip(up.as_f32().unwrap())
        .map(|(&a, &b)| silu(a as f64) * b as f64)
        .collect();
    assert_close(sw.as_f32().unwrap(), &want, 1e-6, "swiglu");

    let big: Vec<f32> = x.iter().map(|v| v * 100.0).collect(); // must not overflow exp
    let sm = ops::softmax(&Tensor::from_f32(&p, &[rows, n], &big).unwrap(), &p).unwrap();
    let mut want = vec![];
    for r in big.chunks(n) {
        let max = r.iter().fold(f64::MIN, |m, &v| m.max(v as f64));
        let e: Vec<f64> = r.iter().map(|&v| (v as f64 - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        want.extend(e.iter().map(|v| v / sum));
    }
    assert_close(sm.as_f32().unwrap(), &want, 1e-5, "softmax");
    for r in sm.as_f32().unwrap().chunks(n) {
        assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}

#[test]
fn rotary_embedding_matches_complex_rotation() {
    let mm = mm();
    let p = Provider::Manager(&mm);
    let mut rng = SmallRng::seed_from_u64(7);
    let (heads, d, theta) = (3, 16, 10_000.0f32);
    let x = randn(&mut rng, heads * d, 1.0);
    for pos in [0usize, 1, 17, 1000] {
        let mut t = Tensor::from_f32(&p, &[heads, d], &x).unwrap();
        ops::rope_in_place(&mut t, pos, theta).unwrap();
        let mut want = vec![0f64; heads * d];
        for h in 0..heads {
            for i in 0..d / 2 {
                let ang = pos as f64 * (theta as f64).powf(-2.0 * i as f64 / d as f64);
                let (a, b) = (x[h * d + i] as f64, x[h * d + i + d / 2] as f64);
                want[h * d + i] = a * ang.cos() - b * ang.sin();
                want[h * d + i + d / 2] = a * ang.sin() + b * ang.cos();
            }
        }
        // f32 angles of large positions lose a few ulps.
        assert_close(t.as_f32().unwrap(), &want, 1e-3, "rope");
        if pos == 0 {
            assert_eq!(t.as_f32().unwrap(), &x[..]);
        }
    }
    let mut odd = Tensor::zeros(&p, DType::F32, &[2, 5]).unwrap();
    assert!(ops::rope_in_place(&mut odd, 1, theta).is_err());
}

#[test]
fn embedding_lookup_copies_rows() {
    let mm = mm();
    let p = Provider::Manager(&mm);
    let table: Vec<f32> = (0..5 * 3).map(|i| i as f32).collect();
    let t = Tensor::from_f32(&p, &[5, 3], &table).unwrap();
    let e = ops::embedding(&t, &[4, 0, 4], &p).unwrap();
    assert_eq!(e.dims(), &[3, 3]);
    assert_eq!(
        e.as_f32().unwrap(),
        &[12., 13., 14., 0., 1., 2., 12., 13., 14.]
    );
    assert!(matches!(
        ops::embedding(&t, &[5], &p),
        Err(Error::OutOfRange {
            index: 5,
            bound: 5,
            ..
        })
    ));
}

/// Naive causal GQA attention of the last position over `keys`/`values` (`[t, kv_heads * d]`).
fn ref_attention(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    heads: usize,
    kvh: usize,
    d: usize,
) -> Vec<f64> {
    let t = keys.len() / (kvh * d);
    let mut out = vec![0f64; heads * d];
    for h in 0..heads {
        let g = h * kvh / heads;
        let scores: Vec<f64> = (0..t)
            .map(|s| {
                (0..d)
                    .map(|i| q[h * d + i] as f64 * keys[s * kvh * d + g * d + i] as f64)
                    .sum::<f64>()
                    / (d as f64).sqrt()
            })
            .collect();
        let max = scores.iter().cloned().fold(f64::MIN, f64::max);
        let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        for s in 0..t {
            for i in 0..d {
                out[h * d + i] += e[s] / sum * values[s * kvh * d + g * d + i] as f64;
            }
        }
    }
    out
}

#[test]
fn attention_over_a_growing_kv_cache_matches_reference() {
    let mm = mm();
    let p = Provider::Manager(&mm);
    let mut rng = SmallRng::seed_from_u64(8);
    // The 2B4T grouping (20 query heads over 5 KV heads), with small heads.
    let (layers, heads, kvh, d, cap) = (2, 20, 5, 64, 16);
    let mut cache = KvCache::new(&p, layers, cap, kvh, d).unwrap();
    let (mut ks, mut vs) = (vec![vec![]; layers], vec![vec![]; layers]);
    let live_after_new = mm.metrics().live_allocations();
    for pos in 0..cap {
        for l in 0..layers {
            let k = randn(&mut rng, kvh * d, 1.0);
            let v = randn(&mut rng, kvh * d, 1.0);
            let q = randn(&mut rng, heads * d, 2.0);
            cache
                .write(
                    l,
                    &Tensor::from_f32(&p, &[kvh, d], &k).unwrap(),
                    &Tensor::from_f32(&p, &[1, kvh * d], &v).unwrap(),
                )
                .unwrap();
            ks[l].extend_from_slice(&k);
            vs[l].extend_from_slice(&v);
            let qt = Tensor::from_f32(&p, &[heads, d], &q).unwrap();
            for exec in [Exec::sequential(), Exec::new(2).unwrap()] {
                let out = ops::attention(&qt, &cache, l, pos + 1, &p, &exec).unwrap();
                let want = ref_attention(&q, &ks[l], &vs[l], heads, kvh, d);
                assert_close(out.as_f32().unwrap(), &want, 1e-5, "attention");
            }
        }
        cache.advance().unwrap();
        assert_eq!(cache.len(), pos + 1);
        assert_eq!(
            mm.metrics().live_allocations(),
            live_after_new,
            "the cache grows without allocating"
        );
    }
    let kv = Tensor::zeros(&p, DType::F32, &[kvh * d]).unwrap();
    assert!(matches!(
        cache.write(0, &kv, &kv),
        Err(Error::OutOfRange { .. })
    ));
    assert!(cache.advance().is_err());
    let q = Tensor::zeros(&p, DType::F32, &[6, d]).unwrap();
    assert!(
        ops::attention(&q, &cache, 0, 1, &p, &Exec::sequential()).is_err(),
        "6 heads over 5 KV heads"
    );
}
