//! Page size as a benchmark condition: `--no-huge-pages` runs every allocator on 4 KiB
//! pages, so that their times compare the allocators and not the pages they got.
//!
//! mimalloc asks for transparent huge pages on its segments, and a first touch of a huge
//! page costs a fraction of 512 small faults, and misses the TLB far less; our pool keeps
//! huge pages to the ranges it can count (docs/resident.md). Disabling them for the whole
//! process (`prctl(PR_SET_THP_DISABLE)`) takes that difference out. The setting is
//! inherited by child processes, so the cold runs get it too.

/// Disables transparent huge pages for this process and the processes it starts, and
/// reads the setting back: `Ok(())` only if the kernel reports it set.
pub fn disable_huge_pages() -> Result<(), String> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes one integer flag and no pointers; the unused
        // arguments must be zero.
        let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if rc != 0 {
            return Err(format!(
                "--no-huge-pages: prctl(PR_SET_THP_DISABLE) failed: {}",
                std::io::Error::last_os_error()
            ));
        }
        match huge_pages_disabled() {
            Some(true) => Ok(()),
            _ => Err("--no-huge-pages: the kernel did not keep PR_SET_THP_DISABLE".into()),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err("--no-huge-pages: only Linux can disable transparent huge pages per process".into())
    }
}

/// Whether transparent huge pages are disabled for this process (`None`: cannot tell).
pub fn huge_pages_disabled() -> Option<bool> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_GET_THP_DISABLE takes no pointers; the unused arguments must be zero.
        let rc = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        (rc >= 0).then_some(rc == 1)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// How the header of a table names the pages the run had.
pub fn describe() -> &'static str {
    match huge_pages_disabled() {
        Some(true) => "4 KiB pages only (transparent huge pages disabled for the process)",
        Some(false) => "transparent huge pages where each allocator asks for them",
        None => "pages as the system gives them",
    }
}

/// The pages of the run, for the JSON report: `{"huge_pages_disabled": true|false|null}`.
pub fn section() -> serde_json::Value {
    serde_json::json!({ "huge_pages_disabled": huge_pages_disabled() })
}
