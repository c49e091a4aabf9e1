// power.wgsl: power iteration of SpectralNorm in a single workgroup, so that
// all p.k steps are one dispatch (the multi-kernel path of ops.go needs four
// dispatches a step, and on a discrete GPU their recording cost, not the
// arithmetic, dominated a K-FAC refresh). The iterate v lives in workgroup
// memory, which bounds n by POWER_MAXN.

@group(0) @binding(1) var<storage, read_write> b1: array<f32>;
@group(0) @binding(2) var<storage, read_write> b2: array<f32>;

const POWER_WG: u32 = 256u;
const POWER_MAXN: u32 = 3584u; // 14 rows a thread; 15 KiB of workgroup memory with pr
const POWER_ROWS: u32 = 14u;

var<workgroup> pv: array<f32, 3584>;
var<workgroup> pr: array<f32, 256>;

// power_iter: p.k ≥ 1 steps of power iteration w = A·v, v = w/‖w‖ on the
// symmetric n×n matrix b1 (n = p.n ≤ POWER_MAXN) from v = 1/√n, as the CPU
// device's SpectralNorm; b2[p.off] = ‖w‖ of the last step. Thread t owns
// rows t, t+256, …; a zero w stays zero (norm 0), NaN propagates.
@compute @workgroup_size(256)
fn power_iter(@builtin(local_invocation_index) t: u32) {
  let n = p.n;
  let rows = (n + POWER_WG - 1u) / POWER_WG;
  let v0 = 1.0 / sqrt(f32(n));
  for (var i = t; i < n; i += POWER_WG) { pv[i] = v0; }
  var w: array<f32, 14>;
  var nrm = 0.0;
  for (var it = 0u; it < p.k; it++) {
    workgroupBarrier(); // pv complete; every read of pr[0] done
    var part = 0.0;
    for (var r = 0u; r < rows; r++) {
      let i = t + r * POWER_WG;
      var s = 0.0;
      if (i < n) {
        // column i = row i of the symmetric A: neighbouring threads read
        // neighbouring words (coalesced), where a row walk strides by n
        for (var j = 0u; j < n; j++) { s += b1[j * n + i] * pv[j]; }
      }
      w[r] = s;
      part += s * s;
    }
    pr[t] = part;
    for (var h = POWER_WG / 2u; h > 0u; h >>= 1u) {
      workgroupBarrier();
      if (t < h) { pr[t] += pr[t + h]; }
    }
    workgroupBarrier(); // every w read pv; pr[0] is the sum
    nrm = sqrt(pr[0]);
    for (var r = 0u; r < rows; r++) {
      let i = t + r * POWER_WG;
      if (i < n) { pv[i] = select(w[r] / nrm, 0.0, nrm == 0.0); }
    }
  }
  if (t == 0u) { b2[p.off] = nrm; }
}
