//! Telemetry through the crates users already run, each behind a feature:
//!
//! - `metrics`: `record_metrics` sets gauges and counters of a [`MetricsSnapshot`]
//!   through the `metrics` crate's facade, so whatever recorder the program
//!   installed (a Prometheus exporter, StatsD, ...) publishes them. A figure that
//!   [`MetricsSnapshot::to_prometheus`] also writes has the same name and labels there.
//! - `tracing`: `trace_event` turns a [`MemoryEvent`] into a `tracing` event with its
//!   fields (target `bitnet_memory`); `forward_pending` and `spawn_forwarder` do it
//!   for a [`Subscription`](crate::Subscription).
//!
//! [`MetricsSnapshot`]: crate::MetricsSnapshot
//! [`MetricsSnapshot::to_prometheus`]: crate::MetricsSnapshot::to_prometheus
//! [`MemoryEvent`]: crate::MemoryEvent
//!
//! Without either feature the module is empty.

#[cfg(feature = "metrics")]
mod to_metrics;
#[cfg(feature = "tracing")]
mod to_tracing;

#[cfg(feature = "metrics")]
pub use to_metrics::{describe_metrics, record_metrics};
#[cfg(feature = "tracing")]
pub use to_tracing::{forward_pending, spawn_forwarder, trace_event, TARGET};
