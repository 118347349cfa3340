//! Tests of the workloads: determinism, balance, ranges, the shape of churn, and the
//! inference workload's requests pinned.

use super::*;
use bitnet_tensor::ModelConfig;

#[test]
fn window_streams_are_deterministic_and_balanced() {
    let a = window(7, 1000, 16, 256, 1 << 20, 64);
    let b = window(7, 1000, 16, 256, 1 << 20, 64);
    assert_eq!(a.ops, b.ops);
    assert_eq!(a.allocs, 1000);
    assert_eq!(
        a.slots, 16,
        "the oldest is freed before each new allocation"
    );
    let frees = a.ops.iter().filter(|o| o.free).count();
    assert_eq!(frees, 1000);
    assert!(a
        .ops
        .iter()
        .all(|o| o.free || (256..=1 << 20).contains(&o.size)));
    assert_ne!(window(8, 1000, 16, 256, 1 << 20, 64).ops, a.ops);
}

/// Live requested bytes after each operation.
fn live_curve(s: &Stream) -> Vec<u64> {
    let mut sizes = vec![0u64; s.slots];
    let mut live = 0u64;
    s.ops
        .iter()
        .map(|o| {
            if o.free {
                live -= std::mem::take(&mut sizes[o.slot as usize]);
            } else {
                sizes[o.slot as usize] = o.size as u64;
                live += o.size as u64;
            }
            live
        })
        .collect()
}

/// The turns of a curve with hysteresis: a peak is recorded once the curve falls below
/// half the highest value since the last trough and by at least 4 MiB, a trough once it
/// rises above twice the lowest since the last peak and by at least 4 MiB (so that the
/// reallocation of one small tensor is no turn). (op index of the peak, op index of the
/// following trough or of the end).
fn swings(live: &[u64]) -> Vec<(usize, usize)> {
    const MIN_SWING: u64 = 4 << 20;
    let mut out = Vec::new();
    let (mut rising, mut ext, mut at) = (true, 0u64, 0usize);
    let mut peak = 0;
    for (i, &v) in live.iter().enumerate() {
        if rising {
            if v > ext {
                (ext, at) = (v, i);
            } else if v * 2 < ext && ext - v >= MIN_SWING {
                peak = at;
                (rising, ext, at) = (false, v, i);
            }
        } else if v < ext {
            (ext, at) = (v, i);
        } else if v > 2 * ext && v - ext >= MIN_SWING {
            out.push((peak, at));
            (rising, ext, at) = (true, v, i);
        }
    }
    if !rising {
        out.push((peak, at));
    }
    out
}

#[test]
fn churn_is_deterministic_balanced_and_in_range() {
    let a = churn(3, 4);
    assert_eq!(a.ops, churn(3, 4).ops);
    assert_ne!(a.ops, churn(4, 4).ops);
    let frees = a.ops.iter().filter(|o| o.free).count() as u64;
    assert_eq!(frees, a.allocs, "every block is freed");
    assert_eq!(*live_curve(&a).last().unwrap(), 0);
    assert!(a
        .ops
        .iter()
        .all(|o| o.free || (CHURN_MIN..=CHURN_MAX).contains(&o.size)));
    assert!(a.peak_live >= 24 << 20, "peak live {}", a.peak_live);
    // Blocks of many sizes, not a few repeated ones.
    let mut sizes: Vec<usize> = a.ops.iter().filter(|o| !o.free).map(|o| o.size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    assert!(
        sizes.len() as u64 > a.allocs / 2,
        "{} distinct sizes",
        sizes.len()
    );
}

#[test]
fn churn_alternates_growing_and_shrinking() {
    for seed in 0..16 {
        for cycles in [1, 3, 5] {
            let s = churn(seed, cycles);
            let live = live_curve(&s);
            let turns = swings(&live);
            assert_eq!(
                turns.len(),
                cycles as usize,
                "seed {seed}: one rise and one fall per cycle: {turns:?}"
            );
            // Requests grow towards each peak and shrink after it: the largest request
            // of each rise is several times its first ones, and so on the way down.
            let mut start = 0;
            for &(peak, trough) in &turns {
                let allocs = |r: std::ops::Range<usize>| {
                    s.ops[r]
                        .iter()
                        .filter(|o| !o.free)
                        .map(|o| o.size)
                        .collect::<Vec<_>>()
                };
                let up = allocs(start..peak + 1);
                let down = allocs(peak + 1..trough + 1);
                let top = *up.iter().max().unwrap();
                assert!(top >= 4 * up[0], "seed {seed}: rise {:?}..{top}", up[0]);
                assert!(
                    down[down.len() / 2..].iter().all(|&d| d * 4 < top),
                    "seed {seed}: the second half of the fall is small"
                );
                start = trough;
            }
        }
    }
}

#[test]
fn churn_keeps_long_lived_blocks_across_phases() {
    let s = churn(11, 6);
    let turns = swings(&live_curve(&s));
    let mut born = vec![0usize; s.slots];
    let mut spanning = 0;
    for (i, o) in s.ops.iter().enumerate() {
        if !o.free {
            born[o.slot as usize] = i;
        } else if turns
            .iter()
            .any(|&(peak, trough)| born[o.slot as usize] < peak && i > trough)
        {
            spanning += 1;
        }
    }
    assert!(spanning >= 3, "{spanning} blocks outlive a whole fall");
}

/// FNV-1a over every operation (size, slot, free): equal for equal streams.
fn fingerprint(s: &Stream) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for o in &s.ops {
        for v in [o.size as u64, o.slot as u64, o.free as u64] {
            h = (h ^ v).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The requests of the inference workload, pinned at the default scale and a few
/// others, so that a change to where its shapes come from cannot move the benchmark's
/// figures unnoticed: seed 42 (bench's default), 12 tokens (`--quick`).
#[test]
fn the_inference_model_is_2b4t_with_its_widths_divided() {
    let base = ModelConfig::bitnet_2b4t();
    let widths = |m: &ModelConfig| (m.hidden, m.ffn, m.vocab);
    assert_eq!(widths(&inference_model(1)), (2560, 6912, 128_256));
    assert_eq!(widths(&inference_model(0)), widths(&inference_model(1)));
    assert_eq!(widths(&inference_model(8)), (320, 864, 16_032));
    // 2560 / 3 = 853, rounded up to a multiple of the 20 heads.
    assert_eq!(widths(&inference_model(3)), (860, 2304, 42_752));
    assert_eq!(widths(&inference_model(1000)), (20, 16, 128));
    for scale in [1, 3, 8, 1000] {
        let m = inference_model(scale);
        let kept = (m.layers, m.heads, m.kv_heads, m.max_seq);
        assert_eq!(kept, (base.layers, base.heads, base.kv_heads, base.max_seq));
    }
    assert_eq!(inference_model(1).kv_dim(), 640);
}

#[test]
fn inference_requests_are_pinned() {
    let s = bitnet_inference(42, &inference_model(1), 12);
    assert_eq!((s.allocs, s.peak_live, s.slots), (7740, 10_866_688, 66));
    // The per-token activations of the 2B4T shapes: f32 rows of hidden (2560), of the
    // KV width (5 heads of 128) and of the FFN (6912), int8 rows of hidden and FFN,
    // f32 logits over the vocabulary (128256).
    for size in [2560 * 4, 640 * 4, 6912 * 4, 2560, 6912, 128_256 * 4] {
        assert!(
            s.ops.iter().any(|o| !o.free && o.size == size),
            "no request of {size} B"
        );
    }
    assert_eq!(fingerprint(&s), 0x7eee_041b_160f_5ed5);
    // `--scale`: widths divided (hidden kept a multiple of the 20 heads; FFN and
    // vocabulary at least 16), layers and heads kept.
    for (scale, peak, print) in [
        (2, 5_433_344, 0xb640_5ce6_4ba0_45d5),
        (3, 3_647_856, 0xc8bf_aaf2_2b7f_131d),
        (8, 1_358_336, 0x3d6f_a58e_87cc_5e55),
        (1000, 87_520, 0xff28_4786_0791_330d),
    ] {
        let s = bitnet_inference(42, &inference_model(scale), 12);
        assert_eq!((s.allocs, s.peak_live), (7740, peak), "scale {scale}");
        assert_eq!(fingerprint(&s), print, "scale {scale}");
    }
}

#[test]
fn inference_frees_everything_it_allocates() {
    let s = bitnet_inference(1, &inference_model(8), 40);
    let frees = s.ops.iter().filter(|o| o.free).count() as u64;
    assert_eq!(frees, s.allocs);
    // About 20 activations per layer and token, over 30 layers.
    assert!(s.allocs > 40 * 30 * 20, "{} allocations", s.allocs);
}
