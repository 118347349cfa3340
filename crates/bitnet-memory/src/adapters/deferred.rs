//! The deferred-free list of `PoolAlloc`: a lock-free stack threaded through freed blocks.
//!
//! Any thread pushes (a thread being torn down, whose frees cannot reach the pool); a live
//! thread takes the whole list at once with one swap and frees every block on it. Taking
//! all at once is what keeps it free of ABA: a popper never reads a node another thread
//! may take meanwhile, since nobody pops single nodes. Each node is the freed block itself:
//! its first word links to the next node, its second word is the pusher's payload (the
//! block's packed layout). Checked under loom (`RUSTFLAGS="--cfg loom" cargo test -p
//! bitnet-memory --lib adapters::deferred --release`, run by `.ci/run`): no push is lost or
//! taken twice in any interleaving of two pushers and a taker.

#[cfg(loom)]
use loom::sync::atomic::{AtomicUsize, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicUsize, Ordering};

use std::ptr;

/// The list: the address of its first node (0: empty).
pub(crate) struct Deferred {
    head: AtomicUsize,
    pushed: AtomicUsize,
}

impl Deferred {
    /// An empty list.
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        Self {
            head: AtomicUsize::new(0),
            pushed: AtomicUsize::new(0),
        }
    }

    /// An empty list.
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Self {
            head: AtomicUsize::new(0),
            pushed: AtomicUsize::new(0),
        }
    }

    /// Whether the list may hold nodes (a relaxed look, for the allocation path).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.head.load(Ordering::Relaxed) == 0
    }

    /// Pushes so far.
    pub(crate) fn pushed(&self) -> usize {
        self.pushed.load(Ordering::Relaxed)
    }

    /// Pushes the block at `addr` with `payload`.
    ///
    /// # Safety
    /// `addr` is the address of at least 16 writable bytes that nobody else uses until the
    /// node comes back from [`take_all`](Self::take_all).
    pub(crate) unsafe fn push(&self, addr: usize, payload: usize) {
        let node = ptr::with_exposed_provenance_mut::<usize>(addr);
        self.pushed.fetch_add(1, Ordering::Relaxed);
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: the caller's contract: 16 bytes of the block are ours to write (two
            // words, written unaligned).
            unsafe {
                node.write_unaligned(head);
                node.add(1).write_unaligned(payload);
            }
            // Release: the two words are visible to whoever acquires the node.
            match self
                .head
                .compare_exchange_weak(head, addr, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    /// Takes every node pushed so far and hands each `(addr, payload)` to `f`.
    pub(crate) fn take_all(&self, mut f: impl FnMut(usize, usize)) {
        // Acquire: pairs with the release of every push that made the list we take.
        let mut p = self.head.swap(0, Ordering::Acquire);
        while p != 0 {
            let node = ptr::with_exposed_provenance::<usize>(p);
            // SAFETY: `push` wrote both words before publishing the node (release; the
            // swap acquires), and the node is ours alone now: nobody pops single nodes.
            let (next, payload) = unsafe { (node.read_unaligned(), node.add(1).read_unaligned()) };
            f(p, payload);
            p = next;
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::Deferred;
    use loom::sync::Arc;

    /// Two threads push one node each, the first of them a second one after, while a
    /// third takes what is there; afterwards the rest is taken. Every node comes back
    /// exactly once, with its payload.
    #[test]
    fn no_push_is_lost_or_taken_twice() {
        loom::model(|| {
            // Nodes: plain memory (two words each), owned by the model run.
            let nodes: Arc<Vec<[usize; 2]>> = Arc::new(vec![[0; 2]; 3]);
            let base = nodes.as_ptr().expose_provenance();
            let list = Arc::new(Deferred::new());
            let pushers: Vec<_> = [vec![0usize, 2], vec![1]]
                .into_iter()
                .map(|mine| {
                    let list = list.clone();
                    loom::thread::spawn(move || {
                        for i in mine {
                            // SAFETY: node `i` is 16 bytes that only this push uses until
                            // it is taken back.
                            unsafe { list.push(base + 16 * i, 100 + i) };
                        }
                    })
                })
                .collect();
            let taker = {
                let list = list.clone();
                loom::thread::spawn(move || {
                    let mut got = Vec::new();
                    list.take_all(|a, p| got.push((a, p)));
                    got
                })
            };
            for p in pushers {
                p.join().unwrap();
            }
            let mut got = taker.join().unwrap();
            list.take_all(|a, p| got.push((a, p)));
            got.sort_unstable();
            let want: Vec<_> = (0..3).map(|i| (base + 16 * i, 100 + i)).collect();
            assert_eq!(got, want);
            assert_eq!(list.pushed(), 3);
            drop(nodes);
        });
    }
}
