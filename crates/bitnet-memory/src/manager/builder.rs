//! Building a manager: devices, budgets, the background worker; and the layout check every
//! allocation path shares.

use super::{Inner, MemoryManager};
use crate::cleanup::engine::{CleanupEngine, CleanupHost};
use crate::cleanup::worker::Worker;
use crate::config::{MemoryConfig, MAX_ALIGN};
use crate::device::{CpuBackend, DeviceBackend, DeviceId};
use crate::error::{MemoryError, Result};
use crate::events::EventBus;
use crate::history::History;
use crate::pool::hybrid::DevicePool;
use crate::tracking::Tracker;
use parking_lot::{Mutex, RwLock};
use std::sync::{Arc, Weak};
use std::time::Instant;

/// Builds a manager with more than the CPU device, or with a backend of your own.
pub struct ManagerBuilder {
    pub(super) config: MemoryConfig,
    pub(super) devices: Vec<(Box<dyn DeviceBackend>, Option<usize>)>,
}

impl ManagerBuilder {
    /// Adds a device with its own budget (bytes); devices are numbered in order from 0.
    pub fn device(mut self, backend: impl DeviceBackend, budget: Option<usize>) -> Self {
        self.devices.push((Box::new(backend), budget));
        self
    }

    /// Builds the manager. Without any `device` call, device 0 is the CPU with the
    /// config's budget.
    pub fn build(mut self) -> Result<MemoryManager> {
        self.config.validate()?;
        if self.devices.is_empty() {
            self.devices
                .push((Box::new(CpuBackend::new()), self.config.budget));
        }
        if self.devices.len() > 255 {
            return Err(MemoryError::InvalidConfig {
                field: "devices",
                reason: "devices: at most 255",
            });
        }
        let devices: Vec<DevicePool> = self
            .devices
            .into_iter()
            .enumerate()
            .map(|(i, (b, budget))| {
                DevicePool::new(DeviceId(i as u8), b, &self.config.pool_config(budget))
            })
            .collect();
        let ndev = devices.len();
        let inner = Arc::new(Inner {
            tracker: Tracker::new(&self.config.tracking),
            leak: crate::leak::LeakState::new(&self.config.leak),
            security: crate::security::Security::new(&self.config.hardened),
            cleanup: CleanupEngine::new(self.config.cleanup.clone(), ndev),
            config: self.config,
            devices,
            bus: EventBus::default(),
            started: Instant::now(),
            raw: Mutex::new(super::raw::RawTable::default()),
            movable: crate::movable::Registry::default(),
            oom_observers: RwLock::new(Vec::new()),
            worker: Mutex::new(None),
            history: History::default(),
            resources: crate::lifecycle::Registry::default(),
        });
        for pool in &inner.devices {
            pool.set_new_cache_hook(super::exit::hook(Arc::downgrade(&inner)));
        }
        if inner.config.cleanup.background {
            let host: Weak<dyn CleanupHost> = Arc::downgrade(&inner) as Weak<Inner>;
            let w = Worker::spawn(host, inner.config.cleanup.period).map_err(|_| {
                MemoryError::InvalidConfig {
                    field: "cleanup.background",
                    reason: "cleanup.background: the worker thread could not be started",
                }
            })?;
            *inner.worker.lock() = Some(w);
        }
        Ok(MemoryManager { inner })
    }
}

pub(crate) fn check_layout(size: usize, align: usize) -> Result<()> {
    let bad = |reason| {
        Err(MemoryError::InvalidLayout {
            size,
            align,
            reason,
        })
    };
    if !align.is_power_of_two() {
        return bad("alignment is not a power of two");
    }
    if align > MAX_ALIGN {
        return bad("alignment over 1 GiB");
    }
    if size > isize::MAX as usize - (align - 1) {
        return bad("size over isize::MAX once rounded up to the alignment");
    }
    Ok(())
}
