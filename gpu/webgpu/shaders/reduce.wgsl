// reduce.wgsl: two-stage float reductions. Stage 1 (reduce1, G ≤ 1024
// workgroups of 256) grid-strides over the p.total elements, reduces in
// workgroup memory and writes one partial per workgroup; stage 2 (reduce2,
// one workgroup) reduces the p.total partials into scalars[p.off]. Nothing
// leaves the GPU unless the caller copies that slot back.
//
// reduce1 modes (p.op): 0 Σx, 1 Σx·y, 2 Σx², 3 Σ(δᵢⱼ − x)² over an n×n x
// (p.n columns: the Newton–Schulz residual ‖I − AX‖²_F).
// reduce2 modes (p.op): 0 the sum, 1 its square root.

@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> part: array<f32>;
@group(0) @binding(4) var<storage, read_write> scalars: array<f32>;

var<workgroup> sh: array<f32, 256>;

fn term(i: u32) -> f32 {
  switch p.op {
    case 1u: { return x[i] * y[i]; }
    case 2u: { let v = x[i]; return v * v; }
    case 3u: {
      var e = -x[i];
      if (i / p.n == i % p.n) { e += 1.0; }
      return e * e;
    }
    default: { return x[i]; }
  }
}

fn tree(t: u32) {
  for (var s = 128u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (t < s) { sh[t] += sh[t + s]; }
  }
  workgroupBarrier();
}

@compute @workgroup_size(256)
fn reduce1(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let stride = nwg.x * 256u;
  var acc = 0.0;
  for (var i = wid.x * 256u + lid.x; i < p.total; i += stride) {
    acc += term(i);
  }
  sh[lid.x] = acc;
  tree(lid.x);
  if (lid.x == 0u) { part[wid.x] = sh[0]; }
}

@compute @workgroup_size(256)
fn reduce2(@builtin(local_invocation_id) lid: vec3<u32>) {
  var acc = 0.0;
  for (var i = lid.x; i < p.total; i += 256u) {
    acc += part[i];
  }
  sh[lid.x] = acc;
  tree(lid.x);
  if (lid.x == 0u) {
    var v = sh[0];
    if (p.op == 1u) { v = sqrt(v); }
    scalars[p.off] = v;
  }
}
