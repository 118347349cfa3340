//! The few Linux `/proc` figures the crates read: fields of `/proc/self/status`,
//! `/proc/meminfo` and `/proc/self/smaps_rollup` (all `Name:  1234 kB` lines), and the
//! reset of the resident high-water mark. One parser for all of them, used by the CPU
//! device, the benchmarks, the demo and the tests. Elsewhere (and under Miri, which
//! isolates the file system) every figure is `None`.
#![deny(unsafe_code)]

/// The value of field `field` in text of `Name:  1234 kB` lines, in bytes (the files say
/// kB and mean KiB); `None` if the field is missing or not a number.
pub fn kib_field_bytes(text: &str, field: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        let kib: u64 = rest.split_whitespace().next()?.parse().ok()?;
        kib.checked_mul(1024)
    })
}

fn read(path: &str) -> Option<String> {
    if cfg!(miri) {
        return None;
    }
    std::fs::read_to_string(path).ok()
}

/// A field of `/proc/self/status` in bytes (`VmRSS`, `VmHWM`, `RssAnon`, ...).
pub fn status_bytes(field: &str) -> Option<u64> {
    kib_field_bytes(&read("/proc/self/status")?, field)
}

/// A field of `/proc/meminfo` in bytes (`MemTotal`, `MemAvailable`, `Hugepagesize`, ...).
pub fn meminfo_bytes(field: &str) -> Option<u64> {
    kib_field_bytes(&read("/proc/meminfo")?, field)
}

/// A field of `/proc/self/smaps_rollup` in bytes (`AnonHugePages`, `Rss`, ...).
pub fn smaps_rollup_bytes(field: &str) -> Option<u64> {
    kib_field_bytes(&read("/proc/self/smaps_rollup")?, field)
}

/// Resets this process's resident high-water mark (`VmHWM`) to its current resident size
/// (writes `5` to `/proc/self/clear_refs`, Linux 4.0 and later). Returns whether it
/// worked; if not, a later `VmHWM` includes every earlier peak.
pub fn reset_peak_resident() -> bool {
    !cfg!(miri) && std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_parse_in_bytes_and_only_whole_names_match() {
        let s = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nRssAnon:\t 3 kB\nBad:\tx kB\n";
        assert_eq!(kib_field_bytes(s, "VmRSS"), Some(1024 * 1024));
        assert_eq!(kib_field_bytes(s, "VmHWM"), Some(2048 * 1024));
        assert_eq!(kib_field_bytes(s, "RssAnon"), Some(3 * 1024));
        // `Vm` is no field of its own, though lines start with it.
        assert_eq!(kib_field_bytes(s, "Vm"), None);
        assert_eq!(kib_field_bytes(s, "VmSwap"), None);
        assert_eq!(kib_field_bytes(s, "Bad"), None);
        let m = "MemTotal:       16318480 kB\nMemFree:  1 kB\n";
        assert_eq!(kib_field_bytes(m, "MemTotal"), Some(16_318_480 * 1024));
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn this_process_and_this_machine_have_figures() {
        let rss = status_bytes("VmRSS").expect("VmRSS");
        let total = meminfo_bytes("MemTotal").expect("MemTotal");
        assert!(rss > 0 && rss < total, "{rss} of {total}");
    }
}
