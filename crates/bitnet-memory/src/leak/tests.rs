//! Unit tests of the pieces with arithmetic in them: the trend test and the grouping.

use super::growth::mann_kendall_p;
use super::signatures::group_by_site;
use super::LeakFinding;

#[test]
fn mann_kendall_matches_hand_computed_values() {
    // n = 10, strictly increasing: S = 45, var = 10*9*25/18 = 125, z = 44/sqrt(125).
    let x: Vec<i64> = (0..10).collect();
    let z = 44.0 / 125f64.sqrt();
    let p = mann_kendall_p(&x);
    assert!((p - 4.16e-5).abs() < 0.02e-5, "p = {p}, z = {z}");
    // No trend, or a downward one, or ties only: p = 1.
    assert_eq!(mann_kendall_p(&[5; 8]), 1.0);
    assert_eq!(mann_kendall_p(&[8, 7, 6, 5, 4, 3, 2, 1]), 1.0);
    // Ties lower the variance: 4 pairs of equal values rising, S = 24, var = 61.33.
    let p = mann_kendall_p(&[1, 1, 2, 2, 3, 3, 4, 4]);
    let want = 0.5 * libm_erfc((23.0 / (1104f64 / 18.0).sqrt()) / std::f64::consts::SQRT_2);
    assert!((p - want).abs() < 1e-6, "{p} vs {want}");
    assert!(p < 0.01);
}

/// erfc by its series (slow, exact enough), to check the fast fit against.
fn libm_erfc(x: f64) -> f64 {
    let mut sum = 0.0;
    let mut term = x;
    let mut n = 0.0;
    while term.abs() > 1e-17 {
        sum += term / (2.0 * n + 1.0);
        n += 1.0;
        term *= -x * x / n;
    }
    1.0 - 2.0 / std::f64::consts::PI.sqrt() * sum
}

#[test]
fn the_half_window_test_keeps_its_level_on_noise() {
    // Exchangeable values: each half passes at level 0.01 at most about 1% of the time,
    // so both halves (independent) at most about 1e-4.
    let mut s: u64 = 0x1234_5678_9ABC_DEF1;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s % 1000) as i64
    };
    let trials = 100_000;
    let mut passed = 0;
    for _ in 0..trials {
        let x: Vec<i64> = (0..8).map(|_| next()).collect();
        passed += usize::from(mann_kendall_p(&x) <= 0.01);
    }
    let rate = passed as f64 / trials as f64;
    assert!(
        rate <= 0.011,
        "one half passes {rate} of the time at level 0.01"
    );
    assert!(rate > 0.002, "the test has no power at all: {rate}");
}

fn finding(site: Option<&str>, id: u32, confirmed: bool) -> LeakFinding {
    LeakFinding {
        detector: "scope",
        site: site.map(str::to_string),
        ids: vec![id],
        count: 1,
        bytes: 100,
        confirmed,
        info: "x".into(),
    }
}

#[test]
fn site_grouping_merges_one_site_and_keeps_the_rest() {
    let f = vec![
        finding(Some("a.rs:1:1"), 1, true),
        finding(None, 0, true),
        finding(Some("a.rs:1:1"), 2, true),
        finding(Some("b.rs:2:2"), 3, true),
        finding(Some("a.rs:1:1"), 4, false),
        finding(Some("a.rs:1:1"), 5, true),
    ];
    let g = group_by_site(f);
    assert_eq!(g.len(), 4);
    assert_eq!(
        (g[0].count, g[0].bytes, g[0].ids.clone()),
        (3, 300, vec![1, 2, 5])
    );
    assert!(g[0].info.starts_with("3 allocations from this site"));
    assert!(g[1].site.is_none());
    assert_eq!(
        g[3].ids,
        vec![4],
        "suspected findings stay apart from confirmed ones"
    );
}
