// BitLinear, as `ops::bitlinear` computes it:
//   y[r, o] = f32(sum_i w[o, i] * x[r, i]) * (w_scale * x_scale[r])
// over int8 activations (4 per word, first value in the low byte: the bytes of an I8 tensor)
// and ternary weights (16 per word, 2 bits each, first weight in the low bits: the bytes of a
// Ternary tensor; `01` = +1, `10` = -1, `00` and `11` = 0). Element (o, i) of the weights is
// flat index o * k + i, element (r, i) of the activations r * k + i, so any k works.
//
// One workgroup per output element (index r * n + o): its 64 invocations split the k
// products, and sum them in i32 (exact: any order gives the same sum), then invocation 0
// converts and scales once.

struct Params {
    rows: u32,
    n: u32,
    k: u32,
    w_scale: f32,
}

// All storage is read_write, even what is only read: operands may share one pooled buffer,
// and a buffer may not be both read-only and read-write storage in one dispatch.
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> xq: array<u32>;
@group(0) @binding(2) var<storage, read_write> xs: array<f32>;
@group(0) @binding(3) var<storage, read_write> w: array<u32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

const WG: u32 = 64u;
var<workgroup> part: array<i32, WG>;

// A 2-bit code to its weight: 01 -> 1, 10 -> -1, 00 and 11 -> 0.
fn tern(code: u32) -> i32 {
    return i32(code & 1u) - i32(code >> 1u);
}

// The int8 at flat index f, sign-extended.
fn act(f: u32) -> i32 {
    return extractBits(i32(xq[f >> 2u]), 8u * (f & 3u), 8u);
}

// The ternary weight at flat index f.
fn weight(f: u32) -> i32 {
    return tern((w[f >> 4u] >> (2u * (f & 15u))) & 3u);
}

// i32 to f32 rounded to nearest even for any value: both halves are exact, their sum is one
// correctly rounded addition (WGSL leaves f32(i32) past 2^24 free to round either way).
fn to_f32_rn(a: i32) -> f32 {
    return f32(a >> 16u) * 65536.0 + f32(a & 0xffff);
}

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = wid.x + wid.y * nwg.x;
    if (idx >= p.rows * p.n) {
        return;
    }
    let r = idx / p.n;
    let o = idx % p.n;
    var acc = 0i;
    if ((p.k & 15u) == 0u) {
        // Rows start on word boundaries: one weight word, four activation words per step.
        let kw = p.k >> 4u;
        let wb = o * kw;
        let xb = r * (p.k >> 2u);
        for (var j = lid; j < kw; j += WG) {
            let ww = w[wb + j];
            for (var b = 0u; b < 4u; b += 1u) {
                let a = i32(xq[xb + 4u * j + b]);
                let wb8 = ww >> (8u * b);
                for (var e = 0u; e < 4u; e += 1u) {
                    acc += tern((wb8 >> (2u * e)) & 3u) * extractBits(a, 8u * e, 8u);
                }
            }
        }
    } else {
        let wb = o * p.k;
        let xb = r * p.k;
        for (var i = lid; i < p.k; i += WG) {
            acc += weight(wb + i) * act(xb + i);
        }
    }
    part[lid] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            part[lid] += part[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        // The CPU's float steps, in its order: s = w_scale * x_scale; y = f32(acc) * s.
        y[idx] = to_f32_rn(part[0]) * (p.w_scale * xs[r]);
    }
}
