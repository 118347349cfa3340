//! Resident memory of this process, from `/proc/self/status` (Linux; `None` elsewhere),
//! read by `bitnet_memory::procfs` (the one parser of those files).

/// A field of `/proc/self/status` in bytes (`VmRSS`, `VmHWM`, ...).
pub fn status_bytes(field: &str) -> Option<usize> {
    bitnet_memory::procfs::status_bytes(field).map(|b| b as usize)
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
    bitnet_memory::procfs::reset_peak_resident()
}
