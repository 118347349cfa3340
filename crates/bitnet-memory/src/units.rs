//! Units for people: byte counts with binary prefixes. Used by every layer's `Display`
//! and messages, so it sits below all of them.
#![deny(unsafe_code)]

/// Formats bytes with a binary unit, three significant digits (`1.5 KiB`, `300 MiB`).
pub fn fmt_bytes(b: usize) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else if v >= 100.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
