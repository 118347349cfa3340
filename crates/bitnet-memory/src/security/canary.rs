//! Canaries: the bytes hardened mode puts before and after each block, their check, and
//! the wipe of a freed block. The only raw memory this module touches is a guarded
//! block's own, while it is live.

use super::{Corruption, Guarded, CANARY_BYTES};

/// The canary's byte `i` of the block at `block`: mixed with the address, so a canary
/// copied from another block does not pass.
fn byte(block: usize, i: usize) -> u8 {
    let m = (block as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    ((m >> ((i % 8) * 8)) as u8) ^ 0xA5 ^ (i as u8)
}

/// Writes both canaries of `g`.
///
/// # Safety
/// `g.block` is a live host-visible block of `g.total` bytes owned by the caller.
pub(crate) unsafe fn arm(g: &Guarded) {
    let base = std::ptr::with_exposed_provenance_mut::<u8>(g.block);
    for i in 0..CANARY_BYTES {
        // SAFETY: both canaries lie inside the block (`front` >= CANARY_BYTES when not 0,
        // and `total` = front + size + CANARY_BYTES).
        unsafe {
            if g.front > 0 {
                base.add(g.front - CANARY_BYTES + i).write(byte(g.block, i));
            }
            base.add(g.front + g.size + i)
                .write(byte(g.block, i + CANARY_BYTES));
        }
    }
}

/// The first overwritten canary of the guarded block whose owner's address is `addr`.
///
/// # Safety
/// As [`arm`]: the block is live and host-visible.
pub(crate) unsafe fn check(addr: usize, g: &Guarded) -> Option<Corruption> {
    let base = std::ptr::with_exposed_provenance::<u8>(g.block);
    let read = |at: usize| -> [u8; CANARY_BYTES] {
        let mut b = [0u8; CANARY_BYTES];
        // SAFETY: the caller's contract; `at..at + CANARY_BYTES` is inside the block.
        unsafe { std::ptr::copy_nonoverlapping(base.add(at), b.as_mut_ptr(), CANARY_BYTES) };
        b
    };
    let site = || g.site.to_string();
    if g.front > 0 {
        let found = read(g.front - CANARY_BYTES);
        if let Some(i) = (0..CANARY_BYTES).find(|&i| found[i] != byte(g.block, i)) {
            return Some(Corruption {
                addr,
                size: g.size,
                site: site(),
                side: "before",
                offset: i as isize - CANARY_BYTES as isize,
                found: found.to_vec(),
            });
        }
    }
    let found = read(g.front + g.size);
    let i = (0..CANARY_BYTES).find(|&i| found[i] != byte(g.block, i + CANARY_BYTES))?;
    Some(Corruption {
        addr,
        size: g.size,
        site: site(),
        side: "after",
        offset: (g.size + i) as isize,
        found: found.to_vec(),
    })
}

/// Fills the whole pool block of `g` with `value` (poison, or zeros for sensitive data).
///
/// # Safety
/// As [`arm`].
pub(crate) unsafe fn wipe(g: &Guarded, value: u8) {
    let base = std::ptr::with_exposed_provenance_mut::<u8>(g.block);
    // SAFETY: the caller's contract.
    unsafe { base.write_bytes(value, g.total) };
    // The block goes back to the pool next: keep the wipe before that.
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}
