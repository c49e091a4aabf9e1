// power.wgsl: power iteration of SpectralNorm in a single workgroup, so that
// all p.k steps are one dispatch (the multi-kernel path of ops.go needs four
// dispatches a step, and on a discrete GPU their recording cost, not the
// arithmetic, dominated a K-FAC refresh). The iterate v lives in workgroup
// memory, which bounds n by POWER_MAXN.

@group(0) @binding(1) var<storage, read_write> b1: array<f32>;
@group(0) @binding(2) var<storage, read_write> b2: array<f32>;
@group(0) @binding(3) var<storage, read_write> b3: array<f32>;

const POWER_WG: u32 = 256u;
const POWER_MAXN: u32 = 3584u; // 14 rows a thread; 15 KiB of workgroup memory with pr
const POWER_ROWS: u32 = 14u;

var<workgroup> pv: array<f32, 3584>;
var<workgroup> pr: array<f32, 256>;

// col4 loads the words b + c.x, …, b + c.w of the matrix: four rows' entries
// of one column.
fn col4(b: u32, c: vec4<u32>) -> vec4<f32> {
  return vec4<f32>(b1[b + c.x], b1[b + c.y], b1[b + c.z], b1[b + c.w]);
}

// wg_sum returns Σ part over the workgroup (every thread gets the sum).
fn wg_sum(t: u32, part: f32) -> f32 {
  workgroupBarrier(); // every earlier read of pr done
  pr[t] = part;
  for (var h = POWER_WG / 2u; h > 0u; h >>= 1u) {
    workgroupBarrier();
    if (t < h) { pr[t] += pr[t + h]; }
  }
  workgroupBarrier();
  return pr[0];
}

// power_iter: up to p.k ≥ 1 steps of power iteration w = A·v, v = w/‖w‖ on
// the symmetric n×n matrix b1 (n = p.n ≤ POWER_MAXN), as the CPU device's
// SpectralNorm: from the direction of the vector b3 when p.flags bit 0 is set
// and it is nonzero and finite, else from 1/√n; the steps stop once two
// estimates agree to p.s0 (relative). b2[p.off] = ‖w‖ of the last step and,
// with bit 0, b3 = the last unit iterate. Thread t owns rows t, t+256, …; a
// zero w ends the iteration with norm 0, NaN propagates. The steps after the
// stop only pass the barriers, which must stay in uniform control flow.
@compute @workgroup_size(256)
fn power_iter(@builtin(local_invocation_index) t: u32) {
  let n = p.n;
  let rows = (n + POWER_WG - 1u) / POWER_WG;
  let warm = (p.flags & 1u) != 0u;
  var ss = 0.0;
  if (warm) {
    for (var i = t; i < n; i += POWER_WG) { ss += b3[i] * b3[i]; }
  }
  ss = wg_sum(t, ss);
  let bad = (bitcast<u32>(ss) & 0x7f800000u) == 0x7f800000u; // Inf or NaN
  let use_v = warm && ss > 0.0 && !bad;
  let inv = select(1.0 / sqrt(f32(n)), 1.0 / sqrt(ss), use_v);
  for (var i = t; i < n; i += POWER_WG) { pv[i] = select(inv, b3[i] * inv, use_v); }
  var w: array<f32, 16>; // POWER_ROWS rounded up to the 4-row groups below
  var nrm = 0.0;
  var done = false;
  for (var it = 0u; it < p.k; it++) {
    workgroupBarrier(); // pv complete
    var part = 0.0;
    if (!done) {
      // Column i = row i of the symmetric A, so that neighbouring threads
      // read neighbouring words (a row walk strides by n). Four of the
      // thread's rows and four columns at a time: sixteen independent loads
      // in flight, where one load per multiply-add left this one workgroup
      // waiting on memory. Rows past n read row n − 1 (the same word for all
      // threads) and count as 0.
      for (var r = 0u; r < rows; r += 4u) {
        let i = t + r * POWER_WG;
        let c = min(vec4<u32>(i) + vec4<u32>(0u, 1u, 2u, 3u) * POWER_WG, vec4<u32>(n - 1u));
        var s = vec4<f32>(0.0);
        var j = 0u;
        for (; j + 4u <= n; j += 4u) {
          let b = j * n;
          s += col4(b, c) * pv[j] + col4(b + n, c) * pv[j + 1u]
             + col4(b + 2u * n, c) * pv[j + 2u] + col4(b + 3u * n, c) * pv[j + 3u];
        }
        for (; j < n; j++) { s += col4(j * n, c) * pv[j]; }
        s = select(vec4<f32>(0.0), s, i + vec4<u32>(0u, 1u, 2u, 3u) * POWER_WG < vec4<u32>(n));
        w[r] = s.x;
        w[r + 1u] = s.y;
        w[r + 2u] = s.z;
        w[r + 3u] = s.w;
        part += dot(s, s);
      }
    }
    let total = wg_sum(t, part); // also: every w read pv
    if (!done) {
      let next = sqrt(total);
      done = next == 0.0 || abs(next - nrm) <= p.s0 * next;
      nrm = next;
      if (!done) {
        for (var r = 0u; r < rows; r++) {
          let i = t + r * POWER_WG;
          if (i < n) { pv[i] = w[r] / nrm; }
        }
      }
    }
  }
  if (t == 0u) { b2[p.off] = nrm; }
  if (warm) {
    for (var i = t; i < n; i += POWER_WG) { b3[i] = pv[i]; }
  }
}
