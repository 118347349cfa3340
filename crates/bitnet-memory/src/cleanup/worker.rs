//! The background worker: wakes once per period, hands back memory idle past the decay
//! time, checks pressure, and sleeps again. It holds only a weak reference to the
//! manager, and stops when the manager is dropped.
#![deny(unsafe_code)]

use super::engine::CleanupHost;
use parking_lot::{Condvar, Mutex};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

struct Shared {
    stop: Mutex<bool>,
    cv: Condvar,
    ticks: AtomicU64,
}

/// Handle of a running worker.
pub(crate) struct Worker {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
    thread: ThreadId,
}

impl Worker {
    /// Starts a worker over `host` (the manager, held weakly), waking every `period`.
    pub(crate) fn spawn(host: Weak<dyn CleanupHost>, period: Duration) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            stop: Mutex::new(false),
            cv: Condvar::new(),
            ticks: AtomicU64::new(0),
        });
        let s = shared.clone();
        let handle = std::thread::Builder::new()
            .name("bitnet-memory-cleanup".into())
            .spawn(move || loop {
                {
                    let mut stop = s.stop.lock();
                    if *stop {
                        return;
                    }
                    // Sleeps the whole period unless told to stop: no busy loop, and no
                    // more than one wake-up per period while idle.
                    s.cv.wait_for(&mut stop, period);
                    if *stop {
                        return;
                    }
                }
                let Some(host) = host.upgrade() else {
                    return;
                };
                host.engine().background_tick(&*host);
                s.ticks.fetch_add(1, Relaxed);
                // If this was the last handle, the manager is dropped here, on this
                // thread; `stop` then does not join itself.
                drop(host);
            })?;
        let thread = handle.thread().id();
        Ok(Self {
            shared,
            handle: Some(handle),
            thread,
        })
    }

    /// Wake-ups so far.
    pub(crate) fn ticks(&self) -> u64 {
        self.shared.ticks.load(Relaxed)
    }

    /// Stops the worker and waits for it (unless called from the worker itself).
    pub(crate) fn stop(&mut self) {
        *self.shared.stop.lock() = true;
        self.shared.cv.notify_all();
        if let Some(h) = self.handle.take() {
            if std::thread::current().id() != self.thread {
                let _ = h.join();
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}
