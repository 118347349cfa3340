//! Metrics: plain structs of live and cumulative counters, derived ratios as methods, and
//! a `Display` for people.

use crate::device::DeviceId;
use crate::tracking::TrackingStats;
use std::fmt;
use std::fmt::Write as _;

/// Allocation latency (pool time, without tracking) from a timed sub-sample, in ns.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LatencyPercentiles {
    /// Timed allocations.
    pub samples: u64,
    /// Median.
    pub p50_ns: u64,
    /// 90th percentile.
    pub p90_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Slowest.
    pub max_ns: u64,
    /// Mean.
    pub mean_ns: f64,
}

use crate::pool::stats::ratio;
pub use crate::pool::stats::{
    ClassStats as ClassMetrics, LargePoolStats as LargePoolMetrics, PoolStats as DeviceMetrics,
    SmallPoolStats as SmallPoolMetrics,
};
pub use crate::units::fmt_bytes;

/// Metrics of a whole manager.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MetricsSnapshot {
    /// One entry per device.
    pub devices: Vec<DeviceMetrics>,
    /// The tracking layer: estimates, sampling rate, its measured cost.
    pub tracking: TrackingStats,
    /// Allocation latency percentiles.
    pub latency: LatencyPercentiles,
    /// Nanoseconds since the manager was made.
    pub uptime_ns: u64,
    /// Events dropped because a subscriber's queue was full.
    pub events_dropped: u64,
    /// Cleanup runs: count, success rate, mean duration, bytes given back.
    pub cleanup: crate::cleanup::CleanupStats,
    /// Pressure level per device, in device order.
    pub pressure: Vec<crate::cleanup::PressureLevel>,
    /// Registered resources (`MemoryManager::register_resource`).
    #[serde(default)]
    pub resources: crate::lifecycle::ResourceStats,
    /// The scope detector's verdicts (run-time leak-detection accuracy).
    #[serde(default)]
    pub leak: crate::leak::LeakStats,
    /// The seed's metric table, each figure with its target.
    #[serde(default)]
    pub seed: crate::seed_metrics::SeedMetrics,
}

impl MetricsSnapshot {
    /// The entry of `device`.
    pub fn device(&self, device: DeviceId) -> Option<&DeviceMetrics> {
        self.devices.iter().find(|d| d.device == device)
    }
    /// Live bytes over all devices.
    pub fn live_bytes(&self) -> usize {
        self.devices.iter().map(|d| d.live_bytes).sum()
    }
    /// Reserved bytes over all devices.
    pub fn reserved_bytes(&self) -> usize {
        self.devices.iter().map(|d| d.reserved_bytes).sum()
    }
    /// Sum of per-device peaks of live bytes.
    pub fn peak_live_bytes(&self) -> usize {
        self.devices.iter().map(|d| d.peak_live_bytes).sum()
    }
    /// Sum of per-device peaks of reserved bytes.
    pub fn peak_reserved_bytes(&self) -> usize {
        self.devices.iter().map(|d| d.peak_reserved_bytes).sum()
    }
    /// Live allocations over all devices.
    pub fn live_allocations(&self) -> usize {
        self.devices.iter().map(|d| d.live_allocations).sum()
    }
    /// Allocations made over all devices.
    pub fn allocations(&self) -> u64 {
        self.devices.iter().map(|d| d.allocations).sum()
    }
    /// Allocations per second since the manager was made (the seed's
    /// `allocation_throughput`).
    pub fn allocation_throughput(&self) -> f64 {
        if self.uptime_ns == 0 {
            0.0
        } else {
            self.allocations() as f64 * 1e9 / self.uptime_ns as f64
        }
    }
    /// `live / reserved` over all devices, in percent (the seed's
    /// `memory_utilization_rate`).
    pub fn memory_utilization_rate(&self) -> f64 {
        100.0 * ratio(self.live_bytes(), self.reserved_bytes(), 1.0)
    }
    /// Free bytes that are not in the largest free block, over all free bytes, in
    /// percent (the seed's `fragmentation_percentage`, of the large pools).
    pub fn fragmentation_percentage(&self) -> f64 {
        let free: usize = self.devices.iter().map(|d| d.large.free_bytes).sum();
        let largest: usize = self
            .devices
            .iter()
            .map(|d| d.large.largest_free)
            .max()
            .unwrap_or(0);
        100.0 * (1.0 - ratio(largest, free, 1.0))
    }

    /// The snapshot as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("metrics serialize")
    }

    /// The snapshot in the Prometheus text exposition format (version 0.0.4).
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, rows: &[(String, f64)]| {
            let _ = writeln!(out, "# HELP bitnet_memory_{name} {help}");
            let _ = writeln!(out, "# TYPE bitnet_memory_{name} {kind}");
            for (labels, v) in rows {
                let _ = writeln!(out, "bitnet_memory_{name}{labels} {v}");
            }
        };
        let per_device = |f: &dyn Fn(&DeviceMetrics) -> f64| -> Vec<(String, f64)> {
            self.devices
                .iter()
                .map(|d| {
                    (
                        format!("{{device=\"{}\",backend=\"{}\"}}", d.device.0, d.backend),
                        f(d),
                    )
                })
                .collect()
        };
        let per_pool = |small: &dyn Fn(&DeviceMetrics) -> f64,
                        large: &dyn Fn(&DeviceMetrics) -> f64| {
            let mut rows = Vec::new();
            for d in &self.devices {
                rows.push((
                    format!("{{device=\"{}\",pool=\"small\"}}", d.device.0),
                    small(d),
                ));
                rows.push((
                    format!("{{device=\"{}\",pool=\"large\"}}", d.device.0),
                    large(d),
                ));
            }
            rows
        };
        metric(
            "live_bytes",
            "gauge",
            "Requested bytes of live allocations.",
            &per_device(&|d| d.live_bytes as f64),
        );
        metric(
            "peak_live_bytes",
            "gauge",
            "Highest live bytes seen.",
            &per_device(&|d| d.peak_live_bytes as f64),
        );
        metric(
            "reserved_bytes",
            "gauge",
            "Bytes of device memory held committed (pages under blocks handed out, less those handed back).",
            &per_device(&|d| d.reserved_bytes as f64),
        );
        metric(
            "mapped_bytes",
            "gauge",
            "Bytes of chunks mapped from the device (address space; reserved counts only committed pages).",
            &per_device(&|d| d.mapped_bytes as f64),
        );
        metric(
            "peak_reserved_bytes",
            "gauge",
            "Highest reserved bytes seen.",
            &per_device(&|d| d.peak_reserved_bytes as f64),
        );
        metric(
            "live_allocations",
            "gauge",
            "Live allocations.",
            &per_device(&|d| d.live_allocations as f64),
        );
        metric(
            "allocations_total",
            "counter",
            "Allocations made.",
            &per_device(&|d| d.allocations as f64),
        );
        metric(
            "frees_total",
            "counter",
            "Frees made.",
            &per_device(&|d| d.frees as f64),
        );
        metric(
            "padding_bytes",
            "gauge",
            "Rounding and padding inside live blocks.",
            &per_device(&|d| d.padding_bytes() as f64),
        );
        metric(
            "pending_free_bytes",
            "gauge",
            "Freed bytes waiting for GPU work that may use them to finish.",
            &per_device(&|d| d.pending_free_bytes as f64),
        );
        metric(
            "largest_free_block_bytes",
            "gauge",
            "Largest free block of the large pool.",
            &per_device(&|d| d.large.largest_free as f64),
        );
        metric(
            "pool_live_blocks",
            "gauge",
            "Live blocks per pool.",
            &per_pool(&|d| d.small.live_blocks as f64, &|d| {
                d.large.live_blocks as f64
            }),
        );
        metric(
            "pool_free_bytes",
            "gauge",
            "Cached or free bytes per pool.",
            &per_pool(
                &|d| (d.small.cached_bytes + d.small.free_bytes) as f64,
                &|d| d.large.free_bytes as f64,
            ),
        );
        let t = &self.tracking;
        metric(
            "tracking_sample_rate",
            "gauge",
            "Sampling rate of small allocations.",
            &[(String::new(), t.sample_rate)],
        );
        metric(
            "tracking_overhead_percentage",
            "gauge",
            "Measured share of allocation time spent tracking.",
            &[(String::new(), t.tracking_overhead_percentage)],
        );
        metric(
            "tracking_memory_overhead_bytes",
            "gauge",
            "Bytes held by the tracking layer.",
            &[(String::new(), t.tracking_memory_overhead as f64)],
        );
        metric(
            "tracked_live",
            "gauge",
            "Tracked allocations live.",
            &[(String::new(), t.tracked_live as f64)],
        );
        let l = &self.latency;
        // Base units (seconds), and a summary's `_sum` and `_count`: what `promtool check
        // metrics` asks for.
        let secs = |ns: u64| ns as f64 / 1e9;
        metric(
            "allocation_latency_seconds",
            "summary",
            "Allocation latency from a timed sub-sample.",
            &[
                ("{quantile=\"0.5\"}".to_string(), secs(l.p50_ns)),
                ("{quantile=\"0.9\"}".to_string(), secs(l.p90_ns)),
                ("{quantile=\"0.99\"}".to_string(), secs(l.p99_ns)),
                ("{quantile=\"0.999\"}".to_string(), secs(l.p999_ns)),
                ("_sum".to_string(), l.mean_ns * l.samples as f64 / 1e9),
                ("_count".to_string(), l.samples as f64),
            ],
        );
        metric(
            "events_dropped_total",
            "counter",
            "Events dropped at full subscriber queues.",
            &[(String::new(), self.events_dropped as f64)],
        );
        out.push_str(&self.seed.to_prometheus());
        out
    }
}

impl fmt::Display for DeviceMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} ({})", self.device, self.backend)?;
        writeln!(
            f,
            "  live      {:>12}  peak {:>12}  ({} allocations live)",
            fmt_bytes(self.live_bytes),
            fmt_bytes(self.peak_live_bytes),
            self.live_allocations
        )?;
        // Utilization of nothing is no figure: say so rather than print 100%.
        let utilization = if self.reserved_bytes == 0 {
            "- (nothing reserved)".to_string()
        } else {
            format!("{:.1}%", 100.0 * self.utilization())
        };
        writeln!(
            f,
            "  reserved  {:>12}  peak {:>12}  utilization {utilization}",
            fmt_bytes(self.reserved_bytes),
            fmt_bytes(self.peak_reserved_bytes),
        )?;
        // Reserved counts committed pages, mapped the chunks' address space: the large
        // pool's free figures below are in mapped space.
        writeln!(
            f,
            "  mapped    {:>12}  (address space of {} chunks; reserved counts committed pages)",
            fmt_bytes(self.mapped_bytes),
            self.large.chunks
        )?;
        if let Some(b) = self.budget {
            writeln!(f, "  budget    {:>12}", fmt_bytes(b))?;
        }
        if self.pending_free_bytes > 0 {
            writeln!(
                f,
                "  pending   {:>12}  freed, waiting for the device's work to finish",
                fmt_bytes(self.pending_free_bytes)
            )?;
        }
        writeln!(
            f,
            "  small     {} live blocks, {} cached, {} free, {} in slabs",
            self.small.live_blocks,
            fmt_bytes(self.small.cached_bytes),
            fmt_bytes(self.small.free_bytes),
            fmt_bytes(self.small.slab_bytes)
        )?;
        writeln!(
            f,
            "  large     {} live blocks, {} free (mapped) in {} chunks, largest free {} [{}]",
            self.large.live_blocks,
            fmt_bytes(self.large.free_bytes),
            self.large.chunks,
            fmt_bytes(self.large.largest_free),
            self.large.strategy
        )?;
        write!(
            f,
            "  ops       {} allocations, {} frees, padding {}",
            self.allocations,
            self.frees,
            fmt_bytes(self.padding_bytes())
        )
    }
}

impl fmt::Display for MetricsSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.devices {
            writeln!(f, "{d}")?;
        }
        let t = &self.tracking;
        writeln!(
            f,
            "tracking  rate {:.3}, {} tracked live, {} sites, ~{:.0} allocations / ~{} estimated, \
             overhead {:.2}% and {}",
            t.sample_rate,
            t.tracked_live,
            t.sites,
            t.estimated_allocations,
            fmt_bytes(t.estimated_bytes as usize),
            t.tracking_overhead_percentage,
            fmt_bytes(t.tracking_memory_overhead)
        )?;
        let c = &self.cleanup;
        // A run "succeeds" when it leaves no dirty free memory (or its retried request
        // succeeds); one that gives bytes back may still leave some: say what is counted.
        writeln!(
            f,
            "cleanup   {} runs ({} left no dirty free memory), mean {:?}, {} given back; pressure {}",
            c.runs,
            c.successes,
            c.average_cleanup_time(),
            fmt_bytes(c.bytes_released as usize),
            self.pressure
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        let l = &self.latency;
        write!(
            f,
            "latency   p50 {} ns, p99 {} ns, max {} ns ({} timed); {:.0} allocations/s",
            l.p50_ns,
            l.p99_ns,
            l.max_ns,
            l.samples,
            self.allocation_throughput()
        )
    }
}
