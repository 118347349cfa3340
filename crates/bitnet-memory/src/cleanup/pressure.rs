//! Memory pressure levels.
#![deny(unsafe_code)]

/// How close a device is to its limit.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum PressureLevel {
    /// Below the medium threshold.
    Low,
    /// At or above the medium threshold.
    Medium,
    /// At or above the high threshold.
    High,
    /// At or above the critical threshold: emergency cleanup runs.
    Critical,
}

impl PressureLevel {
    pub(crate) fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Low,
            1 => Self::Medium,
            2 => Self::High,
            _ => Self::Critical,
        }
    }
}

impl std::fmt::Display for PressureLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        })
    }
}

/// Usage fractions (`0..=1`) at which each level starts. Usage is the larger of the
/// budget used (mapped / budget) and the device memory used (`1 - available / capacity`,
/// from `/proc/meminfo` for the CPU).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PressureThresholds {
    /// Default: 0.70.
    pub medium: f64,
    /// Default: 0.85.
    pub high: f64,
    /// Default: 0.95.
    pub critical: f64,
}

impl Default for PressureThresholds {
    fn default() -> Self {
        Self {
            medium: 0.70,
            high: 0.85,
            critical: 0.95,
        }
    }
}

impl PressureThresholds {
    /// The level of a usage fraction.
    pub fn level(&self, usage: f64) -> PressureLevel {
        if usage >= self.critical {
            PressureLevel::Critical
        } else if usage >= self.high {
            PressureLevel::High
        } else if usage >= self.medium {
            PressureLevel::Medium
        } else {
            PressureLevel::Low
        }
    }
}

/// Usage of a device: the larger of budget use and device use, with what is left.
pub fn usage(
    mapped: usize,
    budget: Option<usize>,
    capacity: Option<usize>,
    available: Option<usize>,
) -> (f64, Option<usize>) {
    let mut usage: f64 = 0.0;
    let mut left: Option<usize> = None;
    if let Some(b) = budget {
        usage = usage.max(mapped as f64 / b as f64);
        left = Some(b.saturating_sub(mapped));
    }
    if let (Some(c), Some(a)) = (capacity, available) {
        if c > 0 {
            usage = usage.max(1.0 - a as f64 / c as f64);
            left = Some(left.map_or(a, |l| l.min(a)));
        }
    }
    (usage, left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_start_at_their_thresholds() {
        let t = PressureThresholds::default();
        assert_eq!(t.level(0.0), PressureLevel::Low);
        assert_eq!(t.level(0.6999), PressureLevel::Low);
        assert_eq!(t.level(0.70), PressureLevel::Medium);
        assert_eq!(t.level(0.85), PressureLevel::High);
        assert_eq!(t.level(0.95), PressureLevel::Critical);
        assert_eq!(t.level(3.0), PressureLevel::Critical);
    }

    #[test]
    fn usage_takes_the_tighter_of_budget_and_device() {
        assert_eq!(usage(50, Some(100), None, None), (0.5, Some(50)));
        assert_eq!(usage(50, Some(100), Some(1000), Some(100)), (0.9, Some(50)));
        assert_eq!(usage(0, None, None, None), (0.0, None));
    }
}
