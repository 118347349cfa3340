// The word-wise kernels of a decoder step, one entry point each, all on two operands:
//   rope: rotary embedding in place, `x` f32 [heads, d], `table` f32 [d/2] pairs (cos, sin)
//         computed on the CPU as `ops::rope_head` computes them; for i < d/2:
//           x[i] = x0 * cos - x1 * sin;  x[i + d/2] = x0 * sin + x1 * cos
//         (the CPU's float operations in the CPU's order: bit for bit unless fused).
//   add:  `a += b` elementwise over `n` f32 (one rounding each: bit for bit).
//   copy: `b[dst + i] = a[src + i]` for `n` words (embedding rows, KV cache rows).
// Operands are `u32` words, bitcast to f32 where needed, so a copy moves bits untouched.
// One invocation per element (rope: per pair); the grid is folded into two dimensions.

struct Params {
    n: u32,
    half: u32,
    src: u32,
    dst: u32,
}

// All storage is read_write: operands may share one pooled buffer (see quant.wgsl).
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> a: array<u32>;
@group(0) @binding(2) var<storage, read_write> b: array<u32>;

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 64u + lid;
}

// p.n: pairs (heads * d/2); p.half: d/2.
@compute @workgroup_size(64)
fn rope(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = index(wid, nwg, lid);
    if (t >= p.n) {
        return;
    }
    let head = t / p.half;
    let i = t % p.half;
    let lo = head * 2u * p.half + i;
    let hi = lo + p.half;
    let c = bitcast<f32>(b[2u * i]);
    let s = bitcast<f32>(b[2u * i + 1u]);
    let x0 = bitcast<f32>(a[lo]);
    let x1 = bitcast<f32>(a[hi]);
    a[lo] = bitcast<u32>(x0 * c - x1 * s);
    a[hi] = bitcast<u32>(x0 * s + x1 * c);
}

// p.n: elements.
@compute @workgroup_size(64)
fn add(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = index(wid, nwg, lid);
    if (t >= p.n) {
        return;
    }
    a[t] = bitcast<u32>(bitcast<f32>(a[t]) + bitcast<f32>(b[t]));
}

// p.n: words; p.src, p.dst: word offsets in `a` and `b`.
@compute @workgroup_size(64)
fn copy(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = index(wid, nwg, lid);
    if (t >= p.n) {
        return;
    }
    b[p.dst + t] = a[p.src + t];
}
