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

/// Counters of one size class.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClassMetrics {
    /// Block size of the class in bytes.
    pub block_size: usize,
    /// Blocks owned by allocations.
    pub live_blocks: usize,
    /// Blocks cached by threads.
    pub cached_blocks: usize,
    /// Blocks free in the central list (including not yet carved ones).
    pub free_blocks: usize,
    /// Slabs held by the class.
    pub slabs: usize,
    /// Bytes of those slabs.
    pub slab_bytes: usize,
}

/// The small-block pool (size classes) of one device.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SmallPoolMetrics {
    /// Blocks owned by allocations.
    pub live_blocks: usize,
    /// Bytes of those blocks (class sizes).
    pub live_block_bytes: usize,
    /// Bytes cached by threads.
    pub cached_bytes: usize,
    /// Bytes free in central lists.
    pub free_bytes: usize,
    /// Bytes of slabs (live + cached + free).
    pub slab_bytes: usize,
    /// Per class, only classes that hold a slab.
    pub classes: Vec<ClassMetrics>,
}

/// The large-block pool of one device.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LargePoolMetrics {
    /// Strategy name.
    pub strategy: String,
    /// Blocks owned by allocations.
    pub live_blocks: usize,
    /// Bytes of those blocks (as rounded by the strategy).
    pub live_block_bytes: usize,
    /// Free bytes inside chunks.
    pub free_bytes: usize,
    /// Largest free block in bytes.
    pub largest_free: usize,
    /// Chunks held from the device.
    pub chunks: usize,
}

/// One device pool.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeviceMetrics {
    /// The device.
    pub device: DeviceId,
    /// Backend name.
    pub backend: String,
    /// Requested bytes of live allocations.
    pub live_bytes: usize,
    /// Highest `live_bytes` seen (exact with one thread; with several, each thread's
    /// unpublished change of under 1 MiB may be counted at its own maximum).
    pub peak_live_bytes: usize,
    /// Bytes of device memory the pool holds committed: the pages under blocks it handed
    /// out (and slab blocks it carved), less those handed back since. What the resident
    /// set sees when owners touch what they asked for.
    pub reserved_bytes: usize,
    /// Highest `reserved_bytes` seen.
    pub peak_reserved_bytes: usize,
    /// Bytes of chunks mapped from the device (address space; the budget counts these).
    pub mapped_bytes: usize,
    /// Bytes of free blocks whose pages were handed back so far.
    pub purged_bytes: usize,
    /// Bytes of free blocks' pages moved into requests' fresh pages so far, instead of
    /// handed back and faulted in again (devices that can move pages: the CPU on Linux
    /// 6.8 and later).
    #[serde(default)]
    pub moved_bytes: usize,
    /// Live allocations.
    pub live_allocations: usize,
    /// Allocations made so far.
    pub allocations: u64,
    /// Frees made so far.
    pub frees: u64,
    /// The budget, if any.
    pub budget: Option<usize>,
    /// Largest request served by size classes now (moves under `Strategy::Hybrid`).
    #[serde(default)]
    pub small_threshold: usize,
    /// Small-block pool.
    pub small: SmallPoolMetrics,
    /// Large-block pool.
    pub large: LargePoolMetrics,
    /// Where the reserved bytes that are not live go, and how split up free memory is.
    #[serde(default)]
    pub fragmentation: crate::pool::FragmentationReport,
}

impl DeviceMetrics {
    /// Bytes of blocks owned by allocations (class or strategy sizes).
    pub fn live_block_bytes(&self) -> usize {
        self.small.live_block_bytes + self.large.live_block_bytes
    }
    /// Rounding and padding: block bytes beyond what was requested.
    pub fn padding_bytes(&self) -> usize {
        self.live_block_bytes().saturating_sub(self.live_bytes)
    }
    /// Reserved bytes not owned by any allocation (cached or free).
    pub fn free_bytes(&self) -> usize {
        self.reserved_bytes.saturating_sub(self.live_block_bytes())
    }
    /// `live / reserved`, 1.0 when nothing is reserved.
    pub fn utilization(&self) -> f64 {
        ratio(self.live_bytes, self.reserved_bytes, 1.0)
    }
    /// `reserved / live`, the overhead ratio the benchmarks report.
    pub fn reserved_over_live(&self) -> f64 {
        ratio(self.reserved_bytes, self.live_bytes, 1.0)
    }
    /// External fragmentation of the large pool: `1 - largest free / free`.
    pub fn external_fragmentation(&self) -> f64 {
        1.0 - ratio(self.large.largest_free, self.large.free_bytes, 1.0)
    }
}

fn ratio(a: usize, b: usize, empty: f64) -> f64 {
    if b == 0 {
        empty
    } else {
        a as f64 / b as f64
    }
}

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
            "Bytes held from the device.",
            &per_device(&|d| d.reserved_bytes as f64),
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
        metric(
            "allocation_latency_ns",
            "summary",
            "Allocation latency from a timed sub-sample.",
            &[
                ("{quantile=\"0.5\"}".to_string(), l.p50_ns as f64),
                ("{quantile=\"0.9\"}".to_string(), l.p90_ns as f64),
                ("{quantile=\"0.99\"}".to_string(), l.p99_ns as f64),
                ("{quantile=\"0.999\"}".to_string(), l.p999_ns as f64),
                ("_count".to_string(), l.samples as f64),
            ],
        );
        metric(
            "events_dropped_total",
            "counter",
            "Events dropped at full subscriber queues.",
            &[(String::new(), self.events_dropped as f64)],
        );
        out
    }
}

/// Formats bytes with a binary unit, three significant digits (`1.5 KiB`, `300 MiB`).
pub fn fmt_bytes(b: usize) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else if v >= 100.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
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
        writeln!(
            f,
            "  reserved  {:>12}  peak {:>12}  utilization {:.1}%",
            fmt_bytes(self.reserved_bytes),
            fmt_bytes(self.peak_reserved_bytes),
            100.0 * self.utilization()
        )?;
        if let Some(b) = self.budget {
            writeln!(f, "  budget    {:>12}", fmt_bytes(b))?;
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
            "  large     {} live blocks, {} free in {} chunks, largest free {} [{}]",
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
        writeln!(
            f,
            "cleanup   {} runs, {:.0}% successful, mean {:?}, {} given back; pressure {}",
            c.runs,
            100.0 * c.cleanup_success_rate(),
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
