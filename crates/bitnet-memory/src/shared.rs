//! Smart references: a shared handle to something that owns an allocation (an
//! [`Allocation`], a tensor), with strong and weak counts, that leak detection sees.
//!
//! - [`Shared::new`] makes the first strong handle; its block becomes a node of the
//!   relationship graph (see [`crate::leak::graph`]) with the count of strong handles.
//! - [`Shared::hold`] stores a strong handle of another shared value inside this one
//!   (a tensor that keeps another alive) and adds the edge `self -> other` to the graph;
//!   [`Shared::hold_weak`] stores a weak one, no edge.
//! - A node the program holds a strong handle to (more strong handles than strong holds
//!   in the graph) is a root. A cycle of strong holds that no root reaches is a confirmed
//!   leak, reported with the edges whose downgrade to a weak hold breaks it
//!   ([`MemoryManager::cycle_breaks`](crate::MemoryManager::cycle_breaks));
//!   [`Shared::downgrade_hold`] does the downgrade.
#![deny(unsafe_code)]

use crate::allocation::Allocation;
use crate::manager::{Inner, MemoryManager};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::AcqRel, Ordering::Release};
use std::sync::{Arc, Weak};

/// Something that owns (at most) one allocation: what a [`Shared`] handle shows to leak
/// detection.
pub trait OwnsAllocation<'m> {
    /// The allocation, if there is one.
    fn allocation(&self) -> Option<&Allocation<'m>>;
}

impl<'m> OwnsAllocation<'m> for Allocation<'m> {
    fn allocation(&self) -> Option<&Allocation<'m>> {
        Some(self)
    }
}

/// A hold of one shared value inside another, whatever its type.
trait Held<'m>: Send + Sync + 'm {
    /// The held block's address (0: none).
    fn addr(&self) -> usize;
    /// A weak hold of the same value.
    fn weak(&self) -> Box<dyn Held<'m> + 'm>;
    /// Whether this hold is strong.
    fn is_strong(&self) -> bool;
}

struct StrongHold<'m, T: OwnsAllocation<'m> + Send + Sync + 'm>(Shared<'m, T>);
struct WeakHold<'m, T: OwnsAllocation<'m> + Send + Sync + 'm>(WeakShared<'m, T>, usize);

impl<'m, T: OwnsAllocation<'m> + Send + Sync + 'm> Held<'m> for StrongHold<'m, T> {
    fn addr(&self) -> usize {
        self.0.addr()
    }
    fn weak(&self) -> Box<dyn Held<'m> + 'm> {
        Box::new(WeakHold(self.0.downgrade(), self.0.addr()))
    }
    fn is_strong(&self) -> bool {
        true
    }
}

impl<'m, T: OwnsAllocation<'m> + Send + Sync + 'm> Held<'m> for WeakHold<'m, T> {
    fn addr(&self) -> usize {
        self.1
    }
    fn weak(&self) -> Box<dyn Held<'m> + 'm> {
        Box::new(WeakHold(self.0.clone(), self.1))
    }
    fn is_strong(&self) -> bool {
        false
    }
}

struct SharedInner<'m, T> {
    /// Holds come first: dropped before the value, so a held value whose last strong
    /// handle was here goes first (and its node with it).
    holds: Mutex<Vec<Box<dyn Held<'m> + 'm>>>,
    value: T,
    /// Strong handles, as the relationship graph reads them.
    strong: Arc<AtomicUsize>,
    inner: &'m Inner,
}

/// A strong handle to a shared value `T` that owns an allocation. Clones share the value;
/// the value (and its allocation) is dropped with the last strong handle.
pub struct Shared<'m, T: OwnsAllocation<'m> + Send + Sync + 'm> {
    ptr: Arc<SharedInner<'m, T>>,
}

/// A weak handle: does not keep the value alive; [`upgrade`](Self::upgrade) gives a
/// strong one while it lives.
pub struct WeakShared<'m, T: OwnsAllocation<'m> + Send + Sync + 'm> {
    ptr: Weak<SharedInner<'m, T>>,
}

impl<'m, T: OwnsAllocation<'m> + Send + Sync + 'm> Clone for WeakShared<'m, T> {
    fn clone(&self) -> Self {
        Self {
            ptr: self.ptr.clone(),
        }
    }
}

impl<'m, T: OwnsAllocation<'m> + Send + Sync + 'm> Shared<'m, T> {
    /// The first strong handle to `value`; its allocation becomes a node of `mm`'s
    /// relationship graph (when the detector is on and the allocation is not empty).
    pub fn new(mm: &'m MemoryManager, value: T) -> Self {
        let inner = mm.inner();
        let strong = Arc::new(AtomicUsize::new(1));
        if let Some(a) = value.allocation() {
            let cx = inner.leak_cx();
            cx.leak
                .graph
                .add_shared(&cx, &a.block_ref(), strong.clone());
        }
        Self {
            ptr: Arc::new(SharedInner {
                holds: Mutex::new(Vec::new()),
                value,
                strong,
                inner,
            }),
        }
    }

    /// The value's block address (0 when it has no allocation).
    pub fn addr(&self) -> usize {
        self.ptr
            .value
            .allocation()
            .map_or(0, |a| a.as_ptr() as usize)
    }

    /// Strong handles now (including those held inside other shared values).
    pub fn strong_count(&self) -> usize {
        Arc::strong_count(&self.ptr)
    }

    /// Weak handles now.
    pub fn weak_count(&self) -> usize {
        Arc::weak_count(&self.ptr)
    }

    /// A weak handle.
    pub fn downgrade(&self) -> WeakShared<'m, T> {
        WeakShared {
            ptr: Arc::downgrade(&self.ptr),
        }
    }

    /// Keeps `other` alive for as long as this value lives (a strong hold): the edge
    /// `self -> other` in the relationship graph.
    pub fn hold<U: OwnsAllocation<'m> + Send + Sync + 'm>(&self, other: &Shared<'m, U>) {
        self.ptr
            .holds
            .lock()
            .push(Box::new(StrongHold(other.clone())));
        if let (Some(a), Some(b)) = (self.ptr.value.allocation(), other.ptr.value.allocation()) {
            let cx = self.ptr.inner.leak_cx();
            cx.leak.graph.link(&cx, &a.block_ref(), &b.block_ref());
        }
    }

    /// Refers to `other` without keeping it alive (a weak hold): no edge.
    pub fn hold_weak<U: OwnsAllocation<'m> + Send + Sync + 'm>(&self, other: &Shared<'m, U>) {
        self.ptr
            .holds
            .lock()
            .push(Box::new(WeakHold(other.downgrade(), other.addr())));
    }

    /// Turns this value's strong holds of the block at `addr` into weak ones (what a
    /// reported cycle asks for); returns how many it turned.
    pub fn downgrade_hold_of(&self, addr: usize) -> usize {
        let old: Vec<Box<dyn Held<'m> + 'm>>;
        let mut n = 0;
        {
            let mut holds = self.ptr.holds.lock();
            let (strong, rest): (Vec<_>, Vec<_>) = holds
                .drain(..)
                .partition(|h| h.is_strong() && h.addr() == addr);
            *holds = rest;
            for h in &strong {
                holds.push(h.weak());
                n += 1;
            }
            old = strong;
        }
        if n > 0 {
            if let Some(a) = self.ptr.value.allocation() {
                let cx = self.ptr.inner.leak_cx();
                cx.leak
                    .graph
                    .unlink_addr(a.block_ref().device, a.block_ref().addr, addr);
            }
        }
        // The strong holds drop here, outside the lock: this may free the held value.
        drop(old);
        n
    }

    /// [`downgrade_hold_of`](Self::downgrade_hold_of) `other`'s block.
    pub fn downgrade_hold<U: OwnsAllocation<'m> + Send + Sync + 'm>(
        &self,
        other: &Shared<'m, U>,
    ) -> usize {
        self.downgrade_hold_of(other.addr())
    }
}

impl<'m, T: OwnsAllocation<'m> + Send + Sync + 'm> WeakShared<'m, T> {
    /// A strong handle while the value lives.
    pub fn upgrade(&self) -> Option<Shared<'m, T>> {
        let ptr = self.ptr.upgrade()?;
        ptr.strong.fetch_add(1, AcqRel);
        Some(Shared { ptr })
    }

    /// Strong handles of the value now (0 once it is gone).
    pub fn strong_count(&self) -> usize {
        self.ptr.strong_count()
    }
}

impl<'m, T: OwnsAllocation<'m> + Send + Sync + 'm> Clone for Shared<'m, T> {
    fn clone(&self) -> Self {
        self.ptr.strong.fetch_add(1, AcqRel);
        Self {
            ptr: self.ptr.clone(),
        }
    }
}

impl<'m, T: OwnsAllocation<'m> + Send + Sync + 'm> Drop for Shared<'m, T> {
    fn drop(&mut self) {
        self.ptr.strong.fetch_sub(1, Release);
    }
}

impl<'m, T: OwnsAllocation<'m> + Send + Sync + 'm> std::ops::Deref for Shared<'m, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.ptr.value
    }
}

impl<'m, T: OwnsAllocation<'m> + Send + Sync + 'm> std::fmt::Debug for Shared<'m, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("addr", &format_args!("{:#x}", self.addr()))
            .field("strong", &self.strong_count())
            .field("weak", &self.weak_count())
            .finish()
    }
}
