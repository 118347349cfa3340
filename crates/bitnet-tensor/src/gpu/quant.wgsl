// Absmax int8 quantisation of f32 rows, as `ops::quant::absmax_quantize_row` computes it:
//   max = max(max_i |x_i|, eps);  s = 127 / max;  q_i = clamp(round(x_i * s), -128, 127);
//   scale = 1 / s
// with `round` half away from zero (Rust's `f32::round`) and both divisions correctly
// rounded (WGSL's `/` may be off by 2.5 ulp, so they are done in integers: `div_rn`).
//
// Three entry points, dispatched in this order into one compute pass:
//   row_scale    one workgroup per row: scales[r] = s (the multiplier, temporarily)
//   quantize     one invocation per output word: 4 int8 values, whatever rows they belong to
//                (a row of k % 4 != 0 values shares its boundary words with its neighbours)
//   finish_scale one invocation per row: scales[r] = 1 / s (the dequantization scale)

struct Params {
    rows: u32,
    k: u32,
    // `QUANT_EPS`, passed from Rust so the constant is the CPU's, bit for bit.
    eps: f32,
    // Output words: ceil(rows * k / 4).
    words: u32,
}

// All storage is read_write, even what is only read: operands may share one pooled buffer,
// and a buffer may not be both read-only and read-write storage in one dispatch.
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> q: array<u32>;
@group(0) @binding(3) var<storage, read_write> scales: array<f32>;

const WG: u32 = 64u;
var<workgroup> part: array<f32, WG>;

// a / b correctly rounded (to nearest, ties to even) for finite positive normal a and b whose
// quotient is normal: the 24-bit mantissas are divided bit by bit, with one rounding bit and
// the remainder as the sticky bit.
fn div_rn(a: f32, b: f32) -> f32 {
    let ab = bitcast<u32>(a);
    let bb = bitcast<u32>(b);
    let mb = (bb & 0x7fffffu) | 0x800000u;
    var r = (ab & 0x7fffffu) | 0x800000u;
    var e = i32((ab >> 23u) & 0xffu) - i32((bb >> 23u) & 0xffu);
    if (r < mb) {
        r = r << 1u;
        e = e - 1;
    }
    // Now 1 <= r / mb < 2: 25 quotient bits, the first one 1.
    var quo = 0u;
    for (var i = 0u; i < 25u; i += 1u) {
        quo = quo << 1u;
        if (r >= mb) {
            r = r - mb;
            quo = quo | 1u;
        }
        r = r << 1u;
    }
    var m = quo >> 1u;
    if ((quo & 1u) == 1u && (r != 0u || (m & 1u) == 1u)) {
        m = m + 1u;
    }
    if (m == 0x1000000u) {
        m = m >> 1u;
        e = e + 1;
    }
    return bitcast<f32>((u32(e + 127) << 23u) | (m & 0x7fffffu));
}

// Round half away from zero, like Rust's `f32::round` (WGSL's `round` ties to even).
// `v - trunc(v)` is exact: it only drops the integer bits.
fn round_half_away(v: f32) -> f32 {
    let t = trunc(v);
    if (abs(v - t) >= 0.5) {
        return t + sign(v);
    }
    return t;
}

@compute @workgroup_size(64)
fn row_scale(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = wid.x + wid.y * nwg.x;
    if (r >= p.rows) {
        return;
    }
    let base = r * p.k;
    var m = 0.0;
    for (var i = lid; i < p.k; i += WG) {
        m = max(m, abs(x[base + i]));
    }
    // The maximum does not depend on the order it is taken in.
    part[lid] = m;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            part[lid] = max(part[lid], part[lid + s]);
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        scales[r] = div_rn(127.0, max(part[0], p.eps));
    }
}

@compute @workgroup_size(64)
fn quantize(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let w = gid.x + gid.y * nwg.x * WG;
    if (w >= p.words) {
        return;
    }
    let total = p.rows * p.k;
    var word = 0u;
    for (var j = 0u; j < 4u; j += 1u) {
        let f = 4u * w + j;
        if (f < total) {
            let v = round_half_away(x[f] * scales[f / p.k]);
            let qv = i32(clamp(v, -128.0, 127.0));
            word = word | ((u32(qv) & 0xffu) << (8u * j));
        }
    }
    // Bytes past the last value (padding of the last word) are written as 0.
    q[w] = word;
}

@compute @workgroup_size(64)
fn finish_scale(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let r = gid.x + gid.y * nwg.x * WG;
    if (r >= p.rows) {
        return;
    }
    scales[r] = div_rn(1.0, scales[r]);
}
