// Attention of one token over a KV cache, as `ops::attention` computes it, for query head h
// reading KV head g = h / (heads / kv_heads):
//   s_t = dot_f32(q[h], K[t, g]) * scale            (t < positions; scale = 1 / sqrt(d))
//   p = softmax(s)                                   (into the scores scratch row of h)
//   out[h, j] = sum_t p_t * V[t, g, j]               (in order of t, like the CPU)
// One workgroup per query head. Scores: 4 positions at a time, 16 invocations each, in
// dot_f32's lane order (see linear.wgsl); softmax: as softmax.wgsl; output: one invocation
// per element of the head, summing over t in order. Within a few ulp of the CPU (exp and
// the softmax sum's order differ), not bit for bit.

struct Params {
    heads: u32,
    kv_heads: u32,
    d: u32,
    positions: u32,
    // 1 / sqrt(d), computed on the CPU as ops::attention does.
    scale: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// All storage is read_write: operands may share one pooled buffer (see quant.wgsl).
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> q: array<f32>;
@group(0) @binding(2) var<storage, read_write> keys: array<f32>;
@group(0) @binding(3) var<storage, read_write> vals: array<f32>;
@group(0) @binding(4) var<storage, read_write> scores: array<f32>;
@group(0) @binding(5) var<storage, read_write> dst: array<f32>;

const WG: u32 = 64u;
var<workgroup> part: array<f32, WG>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let h = wid.x + wid.y * nwg.x;
    if (h >= p.heads) {
        return;
    }
    let g = h / (p.heads / p.kv_heads);
    let row = p.kv_heads * p.d;
    let qb = h * p.d;
    let sb = h * p.positions;
    let slot = lid >> 4u;
    let lane = lid & 15u;
    let chunks = p.d >> 4u;

    // Scores, 4 positions per round.
    for (var t0 = 0u; t0 < p.positions; t0 += 4u) {
        let t = t0 + slot;
        let valid = t < p.positions;
        let kb = t * row + g * p.d;
        var acc = 0.0;
        if (valid) {
            for (var c = 0u; c < chunks; c += 1u) {
                let i = 16u * c + lane;
                acc += q[qb + i] * keys[kb + i];
            }
        }
        part[lid] = acc;
        workgroupBarrier();
        for (var s = 8u; s > 0u; s = s >> 1u) {
            if (lane < s) {
                part[lid] += part[lid + s];
            }
            workgroupBarrier();
        }
        if (valid && lane == 0u) {
            var tail = 0.0;
            for (var i = chunks * 16u; i < p.d; i += 1u) {
                tail += q[qb + i] * keys[kb + i];
            }
            scores[sb + t] = (part[lid] + tail) * p.scale;
        }
        workgroupBarrier();
    }
    storageBarrier();

    // Softmax of the scores row; each invocation keeps to t = lid, lid + 64, ...
    var m = bitcast<f32>(0xff800000u);
    for (var t = lid; t < p.positions; t += WG) {
        m = max(m, scores[sb + t]);
    }
    part[lid] = m;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            part[lid] = max(part[lid], part[lid + s]);
        }
        workgroupBarrier();
    }
    m = part[0];
    workgroupBarrier();
    var sum = 0.0;
    for (var t = lid; t < p.positions; t += WG) {
        let e = exp(scores[sb + t] - m);
        scores[sb + t] = e;
        sum += e;
    }
    part[lid] = sum;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            part[lid] += part[lid + s];
        }
        workgroupBarrier();
    }
    let inv = 1.0 / part[0];
    for (var t = lid; t < p.positions; t += WG) {
        scores[sb + t] *= inv;
    }
    storageBarrier();

    // Weighted sum of the values, over t in order.
    for (var j = lid; j < p.d; j += WG) {
        var o = 0.0;
        for (var t = 0u; t < p.positions; t += 1u) {
            o += scores[sb + t] * vals[t * row + g * p.d + j];
        }
        dst[qb + j] = o;
    }
}
