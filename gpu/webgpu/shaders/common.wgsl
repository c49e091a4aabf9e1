// common.wgsl is prepended to every shader of this package: the one uniform
// parameter block (binding 0) that every kernel reads, and small helpers.
// Each kernel's meaning of the fields is documented at the kernel.

struct Params {
  m: u32,      // rows (or element count for 1-D kernels)
  n: u32,      // columns
  k: u32,      // inner size (GEMM), class count, ...
  flags: u32,  // kernel-specific bits
  lda: u32,
  ldb: u32,
  ldc: u32,
  off: u32,    // a row offset or an output slot
  alpha: f32,
  beta: f32,
  s0: f32,
  s1: f32,
  op: u32,     // which Unary / Binary / reduction mode
  total: u32,  // number of threads doing work in a 1-D kernel
  base: u32,   // first thread of this dispatch (large 1-D work is split)
  infbits: u32, // always 0x7f800000: +Inf built at run time (a constant Inf is a WGSL error)
}

@group(0) @binding(0) var<uniform> p: Params;

// lin is the linear thread index of a 1-D kernel dispatched as a 2-D grid of
// workgroups (the grid's x size is capped by maxComputeWorkgroupsPerDimension),
// offset by p.base when the work is split over several dispatches.
fn lin(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>, wg: u32) -> u32 {
  return p.base + (wid.y * nwg.x + wid.x) * wg + lid.x;
}

// wgid is the linear workgroup index of a 2-D grid.
fn wgid(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wid.y * nwg.x + wid.x;
}

fn pinf() -> f32 { return bitcast<f32>(p.infbits); }
fn ninf() -> f32 { return bitcast<f32>(p.infbits | 0x80000000u); }
fn qnan() -> f32 { return bitcast<f32>(p.infbits | 0x00400000u); }

// is_nan tests the bits: WGSL lets compilers assume that x != x is false.
fn is_nan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }

// fmax and fmin propagate NaN like Go's built-in max and min (WGSL's max
// and min leave NaN unspecified), and order −0 below +0.
fn fmax(a: f32, b: f32) -> f32 {
  if (is_nan(a) || is_nan(b)) { return qnan(); }
  if (a == b) { return select(b, a, (bitcast<u32>(a) & 0x80000000u) == 0u); }
  return select(b, a, a > b);
}
fn fmin(a: f32, b: f32) -> f32 {
  if (is_nan(a) || is_nan(b)) { return qnan(); }
  if (a == b) { return select(b, a, (bitcast<u32>(a) & 0x80000000u) != 0u); }
  return select(b, a, a < b);
}

// label reads a class index stored as a float; it returns -1 when v is not
// an integer in [0, k) (NaN included).
fn label(v: f32, k: u32) -> i32 {
  if (is_nan(v) || !(v >= 0.0) || !(v < f32(k))) { return -1; }
  let l = i32(v);
  if (f32(l) != v) { return -1; }
  return l;
}
