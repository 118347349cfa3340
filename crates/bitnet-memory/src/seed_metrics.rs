//! The seed's metric table (`MemoryManagementMetrics`): each figure measured from the
//! manager's counters, with the seed's target and whether it is met.
//!
//! | metric | from | target |
//! |---|---|---|
//! | tracking overhead | the tracker's timed sub-sample | < 10% |
//! | tracking memory | bytes the tracking layer holds | (none) |
//! | average cleanup time | validated cleanup runs | < 1 ms |
//! | cleanup success rate | validated cleanup runs | 100% |
//! | leak detection accuracy | the scope detector's verdicts (confirmed vs retracted) | > 99% |
//! | false-positive rate | confirmed leaks freed later | < 1% |
//! | memory utilisation | live over reserved bytes | > 90% |
//! | fragmentation | free large-pool bytes outside the largest free block | < 20% |
//! | allocation throughput | allocations over uptime | (none) |
//! | pressure events | pressure level changes | (none) |
//!
//! A figure with nothing to measure yet (no cleanup ran, no suspect was judged) has no
//! value and no verdict. `bitnet-mem leakcheck` measures accuracy and false positives
//! per detector against injected ground truth; the run-time figures here come from what
//! the program's own runs confirmed and retracted.
#![deny(unsafe_code)]

use crate::metrics::MetricsSnapshot;
use std::fmt;

/// A target.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Target {
    /// The value must be below this.
    Below(f64),
    /// The value must be above this.
    Above(f64),
    /// The value must be at least this.
    AtLeast(f64),
    /// No target: shown for information.
    None,
}

impl Target {
    fn met(self, v: f64) -> Option<bool> {
        match self {
            Target::Below(t) => Some(v < t),
            Target::Above(t) => Some(v > t),
            Target::AtLeast(t) => Some(v >= t),
            Target::None => None,
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeedMetric {
    /// Name (the seed's field name).
    pub name: String,
    /// The measured value, in `unit`; `None` when nothing was measured yet.
    pub value: Option<f64>,
    /// Unit: `"%"`, `"ms"`, `"B"`, `"ops/s"`, `"events"`.
    pub unit: String,
    /// The seed's target.
    pub target: Target,
    /// Whether the value meets it (`None`: no value or no target).
    pub met: Option<bool>,
}

/// The seed's metrics, measured.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeedMetrics {
    /// One row per metric, in the seed's order.
    pub rows: Vec<SeedMetric>,
}

fn row(name: &str, value: Option<f64>, unit: &str, target: Target) -> SeedMetric {
    SeedMetric {
        name: name.to_string(),
        value,
        unit: unit.to_string(),
        target,
        met: value.and_then(|v| target.met(v)),
    }
}

impl SeedMetrics {
    /// The table of a metrics snapshot (every figure but `seed` must be filled in).
    pub fn of(m: &MetricsSnapshot) -> Self {
        let c = &m.cleanup;
        let ran = c.runs > 0;
        let rows = vec![
            row(
                "tracking_overhead_percentage",
                Some(m.tracking.tracking_overhead_percentage),
                "%",
                Target::Below(10.0),
            ),
            row(
                "tracking_memory_overhead",
                Some(m.tracking.tracking_memory_overhead as f64),
                "B",
                Target::None,
            ),
            row(
                "average_cleanup_time",
                ran.then(|| c.average_cleanup_time().as_secs_f64() * 1e3),
                "ms",
                Target::Below(1.0),
            ),
            row(
                "cleanup_success_rate",
                ran.then(|| 100.0 * c.cleanup_success_rate()),
                "%",
                Target::AtLeast(100.0),
            ),
            row(
                "leak_detection_accuracy",
                m.leak.accuracy().map(|a| 100.0 * a),
                "%",
                Target::Above(99.0),
            ),
            row(
                "false_positive_rate",
                m.leak.false_positive_rate().map(|r| 100.0 * r),
                "%",
                Target::Below(1.0),
            ),
            row(
                "memory_utilization_rate",
                Some(m.memory_utilization_rate()),
                "%",
                Target::Above(90.0),
            ),
            row(
                "fragmentation_percentage",
                Some(m.fragmentation_percentage()),
                "%",
                Target::Below(20.0),
            ),
            row(
                "allocation_throughput",
                Some(m.allocation_throughput()),
                "ops/s",
                Target::None,
            ),
            row(
                "memory_pressure_events",
                Some(c.pressure_events as f64),
                "events",
                Target::None,
            ),
        ];
        Self { rows }
    }

    /// The row named `name`.
    pub fn get(&self, name: &str) -> Option<&SeedMetric> {
        self.rows.iter().find(|r| r.name == name)
    }

    /// The rows in the Prometheus text format: `bitnet_memory_seed_<name>` gauges (rows
    /// without a value are left out) and `bitnet_memory_seed_target_met{metric=...}`
    /// (1 met, 0 missed).
    pub fn to_prometheus(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        for r in &self.rows {
            let Some(v) = r.value else { continue };
            let _ = writeln!(
                out,
                "# HELP bitnet_memory_seed_{} The seed's {} ({}), measured.",
                r.name, r.name, r.unit
            );
            let _ = writeln!(out, "# TYPE bitnet_memory_seed_{} gauge", r.name);
            let _ = writeln!(out, "bitnet_memory_seed_{} {v}", r.name);
        }
        let _ = writeln!(
            out,
            "# HELP bitnet_memory_seed_target_met Whether a seed metric meets its target (1) or not (0)."
        );
        let _ = writeln!(out, "# TYPE bitnet_memory_seed_target_met gauge");
        for r in &self.rows {
            if let Some(m) = r.met {
                let _ = writeln!(
                    out,
                    "bitnet_memory_seed_target_met{{metric=\"{}\"}} {}",
                    r.name,
                    u8::from(m)
                );
            }
        }
        out
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Below(t) => write!(f, "< {t}"),
            Target::Above(t) => write!(f, "> {t}"),
            Target::AtLeast(t) => write!(f, ">= {t}"),
            Target::None => f.write_str("-"),
        }
    }
}

impl fmt::Display for SeedMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<30} {:>16} {:>12}  verdict",
            "metric", "value", "target"
        )?;
        for r in &self.rows {
            let value = match r.value {
                Some(v) if v.abs() >= 1e4 => format!("{v:.0} {}", r.unit),
                Some(v) => format!("{v:.3} {}", r.unit),
                None => "n/a".to_string(),
            };
            let target = match r.target {
                Target::None => "-".to_string(),
                t => format!("{t} {}", r.unit),
            };
            let verdict = match (r.met, r.value) {
                (Some(true), _) => "met",
                (Some(false), _) => "MISSED",
                (None, None) if r.target != Target::None => "nothing measured yet",
                _ => "",
            };
            writeln!(f, "{:<30} {:>16} {:>12}  {verdict}", r.name, value, target)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leak::LeakStats;

    #[test]
    fn verdicts_follow_the_figures() {
        let mut m = MetricsSnapshot::default();
        let s = SeedMetrics::of(&m);
        assert_eq!(
            s.get("average_cleanup_time").unwrap().value,
            None,
            "no run yet"
        );
        assert_eq!(s.get("leak_detection_accuracy").unwrap().met, None);
        assert_eq!(
            s.get("memory_utilization_rate").unwrap().met,
            Some(true),
            "empty pool"
        );
        m.leak = LeakStats {
            suspected: 200,
            confirmed: 100,
            retracted: 100,
            confirmed_then_freed: 3,
        };
        m.cleanup.runs = 4;
        m.cleanup.successes = 3;
        m.cleanup.total_ns = 4_000_000;
        let s = SeedMetrics::of(&m);
        assert_eq!(s.get("leak_detection_accuracy").unwrap().value, Some(98.5));
        assert_eq!(s.get("leak_detection_accuracy").unwrap().met, Some(false));
        assert_eq!(s.get("false_positive_rate").unwrap().value, Some(3.0));
        assert_eq!(s.get("false_positive_rate").unwrap().met, Some(false));
        assert_eq!(s.get("cleanup_success_rate").unwrap().value, Some(75.0));
        assert_eq!(s.get("cleanup_success_rate").unwrap().met, Some(false));
        assert_eq!(s.get("average_cleanup_time").unwrap().value, Some(1.0));
        assert_eq!(
            s.get("average_cleanup_time").unwrap().met,
            Some(false),
            "1 ms is not < 1 ms"
        );
        let text = s.to_string();
        assert!(text.contains("MISSED") && text.contains("met"), "{text}");
        let prom = s.to_prometheus();
        assert!(
            prom.contains("bitnet_memory_seed_target_met{metric=\"cleanup_success_rate\"} 0"),
            "{prom}"
        );
    }
}
