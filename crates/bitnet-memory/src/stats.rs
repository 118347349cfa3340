//! Medians of measured figures: the one definition the benchmarks, their sections and the
//! examples share (a median of repeated timings is how every figure they print is taken).
#![deny(unsafe_code)]

/// The median of `v`: the middle value, or the mean of the two middle ones for an even
/// count; `None` for none. Sorts `v` (NaN last, by `f64::total_cmp`).
pub fn median(v: &mut [f64]) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// The median of values that cannot be averaged (counts, durations, byte figures): the
/// middle one, the lower of the two middle ones for an even count; `None` for none.
/// Sorts `v`.
pub fn lower_median<T: Ord + Copy>(v: &mut [T]) -> Option<T> {
    v.sort_unstable();
    v.get(v.len().checked_sub(1)? / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_counts_take_the_middle_and_even_ones_the_mean_or_the_lower() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [5.0]), Some(5.0));
        assert_eq!(median(&mut [9.0, 1.0, 5.0]), Some(5.0));
        assert_eq!(median(&mut [9.0, 1.0, 5.0, 3.0]), Some(4.0));
        assert_eq!(lower_median::<u64>(&mut []), None);
        assert_eq!(lower_median(&mut [30u64, 10, 20]), Some(20));
        assert_eq!(lower_median(&mut [4u64, 2, 8, 6]), Some(4));
        let d = std::time::Duration::from_millis;
        assert_eq!(lower_median(&mut [d(3), d(1), d(2)]), Some(d(2)));
    }
}
