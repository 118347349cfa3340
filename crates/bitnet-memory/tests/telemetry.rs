//! The telemetry features: gauges and counters through the `metrics` facade (read back
//! with metrics-util's debugging recorder), events as `tracing` events with fields (read
//! back from a fmt subscriber writing into a buffer).
#![cfg(all(feature = "metrics", feature = "tracing"))]

use bitnet_memory::telemetry;
use bitnet_memory::{EventFilter, EventKind, MemoryConfig, MemoryManager};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::MetricKind;
use std::alloc::Layout;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Every metric the recorder saw: (kind, name, labels as `k=v`, value).
fn recorded(f: impl FnOnce()) -> Vec<(MetricKind, String, Vec<String>, DebugValue)> {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, f);
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _unit, _help, value)| {
            let (kind, key) = key.into_parts();
            let labels = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            (kind, key.name().to_string(), labels, value)
        })
        .collect()
}

/// The value of `name` (of device 0 where it has a device label), as a number.
fn value_of(
    got: &[(MetricKind, String, Vec<String>, DebugValue)],
    name: &str,
) -> Option<(MetricKind, f64)> {
    got.iter()
        .find(|(_, n, labels, _)| {
            n == name && (labels.is_empty() || labels.contains(&"device=0".to_string()))
        })
        .map(|(k, _, _, v)| {
            let x = match v {
                DebugValue::Gauge(g) => g.into_inner(),
                DebugValue::Counter(c) => *c as f64,
                DebugValue::Histogram(_) => f64::NAN,
            };
            (*k, x)
        })
}

#[test]
fn metrics_facade_gets_gauges_and_counters_with_the_snapshots_figures() {
    let mm = MemoryManager::new(MemoryConfig::default()).unwrap();
    let a = mm.allocate(Layout::from_size_align(3 << 20, 64).unwrap());
    let b = mm.allocate(Layout::from_size_align(100, 8).unwrap());
    drop(b);
    let m = mm.metrics();
    let d = &m.devices[0];
    let got = recorded(|| telemetry::record_metrics(&m));
    let gauge = |v: usize| Some((MetricKind::Gauge, v as f64));
    let counter = |v: u64| Some((MetricKind::Counter, v as f64));
    assert_eq!(value_of(&got, "bitnet_memory_live_bytes"), gauge(3 << 20));
    assert_eq!(
        value_of(&got, "bitnet_memory_reserved_bytes"),
        gauge(d.reserved_bytes)
    );
    assert_eq!(
        value_of(&got, "bitnet_memory_mapped_bytes"),
        gauge(d.mapped_bytes)
    );
    assert_eq!(value_of(&got, "bitnet_memory_live_allocations"), gauge(1));
    assert_eq!(
        value_of(&got, "bitnet_memory_allocations_total"),
        counter(2)
    );
    assert_eq!(value_of(&got, "bitnet_memory_frees_total"), counter(1));
    let (_, _, labels, _) = got
        .iter()
        .find(|(_, n, _, _)| n == "bitnet_memory_live_bytes")
        .unwrap();
    assert!(labels.contains(&"backend=cpu".to_string()), "{labels:?}");
    drop(a);
}

/// A `tracing` subscriber's output, kept in memory.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn subscriber(buf: &Buf) -> impl tracing::Subscriber + Send + Sync {
    let b = buf.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || b.clone())
        .finish()
}

#[test]
fn events_become_tracing_events_with_fields() {
    let buf = Buf::default();
    let mm = MemoryManager::new(MemoryConfig::default()).unwrap();
    let sub = mm.subscribe(EventFilter::ALL, 1024);
    let a = mm.allocate(Layout::from_size_align(2 << 20, 64).unwrap());
    let addr = a.as_ptr() as usize;
    drop(a);
    let sent =
        tracing::subscriber::with_default(subscriber(&buf), || telemetry::forward_pending(&sub));
    assert!(sent >= 2, "{sent} events");
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let created = text
        .lines()
        .find(|l| l.contains("kind=\"allocation_created\""))
        .unwrap_or_else(|| panic!("no allocation_created event in:\n{text}"));
    assert!(
        created.contains("TRACE") && created.contains(telemetry::TARGET),
        "{created}"
    );
    assert!(created.contains(&format!("size={}", 2 << 20)), "{created}");
    assert!(created.contains(&format!("addr={addr}")), "{created}");
    assert!(created.contains("device=0"), "{created}");
    assert!(text.contains("kind=\"allocation_dropped\""), "{text}");
}

#[test]
fn forwarder_thread_uses_the_spawners_subscriber_and_ends_with_the_manager() {
    let buf = Buf::default();
    let mm = MemoryManager::new(MemoryConfig::default().budget(1 << 20)).unwrap();
    let sub = mm.subscribe(EventFilter::only(EventKind::AllocationFailed), 64);
    let handle =
        tracing::subscriber::with_default(subscriber(&buf), || telemetry::spawn_forwarder(sub))
            .unwrap();
    assert!(mm
        .try_allocate(Layout::from_size_align(8 << 20, 64).unwrap())
        .is_err());
    drop(mm);
    let n = handle.join().unwrap();
    assert_eq!(n, 1);
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("allocation_failed"))
        .expect(&text);
    assert!(
        line.contains("WARN") && line.contains(&format!("size={}", 8 << 20)),
        "{line}"
    );
    assert!(line.contains("error="), "{line}");
}
