//! Resident memory of this process, from `/proc/self/status` (Linux; `None` elsewhere).

/// A field of `/proc/self/status` in bytes (`VmRSS`, `VmHWM`, ...).
pub fn status_bytes(field: &str) -> Option<usize> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status(&s, field)
}

fn parse_status(status: &str, field: &str) -> Option<usize> {
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        let kib: usize = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib * 1024)
    })
}

/// Current resident set size in bytes.
pub fn current() -> Option<usize> {
    status_bytes("VmRSS")
}

/// Peak resident set size (`VmHWM`) in bytes.
pub fn peak() -> Option<usize> {
    status_bytes("VmHWM")
}

/// Resets the peak to the current resident size (writes `5` to `/proc/self/clear_refs`,
/// Linux 4.0 and later), so two runs in one process each get their own peak. Returns
/// whether it worked; if not, a later peak includes every earlier one.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_fields() {
        let s = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(parse_status(s, "VmRSS"), Some(1024 * 1024));
        assert_eq!(parse_status(s, "VmHWM"), Some(2048 * 1024));
        assert_eq!(parse_status(s, "VmSwap"), None);
    }
}
