// RMSNorm of every row, as `ops::rmsnorm_row` computes it:
//   ms = sum(x_i * x_i) / n;  inv = 1 / sqrt(ms + eps);  y_i = x_i * inv * g_i
// One workgroup per row. The sum of squares is a tree over the workgroup (the CPU sums in
// order), and WGSL's `sqrt` and `/` are not correctly rounded: the result is within a few
// ulp of the CPU's, not bit for bit.

struct Params {
    rows: u32,
    n: u32,
    eps: f32,
    _pad: u32,
}

// All storage is read_write: operands may share one pooled buffer (see quant.wgsl).
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

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
    var s = 0.0;
    for (var i = lid; i < p.n; i += WG) {
        let v = x[base + i];
        s += v * v;
    }
    part[lid] = s;
    workgroupBarrier();
    for (var h = WG / 2u; h > 0u; h = h >> 1u) {
        if (lid < h) {
            part[lid] += part[lid + h];
        }
        workgroupBarrier();
    }
    let ms = part[0] / f32(max(p.n, 1u));
    let inv = 1.0 / sqrt(ms + p.eps);
    for (var i = lid; i < p.n; i += WG) {
        y[base + i] = x[base + i] * inv * g[i];
    }
}
