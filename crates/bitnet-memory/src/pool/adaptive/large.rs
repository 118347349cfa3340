//! Dynamic selection of the large-block strategy (TLSF best fit or buddy) from measured
//! figures, with hysteresis.
//!
//! Each strategy a pool has run is known by what it did while it was active: the share
//! of its block bytes that requests asked for (`utilisation`: 1 means no rounding), the
//! external fragmentation of its free memory, and the measured nanoseconds per large-pool
//! operation. An evaluation ([`decide`]):
//!
//! 1. Waits [`COOLDOWN`] evaluations after a switch, and for [`MIN_ALLOCATIONS`] blocks
//!    served by the current strategy: figures from fewer say nothing.
//! 2. Goes back to (or on to) a strategy measured before when its utilisation beats the
//!    current one's by [`HYSTERESIS`], or, at utilisations within [`SAME_UTILISATION`]
//!    of each other, when it was [`SPEED_MARGIN`] faster. Anything closer stays put, so
//!    two strategies with similar figures never flap.
//! 3. Tries a strategy not measured yet when the current one rounds away more than
//!    `1 - TRY_BELOW` of its block bytes: a trial that the next evaluations judge by the
//!    same rules.
#![deny(unsafe_code)]

/// Evaluations after a switch before the next one.
pub const COOLDOWN: u32 = 3;
/// Blocks a strategy must have served for its figures to count.
pub const MIN_ALLOCATIONS: u64 = 64;
/// Rounding utilisation under which an unmeasured strategy is tried.
pub const TRY_BELOW: f64 = 0.80;
/// Utilisation by which another strategy must beat the current one.
pub const HYSTERESIS: f64 = 0.10;
/// Utilisations this close count as the same; speed decides then.
pub const SAME_UTILISATION: f64 = 0.05;
/// How much faster (a fraction of the current ns per operation) another strategy must be.
pub const SPEED_MARGIN: f64 = 0.30;

/// The names of the large-block strategies a pool may switch between.
pub const CANDIDATES: [&str; 2] = ["best-fit (TLSF)", "buddy"];

/// What a strategy did while it was active.
#[derive(Debug, Clone, PartialEq)]
pub struct StrategyFigures {
    /// Its name.
    pub name: &'static str,
    /// Blocks it served.
    pub allocations: u64,
    /// Requested bytes over block bytes of what it served, `0..=1`.
    pub utilisation: f64,
    /// External fragmentation of its free memory, `0..=1`.
    pub fragmentation: f64,
    /// Measured mean ns per large-pool operation (0: not measured).
    pub ns_per_op: f64,
}

/// A decision to switch.
#[derive(Debug, Clone, PartialEq)]
pub struct LargeSwitch {
    /// The strategy to switch to.
    pub to: &'static str,
    /// Why, with the figures.
    pub reason: String,
}

fn beats(o: &StrategyFigures, c: &StrategyFigures) -> bool {
    o.utilisation >= c.utilisation + HYSTERESIS
        || ((o.utilisation - c.utilisation).abs() <= SAME_UTILISATION
            && o.ns_per_op > 0.0
            && c.ns_per_op > 0.0
            && o.ns_per_op <= c.ns_per_op * (1.0 - SPEED_MARGIN))
}

fn show(f: &StrategyFigures) -> String {
    format!(
        "{}: {:.0}% of block bytes requested over {} blocks, {:.0}% fragmented, {:.0} ns/op",
        f.name,
        100.0 * f.utilisation,
        f.allocations,
        100.0 * f.fragmentation,
        f.ns_per_op
    )
}

/// Whether to switch from `current`, given the figures of the strategies measured
/// before (`measured`, at most one per name) and `since_switch` evaluations since the
/// last switch.
pub fn decide(
    current: &StrategyFigures,
    measured: &[StrategyFigures],
    since_switch: u32,
) -> Option<LargeSwitch> {
    if since_switch < COOLDOWN || current.allocations < MIN_ALLOCATIONS {
        return None;
    }
    let best = measured
        .iter()
        .filter(|m| m.name != current.name && m.allocations >= MIN_ALLOCATIONS)
        .filter(|m| beats(m, current))
        .max_by(|a, b| a.utilisation.total_cmp(&b.utilisation));
    if let Some(b) = best {
        return Some(LargeSwitch {
            to: b.name,
            reason: format!("measured {} against {}", show(b), show(current)),
        });
    }
    if current.utilisation < TRY_BELOW {
        let untried = CANDIDATES
            .iter()
            .find(|&&n| n != current.name && !measured.iter().any(|m| m.name == n))?;
        return Some(LargeSwitch {
            to: untried,
            reason: format!(
                "{} (under {:.0}%): trying {untried}, not measured yet",
                show(current),
                100.0 * TRY_BELOW
            ),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &'static str, utilisation: f64, ns: f64) -> StrategyFigures {
        StrategyFigures {
            name,
            allocations: 1000,
            utilisation,
            fragmentation: 0.0,
            ns_per_op: ns,
        }
    }

    #[test]
    fn poor_rounding_tries_the_other_strategy_and_better_figures_win() {
        let buddy = f("buddy", 0.52, 300.0);
        let s = decide(&buddy, &[], COOLDOWN).expect("a trial");
        assert_eq!(s.to, "best-fit (TLSF)");
        // Measured: TLSF rounds nothing; it stays, buddy does not come back.
        let tlsf = f("best-fit (TLSF)", 0.99, 350.0);
        assert_eq!(decide(&tlsf, std::slice::from_ref(&buddy), COOLDOWN), None);
        // Had TLSF done worse, buddy would be back.
        let bad = f("best-fit (TLSF)", 0.40, 350.0);
        assert_eq!(decide(&bad, &[buddy], COOLDOWN).unwrap().to, "buddy");
    }

    #[test]
    fn close_figures_and_cooling_down_do_not_switch() {
        let cur = f("buddy", 0.90, 300.0);
        // Within the hysteresis: no switch either way.
        assert_eq!(
            decide(&cur, &[f("best-fit (TLSF)", 0.97, 290.0)], COOLDOWN),
            None
        );
        // Same utilisation, much faster: switch.
        let fast = f("best-fit (TLSF)", 0.92, 150.0);
        assert_eq!(
            decide(&cur, std::slice::from_ref(&fast), COOLDOWN)
                .unwrap()
                .to,
            fast.name
        );
        assert_eq!(decide(&cur, &[fast], COOLDOWN - 1), None, "cooling down");
        // Too few blocks served to judge.
        let young = StrategyFigures {
            allocations: MIN_ALLOCATIONS - 1,
            ..f("buddy", 0.3, 0.0)
        };
        assert_eq!(decide(&young, &[], COOLDOWN), None);
        // Good enough and nothing better measured: stay.
        assert_eq!(decide(&f("buddy", 0.85, 0.0), &[], COOLDOWN), None);
    }
}
