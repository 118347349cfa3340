// Softmax of every row in place, as `ops::softmax_in_place` computes it:
//   m = max_i x_i;  e_i = exp(x_i - m);  x_i = e_i * (1 / sum_i e_i)
// One workgroup per row; each invocation keeps to its own elements (i = lid, lid + 64, ...)
// across the three phases. The maximum is exact; the sum is a tree (the CPU sums in order)
// and WGSL's `exp` is not correctly rounded: within a few ulp of the CPU, not bit for bit.

struct Params {
    rows: u32,
    n: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

const WG: u32 = 64u;
var<workgroup> part: array<f32, WG>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = wid.x + wid.y * nwg.x;
    if (r >= p.rows) {
        return;
    }
    let base = r * p.n;
    // -inf: the CPU's starting value, so a row of -inf gives the CPU's NaNs.
    var m = bitcast<f32>(0xff800000u);
    for (var i = lid; i < p.n; i += WG) {
        m = max(m, x[base + i]);
    }
    part[lid] = m;
    workgroupBarrier();
    for (var h = WG / 2u; h > 0u; h = h >> 1u) {
        if (lid < h) {
            part[lid] = max(part[lid], part[lid + h]);
        }
        workgroupBarrier();
    }
    m = part[0];
    workgroupBarrier();
    var s = 0.0;
    for (var i = lid; i < p.n; i += WG) {
        let e = exp(x[base + i] - m);
        x[base + i] = e;
        s += e;
    }
    part[lid] = s;
    workgroupBarrier();
    for (var h = WG / 2u; h > 0u; h = h >> 1u) {
        if (lid < h) {
            part[lid] += part[lid + h];
        }
        workgroupBarrier();
    }
    let inv = 1.0 / part[0];
    for (var i = lid; i < p.n; i += WG) {
        x[base + i] *= inv;
    }
}
