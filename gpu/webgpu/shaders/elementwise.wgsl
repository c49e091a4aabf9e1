// elementwise.wgsl: one thread per element (workgroups of 256, a 2-D grid).
// p.total is the element count; b1 is the destination unless noted.
// Every storage binding is read_write so that a destination may alias an
// input (two read_write bindings of one buffer are one "storage" usage;
// read-only plus read_write would be a usage conflict).

@group(0) @binding(1) var<storage, read_write> b1: array<f32>;
@group(0) @binding(2) var<storage, read_write> b2: array<f32>;
@group(0) @binding(3) var<storage, read_write> b3: array<f32>;
@group(0) @binding(4) var<storage, read_write> b4: array<f32>;
@group(0) @binding(5) var<storage, read_write> b5: array<f32>;

const WG: u32 = 256u;
const GELU_C: f32 = 0.7978845608028654; // √(2/π)
const GELU_A: f32 = 0.044715;

// tanh_ is accurate near 0 (Cephes tanhf polynomial) and saturates without
// overflow for large |x| (the built-in may compute ∞/∞).
fn tanh_(x: f32) -> f32 {
  let a = abs(x);
  if (a < 0.625) {
    let z = x * x;
    return ((((-5.70498872745e-3 * z + 2.06390887954e-2) * z - 5.37397155531e-2) * z + 1.33314422036e-1) * z - 3.33332819422e-1) * z * x + x;
  }
  if (a > 20.0) { return sign(x); }
  let t = 1.0 - 2.0 / (exp(2.0 * a) + 1.0);
  return select(t, -t, x < 0.0);
}

// sech2 is 1 − tanh²(x) without cancellation when |tanh x| is near 1.
fn sech2(x: f32) -> f32 {
  let a = abs(x);
  if (a < 0.625) { let t = tanh_(x); return 1.0 - t * t; }
  if (a > 44.0) { return 0.0; }
  let e = exp(-2.0 * a);
  let d = 1.0 + e;
  return 4.0 * e / (d * d);
}

fn sigmoid(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let e = exp(x);
  return e / (1.0 + e);
}

fn unary(op: u32, x: f32) -> f32 {
  switch op {
    case 0u: { return x; }                                  // identity
    // relu; NaN stays NaN, by its bits: the NVIDIA driver folds the plain
    // select(x, 0.0, x < 0.0) into a max that returns 0 for NaN
    case 1u: { return select(select(x, 0.0, x < 0.0), x, is_nan(x)); }
    case 2u: { return tanh_(x); }                           // tanh
    case 3u: { return sigmoid(x); }                         // sigmoid
    case 4u: {                                              // gelu (tanh form)
      return 0.5 * x * (1.0 + tanh_(GELU_C * (x + GELU_A * x * x * x)));
    }
    case 5u: { return exp(x); }                             // exp
    case 6u: {                                              // log
      if (x == 0.0) { return ninf(); }
      if (x < 0.0) { return qnan(); }
      return log(x);
    }
    case 7u: {                                              // sqrt
      if (x < 0.0) { return qnan(); }
      return sqrt(x);
    }
    case 8u: { return x * x; }                              // square
    case 9u: { return abs(x); }                             // abs
    case 10u: {                                             // recip
      if (x == 0.0) { return select(pinf(), ninf(), (bitcast<u32>(x) & 0x80000000u) != 0u); }
      return 1.0 / x;
    }
    case 11u: { return -x; }                                // neg
    default: { return qnan(); }
  }
}

// deriv is f'(x) for an activation.
fn deriv(op: u32, x: f32) -> f32 {
  switch op {
    case 0u: { return 1.0; }
    case 1u: { return select(0.0, 1.0, x > 0.0); }
    case 2u: { return sech2(x); }
    case 3u: {
      let e = exp(-abs(x));
      let d = 1.0 + e;
      return e / (d * d);
    }
    case 4u: {
      if (abs(x) > 10.0) { return select(0.0, 1.0, x > 0.0); }
      let u = GELU_C * (x + GELU_A * x * x * x);
      let du = GELU_C * (1.0 + 3.0 * GELU_A * x * x);
      return 0.5 * (1.0 + tanh_(u)) + 0.5 * x * sech2(u) * du;
    }
    default: { return qnan(); }
  }
}

// deriv2 is f''(x) for an activation.
fn deriv2(op: u32, x: f32) -> f32 {
  switch op {
    case 0u, 1u: { return 0.0; }
    case 2u: { return -2.0 * tanh_(x) * sech2(x); }
    case 3u: {
      // s(1−s)(1−2s) is odd; with e = exp(−|x|): e/(1+e)² · (e−1)/(1+e) for x ≥ 0.
      let e = exp(-abs(x));
      let d = 1.0 + e;
      let v = e / (d * d) * (e - 1.0) / d;
      return select(v, -v, x < 0.0);
    }
    case 4u: {
      if (abs(x) > 10.0) { return 0.0; }
      let u = GELU_C * (x + GELU_A * x * x * x);
      let t = tanh_(u);
      let dt = sech2(u);
      let du = GELU_C * (1.0 + 3.0 * GELU_A * x * x);
      let d2u = GELU_C * 6.0 * GELU_A * x;
      return dt * du + 0.5 * x * (-2.0 * t * dt * du * du + dt * d2u);
    }
    default: { return qnan(); }
  }
}

fn binary(op: u32, a: f32, b: f32) -> f32 {
  switch op {
    case 0u: { return a + b; }
    case 1u: { return a - b; }
    case 2u: { return a * b; }
    case 3u: { return a / b; }
    case 4u: { return fmax(a, b); }
    case 5u: { return fmin(a, b); }
    default: { return qnan(); }
  }
}

@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = lin(wid, nwg, lid, WG);
  if (i >= p.total) { return; }
  b1[i] = p.s0;
}

@compute @workgroup_size(256)
fn copy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = lin(wid, nwg, lid, WG);
  if (i >= p.total) { return; }
  b1[i] = b2[i];
}

// axpby: y (b2) = alpha·x (b1) + beta·y; flags bit 0: beta == 0 (y not read).
@compute @workgroup_size(256)
fn axpby(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = lin(wid, nwg, lid, WG);
  if (i >= p.total) { return; }
  if ((p.flags & 1u) != 0u) {
    b2[i] = p.alpha * b1[i];
  } else {
    b2[i] = p.alpha * b1[i] + p.beta * b2[i];
  }
}

@compute @workgroup_size(256)
fn add_scalar(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = lin(wid, nwg, lid, WG);
  if (i >= p.total) { return; }
  b1[i] = b2[i] + p.s0;
}

// clamp: min(max(x, s0), s1) with Go's NaN rules.
@compute @workgroup_size(256)
fn clamp_(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = lin(wid, nwg, lid, WG);
  if (i >= p.total) { return; }
  b1[i] = fmin(fmax(b2[i], p.s0), p.s1);
}

@compute @workgroup_size(256)
fn map(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = lin(wid, nwg, lid, WG);
  if (i >= p.total) { return; }
  b1[i] = unary(p.op, b2[i]);
}

// map_grad: dst = f'(x)·dy (x = b2, dy = b3). ReLU passes dy where x > 0 and
// writes 0 elsewhere, as the CPU device does (0·NaN would be NaN).
@compute @workgroup_size(256)
fn map_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = lin(wid, nwg, lid, WG);
  if (i >= p.total) { return; }
  if (p.op == 1u) {
    b1[i] = select(0.0, b3[i], b2[i] > 0.0);
    return;
  }
  b1[i] = deriv(p.op, b2[i]) * b3[i];
}

@compute @workgroup_size(256)
fn map_grad2(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = lin(wid, nwg, lid, WG);
  if (i >= p.total) { return; }
  b1[i] = deriv2(p.op, b2[i]) * b3[i];
}

@compute @workgroup_size(256)
fn apply(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = lin(wid, nwg, lid, WG);
  if (i >= p.total) { return; }
  b1[i] = binary(p.op, b2[i], b3[i]);
}

// mul_row: dst[i,j] = src[i,j]·v[j]; p.n = columns.
@compute @workgroup_size(256)
fn mul_row(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = lin(wid, nwg, lid, WG);
  if (i >= p.total) { return; }
  b1[i] = b2[i] * b3[i % p.n];
}

// mul_col: dst[i,j] = src[i,j]·v[i]; p.n = columns.
@compute @workgroup_size(256)
fn mul_col(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = lin(wid, nwg, lid, WG);
  if (i >= p.total) { return; }
  b1[i] = b2[i] * b3[i / p.n];
}

// append_col: dst (r×(c+1)) = [src | s0]; p.n = c + 1, one thread per dst element.
@compute @workgroup_size(256)
fn append_col(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = lin(wid, nwg, lid, WG);
  if (i >= p.total) { return; }
  let r = i / p.n;
  let j = i % p.n;
  let c = p.n - 1u;
  if (j < c) {
    b1[i] = b2[r * c + j];
  } else {
    b1[i] = p.s0;
  }
}

// copy_cols: dst (r×n) = src[:, off : off+n], src has p.k columns.
@compute @workgroup_size(256)
fn copy_cols(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = lin(wid, nwg, lid, WG);
  if (i >= p.total) { return; }
  let r = i / p.n;
  let j = i % p.n;
  b1[i] = b2[r * p.k + p.off + j];
}

// sub_from_i: dst = s0·I − src for n×n matrices (Newton–Schulz).
@compute @workgroup_size(256)
fn sub_from_i(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = lin(wid, nwg, lid, WG);
  if (i >= p.total) { return; }
  var v = -b2[i];
  if (i / p.n == i % p.n) { v += p.s0; }
  b1[i] = v;
}

// kalman_diag: one sample's diagonal R-Kalman update of a layer (paper eq.
// 22) on weights b1 and variances b2 (p.m×p.n), with x̄ (b3, 1×p.m), u and t
// (b4, b5, 1×p.n), q = s0, floor = s1: σ' = σ + q, w += (x̄·u)·σ',
// σ = max(σ' − ((x̄²·t)·σ')·σ', floor).
@compute @workgroup_size(256)
fn kalman_diag(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = lin(wid, nwg, lid, WG);
  if (i >= p.total) { return; }
  let a = i / p.n;
  let b = i % p.n;
  let x = b3[a];
  let sp = b2[i] + p.s0;
  b1[i] += (x * b4[b]) * sp;
  b2[i] = fmax(sp - (((x * x) * b5[b]) * sp) * sp, p.s1);
}

// add_diag: a[i,i] += s0 for i < p.total; p.n = columns.
@compute @workgroup_size(256)
fn add_diag(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = lin(wid, nwg, lid, WG);
  if (i >= p.total) { return; }
  b1[i * p.n + i] += p.s0;
}

// ns_init: X0 = Aᵀ/(‖A‖₁‖A‖∞) for n×n A (b2), the norms in slots
// p.off and p.off+1 of the scalar buffer (b3); 0 when their product is 0.
@compute @workgroup_size(256)
fn ns_init(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = lin(wid, nwg, lid, WG);
  if (i >= p.total) { return; }
  let n1 = b3[p.off];
  let ni = b3[p.off + 1u];
  var s = 0.0;
  if (n1 * ni > 0.0) { s = (1.0 / n1) * (1.0 / ni); }
  let r = i / p.n;
  let c = i % p.n;
  b1[i] = s * b2[c * p.n + r];
}

// normalize: dst = src / scalars[p.off], or 0 when that norm is 0.
@compute @workgroup_size(256)
fn normalize_(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = lin(wid, nwg, lid, WG);
  if (i >= p.total) { return; }
  let nrm = b3[p.off];
  if (nrm == 0.0) {
    b1[i] = 0.0;
  } else {
    b1[i] = b2[i] / nrm;
  }
}
