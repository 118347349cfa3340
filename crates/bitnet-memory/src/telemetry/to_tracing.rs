//! [`MemoryEvent`]s as `tracing` events.

use crate::events::{MemoryEvent, Subscription};
use ::tracing::{event, Level};
use std::thread::JoinHandle;

/// The target of every event [`trace_event`] emits (filter on it, e.g.
/// `RUST_LOG=bitnet_memory=debug`).
pub const TARGET: &str = "bitnet_memory";

/// Emits `ev` as a `tracing` event of target [`TARGET`], its fields as fields
/// (`kind` names the variant). Levels: allocations and frees `TRACE`; cleanup, sampling
/// strategy changes, pool optimisations and registered resources `DEBUG`; pressure
/// changes, fragmentation and suspected leaks `INFO`; failed requests, critical pressure,
/// confirmed leaks and cleanup mismatches `WARN`.
pub fn trace_event(ev: &MemoryEvent) {
    match ev {
        MemoryEvent::AllocationCreated {
            id,
            addr,
            size,
            device,
        } => event!(
            target: TARGET, Level::TRACE,
            kind = "allocation_created", id, addr, size, device = device.0
        ),
        MemoryEvent::AllocationDropped {
            id,
            addr,
            size,
            device,
        } => event!(
            target: TARGET, Level::TRACE,
            kind = "allocation_dropped", id, addr, size, device = device.0
        ),
        MemoryEvent::AllocationFailed {
            size,
            device,
            error,
        } => event!(
            target: TARGET, Level::WARN,
            kind = "allocation_failed", size, device = device.0, error = %error
        ),
        MemoryEvent::CleanupTriggered { strategy } => event!(
            target: TARGET, Level::DEBUG,
            kind = "cleanup_triggered", strategy = ?strategy
        ),
        MemoryEvent::CleanupCompleted {
            strategy,
            resources_cleaned,
            memory_reclaimed,
            duration_ns,
        } => event!(
            target: TARGET, Level::DEBUG,
            kind = "cleanup_completed", strategy = ?strategy, resources_cleaned,
            memory_reclaimed, duration_ns
        ),
        MemoryEvent::SamplingRateChanged { old, new, reason } => event!(
            target: TARGET, Level::DEBUG,
            kind = "sampling_rate_changed", old, new, reason = %reason
        ),
        MemoryEvent::FragmentationDetected {
            device,
            fragmentation_level,
        } => event!(
            target: TARGET, Level::INFO,
            kind = "fragmentation_detected", device = device.0, fragmentation_level
        ),
        MemoryEvent::MemoryPressureChanged {
            device,
            level,
            available_memory,
        } => event!(
            target: TARGET, Level::INFO,
            kind = "memory_pressure_changed", device = device.0, level = %level,
            available_memory = ?available_memory
        ),
        MemoryEvent::MemoryPressureCritical {
            device,
            action_required,
        } => event!(
            target: TARGET, Level::WARN,
            kind = "memory_pressure_critical", device = device.0,
            action_required = %action_required
        ),
        MemoryEvent::PotentialLeakDetected {
            id,
            detection_method,
        } => event!(
            target: TARGET, Level::INFO,
            kind = "potential_leak_detected", id, detection_method = %detection_method
        ),
        MemoryEvent::LeakConfirmed { id, leak_info } => event!(
            target: TARGET, Level::WARN,
            kind = "leak_confirmed", id, leak_info = %leak_info
        ),
        MemoryEvent::StrategyChanged {
            device,
            old_threshold,
            new_threshold,
            reason,
        } => event!(
            target: TARGET, Level::DEBUG,
            kind = "strategy_changed", device = device.0, old_threshold, new_threshold,
            reason = %reason
        ),
        MemoryEvent::CleanupMismatch {
            strategy,
            executor,
            claimed,
            observed,
            detail,
        } => event!(
            target: TARGET, Level::WARN,
            kind = "cleanup_mismatch", strategy = ?strategy, executor = %executor, claimed,
            observed, detail = %detail
        ),
        MemoryEvent::PoolOptimizationCompleted {
            device,
            action,
            before,
            after,
            reason,
        } => event!(
            target: TARGET, Level::DEBUG,
            kind = "pool_optimization_completed", device = device.0, action = %action,
            before = ?before, after = ?after, reason = %reason
        ),
        MemoryEvent::ResourceRegistered {
            id,
            name,
            size,
            site,
        } => event!(
            target: TARGET, Level::DEBUG,
            kind = "resource_registered", id, name = %name, size, site = %site
        ),
        MemoryEvent::ResourceReleased {
            id,
            name,
            size,
            reason,
        } => event!(
            target: TARGET, Level::DEBUG,
            kind = "resource_released", id, name = %name, size, reason = %reason
        ),
    }
}

/// Emits every event queued on `sub` now, without waiting; returns how many.
pub fn forward_pending(sub: &Subscription) -> usize {
    let mut n = 0;
    for ev in sub.receiver().try_iter() {
        trace_event(&ev);
        n += 1;
    }
    n
}

/// A thread that emits each event of `sub` as it arrives, to the `tracing` dispatcher
/// current where it was spawned; it ends when the manager is dropped (the subscription's
/// channel closes) and returns how many events it emitted.
pub fn spawn_forwarder(sub: Subscription) -> std::io::Result<JoinHandle<u64>> {
    let dispatch = ::tracing::dispatcher::get_default(|d| d.clone());
    std::thread::Builder::new()
        .name("bitnet-memory-tracing".into())
        .spawn(move || {
            ::tracing::dispatcher::with_default(&dispatch, || {
                let mut n = 0u64;
                for ev in sub.receiver().iter() {
                    trace_event(&ev);
                    n += 1;
                }
                n
            })
        })
}
