//! Thread caches of exiting threads go back to their pools.
//!
//! A pool's thread cache is touched by its owner only (no lock on the hot path), so no
//! other thread may empty it while the owner may still run; a trim asks every thread to
//! flush at its next free, which a thread that has exited never makes. So each thread
//! remembers the managers whose pools it created a cache in (a list of `Weak` handles in
//! a thread-local), and the list's destructor, at thread exit, flushes this thread's
//! caches of every manager still alive.
//!
//! Ordering: a pool calls the hook that fills the list while `ThreadLocal::get_or` creates
//! the cache, after the `thread_local` crate took this thread's id and registered the
//! destructor that releases it; the list's destructor is registered later, so it runs
//! first (thread-local destructors run in reverse order of registration: glibc
//! `__cxa_thread_atexit_impl`, and Rust's fallback list alike; `PoolAlloc` relies on the
//! same rule). The flush therefore finds this thread's own cache while the thread still
//! holds the id, and no new thread is handed that cache before it is empty.

use super::Inner;
use crate::pool::strategy::SysVec;
use std::cell::RefCell;
use std::sync::Weak;

/// The managers this thread created a cache in. Grown on the system allocator (the
/// manager may be the global allocator's).
struct Used(RefCell<SysVec<Weak<Inner>>>);

impl Drop for Used {
    fn drop(&mut self) {
        let used = std::mem::replace(self.0.get_mut(), SysVec::new_in(std::alloc::System));
        for weak in used {
            if let Some(inner) = weak.upgrade() {
                for pool in &inner.devices {
                    pool.flush_this_thread();
                }
            }
        }
    }
}

thread_local! {
    static USED: Used = const { Used(RefCell::new(SysVec::new_in(std::alloc::System))) };
}

/// The hook each pool of a manager calls when a thread creates its cache there.
pub(super) fn hook(manager: Weak<Inner>) -> Box<dyn Fn() + Send + Sync> {
    Box::new(move || {
        // A thread already being torn down keeps its cache until its id is given again.
        let _ = USED.try_with(|u| {
            let mut u = u.0.borrow_mut();
            if !u.iter().any(|w| w.ptr_eq(&manager)) {
                u.push(manager.clone());
            }
        });
    })
}
