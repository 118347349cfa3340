//! A [`MetricsSnapshot`] through the `metrics` facade.

use crate::metrics::{DeviceMetrics, MetricsSnapshot};
use ::metrics::{counter, describe_counter, describe_gauge, gauge, Unit};

/// Describes every metric [`record_metrics`] sets (unit and help text) to the installed
/// recorder; call once, after installing it.
pub fn describe_metrics() {
    for (name, unit, help) in GAUGES {
        describe_gauge!(*name, *unit, *help);
    }
    for (name, unit, help) in COUNTERS {
        describe_counter!(*name, *unit, *help);
    }
}

const GAUGES: &[(&str, Unit, &str)] = &[
    (
        "bitnet_memory_live_bytes",
        Unit::Bytes,
        "Requested bytes of live allocations.",
    ),
    (
        "bitnet_memory_peak_live_bytes",
        Unit::Bytes,
        "Highest live bytes seen.",
    ),
    (
        "bitnet_memory_reserved_bytes",
        Unit::Bytes,
        "Bytes held committed from the device.",
    ),
    (
        "bitnet_memory_peak_reserved_bytes",
        Unit::Bytes,
        "Highest reserved bytes seen.",
    ),
    (
        "bitnet_memory_mapped_bytes",
        Unit::Bytes,
        "Bytes of chunks mapped from the device.",
    ),
    (
        "bitnet_memory_free_bytes",
        Unit::Bytes,
        "Reserved bytes no allocation owns.",
    ),
    (
        "bitnet_memory_pending_free_bytes",
        Unit::Bytes,
        "Freed bytes waiting for device work.",
    ),
    (
        "bitnet_memory_live_allocations",
        Unit::Count,
        "Live allocations.",
    ),
    (
        "bitnet_memory_tracking_sample_rate",
        Unit::Count,
        "Sampling rate of small allocations.",
    ),
];

const COUNTERS: &[(&str, Unit, &str)] = &[
    (
        "bitnet_memory_allocations_total",
        Unit::Count,
        "Allocations made.",
    ),
    ("bitnet_memory_frees_total", Unit::Count, "Frees made."),
    (
        "bitnet_memory_released_bytes_total",
        Unit::Bytes,
        "Bytes of chunks given back to the device.",
    ),
    (
        "bitnet_memory_cleanup_runs_total",
        Unit::Count,
        "Cleanup runs.",
    ),
    (
        "bitnet_memory_cleanup_released_bytes_total",
        Unit::Bytes,
        "Bytes cleanup gave back.",
    ),
    (
        "bitnet_memory_events_dropped_total",
        Unit::Count,
        "Events dropped at full subscriber queues.",
    ),
];

/// Sets the gauges and counters of `m` on the installed `metrics` recorder: per device
/// (labels `device`, `backend`) live, peak, reserved, mapped, free and pending bytes, live
/// allocations, allocations and frees made, bytes released; for the manager the sampling
/// rate, cleanup runs and bytes, dropped events. Counters are set to the snapshot's
/// totals (`absolute`), so calling this on every scrape or tick is right.
pub fn record_metrics(m: &MetricsSnapshot) {
    for d in &m.devices {
        record_device(d);
    }
    gauge!("bitnet_memory_tracking_sample_rate").set(m.tracking.sample_rate);
    counter!("bitnet_memory_cleanup_runs_total").absolute(m.cleanup.runs);
    counter!("bitnet_memory_cleanup_released_bytes_total").absolute(m.cleanup.bytes_released);
    counter!("bitnet_memory_events_dropped_total").absolute(m.events_dropped);
}

fn record_device(d: &DeviceMetrics) {
    let labels = [
        ("device", d.device.0.to_string()),
        ("backend", d.backend.clone()),
    ];
    let g = |name: &'static str, v: usize| gauge!(name, &labels).set(v as f64);
    g("bitnet_memory_live_bytes", d.live_bytes);
    g("bitnet_memory_peak_live_bytes", d.peak_live_bytes);
    g("bitnet_memory_reserved_bytes", d.reserved_bytes);
    g("bitnet_memory_peak_reserved_bytes", d.peak_reserved_bytes);
    g("bitnet_memory_mapped_bytes", d.mapped_bytes);
    g("bitnet_memory_free_bytes", d.free_bytes());
    g("bitnet_memory_pending_free_bytes", d.pending_free_bytes);
    g("bitnet_memory_live_allocations", d.live_allocations);
    counter!("bitnet_memory_allocations_total", &labels).absolute(d.allocations);
    counter!("bitnet_memory_frees_total", &labels).absolute(d.frees);
    counter!("bitnet_memory_released_bytes_total", &labels).absolute(d.released_bytes as u64);
}
