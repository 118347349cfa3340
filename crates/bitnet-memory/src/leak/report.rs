//! [`LeakReport`]: live (or leaked) allocations grouped by site, largest first, with the
//! untracked rest as exact per-class counts.

use super::counts::Counts;
use super::LeakCx;
use super::{BlockKey, LeakFinding};
use crate::device::DeviceId;
use crate::tracking::metadata::{flags, CompactAllocationMetadata};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// Tracked allocations of one site.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteGroup {
    /// `file:line:column`, or `"(unknown site)"`.
    pub site: String,
    /// Allocations.
    pub count: usize,
    /// Requested bytes.
    pub bytes: usize,
    /// How many of them are marked persistent.
    pub persistent: usize,
    /// Age of the oldest, in milliseconds.
    pub oldest_age_ms: u32,
    /// Their tracking ids (at most 16).
    pub ids: Vec<u32>,
    /// Backtrace of the first one, when backtraces were captured.
    pub backtrace: Option<String>,
}

/// Untracked live blocks of one size class: an exact count, no site.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassGroup {
    /// Device.
    pub device: DeviceId,
    /// Block size of the class; `None` for blocks of the large pool.
    pub block_size: Option<usize>,
    /// Blocks.
    pub count: usize,
}

/// What is live (or, from a [`LeakCheck`](crate::LeakCheck), what was left behind).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeakReport {
    /// Allocations in the report (exact: from the pool's counts).
    pub allocations: usize,
    /// Bytes in the report: the exact requested bytes, or, where that is smaller, the
    /// tracked bytes plus the block bytes of untracked ones.
    pub bytes: usize,
    /// Tracked allocations by site, largest first.
    pub sites: Vec<SiteGroup>,
    /// Untracked allocations by size class, largest class first.
    pub untracked: Vec<ClassGroup>,
    /// What the detectors found (only from [`MemoryManager::leak_report`](crate::MemoryManager::leak_report)).
    pub findings: Vec<LeakFinding>,
    /// Registered resources still registered (only from `leak_report`): not leaks by
    /// themselves, but memory someone must free.
    pub resources: Vec<crate::lifecycle::ResourceInfo>,
}

impl LeakReport {
    /// Whether nothing is in the report (no allocation, no finding).
    pub fn is_empty(&self) -> bool {
        self.allocations == 0 && self.findings.is_empty()
    }
}

/// Builds a report from exact `counts` (minus `baseline`, if any) and the tracked `records`
/// to show (those live now, or those made since the baseline).
pub(crate) fn build(
    cx: &LeakCx<'_>,
    counts: &Counts,
    baseline: Option<&Counts>,
    records: impl Iterator<Item = CompactAllocationMetadata>,
) -> LeakReport {
    let now = cx.tracker.now_ms();
    let mut by_site: HashMap<u16, SiteGroup> = HashMap::new();
    let mut guessed: HashMap<BlockKey, usize> = HashMap::new();
    let (mut n_tracked, mut tracked_bytes) = (0usize, 0usize);
    for m in records {
        n_tracked += 1;
        tracked_bytes += m.size_bytes();
        let dev = DeviceId(m.device);
        let class = cx
            .devices
            .get(m.device as usize)
            .and_then(|d| d.class_for(m.size_bytes().max(1), 1));
        *guessed
            .entry(BlockKey {
                device: dev,
                class: class.map(|c| c as u16),
            })
            .or_default() += 1;
        let g = by_site.entry(m.site).or_insert_with(|| SiteGroup {
            site: cx
                .tracker
                .site_name(m.site)
                .unwrap_or_else(|| "(unknown site)".to_string()),
            count: 0,
            bytes: 0,
            persistent: 0,
            oldest_age_ms: 0,
            ids: Vec::new(),
            backtrace: None,
        });
        g.count += 1;
        g.bytes += m.size_bytes();
        g.persistent += usize::from(m.flags & flags::PERSISTENT != 0);
        g.oldest_age_ms = g.oldest_age_ms.max(now.saturating_sub(m.timestamp_ms));
        if g.ids.len() < 16 {
            g.ids.push(m.id);
        }
        if g.backtrace.is_none() && m.flags & flags::BACKTRACE != 0 {
            g.backtrace = cx.tracker.sites.backtrace(m.id).map(|b| b.to_string());
        }
    }
    // Exact increase per class over the baseline (or the live count without one).
    let mut increase: BTreeMap<BlockKey, usize> = BTreeMap::new();
    for (k, &n) in &counts.blocks {
        let base = baseline.map_or(0, |b| b.get(k));
        if n > base {
            increase.insert(*k, n - base);
        }
    }
    let total_increase: usize = increase.values().sum();
    let untracked_total = total_increase.saturating_sub(n_tracked);
    // Per class: what the tracked records do not explain. A record's class is inferred
    // from its size alone, so an allocation whose alignment moved it up a class can leave
    // one block in a neighbouring class; the total is exact, so trim the rows to it.
    let mut rows: Vec<ClassGroup> = increase
        .iter()
        .filter_map(|(k, &n)| {
            let left = n.saturating_sub(guessed.get(k).copied().unwrap_or(0));
            (left > 0).then_some(ClassGroup {
                device: k.device,
                block_size: k.block_size(),
                count: left,
            })
        })
        .collect();
    let mut surplus = rows
        .iter()
        .map(|r| r.count)
        .sum::<usize>()
        .saturating_sub(untracked_total);
    for r in rows.iter_mut() {
        let cut = surplus.min(r.count);
        r.count -= cut;
        surplus -= cut;
    }
    rows.retain(|r| r.count > 0);
    rows.sort_by_key(|r| std::cmp::Reverse((r.block_size.unwrap_or(usize::MAX), r.count)));
    let untracked_bytes: usize = rows
        .iter()
        .map(|r| r.block_size.unwrap_or(0) * r.count)
        .sum();
    let exact_bytes = counts
        .live_bytes
        .saturating_sub(baseline.map_or(0, |b| b.live_bytes));
    let mut sites: Vec<SiteGroup> = by_site.into_values().collect();
    sites.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(b.count.cmp(&a.count)));
    LeakReport {
        allocations: n_tracked + untracked_total,
        bytes: exact_bytes.max(tracked_bytes + untracked_bytes),
        sites,
        untracked: rows,
        findings: Vec::new(),
        resources: Vec::new(),
    }
}

impl fmt::Display for LeakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} allocation(s), {} B", self.allocations, self.bytes)?;
        if !self.sites.is_empty() {
            writeln!(
                f,
                "  {:>8} {:>14} {:>6} {:>10}  site",
                "count", "bytes", "pers.", "oldest ms"
            )?;
            for s in &self.sites {
                writeln!(
                    f,
                    "  {:>8} {:>14} {:>6} {:>10}  {}",
                    s.count, s.bytes, s.persistent, s.oldest_age_ms, s.site
                )?;
                if let Some(bt) = &s.backtrace {
                    for line in bt.lines().take(12) {
                        writeln!(f, "      {line}")?;
                    }
                }
            }
        }
        for c in &self.untracked {
            match c.block_size {
                Some(b) => writeln!(
                    f,
                    "  {:>8} blocks of {b} B on {} (untracked: no site)",
                    c.count, c.device
                )?,
                None => writeln!(
                    f,
                    "  {:>8} large blocks on {} (untracked: no site)",
                    c.count, c.device
                )?,
            }
        }
        for x in &self.findings {
            writeln!(f, "  {x}")?;
        }
        for r in &self.resources {
            writeln!(
                f,
                "  resource #{} '{}': {} B on device {} registered at {}{}",
                r.id,
                r.name,
                r.size,
                r.device,
                r.site,
                if r.droppable { " (droppable)" } else { "" }
            )?;
        }
        Ok(())
    }
}
