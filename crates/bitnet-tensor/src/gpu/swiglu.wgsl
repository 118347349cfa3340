// The gated FFN activation, as `ops::swiglu` computes it:
//   y_i = silu(g_i) * u_i,  silu(v) = v / (1 + exp(-v))
// One invocation per element. WGSL's `exp` and `/` are not correctly rounded: within a few
// ulp of the CPU, not bit for bit.

struct Params {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> gate: array<f32>;
@group(0) @binding(2) var<storage, read_write> up: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * 64u + lid;
    if (i >= p.n) {
        return;
    }
    let g = gate[i];
    y[i] = g / (1.0 + exp(-g)) * up[i];
}
