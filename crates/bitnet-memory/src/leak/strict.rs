//! Strict scopes (opt-in prevention): a scope whose [`close`](StrictScope::close) is an
//! error when blocks made inside it are still alive and not persisted, naming their
//! sites, so a leaking decode step fails at the first step instead of after a thousand.
//!
//! It judges as a [`LeakScope`] does (the same attribution, the same suspects, also
//! reported to `check_leaks`), whether the scope detector is on or not. Tracked
//! survivors are named by site (`file:line:column`, with a count when several came from
//! one site); untracked ones (small allocations the sampler skipped) by size class,
//! found from the pool's exact counts. To have a site for every block, track every
//! allocation while debugging (`TrackingConfig` sample rate 1); large blocks are tracked
//! always by default.
#![deny(unsafe_code)]

use super::scope::{LeakScope, Suspect};
use super::LeakCx;
use crate::error::MemoryError;
use std::collections::BTreeMap;

/// An open strict scope; end it with [`close`](Self::close) to learn whether it leaked.
/// Dropping it without closing ends it as a plain scope would.
#[must_use = "close() says whether the scope leaked"]
pub struct StrictScope<'m> {
    scope: LeakScope<'m>,
    name: String,
}

impl std::fmt::Debug for StrictScope<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StrictScope")
            .field("name", &self.name)
            .finish()
    }
}

impl<'m> StrictScope<'m> {
    pub(crate) fn open(cx: LeakCx<'m>, name: &str) -> Self {
        Self {
            scope: LeakScope::open_forced(cx, name),
            name: name.to_string(),
        }
    }

    /// Ends the scope: `Ok` when every block made inside it was freed or persisted, else
    /// [`MemoryError::ScopeLeaked`] with their count, bytes and sites.
    pub fn close(self) -> Result<(), MemoryError> {
        let cx = self.scope.cx;
        let suspects = self.scope.finish();
        if suspects.is_empty() {
            return Ok(());
        }
        let (mut count, mut bytes) = (0, 0);
        let mut sites: BTreeMap<String, usize> = BTreeMap::new();
        for s in &suspects {
            match s {
                Suspect::Tracked { size, site, .. } => {
                    count += 1;
                    bytes += size;
                    let name = cx
                        .tracker
                        .site_name(*site)
                        .unwrap_or_else(|| "(unknown site)".to_string());
                    *sites.entry(name).or_default() += 1;
                }
                Suspect::Untracked { key, count: n, .. } => {
                    count += n;
                    bytes += key.block_size().unwrap_or(0) * n;
                    let what = key
                        .block_size()
                        .map_or("large blocks".to_string(), |b| format!("{b} B blocks"));
                    *sites
                        .entry(format!("(untracked, {what} on {})", key.device))
                        .or_default() += n;
                }
            }
        }
        Err(MemoryError::ScopeLeaked {
            scope: self.name,
            count,
            bytes,
            sites: sites
                .into_iter()
                .map(|(s, n)| if n > 1 { format!("{s} x{n}") } else { s })
                .collect(),
        })
    }
}
