//! Downsampling of the per-event state into a drawable timeline.
//!
//! Time is cut into equal buckets. Of the states inside a bucket only real ones are kept
//! (never averages, so stacked series stay consistent): the first, the last, and the one
//! with the lowest and the highest value of each measured figure (total live, reserved,
//! free, largest free). A peak is the highest state of its bucket, so it always survives.

use crate::model::Sample;

/// Figures whose extremes each bucket keeps.
const KEYS: usize = 4;

fn key(s: &Sample, k: usize) -> Option<u64> {
    match k {
        0 => Some(s.live_total()),
        1 => s.reserved,
        2 => s.free,
        _ => s.largest_free,
    }
}

struct Slot {
    value: u64,
    seq: u64,
    sample: Sample,
}

/// Streams samples in time order into at most a few per bucket.
pub(crate) struct Downsampler {
    t0: u64,
    width: u64,
    bucket: u64,
    seq: u64,
    first: Option<(u64, Sample)>,
    last: Option<(u64, Sample)>,
    min: [Option<Slot>; KEYS],
    max: [Option<Slot>; KEYS],
    out: Vec<Sample>,
}

impl Downsampler {
    /// Buckets of equal time covering `t0..=t_end`, at most `buckets` of them.
    pub(crate) fn new(t0: u64, t_end: u64, buckets: usize) -> Self {
        let span = t_end.saturating_sub(t0) + 1;
        let buckets = buckets.max(1) as u64;
        Self {
            t0,
            width: span.div_ceil(buckets).max(1),
            bucket: 0,
            seq: 0,
            first: None,
            last: None,
            min: Default::default(),
            max: Default::default(),
            out: Vec::new(),
        }
    }

    /// Adds the state after one event. `s.t_ns` must not be below the previous one.
    pub(crate) fn push(&mut self, s: Sample) {
        debug_assert!(self.out.last().is_none_or(|l| l.t_ns <= s.t_ns));
        let bucket = s.t_ns.saturating_sub(self.t0) / self.width;
        if bucket != self.bucket {
            self.flush();
            self.bucket = bucket;
        }
        self.seq += 1;
        let seq = self.seq;
        for k in 0..KEYS {
            let Some(v) = key(&s, k) else { continue };
            if self.min[k].as_ref().is_none_or(|m| v < m.value) {
                self.min[k] = Some(Slot {
                    value: v,
                    seq,
                    sample: s.clone(),
                });
            }
            if self.max[k].as_ref().is_none_or(|m| v > m.value) {
                self.max[k] = Some(Slot {
                    value: v,
                    seq,
                    sample: s.clone(),
                });
            }
        }
        if self.first.is_none() {
            self.first = Some((seq, s.clone()));
        }
        self.last = Some((seq, s));
    }

    fn flush(&mut self) {
        let mut kept: Vec<(u64, Sample)> = Vec::with_capacity(2 + 2 * KEYS);
        kept.extend(self.first.take());
        kept.extend(self.last.take());
        for slot in self.min.iter_mut().chain(self.max.iter_mut()) {
            if let Some(s) = slot.take() {
                kept.push((s.seq, s.sample));
            }
        }
        kept.sort_by_key(|(seq, _)| *seq);
        kept.dedup_by_key(|(seq, _)| *seq);
        self.out.extend(kept.into_iter().map(|(_, s)| s));
    }

    /// The kept samples, in time order.
    pub(crate) fn finish(mut self) -> Vec<Sample> {
        self.flush();
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: u64, live: u64) -> Sample {
        Sample {
            t_ns: t,
            live: vec![live],
            reserved: None,
            free: None,
            largest_free: None,
        }
    }

    #[test]
    fn keeps_extremes_of_each_bucket_and_drops_the_rest() {
        // 1000 events over t = 0..1000, 10 buckets of 100 ns; a lone spike at t = 555.
        let mut d = Downsampler::new(0, 999, 10);
        for t in 0..1000 {
            let live = if t == 555 { 1_000_000 } else { 100 + t % 7 };
            d.push(sample(t, live));
        }
        let out = d.finish();
        assert!(out.len() <= 10 * 4, "kept {} samples", out.len());
        assert!(out.iter().any(|s| s.t_ns == 555 && s.live == [1_000_000]));
        assert!(out.windows(2).all(|w| w[0].t_ns < w[1].t_ns));
        assert_eq!(out.first().map(|s| s.t_ns), Some(0));
        assert_eq!(out.last().map(|s| s.t_ns), Some(999));
    }

    #[test]
    fn few_events_are_all_kept() {
        let mut d = Downsampler::new(0, 30, 1000);
        for (t, v) in [(0, 5), (10, 7), (20, 3), (30, 9)] {
            d.push(sample(t, v));
        }
        let t: Vec<u64> = d.finish().iter().map(|s| s.t_ns).collect();
        assert_eq!(t, [0, 10, 20, 30]);
    }
}
