//! A cycle of tensors held through shared handles: the manager's relationship detector
//! reports it with the edge whose downgrade breaks it; breaking it there gives the memory
//! back.

use bitnet_memory::{
    Allocation, LeakConfig, MemoryConfig, MemoryManager, OwnsAllocation, Shared, ShutdownMode,
};
use bitnet_tensor::{DType, Provider, Tensor};

/// A tensor as a node of a graph of tensors that keep each other alive (an attention
/// cache entry keeping its key and value, a module keeping its parent).
struct Node<'m>(Tensor<'m>);

impl<'m> OwnsAllocation<'m> for Node<'m> {
    fn allocation(&self) -> Option<&Allocation<'m>> {
        self.0.storage().allocation()
    }
}

#[test]
fn a_cycle_of_tensors_is_reported_broken_and_its_memory_returns() {
    let leak = LeakConfig {
        on_shutdown: ShutdownMode::Silent,
        ..LeakConfig::default()
    };
    let mm = MemoryManager::new(MemoryConfig::default().leak(leak)).unwrap();
    let p = Provider::Manager(&mm);
    let dims = [[256, 1024], [512, 512], [64, 64]];
    let nodes: Vec<Shared<'_, Node<'_>>> = dims
        .iter()
        .map(|d| Shared::new(&mm, Node(Tensor::zeros(&p, DType::F32, d).unwrap())))
        .collect();
    let bytes: usize = dims.iter().map(|d| d[0] * d[1] * 4).sum();
    // 0 -> 1 -> 2 -> 0.
    for i in 0..3 {
        nodes[i].hold(&nodes[(i + 1) % 3]);
    }
    assert!(mm.check_leaks().is_empty(), "held from outside: no leak");
    let weak: Vec<_> = nodes.iter().map(|n| n.downgrade()).collect();
    let addrs: Vec<usize> = nodes.iter().map(|n| n.addr()).collect();
    drop(nodes);
    assert_eq!(
        mm.metrics().live_bytes(),
        bytes,
        "the cycle keeps all three"
    );
    let findings = mm.check_leaks();
    let cycle: Vec<_> = findings
        .iter()
        .filter(|f| f.detector == "relationship")
        .collect();
    assert_eq!(cycle.len(), 1, "{findings:?}");
    assert_eq!((cycle[0].count, cycle[0].bytes), (3, bytes));
    let breaks = mm.cycle_breaks();
    assert_eq!(
        breaks.len(),
        1,
        "one downgrade breaks a simple cycle: {breaks:?}"
    );
    let cut = breaks[0];
    let from = addrs.iter().position(|&a| a == cut.from).expect("a node");
    assert_eq!(
        addrs[(from + 1) % 3],
        cut.to,
        "the edge is one of the cycle's"
    );
    // Break it there: upgrade the holder for a moment, downgrade its hold.
    let holder = weak[from].upgrade().expect("the cycle keeps it");
    assert_eq!(holder.downgrade_hold_of(cut.to), 1);
    let own = dims[from][0] * dims[from][1] * 4;
    assert_eq!(
        mm.metrics().live_bytes(),
        own,
        "the rest of the chain went with the downgrade; the holder is still held"
    );
    drop(holder);
    assert!(weak.iter().all(|w| w.upgrade().is_none()));
    assert_eq!(mm.metrics().live_bytes(), 0, "the memory returned");
    assert!(mm.check_leaks().is_empty());
}
