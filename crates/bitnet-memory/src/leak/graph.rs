//! Relationships: which allocation keeps which alive, and cycles no root reaches.
//!
//! [`MemoryManager::link`](crate::MemoryManager::link)`(owner, owned)` adds the edge
//! `owner -> owned`; both allocations become nodes (keyed by device and address, so
//! untracked ones take part too) until they are dropped, which removes them and their
//! edges.
//!
//! Shared handles ([`Shared`](crate::shared::Shared)) add their nodes themselves, with
//! their count of strong handles, and an edge for every strong hold
//! ([`Shared::hold`](crate::shared::Shared::hold)); a weak hold is no edge.
//!
//! A **root** is a live node that no other live node owns (in-degree 0: the program holds
//! it directly), one marked persistent, or a shared node with more strong handles than
//! strong holds in the graph (the program holds one of them). A node reachable from a root is kept alive
//! legitimately. A strongly connected component (Tarjan) with more than one node, or one
//! node owning itself, that no root reaches owns itself only: nothing outside can ever
//! release it, so it is a confirmed cycle leak. Edges the program records wrongly (an
//! owner that does not own) are outside what this can judge.

use super::BlockRef;
use super::LeakCx;
use super::{DetectContext, LeakDetector, LeakFinding};
use crate::device::DeviceId;
use crate::tracking::metadata::flags;
use parking_lot::Mutex;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::{Bfs, Walker};
use petgraph::Direction;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Acquire, Ordering::Relaxed};
use std::sync::Arc;

/// Edges of the strongly connected component `scc` whose removal leaves it acyclic: the
/// back edges of a depth-first search inside it from its smallest node (a self-loop is
/// its own back edge). Removing every back edge of a DFS leaves a DAG.
fn feedback_edges(
    g: &StableDiGraph<Node, ()>,
    scc: &[NodeIndex],
    keys: &HashMap<NodeIndex, (u8, usize)>,
) -> Vec<(NodeIndex, NodeIndex)> {
    let inside: HashSet<NodeIndex> = scc.iter().copied().collect();
    let Some(&start) = scc.iter().min_by_key(|n| keys.get(n)) else {
        return Vec::new();
    };
    // 0: unseen, 1: on the stack, 2: done.
    let mut state: HashMap<NodeIndex, u8> = HashMap::new();
    let mut out = Vec::new();
    let mut stack: Vec<(NodeIndex, Vec<NodeIndex>)> = Vec::new();
    let succ = |n: NodeIndex| -> Vec<NodeIndex> {
        let mut v: Vec<NodeIndex> = g
            .neighbors_directed(n, Direction::Outgoing)
            .filter(|m| inside.contains(m))
            .collect();
        v.sort_by_key(|m| std::cmp::Reverse(keys.get(m).copied()));
        v
    };
    state.insert(start, 1);
    stack.push((start, succ(start)));
    while let Some((n, next)) = stack.last_mut() {
        let n = *n;
        match next.pop() {
            Some(m) => match state.get(&m).copied().unwrap_or(0) {
                0 => {
                    state.insert(m, 1);
                    let s = succ(m);
                    stack.push((m, s));
                }
                1 => out.push((n, m)),
                _ => {}
            },
            None => {
                state.insert(n, 2);
                stack.pop();
            }
        }
    }
    out
}

#[derive(Debug, Clone)]
struct Node {
    size: usize,
    slot: u32,
    id: u32,
    persistent_untracked: bool,
    /// Strong handles of a shared node (`None` for a plain linked allocation).
    strong: Option<Arc<AtomicUsize>>,
}

/// An edge whose downgrade from a strong to a weak hold breaks a leaked cycle: `from`
/// holds `to`. Addresses are the blocks' addresses in their device's pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CycleBreak {
    /// Device of both blocks.
    pub device: DeviceId,
    /// The holder's block address.
    pub from: usize,
    /// The held block's address.
    pub to: usize,
    /// Tracking ids of the two (0: untracked).
    pub from_id: u32,
    /// See `from_id`.
    pub to_id: u32,
}

#[derive(Default)]
struct Graph {
    g: StableDiGraph<Node, ()>,
    index: HashMap<(u8, usize), NodeIndex>,
    /// Cycles already announced, by their smallest node key.
    announced: HashSet<(u8, usize)>,
    /// The edges whose downgrade breaks each leaked cycle, from the last check.
    breaks: Vec<CycleBreak>,
}

/// The relationship detector of one manager.
pub(crate) struct RelationshipDetector {
    enabled: AtomicBool,
    graph: Mutex<Graph>,
}

impl RelationshipDetector {
    pub(crate) fn new(on: bool) -> Self {
        Self {
            enabled: AtomicBool::new(on),
            graph: Mutex::new(Graph::default()),
        }
    }

    fn node(g: &mut Graph, cx: &LeakCx<'_>, a: &BlockRef<'_>) -> NodeIndex {
        let key = (a.device.0, a.addr);
        if let Some(&n) = g.index.get(&key) {
            return n;
        }
        let slot = a.slot;
        let id = if slot != 0 {
            cx.tracker.read(slot).map_or(0, |m| m.id)
        } else {
            0
        };
        let n = g.g.add_node(Node {
            size: a.len,
            slot,
            id,
            persistent_untracked: false,
            strong: None,
        });
        g.index.insert(key, n);
        n
    }

    pub(crate) fn link(&self, cx: &LeakCx<'_>, owner: &BlockRef<'_>, owned: &BlockRef<'_>) -> bool {
        if !self.enabled.load(Relaxed) || owner.len == 0 || owned.len == 0 {
            return false;
        }
        let mut g = self.graph.lock();
        // Mark under the lock, so that a drop racing with this link finds the node.
        let pa = owner.set_marks(super::marks::LINKED);
        let pb = owned.set_marks(super::marks::LINKED);
        let a = Self::node(&mut g, cx, owner);
        let b = Self::node(&mut g, cx, owned);
        if pa & super::marks::PERSISTED != 0 {
            g.g[a].persistent_untracked = true;
        }
        if pb & super::marks::PERSISTED != 0 {
            g.g[b].persistent_untracked = true;
        }
        if g.g.find_edge(a, b).is_none() {
            g.g.add_edge(a, b, ());
        }
        true
    }

    /// A shared handle's block becomes a node with its count of strong handles. `false`
    /// when the detector is off or the block is zero-sized.
    pub(crate) fn add_shared(
        &self,
        cx: &LeakCx<'_>,
        a: &BlockRef<'_>,
        strong: Arc<AtomicUsize>,
    ) -> bool {
        if !self.enabled.load(Relaxed) || a.len == 0 {
            return false;
        }
        let mut g = self.graph.lock();
        let prev = a.set_marks(super::marks::LINKED);
        let n = Self::node(&mut g, cx, a);
        g.g[n].strong = Some(strong);
        if prev & super::marks::PERSISTED != 0 {
            g.g[n].persistent_untracked = true;
        }
        true
    }

    /// The edges whose downgrade breaks each leaked cycle, as the last check found them.
    pub(crate) fn breaks(&self) -> Vec<CycleBreak> {
        self.graph.lock().breaks.clone()
    }

    pub(crate) fn unlink(&self, owner: &BlockRef<'_>, owned: &BlockRef<'_>) {
        let mut g = self.graph.lock();
        let ka = (owner.device.0, owner.addr);
        let kb = (owned.device.0, owned.addr);
        if let (Some(&a), Some(&b)) = (g.index.get(&ka), g.index.get(&kb)) {
            if let Some(e) = g.g.find_edge(a, b) {
                g.g.remove_edge(e);
            }
        }
    }

    /// Removes the edge between the blocks at `from` and `to` of `device`.
    pub(crate) fn unlink_addr(&self, device: DeviceId, from: usize, to: usize) {
        let mut g = self.graph.lock();
        if let (Some(&a), Some(&b)) = (g.index.get(&(device.0, from)), g.index.get(&(device.0, to)))
        {
            if let Some(e) = g.g.find_edge(a, b) {
                g.g.remove_edge(e);
            }
        }
    }

    /// A linked allocation is being freed.
    pub(crate) fn remove(&self, device: DeviceId, addr: usize) {
        let mut g = self.graph.lock();
        if let Some(n) = g.index.remove(&(device.0, addr)) {
            g.g.remove_node(n);
            g.announced.remove(&(device.0, addr));
        }
    }

    /// An untracked allocation was persisted.
    pub(crate) fn set_persistent(&self, device: DeviceId, addr: usize) {
        let mut g = self.graph.lock();
        if let Some(&n) = g.index.get(&(device.0, addr)) {
            g.g[n].persistent_untracked = true;
        }
    }

    /// Linked allocations now (nodes of the graph).
    pub(crate) fn nodes(&self) -> usize {
        self.graph.lock().g.node_count()
    }
}

impl LeakDetector for RelationshipDetector {
    fn name(&self) -> &'static str {
        "relationship"
    }
    fn enabled(&self) -> bool {
        self.enabled.load(Relaxed)
    }
    fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Relaxed);
    }
    fn detect(&self, cx: &DetectContext<'_>, findings: &mut Vec<LeakFinding>) {
        let cx = &cx.cx;
        let mut guard = self.graph.lock();
        let gr = &mut *guard;
        let g = &gr.g;
        let persistent = |n: NodeIndex| {
            let node = &g[n];
            node.persistent_untracked
                || (node.slot != 0
                    && cx
                        .tracker
                        .read(node.slot)
                        .is_some_and(|m| m.id == node.id && m.flags & flags::PERSISTENT != 0))
        };
        let mut reached: HashSet<NodeIndex> = HashSet::new();
        for n in g.node_indices() {
            let held = g.neighbors_directed(n, Direction::Incoming).count();
            let root = held == 0 || g[n].strong.as_ref().is_some_and(|s| s.load(Acquire) > held);
            if (root || persistent(n)) && !reached.contains(&n) {
                reached.extend(Bfs::new(g, n).iter(g));
            }
        }
        let keys: HashMap<NodeIndex, (u8, usize)> =
            gr.index.iter().map(|(k, &n)| (n, *k)).collect();
        let mut announce = Vec::new();
        let mut breaks = Vec::new();
        for scc in petgraph::algo::tarjan_scc(g) {
            let cyclic = scc.len() > 1 || g.find_edge(scc[0], scc[0]).is_some();
            if !cyclic || scc.iter().any(|n| reached.contains(n)) {
                continue;
            }
            let key = scc.iter().filter_map(|n| keys.get(n)).min().copied();
            let ids: Vec<u32> = scc.iter().map(|&n| g[n].id).filter(|&i| i != 0).collect();
            let site = scc.iter().find_map(|&n| {
                let node = &g[n];
                (node.slot != 0)
                    .then(|| cx.tracker.read(node.slot))
                    .flatten()
                    .filter(|m| m.id == node.id)
                    .and_then(|m| cx.tracker.site_name(m.site))
            });
            let cut = feedback_edges(g, &scc, &keys);
            let name = |n: NodeIndex| match (g[n].id, keys.get(&n)) {
                (0, Some(k)) => format!("{:#x}", k.1),
                (id, _) => format!("#{id}"),
            };
            let advice = cut
                .iter()
                .map(|&(a, b)| format!("{} -> {}", name(a), name(b)))
                .collect::<Vec<_>>()
                .join(", ");
            for &(a, b) in &cut {
                if let (Some(ka), Some(kb)) = (keys.get(&a), keys.get(&b)) {
                    breaks.push(CycleBreak {
                        device: DeviceId(ka.0),
                        from: ka.1,
                        to: kb.1,
                        from_id: g[a].id,
                        to_id: g[b].id,
                    });
                }
            }
            let f = LeakFinding {
                detector: "relationship",
                site,
                ids,
                count: scc.len(),
                bytes: scc.iter().map(|&n| g[n].size).sum(),
                confirmed: true,
                info: format!(
                    "ownership cycle of {} allocation(s) that no root reaches; downgrading \
                     {advice} from a strong to a weak hold breaks it",
                    scc.len()
                ),
            };
            if let Some(k) = key {
                announce.push((k, f.ids.first().copied().unwrap_or(0), f.info.clone()));
            }
            findings.push(f);
        }
        gr.breaks = breaks;
        for (k, id, info) in announce {
            if gr.announced.insert(k) {
                cx.emit_confirmed(id, &|| info.clone());
            }
        }
    }
}
