// `y = x · wᵀ` in f32, as `ops::linear` computes it: each output is `ops::dot_f32(w[o], x[r])`
// in dot_f32's own order — 16 lanes (lane l sums the products at l, l + 16, ... in order),
// folded 8, 4, 2, 1, then the k % 16 tail summed in order and added last. A workgroup holds
// 4 outputs of 16 invocations, one per lane, so the float operations are the CPU's in the
// CPU's order; only a driver that fuses `acc + w * x` into one fma can change the last bit.

struct Params {
    rows: u32,
    n: u32,
    k: u32,
    _pad: u32,
}

// All storage is read_write: operands may share one pooled buffer (see quant.wgsl).
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

var<workgroup> part: array<f32, 64>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let slot = lid >> 4u;
    let lane = lid & 15u;
    let idx = (wid.x + wid.y * nwg.x) * 4u + slot;
    let valid = idx < p.rows * p.n;
    let xb = (idx / p.n) * p.k;
    let wb = (idx % p.n) * p.k;
    let chunks = p.k >> 4u;
    var acc = 0.0;
    if (valid) {
        for (var c = 0u; c < chunks; c += 1u) {
            let i = 16u * c + lane;
            acc += w[wb + i] * x[xb + i];
        }
    }
    part[lid] = acc;
    workgroupBarrier();
    for (var h = 8u; h > 0u; h = h >> 1u) {
        if (lane < h) {
            part[lid] += part[lid + h];
        }
        workgroupBarrier();
    }
    if (valid && lane == 0u) {
        var s = 0.0;
        for (var i = chunks * 16u; i < p.k; i += 1u) {
            s += w[wb + i] * x[xb + i];
        }
        y[idx] = part[lid] + s;
    }
}
