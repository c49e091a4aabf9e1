// gemm.wgsl: C (m×n) = alpha·op(A)·op(B) + beta·C + s0·I, op(A) m×k, op(B) k×n.
// p.flags: bit 0 transA, bit 1 transB, bit 2 read C (beta ≠ 0; with the bit
// clear C is only written, so NaNs in C never propagate). p.lda, p.ldb,
// p.ldc are the row strides (the stored column counts); p.off is the first
// row of C this dispatch covers (large products are split into row panels
// so that each submit stays short on CPU adapters). The s0·I term lets
// Newton–Schulz fuse its c·I − P·T steps into the product.
//
// Batched (GemmBatched): the grid's z dimension runs over products stacked
// by rows; workgroup z computes product b = p.base + z (p.base: the first
// product of this dispatch), which reads A from element b·p.op and B from
// element b·p.total (the per-product strides) and writes C from element
// b·m·ldc. A single product is b = 0 (z = 0, p.base = 0): no offset.
//
// Two register-blocked kernels, 256 threads each, tiles staged in
// workgroup memory and zero-padded at the edges (any m, n, k):
//   gemm64:  64×64 tile of C, 4×4 outputs per thread, k-slices of 16;
//   gemm128: 128×128 tile of C, 8×8 outputs per thread, k-slices of 8
//            (for large products on discrete GPUs).

@group(0) @binding(1) var<storage, read_write> A: array<f32>;
@group(0) @binding(2) var<storage, read_write> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;

// batch_offsets returns the first elements of the A, B and C of the
// product that workgroup z of this dispatch computes.
fn batch_offsets(z: u32) -> vec3<u32> {
  let b = p.base + z;
  return vec3<u32>(b * p.op, b * p.total, b * p.m * p.ldc);
}

fn load_a(oa: u32, gi: u32, gk: u32) -> f32 {
  if (gi >= p.m || gk >= p.k) { return 0.0; }
  if ((p.flags & 1u) != 0u) { return A[oa + gk * p.lda + gi]; }
  return A[oa + gi * p.lda + gk];
}

fn load_b(ob: u32, gk: u32, gj: u32) -> f32 {
  if (gk >= p.k || gj >= p.n) { return 0.0; }
  if ((p.flags & 2u) != 0u) { return B[ob + gj * p.ldb + gk]; }
  return B[ob + gk * p.ldb + gj];
}

fn store_c(oc: u32, gi: u32, gj: u32, acc: f32) {
  if (gi >= p.m || gj >= p.n) { return; }
  let idx = oc + gi * p.ldc + gj;
  var v = p.alpha * acc;
  if ((p.flags & 4u) != 0u) { v += p.beta * C[idx]; }
  if (gi == gj) { v += p.s0; }
  C[idx] = v;
}

// ---- 64×64, 4×4 per thread ----

var<workgroup> As64: array<vec4<f32>, 256>; // [16 k][16 row quads]
var<workgroup> Bs64: array<vec4<f32>, 256>; // [16 k][16 column quads]

@compute @workgroup_size(16, 16)
fn gemm64(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row0 = p.off + wid.y * 64u;
  let col0 = wid.x * 64u;
  let o = batch_offsets(wid.z);
  let tid = lid.y * 16u + lid.x;
  let ta = (p.flags & 1u) != 0u;
  let tb = (p.flags & 2u) != 0u;
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  for (var k0 = 0u; k0 < p.k; k0 += 16u) {
    for (var l = 0u; l < 4u; l++) {
      let e = tid + l * 256u;
      // read along the stored rows: k fastest for A, i fastest for Aᵀ
      var i = e / 16u;
      var kk = e % 16u;
      if (ta) { kk = e / 64u; i = e % 64u; }
      As64[kk * 16u + i / 4u][i % 4u] = load_a(o.x, row0 + i, k0 + kk);
      var j = e % 64u;
      var kb = e / 64u;
      if (tb) { j = e / 16u; kb = e % 16u; }
      Bs64[kb * 16u + j / 4u][j % 4u] = load_b(o.y, k0 + kb, col0 + j);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      let a = As64[kk * 16u + lid.y];
      let b = Bs64[kk * 16u + lid.x];
      acc0 += a.x * b;
      acc1 += a.y * b;
      acc2 += a.z * b;
      acc3 += a.w * b;
    }
    workgroupBarrier();
  }
  let r = row0 + lid.y * 4u;
  let c = col0 + lid.x * 4u;
  for (var q = 0u; q < 4u; q++) {
    store_c(o.z, r, c + q, acc0[q]);
    store_c(o.z, r + 1u, c + q, acc1[q]);
    store_c(o.z, r + 2u, c + q, acc2[q]);
    store_c(o.z, r + 3u, c + q, acc3[q]);
  }
}

// ---- 128×128, 8×8 per thread ----

var<workgroup> As128: array<vec4<f32>, 256>; // [8 k][32 row quads]
var<workgroup> Bs128: array<vec4<f32>, 256>; // [8 k][32 column quads]

@compute @workgroup_size(16, 16)
fn gemm128(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row0 = p.off + wid.y * 128u;
  let col0 = wid.x * 128u;
  let o = batch_offsets(wid.z);
  let tid = lid.y * 16u + lid.x;
  let ta = (p.flags & 1u) != 0u;
  let tb = (p.flags & 2u) != 0u;
  // thread (x, y) owns rows 4y..4y+3 and 64+4y..64+4y+3, and the same
  // pattern of columns, so that neighbouring threads touch neighbouring quads.
  var acc: array<vec4<f32>, 16>;
  for (var q = 0u; q < 16u; q++) { acc[q] = vec4<f32>(0.0); }
  for (var k0 = 0u; k0 < p.k; k0 += 8u) {
    for (var l = 0u; l < 4u; l++) {
      let e = tid + l * 256u;
      var i = e / 8u;
      var kk = e % 8u;
      if (ta) { kk = e / 128u; i = e % 128u; }
      As128[kk * 32u + i / 4u][i % 4u] = load_a(o.x, row0 + i, k0 + kk);
      var j = e % 128u;
      var kb = e / 128u;
      if (tb) { j = e / 8u; kb = e % 8u; }
      Bs128[kb * 32u + j / 4u][j % 4u] = load_b(o.y, k0 + kb, col0 + j);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 8u; kk++) {
      let a0 = As128[kk * 32u + lid.y];
      let a1 = As128[kk * 32u + 16u + lid.y];
      let b0 = Bs128[kk * 32u + lid.x];
      let b1 = Bs128[kk * 32u + 16u + lid.x];
      acc[0] += a0.x * b0; acc[1] += a0.x * b1;
      acc[2] += a0.y * b0; acc[3] += a0.y * b1;
      acc[4] += a0.z * b0; acc[5] += a0.z * b1;
      acc[6] += a0.w * b0; acc[7] += a0.w * b1;
      acc[8] += a1.x * b0; acc[9] += a1.x * b1;
      acc[10] += a1.y * b0; acc[11] += a1.y * b1;
      acc[12] += a1.z * b0; acc[13] += a1.z * b1;
      acc[14] += a1.w * b0; acc[15] += a1.w * b1;
    }
    workgroupBarrier();
  }
  for (var h = 0u; h < 2u; h++) {
    for (var rr = 0u; rr < 4u; rr++) {
      let gi = row0 + h * 64u + lid.y * 4u + rr;
      let q0 = acc[(h * 4u + rr) * 2u];
      let q1 = acc[(h * 4u + rr) * 2u + 1u];
      let c0 = col0 + lid.x * 4u;
      let c1 = col0 + 64u + lid.x * 4u;
      for (var q = 0u; q < 4u; q++) {
        store_c(o.z, gi, c0 + q, q0[q]);
        store_c(o.z, gi, c1 + q, q1[q]);
      }
    }
  }
}
