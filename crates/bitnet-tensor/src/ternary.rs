//! Packing of ternary weights: 4 per byte, 2 bits each, first weight in the low bits.
//!
//! Codes: `00` = 0, `01` = +1, `10` = -1 (`11` is never written; it decodes to 0).

/// The 2-bit code of a ternary value (anything positive is +1, negative -1).
#[inline]
pub fn encode(v: i8) -> u8 {
    match v.signum() {
        1 => 0b01,
        -1 => 0b10,
        _ => 0b00,
    }
}

/// The value of a 2-bit code.
#[inline]
pub fn decode(code: u8) -> i8 {
    match code & 0b11 {
        0b01 => 1,
        0b10 => -1,
        _ => 0,
    }
}

/// For every byte, its four weights: one table lookup unpacks a byte.
pub static DECODE_LUT: [[i8; 4]; 256] = build_lut();

const fn build_lut() -> [[i8; 4]; 256] {
    let mut t = [[0i8; 4]; 256];
    let mut b = 0;
    while b < 256 {
        let mut j = 0;
        while j < 4 {
            t[b][j] = match (b >> (2 * j)) & 0b11 {
                0b01 => 1,
                0b10 => -1,
                _ => 0,
            };
            j += 1;
        }
        b += 1;
    }
    t
}

/// Packs `values` (each -1, 0 or +1) into `out` (`values.len().div_ceil(4)` bytes).
pub fn pack(values: &[i8], out: &mut [u8]) {
    assert_eq!(out.len(), values.len().div_ceil(4), "packed length");
    for (o, chunk) in out.iter_mut().zip(values.chunks(4)) {
        let mut b = 0u8;
        for (j, &v) in chunk.iter().enumerate() {
            b |= encode(v) << (2 * j);
        }
        *o = b;
    }
}

/// The value at element `i` of packed bytes.
#[inline]
pub fn get(packed: &[u8], i: usize) -> i8 {
    decode(packed[i / 4] >> (2 * (i % 4)))
}

/// Unpacks `out.len()` values from `packed`.
pub fn unpack(packed: &[u8], out: &mut [i8]) {
    for (i, o) in out.iter_mut().enumerate() {
        *o = get(packed, i);
    }
}
