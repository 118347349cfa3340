//! Scopes: the seed's unreferenced-resource detector with a grace period.
//!
//! `let s = mm.scope("step")` opens a scope on the current thread (scopes nest). What the
//! scope allocated and still holds when it ends, unless marked
//! [`persist`](crate::Allocation::persist), is a suspect (`PotentialLeakDetected`); a
//! suspect still live at the first check after the grace period is a confirmed leak
//! (`LeakConfirmed`).
//!
//! Attribution, exactly:
//! - A tracked allocation belongs to the innermost scope open on the thread that made it
//!   (the scope stack is per manager and per thread). Its record is re-read at the scope's
//!   end, so a later free, or `persist()`, is seen.
//! - Untracked allocations have no record; the scope compares the pool's exact live
//!   counts per size class at its start and end, minus the tracked allocations it still
//!   holds, minus untracked blocks persisted meanwhile, minus what inner scopes already
//!   reported. Those counts are manager-wide, so this part is used only when no scope of
//!   another thread began or was open during the scope; allocations by threads that run no
//!   scope are counted in (a worker pool serving the scope's thread is attributed to it;
//!   an unrelated long-lived allocation made on another thread meanwhile is a false
//!   suspect). A block of the scope freed while an older block of the same class leaks is
//!   netted out. Untracked suspects carry no site.

use super::counts::Counts;
use super::LeakCx;
use super::{BlockKey, DetectContext, LeakConfig, LeakDetector, LeakFinding};
use crate::device::DeviceId;
use crate::tracking::metadata::flags;
use parking_lot::Mutex;
use std::cell::RefCell;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thread_local::ThreadLocal;

/// A tracked allocation made inside a scope.
struct Owned {
    slot: u32,
    id: u32,
    key: BlockKey,
    /// Already judged by an inner scope.
    reported: bool,
}

struct Frame {
    id: u64,
    name: Arc<str>,
    owned: Vec<Owned>,
    start: Option<Counts>,
    persisted_start: HashMap<BlockKey, usize>,
    begins_at_start: u64,
    my_begins_at_start: u64,
    /// Untracked blocks inner scopes already reported, per class.
    child_reported: HashMap<BlockKey, usize>,
}

#[derive(Default)]
struct ThreadScopes {
    stack: Vec<Frame>,
    begins: u64,
}

#[derive(Debug, Clone)]
pub(crate) enum Suspect {
    Tracked {
        slot: u32,
        id: u32,
        size: usize,
        site: u16,
    },
    Untracked {
        key: BlockKey,
        count: usize,
        /// Live blocks of the class when the scope ended.
        end_count: usize,
    },
}

#[derive(Debug, Clone)]
struct Pending {
    scope: Arc<str>,
    deadline: Instant,
    suspect: Suspect,
}

/// The scope detector of one manager.
pub(crate) struct ScopeDetector {
    enabled: AtomicBool,
    grace: Duration,
    exact: bool,
    /// Scopes open on any thread.
    active: AtomicUsize,
    /// Scopes begun so far on any thread.
    begins: AtomicU64,
    next_id: AtomicU64,
    threads: ThreadLocal<RefCell<ThreadScopes>>,
    pending: Mutex<Vec<Pending>>,
    confirmed: Mutex<Vec<Pending>>,
    /// Verdicts so far: what run-time accuracy is measured from.
    verdicts: Verdicts,
}

/// Counters of the scope detector's verdicts.
#[derive(Default)]
struct Verdicts {
    suspected: AtomicU64,
    confirmed: AtomicU64,
    retracted: AtomicU64,
    confirmed_then_freed: AtomicU64,
}

/// An open leak scope; it ends when dropped, on the thread that opened it.
#[must_use = "the scope ends when this guard is dropped"]
pub struct LeakScope<'m> {
    pub(super) cx: LeakCx<'m>,
    pub(super) id: u64,
    /// Scopes belong to the thread that opened them.
    _not_send: PhantomData<*const ()>,
}

impl LeakScope<'_> {
    /// Whether the scope is recording (the detector was on when it began).
    pub fn is_active(&self) -> bool {
        self.id != 0
    }
}

impl std::fmt::Debug for LeakScope<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeakScope").field("id", &self.id).finish()
    }
}

impl<'m> LeakScope<'m> {
    /// Opens a scope named `name` on this thread (what
    /// [`MemoryManager::scope`](crate::MemoryManager::scope) calls).
    pub(crate) fn open(cx: LeakCx<'m>, name: &str) -> Self {
        LeakScope {
            id: cx.leak.scopes.begin(&cx, name, false),
            cx,
            _not_send: PhantomData,
        }
    }

    /// Opens a scope whether the scope detector is on or not (strict scopes).
    pub(super) fn open_forced(cx: LeakCx<'m>, name: &str) -> Self {
        LeakScope {
            id: cx.leak.scopes.begin(&cx, name, true),
            cx,
            _not_send: PhantomData,
        }
    }

    /// Ends the scope now; returns what it left behind (the suspects it reported).
    pub(super) fn finish(self) -> Vec<Suspect> {
        let mut this = std::mem::ManuallyDrop::new(self);
        let (outermost, suspects) = if this.id != 0 {
            this.cx.leak.scopes.end(&this.cx, this.id)
        } else {
            (true, Vec::new())
        };
        this.id = 0;
        if outermost {
            this.cx.leak.growth.sample(&this.cx, None);
        }
        suspects
    }
}

impl Drop for LeakScope<'_> {
    fn drop(&mut self) {
        let d = &self.cx.leak.scopes;
        let outermost = if self.id != 0 {
            d.end(&self.cx, self.id).0
        } else {
            d.threads
                .get()
                .and_then(|t| t.try_borrow().ok().map(|t| t.stack.is_empty()))
                .unwrap_or(true)
        };
        if outermost {
            self.cx.leak.growth.sample(&self.cx, None);
        }
    }
}

impl ScopeDetector {
    pub(crate) fn new(c: &LeakConfig) -> Self {
        Self {
            enabled: AtomicBool::new(c.scopes),
            grace: c.scope_grace,
            exact: c.scope_exact_counts,
            active: AtomicUsize::new(0),
            begins: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            threads: ThreadLocal::new(),
            pending: Mutex::new(Vec::new()),
            confirmed: Mutex::new(Vec::new()),
            verdicts: Verdicts::default(),
        }
    }

    /// The verdicts so far.
    pub(crate) fn stats(&self) -> super::LeakStats {
        let v = &self.verdicts;
        super::LeakStats {
            suspected: v.suspected.load(Relaxed),
            confirmed: v.confirmed.load(Relaxed),
            retracted: v.retracted.load(Relaxed),
            confirmed_then_freed: v.confirmed_then_freed.load(Relaxed),
        }
    }

    fn begin(&self, cx: &LeakCx<'_>, name: &str, force: bool) -> u64 {
        if !force && !self.enabled.load(Relaxed) {
            return 0;
        }
        let id = self.next_id.fetch_add(1, Relaxed);
        let t = self
            .threads
            .get_or(|| RefCell::new(ThreadScopes::default()));
        let Ok(mut t) = t.try_borrow_mut() else {
            return 0;
        };
        let others = self.active.fetch_add(1, Relaxed) - t.stack.len();
        let begins_at_start = self.begins.fetch_add(1, Relaxed) + 1;
        t.begins += 1;
        let start = (self.exact && others == 0).then(|| Counts::now(cx));
        let my_begins_at_start = t.begins;
        t.stack.push(Frame {
            id,
            name: Arc::from(name),
            owned: Vec::new(),
            persisted_start: if start.is_some() {
                cx.leak.persisted_counts()
            } else {
                HashMap::new()
            },
            start,
            begins_at_start,
            my_begins_at_start,
            child_reported: HashMap::new(),
        });
        id
    }

    /// A tracked allocation was made: it belongs to this thread's innermost scope.
    #[inline]
    pub(crate) fn note_tracked(&self, cx: &LeakCx<'_>, slot: u32, device: DeviceId, token: u64) {
        if self.active.load(Relaxed) == 0 {
            return;
        }
        let Some(t) = self.threads.get() else { return };
        let Ok(mut t) = t.try_borrow_mut() else {
            return;
        };
        if let Some(f) = t.stack.last_mut() {
            if let Some(m) = cx.tracker.read(slot) {
                f.owned.push(Owned {
                    slot,
                    id: m.id,
                    key: BlockKey::from_token(device, token),
                    reported: false,
                });
            }
        }
    }

    /// Ends scope `id`; returns whether no scope is open on this thread any more, and
    /// the suspects it left behind.
    fn end(&self, cx: &LeakCx<'_>, id: u64) -> (bool, Vec<Suspect>) {
        let Some(t) = self.threads.get() else {
            return (true, Vec::new());
        };
        let Ok(mut t) = t.try_borrow_mut() else {
            return (false, Vec::new());
        };
        let Some(pos) = t.stack.iter().rposition(|f| f.id == id) else {
            return (t.stack.is_empty(), Vec::new());
        };
        let frame = t.stack.remove(pos);
        self.active.fetch_sub(1, Relaxed);
        let now = Instant::now();
        let mut suspects = Vec::new();
        let mut held: HashMap<BlockKey, usize> = HashMap::new();
        for o in &frame.owned {
            let Some(m) = cx.tracker.read(o.slot).filter(|m| m.id == o.id) else {
                continue;
            };
            *held.entry(o.key).or_default() += 1;
            if !o.reported && m.flags & flags::PERSISTENT == 0 {
                suspects.push(Suspect::Tracked {
                    slot: o.slot,
                    id: o.id,
                    size: m.size_bytes(),
                    site: m.site,
                });
            }
        }
        let others_began = (self.begins.load(Relaxed) - frame.begins_at_start)
            > (t.begins - frame.my_begins_at_start);
        let mut untracked: HashMap<BlockKey, usize> = HashMap::new();
        if let (Some(start), false) = (&frame.start, others_began) {
            let end = Counts::now(cx);
            let persisted = cx.leak.persisted_counts();
            for (k, &n) in &end.blocks {
                let delta = n as i64
                    - start.get(k) as i64
                    - (persisted.get(k).copied().unwrap_or(0) as i64
                        - frame.persisted_start.get(k).copied().unwrap_or(0) as i64)
                    - held.get(k).copied().unwrap_or(0) as i64
                    - frame.child_reported.get(k).copied().unwrap_or(0) as i64;
                if delta > 0 {
                    untracked.insert(*k, delta as usize);
                    suspects.push(Suspect::Untracked {
                        key: *k,
                        count: delta as usize,
                        end_count: n,
                    });
                }
            }
        }
        // The enclosing scope on this thread must not report these a second time.
        if let Some(parent) = t.stack.last_mut() {
            for o in frame.owned {
                parent.owned.push(Owned {
                    reported: true,
                    ..o
                });
            }
            for (k, n) in frame.child_reported.into_iter().chain(untracked) {
                *parent.child_reported.entry(k).or_default() += n;
            }
        }
        let outermost = t.stack.is_empty();
        drop(t);
        self.verdicts
            .suspected
            .fetch_add(suspects.len() as u64, Relaxed);
        let method = format!("scope '{}'", frame.name);
        for s in &suspects {
            let id = match s {
                Suspect::Tracked { id, .. } => *id,
                Suspect::Untracked { .. } => 0,
            };
            cx.emit_potential(id, &method);
        }
        self.pending
            .lock()
            .extend(suspects.iter().cloned().map(|suspect| Pending {
                scope: frame.name.clone(),
                deadline: now + self.grace,
                suspect,
            }));
        self.confirm(cx, Instant::now());
        (outermost, suspects)
    }

    /// Moves suspects past their grace period to the confirmed list when still live;
    /// forgets confirmed tracked ones that were freed late after all.
    fn confirm(&self, cx: &LeakCx<'_>, now: Instant) {
        let due: Vec<Pending> = {
            let mut p = self.pending.lock();
            let (due, keep) = p.drain(..).partition(|x| x.deadline <= now);
            *p = keep;
            due
        };
        let counts = due
            .iter()
            .any(|p| matches!(p.suspect, Suspect::Untracked { .. }))
            .then(|| Counts::now(cx));
        let mut confirmed = self.confirmed.lock();
        let before = confirmed.len();
        confirmed.retain(|c| match c.suspect {
            Suspect::Tracked { slot, id, .. } => cx.tracker.read(slot).is_some_and(|m| m.id == id),
            Suspect::Untracked { .. } => true,
        });
        // Confirmed, then freed after all: a false positive, measured.
        self.verdicts
            .confirmed_then_freed
            .fetch_add((before - confirmed.len()) as u64, Relaxed);
        for mut p in due {
            let still = match &mut p.suspect {
                Suspect::Tracked { slot, id, .. } => cx
                    .tracker
                    .read(*slot)
                    .is_some_and(|m| m.id == *id && m.flags & flags::PERSISTENT == 0),
                Suspect::Untracked {
                    key,
                    count,
                    end_count,
                } => {
                    // Blocks of the class freed since the scope ended may have been the
                    // suspects: count them out (never a false confirmation from frees).
                    let now_n = counts.as_ref().map_or(0, |c| c.get(key));
                    let freed = end_count.saturating_sub(now_n);
                    *count = count.saturating_sub(freed);
                    *count > 0
                }
            };
            if still {
                self.verdicts.confirmed.fetch_add(1, Relaxed);
                let (id, info) = describe(cx, &p);
                cx.emit_confirmed(id, &|| info.clone());
                confirmed.push(p);
            } else {
                self.verdicts.retracted.fetch_add(1, Relaxed);
            }
        }
    }
}

fn describe(cx: &LeakCx<'_>, p: &Pending) -> (u32, String) {
    match &p.suspect {
        Suspect::Tracked { id, size, site, .. } => (
            *id,
            format!(
                "{size} B allocated in scope '{}' at {} outlived it",
                p.scope,
                cx.tracker
                    .site_name(*site)
                    .unwrap_or_else(|| "(unknown site)".into())
            ),
        ),
        Suspect::Untracked { key, count, .. } => (
            0,
            format!(
                "{count} untracked block(s) of {} on {} allocated in scope '{}' outlived it",
                key.block_size()
                    .map_or("a large size".to_string(), |b| format!("{b} B")),
                key.device,
                p.scope
            ),
        ),
    }
}

fn finding(cx: &LeakCx<'_>, p: &Pending, confirmed: bool) -> LeakFinding {
    let (_, info) = describe(cx, p);
    match &p.suspect {
        Suspect::Tracked { id, size, site, .. } => LeakFinding {
            detector: "scope",
            site: cx.tracker.site_name(*site),
            ids: vec![*id],
            count: 1,
            bytes: *size,
            confirmed,
            info,
        },
        Suspect::Untracked { key, count, .. } => LeakFinding {
            detector: "scope",
            site: None,
            ids: Vec::new(),
            count: *count,
            bytes: key.block_size().unwrap_or(0) * count,
            confirmed,
            info,
        },
    }
}

impl LeakDetector for ScopeDetector {
    fn name(&self) -> &'static str {
        "scope"
    }
    fn enabled(&self) -> bool {
        self.enabled.load(Relaxed)
    }
    fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Relaxed);
    }
    fn detect(&self, cx: &DetectContext<'_>, findings: &mut Vec<LeakFinding>) {
        self.confirm(&cx.cx, cx.now);
        for p in self.confirmed.lock().iter() {
            findings.push(finding(&cx.cx, p, true));
        }
        for p in self.pending.lock().iter() {
            let live = match p.suspect {
                Suspect::Tracked { slot, id, .. } => {
                    cx.cx.tracker.read(slot).is_some_and(|m| m.id == id)
                }
                Suspect::Untracked { .. } => true,
            };
            if live {
                findings.push(finding(&cx.cx, p, false));
            }
        }
    }
}
