//! The pool optimizer's hand on one device pool: the measured figures of its large-block
//! strategies and the switch between them (decided in `pool::adaptive::large`).

use super::*;
use crate::pool::adaptive::large::{self, StrategyFigures};
use crate::pool::buddy::Buddy;
use crate::pool::tlsf::Tlsf;

/// The optimizer's memory of one pool: the figures each strategy had when it was last
/// active, and evaluations since the last switch.
#[derive(Debug, Default)]
pub(crate) struct OptimizerState {
    measured: Vec<StrategyFigures>,
    since_switch: u32,
}

/// A switch of the large-block strategy that happened.
#[derive(Debug, Clone, PartialEq)]
pub struct StrategySwitch {
    /// Figures of the strategy switched from.
    pub from: StrategyFigures,
    /// The strategy switched to.
    pub to: &'static str,
    /// Why.
    pub reason: String,
}

fn make(name: &str) -> Option<Box<dyn BlockStrategy>> {
    match name {
        "buddy" => Some(Box::new(Buddy::new())),
        "best-fit (TLSF)" => Some(Box::new(Tlsf::new())),
        _ => None,
    }
}

impl DevicePool {
    /// The figures of the active large-block strategy, as measured since it became
    /// active.
    pub fn large_strategy_figures(&self) -> Option<StrategyFigures> {
        let (stats, timing) = {
            let l = self.large.lock();
            (l.strategy_stats(), l.timing())
        };
        let g = stats.iter().find(|g| g.active)?;
        let ns = timing.iter().find(|t| t.0 == g.name).map_or(0.0, |t| {
            if t.1 == 0 {
                0.0
            } else {
                t.2 as f64 / t.1 as f64
            }
        });
        Some(StrategyFigures {
            name: g.name,
            allocations: g.allocations,
            utilisation: if g.block_bytes == 0 {
                1.0
            } else {
                g.requested as f64 / g.block_bytes as f64
            },
            fragmentation: if g.free_bytes == 0 {
                0.0
            } else {
                1.0 - g.largest_free as f64 / g.free_bytes as f64
            },
            ns_per_op: ns,
        })
    }

    /// One evaluation of the large-block strategy: switches when the measured figures
    /// say so (see `pool::adaptive::large`). Never on a pool configured not to.
    pub fn optimize_large(&self) -> Option<StrategySwitch> {
        if !self.switch_large_strategy {
            return None;
        }
        let mut st = self.optimizer.lock();
        st.since_switch = st.since_switch.saturating_add(1);
        let current = self.large_strategy_figures()?;
        let d = large::decide(&current, &st.measured, st.since_switch)?;
        let s = make(d.to)?;
        if !self.large.lock().switch_strategy(s) {
            return None;
        }
        st.measured.retain(|m| m.name != current.name);
        st.measured.push(current.clone());
        st.since_switch = 0;
        Some(StrategySwitch {
            from: current,
            to: d.to,
            reason: d.reason,
        })
    }
}
