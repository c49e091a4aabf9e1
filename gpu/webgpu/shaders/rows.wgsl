// rows.wgsl: kernels that walk rows or columns (p.m rows, p.n columns).
// Row kernels run one thread per row and keep the CPU device's order of
// operations (first maximum wins, running float32 sums), so labels, argmax
// and samples come out identical. Invalid labels or row indices cannot
// panic on a GPU: the kernel writes NaN where the result would go and sets
// a bit in the status word (binding 6), which the Go side checks at the
// next sync point and reports as a *core.ShapeError panic.

@group(0) @binding(1) var<storage, read_write> b1: array<f32>;
@group(0) @binding(2) var<storage, read_write> b2: array<f32>;
@group(0) @binding(3) var<storage, read_write> b3: array<f32>;
@group(0) @binding(4) var<storage, read_write> b4: array<f32>;
@group(0) @binding(5) var<storage, read_write> b5: array<f32>;
@group(0) @binding(6) var<storage, read_write> st: array<atomic<u32>>;

const BAD_GATHER: u32 = 1u;
const BAD_XENT: u32 = 2u;
const BAD_ONEHOT: u32 = 4u;
const BAD_IM2ROW: u32 = 8u;

// sum_rows: b1 (1×n) = column sums of b2 (m×n), summed in row order.
@compute @workgroup_size(64)
fn sum_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let j = lin(wid, nwg, lid, 64u);
  if (j >= p.n) { return; }
  var s = 0.0;
  for (var i = 0u; i < p.m; i++) { s += b2[i * p.n + j]; }
  b1[j] = s;
}

// col_abs_sum: b1[j] = Σᵢ |b2[i,j]| (the column sums behind ‖A‖₁).
@compute @workgroup_size(64)
fn col_abs_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let j = lin(wid, nwg, lid, 64u);
  if (j >= p.n) { return; }
  var s = 0.0;
  for (var i = 0u; i < p.m; i++) { s += abs(b2[i * p.n + j]); }
  b1[j] = s;
}

var<workgroup> sh: array<f32, 64>;

// row_dot: one workgroup per row i: b1[i] = Σⱼ b2[i,j]·b3[j] (p.op 0, the
// matrix–vector product of power iteration) or Σⱼ |b2[i,j]| (p.op 1, the row
// sums behind ‖A‖∞).
@compute @workgroup_size(64)
fn row_dot(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = wgid(wid, nwg);
  let t = lid.x;
  var s = 0.0;
  if (i < p.m) {
    let base = i * p.n;
    for (var j = t; j < p.n; j += 64u) {
      if (p.op == 1u) {
        s += abs(b2[base + j]);
      } else {
        s += b2[base + j] * b3[j];
      }
    }
  }
  sh[t] = s;
  for (var h = 32u; h > 0u; h >>= 1u) {
    workgroupBarrier();
    if (t < h) { sh[t] += sh[t + h]; }
  }
  if (t == 0u && i < p.m) { b1[i] = sh[0]; }
}

// argmax_rows: b1[i] = index of the first maximum of row i of b2.
@compute @workgroup_size(64)
fn argmax_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = lin(wid, nwg, lid, 64u);
  if (i >= p.m) { return; }
  let base = i * p.n;
  var best = 0u;
  var bv = b2[base];
  for (var j = 1u; j < p.n; j++) {
    let v = b2[base + j];
    if (v > bv) { best = j; bv = v; }
  }
  b1[i] = f32(best);
}

// softmax: b1 = softmax(b2) row by row (b1 may alias b2).
@compute @workgroup_size(64)
fn softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = lin(wid, nwg, lid, 64u);
  if (i >= p.m) { return; }
  let base = i * p.n;
  var mx = ninf();
  for (var j = 0u; j < p.n; j++) { mx = fmax(mx, b2[base + j]); }
  var s = 0.0;
  for (var j = 0u; j < p.n; j++) {
    let e = exp(b2[base + j] - mx);
    b1[base + j] = e;
    s += e;
  }
  let inv = 1.0 / s;
  for (var j = 0u; j < p.n; j++) { b1[base + j] *= inv; }
}

// softmax_xent: logits b2 (m×k, k = p.n), labels b3 (m×1); p.flags bit 0:
// write probs (b1), bit 1: write dlogits (b4) = (probs − onehot)·alpha,
// bit 2: write loss (b5, m×1) = ln Σ exp(x − max) + (max − x_label).
@compute @workgroup_size(64)
fn softmax_xent(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = lin(wid, nwg, lid, 64u);
  if (i >= p.m) { return; }
  let k = p.n;
  let base = i * k;
  let hasP = (p.flags & 1u) != 0u;
  let hasG = (p.flags & 2u) != 0u;
  let hasL = (p.flags & 4u) != 0u;
  let y = label(b3[i], k);
  if (y < 0) {
    atomicOr(&st[0], BAD_XENT);
    for (var j = 0u; j < k; j++) {
      if (hasP) { b1[base + j] = qnan(); }
      if (hasG) { b4[base + j] = qnan(); }
    }
    if (hasL) { b5[i] = qnan(); }
    return;
  }
  let yu = u32(y);
  var mx = ninf();
  for (var j = 0u; j < k; j++) { mx = fmax(mx, b2[base + j]); }
  let xy = b2[base + yu]; // read before an aliased probs or dlogits row is written
  var s = 0.0;
  if (hasP || hasG) {
    for (var j = 0u; j < k; j++) {
      let e = exp(b2[base + j] - mx);
      if (hasP) { b1[base + j] = e; } else { b4[base + j] = e; }
      s += e;
    }
    let inv = 1.0 / s;
    for (var j = 0u; j < k; j++) {
      if (hasP) {
        let q = b1[base + j] * inv;
        b1[base + j] = q;
        if (hasG) { b4[base + j] = select(q, q - 1.0, j == yu) * p.alpha; }
      } else {
        let q = b4[base + j] * inv;
        b4[base + j] = select(q, q - 1.0, j == yu) * p.alpha;
      }
    }
  } else {
    for (var j = 0u; j < k; j++) { s += exp(b2[base + j] - mx); }
  }
  if (hasL) { b5[i] = log(s) + (mx - xy); }
}

// sample_categorical: b1[i] = the first j with u < Σ_{≤j} p (running float32
// sum) over row i of b2 (p.n classes), u = b3[i]; when rounding leaves the
// total below u, the last class of positive probability.
@compute @workgroup_size(64)
fn sample_categorical(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = lin(wid, nwg, lid, 64u);
  if (i >= p.m) { return; }
  let base = i * p.n;
  let u = b3[i];
  var c = 0.0;
  var pick = -1;
  var last = i32(p.n) - 1;
  for (var j = 0u; j < p.n; j++) {
    let q = b2[base + j];
    if (q > 0.0) { last = i32(j); }
    c += q;
    if (u < c) { pick = i32(j); break; }
  }
  if (pick < 0) { pick = last; }
  b1[i] = f32(pick);
}

// one_hot: b1 (m×n) = one-hot rows of the labels b3; one thread per element.
@compute @workgroup_size(256)
fn one_hot(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let e = lin(wid, nwg, lid, 256u);
  if (e >= p.total) { return; }
  let i = e / p.n;
  let j = e % p.n;
  let y = label(b3[i], p.n);
  if (y < 0) {
    if (j == 0u) { atomicOr(&st[0], BAD_ONEHOT); }
    b1[e] = qnan();
    return;
  }
  b1[e] = select(0.0, 1.0, u32(y) == j);
}

// gather_rows: b1[r, :] = b2[idx[r], :] with idx = b3 (r×1), b2 has p.k rows
// and p.n columns; an index of exactly −1 gives a row of zeros (a
// convolution's padding). One thread per element of b1.
@compute @workgroup_size(256)
fn gather_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let e = lin(wid, nwg, lid, 256u);
  if (e >= p.total) { return; }
  let r = e / p.n;
  let j = e % p.n;
  let v = b3[r];
  if (v == -1.0) {
    b1[e] = 0.0;
    return;
  }
  let src = label(v, p.k);
  if (src < 0) {
    if (j == 0u) { atomicOr(&st[0], BAD_GATHER); }
    b1[e] = qnan();
    return;
  }
  b1[e] = b2[u32(src) * p.n + j];
}

// im2row: b1 (r×n, n = k·c+1) = for each row i the k rows of b2 (p.k rows,
// c = p.lda columns) named by idx = b3 ((r·k)×1) side by side, then p.s0:
// b1[i, o·c + j] = b2[idx[i·k+o], j], b1[i, n−1] = p.s0. An index of
// exactly −1 gives zeros. One thread per element of b1.
@compute @workgroup_size(256)
fn im2row(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let e = lin(wid, nwg, lid, 256u);
  if (e >= p.total) { return; }
  let i = e / p.n;
  let j = e % p.n;
  if (j == p.n - 1u) {
    b1[e] = p.s0;
    return;
  }
  let c = p.lda;
  let k = (p.n - 1u) / c;
  let o = j / c;
  let v = b3[i * k + o];
  if (v == -1.0) {
    b1[e] = 0.0;
    return;
  }
  let src = label(v, p.k);
  if (src < 0) {
    if (j % c == 0u) { atomicOr(&st[0], BAD_IM2ROW); }
    b1[e] = qnan();
    return;
  }
  b1[e] = b2[u32(src) * c + j % c];
}
