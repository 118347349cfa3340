//! Site signatures: suspects from one allocation site, found by one detector, become one
//! finding with a count, so a leak that repeats in a loop is reported once.
//!
//! Only tracked suspects carry a site; untracked ones are already grouped per size class
//! by the detector that counted them. Confirmed and suspected findings stay apart.

use super::{DetectContext, LeakDetector, LeakFinding};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// The site-signature stage of one manager.
pub(crate) struct SiteSignatures {
    pub(crate) enabled: AtomicBool,
}

/// Groups `findings` by (detector, site, confirmed); findings without a site stay as
/// they are. Groups keep the order of their first finding.
pub fn group_by_site(findings: Vec<LeakFinding>) -> Vec<LeakFinding> {
    let mut out: Vec<LeakFinding> = Vec::with_capacity(findings.len());
    let mut at: HashMap<(&'static str, String, bool), usize> = HashMap::new();
    for f in findings {
        let Some(site) = f.site.clone() else {
            out.push(f);
            continue;
        };
        match at.get(&(f.detector, site.clone(), f.confirmed)) {
            Some(&i) => {
                let g = &mut out[i];
                g.count += f.count;
                g.bytes += f.bytes;
                g.ids.extend(f.ids);
            }
            None => {
                at.insert((f.detector, site, f.confirmed), out.len());
                out.push(f);
            }
        }
    }
    for (&(_, _, _), &i) in &at {
        let g = &mut out[i];
        if g.ids.len() > 1 {
            g.info = format!(
                "{} allocations from this site; first: {}",
                g.ids.len(),
                g.info
            );
        }
    }
    out
}

impl LeakDetector for SiteSignatures {
    fn name(&self) -> &'static str {
        "site"
    }
    fn enabled(&self) -> bool {
        self.enabled.load(Relaxed)
    }
    fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Relaxed);
    }
    fn detect(&self, _cx: &DetectContext<'_>, findings: &mut Vec<LeakFinding>) {
        *findings = group_by_site(std::mem::take(findings));
    }
}
