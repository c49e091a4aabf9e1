// absmax.wgsl: max|x| as a two-stage reduction over the bit patterns.
// For |x| (the sign bit cleared) the IEEE bits order like the values, and
// every NaN pattern lies above +Inf's 0x7f800000: a plain u32 max therefore
// returns NaN when any element is NaN and +Inf when one is ±Inf, exactly
// and without relying on the shader compiler's NaN rules (WGSL lets it
// assume there are none). The same kernels give max over a vector of
// non-negative floats (the Newton–Schulz norms).

@group(0) @binding(1) var<storage, read_write> x: array<u32>;
@group(0) @binding(3) var<storage, read_write> part: array<u32>;
@group(0) @binding(4) var<storage, read_write> scalars: array<u32>;

var<workgroup> sh: array<u32, 256>;

fn tree(t: u32) {
  for (var s = 128u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (t < s) { sh[t] = max(sh[t], sh[t + s]); }
  }
  workgroupBarrier();
}

@compute @workgroup_size(256)
fn absmax1(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let stride = nwg.x * 256u;
  var acc = 0u;
  for (var i = wid.x * 256u + lid.x; i < p.total; i += stride) {
    acc = max(acc, x[i] & 0x7fffffffu);
  }
  sh[lid.x] = acc;
  tree(lid.x);
  if (lid.x == 0u) { part[wid.x] = sh[0]; }
}

@compute @workgroup_size(256)
fn absmax2(@builtin(local_invocation_id) lid: vec3<u32>) {
  var acc = 0u;
  for (var i = lid.x; i < p.total; i += 256u) {
    acc = max(acc, part[i]);
  }
  sh[lid.x] = acc;
  tree(lid.x);
  if (lid.x == 0u) { scalars[p.off] = sh[0]; }
}
