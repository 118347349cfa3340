//! Growth pattern: live bytes that keep growing over repeated steps.
//!
//! One value per step (the end of an outermost scope, or
//! [`MemoryManager::leak_step`](crate::MemoryManager::leak_step)): the pool's exact live
//! bytes minus persistent bytes (tracked allocations flagged persistent, and untracked
//! blocks marked with `persist()`). Every `window / 2` steps, once `window` values are in,
//! a one-sided Mann-Kendall trend test runs on each half of the window; the detector fires
//! when **both** halves trend upward at level `sqrt(false_alarm)`.
//!
//! - False alarms: when step values are exchangeable (no trend: constant, or noise), the
//!   two halves are independent and each passes with probability at most
//!   `sqrt(false_alarm)` (normal approximation of Kendall's S with the tie correction and
//!   a continuity correction), so one evaluation fires with probability at most
//!   `false_alarm` (default 1e-4). Over a run there is one evaluation per `window / 2`
//!   steps.
//! - A cache that grows and then stays flat does not fire once a whole half-window is
//!   flat: a flat half has S = 0. Growth over a whole window (16 steps by default) is what
//!   "keeps growing" means here; mark such caches persistent if they legitimately do.
//! - Each episode of growth is one finding, announced once (`LeakConfirmed`): while
//!   every evaluation since keeps firing, a firing updates that finding (bytes grown
//!   since the episode began, the steps, the latest p-values) instead of adding another;
//!   an evaluation that does not fire ends the episode.
//! - Power: with the default window (halves of 8) a leak that adds bytes at every step is
//!   found at the first evaluation with 16 values; one every other step too (z = 2.9 per
//!   half against a threshold of 2.33).

use super::counts::Counts;
use super::LeakCx;
use super::{DetectContext, LeakConfig, LeakDetector, LeakFinding};
use crate::tracking::metadata::flags;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

struct State {
    values: VecDeque<i64>,
    since_eval: usize,
    steps: u64,
    /// One finding per episode of growth, oldest first.
    fired: Vec<LeakFinding>,
    /// The last finding's episode is still going (its evaluation, and every one since,
    /// fired): the next firing updates it instead of adding one; its first value.
    open: Option<(i64, u64)>,
}

/// The growth detector of one manager.
pub(crate) struct GrowthDetector {
    enabled: AtomicBool,
    window: usize,
    /// Level of each half's test.
    alpha_half: f64,
    state: Mutex<State>,
}

/// One-sided p-value of the Mann-Kendall test for an upward trend in `x`.
pub fn mann_kendall_p(x: &[i64]) -> f64 {
    let n = x.len();
    if n < 3 {
        return 1.0;
    }
    let mut s = 0i64;
    for i in 0..n {
        for j in i + 1..n {
            s += (x[j] - x[i]).signum();
        }
    }
    let mut sorted = x.to_vec();
    sorted.sort_unstable();
    let mut ties = 0f64;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j < n && sorted[j] == sorted[i] {
            j += 1;
        }
        let t = (j - i) as f64;
        ties += t * (t - 1.0) * (2.0 * t + 5.0);
        i = j;
    }
    let nf = n as f64;
    let var = (nf * (nf - 1.0) * (2.0 * nf + 5.0) - ties) / 18.0;
    if var <= 0.0 || s <= 0 {
        return 1.0;
    }
    let z = (s as f64 - 1.0) / var.sqrt();
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Complementary error function (Numerical Recipes' Chebyshev fit, relative error below
/// 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

impl GrowthDetector {
    pub(crate) fn new(c: &LeakConfig) -> Self {
        Self {
            enabled: AtomicBool::new(c.growth),
            window: c.growth_window,
            alpha_half: c.growth_false_alarm.sqrt(),
            state: Mutex::new(State {
                values: VecDeque::new(),
                since_eval: 0,
                steps: 0,
                fired: Vec::new(),
                open: None,
            }),
        }
    }

    /// Live non-persistent bytes now.
    fn value(cx: &LeakCx<'_>, counts: Option<&Counts>) -> i64 {
        let live = match counts {
            Some(c) => c.live_bytes,
            None => cx.devices.iter().map(|d| d.metrics().live_bytes).sum(),
        };
        let persistent: usize = cx
            .tracker
            .live()
            .iter()
            .filter(|(_, m)| m.flags & flags::PERSISTENT != 0)
            .map(|(_, m)| m.size_bytes())
            .sum();
        live as i64 - persistent as i64 - cx.leak.persisted_bytes() as i64
    }

    /// Ends one step: takes a value and, every half window, runs the test.
    pub(crate) fn sample(&self, cx: &LeakCx<'_>, counts: Option<&Counts>) {
        if !self.enabled.load(Relaxed) {
            return;
        }
        let v = Self::value(cx, counts);
        let mut st = self.state.lock();
        st.steps += 1;
        st.values.push_back(v);
        if st.values.len() > self.window {
            st.values.pop_front();
        }
        st.since_eval += 1;
        if st.values.len() < self.window || st.since_eval < self.window / 2 {
            return;
        }
        st.since_eval = 0;
        let x: Vec<i64> = st.values.iter().copied().collect();
        let h = self.window / 2;
        let (p1, p2) = (mann_kendall_p(&x[..h]), mann_kendall_p(&x[h..]));
        if p1 > self.alpha_half || p2 > self.alpha_half {
            // The episode (if one was going) ended: a new firing is a new finding.
            st.open = None;
            return;
        }
        let was_open = st.open.is_some();
        let start = (x[0], st.steps + 1 - x.len() as u64);
        let (first, since) = *st.open.get_or_insert(start);
        let last = x[x.len() - 1];
        let info = format!(
            "live non-persistent bytes grew from {first} to {last} over steps {since}..={} \
             (latest window: Mann-Kendall one-sided p = {p1:.1e} and {p2:.1e} per half, \
             level {:.1e})",
            st.steps, self.alpha_half
        );
        let grew = (last - first).max(0) as usize;
        match st.fired.last_mut().filter(|_| was_open) {
            // The same episode: one finding, brought up to date, not announced again.
            Some(f) => {
                f.bytes = grew;
                f.info = info;
            }
            None => {
                let f = LeakFinding {
                    detector: "growth",
                    site: None,
                    ids: Vec::new(),
                    count: 1,
                    bytes: grew,
                    confirmed: true,
                    info,
                };
                cx.emit_confirmed(0, &|| f.info.clone());
                st.fired.push(f);
            }
        }
        // Judge the next window on fresh values only.
        st.values.clear();
    }
}

impl LeakDetector for GrowthDetector {
    fn name(&self) -> &'static str {
        "growth"
    }
    fn enabled(&self) -> bool {
        self.enabled.load(Relaxed)
    }
    fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Relaxed);
    }
    fn detect(&self, _cx: &DetectContext<'_>, findings: &mut Vec<LeakFinding>) {
        findings.extend(self.state.lock().fired.iter().cloned());
    }
}
