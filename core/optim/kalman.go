package optim

import (
	"fmt"
	"math"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/nn"
)

func init() {
	params := func(sigma0, beta, rho float64) []Param {
		return []Param{
			{Name: "sigma0", Default: sigma0, Min: 1e-12, Max: 1e6, Doc: "prior variance σ0 of Σ0 = σ0·I (a variance: App. H; 0.5: the best of σ0 0.01…10 × β 0.9…0.999 " + tunedOn + ")"},
			{Name: "beta", Default: beta, Min: 0, Max: 1, Doc: "EMA factor β of R_k = βR_{k−1} + (1−β)R̂_k (App. H); 1 keeps R at R0 = 0 (0.98: chosen with σ0 " + tunedOn + ")"},
			{Name: "rho", Default: rho, Min: 0, Max: 1e6, Doc: "gradient regularizer ρ of R̃ = R(I + ρR)⁻¹ (eq. 15)"},
			{Name: "q", Default: 0, Min: 0, Max: 1, Doc: "process noise Q = q·I added to Σ every sample (Alg. 2 line 5)"},
		}
	}
	cfg := func(hp Hyper) KalmanConfig {
		return KalmanConfig{Sigma0: hp["sigma0"], Beta: hp["beta"], Rho: hp["rho"], Q: hp["q"], Jitter: DefaultKalmanJitter}
	}
	Register(Entry{
		Name: "rkalman",
		Doc: "R-Kalman (§3.3, Alg. 2) with the diagonal covariance of eq. 22: one Kalman filter step per sample, " +
			"regularized observation noise R(I+ρR)⁻¹, R estimated by an EMA",
		Params: params(0.5, 0.98, 0.1),
		New: func(net nn.Model, hp Hyper, _ uint64) (Optimizer, error) {
			return NewRKalman(net, cfg(hp))
		},
	})
	Register(Entry{
		Name: "kalman-full",
		Doc: fmt.Sprintf("R-Kalman (§3.3, Alg. 2) with a dense covariance, float64 on the host: the reference for "+
			"small models (at most %d parameters)", MaxKalmanFullParams),
		Params: params(0.5, 0.98, 0.1),
		New: func(net nn.Model, hp Hyper, _ uint64) (Optimizer, error) {
			return NewKalmanFull(net, cfg(hp))
		},
	})
}

// DefaultKalmanJitter is the relative jitter added to A = HΣHᵀ + R̃ before it
// is inverted: Jitter·tr(A)/d_o on the diagonal.
const DefaultKalmanJitter = 1e-6

// KalmanConfig holds the hyperparameters of both R-Kalman variants.
type KalmanConfig struct {
	// Sigma0 is the prior variance: Σ0 = Sigma0·I around μ0 = the model's
	// initial weights (Appendix H). Must be > 0.
	Sigma0 float64
	// Q is the process noise variance: Σ_{k|k−1} = Σ_{k−1} + Q·I (Alg. 2
	// line 5). Q > 0 keeps the filter from freezing.
	Q float64
	// Beta is the forgetting factor of R_k = βR_{k−1} + (1−β)R̂_k (Alg. 2 line
	// 10, Appendix H), in [0, 1]; 1 keeps R at R0 (zero unless SetR).
	Beta float64
	// Rho is ρ of eq. 15, R̃ = R(I + ρR)⁻¹ = (R⁻¹ + ρI)⁻¹: the Jacobian
	// (gradient) regularization F̃ = F + ρHᵀH read as an observation noise.
	Rho float64
	// Jitter is the relative diagonal jitter of A (see RKalman);
	// DefaultKalmanJitter for the registered optimizers, 0 for exact tests.
	Jitter float64
}

func (c KalmanConfig) validate(name string) error {
	bad := func(what string, v float64) error {
		return fmt.Errorf("%s: %s = %v is out of range", name, what, v)
	}
	switch {
	case !(c.Sigma0 > 0) || math.IsInf(c.Sigma0, 0):
		return bad("sigma0 (want > 0)", c.Sigma0)
	case !(c.Q >= 0) || math.IsInf(c.Q, 0):
		return bad("q (want ≥ 0)", c.Q)
	case !(c.Beta >= 0 && c.Beta <= 1):
		return bad("beta (want [0, 1])", c.Beta)
	case !(c.Rho >= 0) || math.IsInf(c.Rho, 0):
		return bad("rho (want ≥ 0)", c.Rho)
	case !(c.Jitter >= 0) || math.IsInf(c.Jitter, 0):
		return bad("jitter (want ≥ 0)", c.Jitter)
	}
	return nil
}

// kalman is what both variants share: the Jacobian pass on one sample, the
// observation noise R on the host, and A⁻¹.
type kalman struct {
	name string
	cfg  KalmanConfig
	net  nn.Model // the model; its G hold the batch gradient after Step
	// jac is net.Twin(): the same function on the same weight matrices with
	// its own d_o-row buffers, so the per-sample Jacobian pass never resizes
	// or overwrites the batch state of net. For a LoRA network its Layers are
	// the adapter blocks, each a Dense whose X and E give H as below.
	jac nn.Model
	// jacBlocks has, per weight matrix of net (in the order of Weights),
	// jac's Dense block when the weight is one applied once per sample (X
	// and E give H, rank 1 per output), else nil: H is sgrad's.
	jacBlocks []*nn.Dense
	// sgrad has, per weight matrix without a rank-1 block, H (d_o×n_w: row
	// j the gradient of output j, flattened), jac's SampleGrads; nil
	// entries for the others, and all nil for a model of rank-1 blocks.
	sgrad   []core.Mat
	general bool // some weight matrix has no rank-1 block
	dev     core.Device
	do      int         // output width d_o
	loss    nn.LossFunc // the model's: the predictive mean h and its Jacobian

	r []float64 // R_{k−1} (d_o×d_o, float64, host)

	xr             core.Mat   // d_o×in: the sample replicated d_o times
	rep, one       []core.Mat // per batch row i: d_o×1 and 1×1 index vectors of i
	zero           core.Mat   // 1×1 index 0
	label          core.Mat   // 1×1 (cross-entropy)
	yt, z1, p, eps core.Mat   // 1×d_o: target, output row, ŷ, y − ŷ
	seed, eye      core.Mat   // d_o×d_o: ∂ŷ/∂z (rows j: Jacobian of output j), I
	xbar           []core.Mat // per rank-1 block: 1×(In+1), the homogeneous input x̄
	hostE          []float32  // download of y − ŷ (the dense variant)
	s64, e64       []float64  // HΣHᵀ and y − ŷ on the host
	bak            []core.Mat // weight backups for batches of m > 1
	rBak           []float64
	lastRTild      []float64 // R̃ of the last sample (diagnostics and tests)
}

// kalmanTwin makes the twin of net that R-Kalman's per-sample Jacobian
// pass runs on, and says for every weight matrix how its Jacobian H is
// found: blocks[i] is the twin's Dense block when weight i is one applied
// once per sample (H_j = x̄ᵀe_j, rank 1), and nil when H comes from the
// twin's per-sample gradients (nn.SampleGradder: weights shared over
// positions, layer norms, embeddings). It refuses, naming the model or the
// layer, a model without a twin, or with a weight matrix of neither kind.
func kalmanTwin(name string, net nn.Model) (jac nn.Model, blocks []*nn.Dense, err error) {
	tw, ok := net.(nn.Twinner)
	if !ok {
		return nil, nil, fmt.Errorf("%s: model %s cannot make the twin of its per-sample Jacobian pass", name, net.Arch())
	}
	if c, ok := net.(interface{ CanTwin() error }); ok {
		if err := c.CanTwin(); err != nil {
			return nil, nil, fmt.Errorf("%s: %w: the per-sample Jacobian pass runs on a twin", name, err)
		}
	}
	sg, ok := net.(nn.SampleGradder)
	if !ok { // an MLP: every weight a Dense block of one position
		bs, err := net.Blocks()
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		for i, b := range bs {
			if p := b.InShape().Positions(); p > 1 {
				return nil, nil, fmt.Errorf("%s: weight matrix %d of %s is shared over %d positions and the model gives no per-sample gradients", name, i+1, net.Arch(), p)
			}
		}
		jac = tw.Twin(true)
		blocks, err = jac.Blocks()
		return jac, blocks, err
	}
	rank1, general := sg.DenseBlocks(), false
	for i, b := range rank1 {
		if b == nil || b.InShape().Positions() > 1 {
			rank1[i], general = nil, true
		}
	}
	if general {
		if err := sg.CanSampleGrads(); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	jac = tw.Twin(true)
	blocks = jac.(nn.SampleGradder).DenseBlocks()
	for i := range blocks {
		if rank1[i] == nil {
			blocks[i] = nil
		}
	}
	return jac, blocks, nil
}

func newKalman(name string, net nn.Model, cfg KalmanConfig) (*kalman, error) {
	if err := cfg.validate(name); err != nil {
		return nil, err
	}
	dev := net.Device()
	do := net.Outputs()
	k := &kalman{name: name, cfg: cfg, net: net, dev: dev, do: do, loss: net.Objective().Func()}
	var err error
	if k.jac, k.jacBlocks, err = kalmanTwin(name, net); err != nil {
		return nil, err
	}
	for i, w := range net.Weights() {
		var xb, h core.Mat
		if l := k.jacBlocks[i]; l != nil {
			xb = dev.New(1, l.In+1)
		} else {
			h = dev.New(do, core.Len(w))
			k.general = true
		}
		k.xbar, k.sgrad = append(k.xbar, xb), append(k.sgrad, h)
	}
	k.r = make([]float64, do*do)
	k.zero = dev.New(1, 1)
	k.label = dev.New(1, 1)
	k.yt, k.z1, k.p, k.eps = dev.New(1, do), dev.New(1, do), dev.New(1, do), dev.New(1, do)
	k.seed, k.eye = dev.New(do, do), dev.New(do, do)
	id := make([]float32, do*do)
	for j := 0; j < do; j++ {
		id[j*do+j] = 1
	}
	dev.Upload(k.eye, id)
	k.hostE = make([]float32, do)
	k.s64, k.e64 = make([]float64, do*do), make([]float64, do)
	return k, nil
}

// SetR sets the observation noise R (d_o×d_o, row-major, copied) that the
// next sample's EMA starts from; with Beta = 1 it stays fixed. It panics
// when len(r) ≠ d_o².
func (k *kalman) SetR(r []float64) {
	if len(r) != k.do*k.do {
		panic(&core.ShapeError{Op: k.name + ".SetR", What: fmt.Sprintf("%d values for a %d×%d R", len(r), k.do, k.do)})
	}
	copy(k.r, r)
}

// R returns a copy of the current observation noise estimate R_k.
func (k *kalman) R() []float64 { return append([]float64(nil), k.r...) }

// RTilde returns a copy of R̃_k = R_k(I + ρR_k)⁻¹ of the last sample (eq. 15).
func (k *kalman) RTilde() []float64 { return append([]float64(nil), k.lastRTild...) }

// indices returns the index vectors that cut row i out of a batch: d_o
// copies of i (the replicated sample) and i alone.
func (k *kalman) indices(i int) (rep, one core.Mat) {
	for len(k.rep) <= i {
		j := len(k.rep)
		r, o := k.dev.New(k.do, 1), k.dev.New(1, 1)
		v := make([]float32, k.do)
		for c := range v {
			v[c] = float32(j)
		}
		k.dev.Upload(r, v)
		k.dev.Upload(o, v[:1])
		k.rep, k.one = append(k.rep, r), append(k.one, o)
	}
	return k.rep[i], k.one[i]
}

// observe runs the Jacobian pass on sample i of (x, y): the forward pass of
// the sample replicated d_o times, ŷ and ε = y − ŷ (k.eps), and the backward
// pass of the seed rows ∂ŷ_j/∂z (diag(p) − ppᵀ for softmax, I for MSE), after
// which every rank-1 block l of k.jac holds X (d_o identical rows x̄) and E
// with row j = ∂ŷ_j/∂Z, and k.xbar[l] holds x̄. The Jacobian of output j
// with respect to that block's W is then x̄ᵀE_j: H_j|W[a,b] = x̄_a·E[j,b].
// For every other weight matrix, replica j's own gradient is that of
// output j: k.sgrad holds H (the twin's SampleGrads).
func (k *kalman) observe(x, y core.Mat, i int) {
	dev := k.dev
	rep, one := k.indices(i)
	if k.xr == nil || k.xr.Cols() != x.Cols() {
		if k.xr != nil {
			dev.Free(k.xr)
		}
		k.xr = dev.New(k.do, x.Cols())
	}
	dev.GatherRows(k.xr, x, rep)
	out := k.jac.Forward(k.xr)
	dev.GatherRows(k.z1, out, k.zero)
	k.loss.Target(dev, k.yt, y, one, k.label)
	yhat, seed := k.loss.Mean(dev, k.z1, k.p, k.seed, k.eye)
	dev.Copy(k.eps, k.yt)
	dev.Axpby(-1, yhat, 1, k.eps)
	k.jac.Backward(seed)
	for l, L := range k.jacBlocks {
		if L != nil {
			dev.GatherRows(k.xbar[l], L.X, k.zero)
		}
	}
	if k.general {
		k.jac.(nn.SampleGradder).SampleGrads(k.sgrad)
	}
}

// gain computes, on the host in float64, from S = HΣ_{k|k−1}Hᵀ and ε = y − ŷ:
// R_k (Alg. 2 lines 9–10), R̃_k (eq. 15), A = S + R̃_k (completed and
// jittered, see RKalman), A⁻¹ and v = A⁻¹ε, so that K̃ε = ΣHᵀv and
// K̃H = ΣHᵀA⁻¹H. R_k is returned, not stored: the caller commits it with the
// step.
func (k *kalman) gain(s, eps []float64) (rNew, ainv, v []float64, err error) {
	rNew, rt, ainv, v, err := k.cfg.Gain(k.name, k.r, s, eps, k.loss.SimplexMean())
	if rt != nil {
		k.lastRTild = rt
	}
	return rNew, ainv, v, err
}

// Gain is the host side of one R-Kalman sample with d outputs (Algorithm
// 2 lines 9–12, eq. 15), in float64: from R_{k−1} = r (d×d), S = HΣ_{k|k−1}Hᵀ
// (d×d; symmetrized in place) and ε = y − ŷ (d), it returns
// R_k = βR_{k−1} + (1−β)(εεᵀ + S), R̃_k = R_k(I + ρR_k)⁻¹,
// A⁻¹ with A = S + R̃_k (completed along 1 when simplex, the outputs being
// probabilities, and jittered: see RKalman) and v = A⁻¹ε. name labels its
// errors (Diverged); rTilde is set whenever R̃_k could be formed.
func (c KalmanConfig) Gain(name string, r, s, eps []float64, simplex bool) (rNew, rTilde, ainv, v []float64, err error) {
	d := len(eps)
	for _, x := range s {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, nil, nil, nil, &Diverged{Optimizer: name, What: "HΣHᵀ"}
		}
	}
	for _, x := range eps {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, nil, nil, nil, &Diverged{Optimizer: name, What: "the innovation y − ŷ"}
		}
	}
	kalSymmetrize(s, d)
	b := c.Beta
	rNew = make([]float64, d*d)
	for i := 0; i < d; i++ {
		for j := 0; j < d; j++ {
			rNew[i*d+j] = b*r[i*d+j] + (1-b)*(eps[i]*eps[j]+s[i*d+j])
		}
	}
	rt := rNew
	if c.Rho > 0 {
		// R̃ = (I + ρR)⁻¹R: R and (I + ρR)⁻¹ commute; I + ρR ⪰ I.
		m := make([]float64, d*d)
		for i := range m {
			m[i] = c.Rho * rNew[i]
		}
		for i := 0; i < d; i++ {
			m[i*d+i]++
		}
		mi, ok := kalSPDInverse(m, d)
		if !ok {
			return nil, nil, nil, nil, &Diverged{Optimizer: name, What: "I + ρR"}
		}
		rt = kalMul(mi, rNew, d, d, d)
		kalSymmetrize(rt, d)
	}
	a := make([]float64, d*d)
	var tr float64
	for i := range a {
		a[i] = s[i] + rt[i]
	}
	for i := 0; i < d; i++ {
		tr += a[i*d+i]
	}
	tr /= float64(d)
	if !(tr > 0) {
		tr = 1
	}
	if simplex && d > 1 {
		u := tr / float64(d)
		for i := range a {
			a[i] += u
		}
	}
	for i := 0; i < d; i++ {
		a[i*d+i] += c.Jitter * tr
	}
	ainv, ok := kalSPDInverse(a, d)
	if !ok {
		return nil, rt, nil, nil, &Diverged{Optimizer: name, What: "(HΣHᵀ + R̃)⁻¹"}
	}
	v = kalMul(ainv, eps, d, d, 1)
	return rNew, rt, ainv, v, nil
}

// backupWeights copies the weights before a batch of m > 1 samples, so that
// a rejected sample can roll the whole step back.
func (k *kalman) backupWeights() {
	ws := k.net.Weights()
	if k.bak == nil {
		k.bak = newLike(k.dev, ws)
	}
	for i, w := range ws {
		k.dev.Copy(k.bak[i], w)
	}
	k.rBak = append(k.rBak[:0], k.r...)
}

func (k *kalman) restoreWeights() {
	for i, w := range k.net.Weights() {
		k.dev.Copy(w, k.bak[i])
	}
	copy(k.r, k.rBak)
}

// step is the Step of both variants: the batch loss and gradient, then one
// filter step per sample (sample), rolled back as a whole when one is
// rejected.
func (k *kalman) step(x, y core.Mat, sample func(x, y core.Mat, i int) error, backup, restore func()) (Stats, error) {
	st, err := lossGradNorm(k.net, k.name, x, y, "")
	if err != nil {
		return st, err
	}
	m := x.Rows()
	if m > 1 {
		k.backupWeights()
		backup()
	}
	for i := 0; i < m; i++ {
		if err := sample(x, y, i); err != nil {
			if m > 1 {
				k.restoreWeights()
				restore()
			}
			return st, err
		}
	}
	return st, nil
}

// RKalman is R-Kalman (paper §3.3, Algorithm 2) with the diagonal covariance
// of Appendix E.2 (eq. 22). The parameters are the state of a Kalman filter,
// θ ~ N(μ, Σ), and every sample (x_k, y_k) is an observation
// y_k = h(x_k, θ) + noise with covariance R_k. One sample is one filter step:
//
//	prediction (eq. 13a; Alg. 2 line 5)  μ_{k|k−1} = μ_{k−1},  Σ_{k|k−1} = Σ_{k−1} + Q
//	pre-update (Alg. 2 lines 7–10)       ŷ = h(x, μ_{k|k−1}),  H = ∂h/∂θ (d_o×n),
//	                                     R̂ = (y−ŷ)(y−ŷ)ᵀ + HΣ_{k|k−1}Hᵀ,  R_k = βR_{k−1} + (1−β)R̂
//	update (eqs. 14b, 15; lines 12–14)   R̃ = R_k(I + ρR_k)⁻¹,  A = HΣ_{k|k−1}Hᵀ + R̃,
//	                                     K̃ = Σ_{k|k−1}HᵀA⁻¹,  μ_k = μ_{k|k−1} + K̃(y − ŷ),
//	                                     Σ_k = Σ_{k|k−1} − K̃HΣ_{k|k−1}
//
// Choices where the paper is ambiguous or inconsistent:
//   - Σ0 = σ0·I (Appendix H), so σ0 is a variance, not a standard deviation:
//     Table 4's σ0 = 0.2 is a prior standard deviation of √0.2 ≈ 0.45.
//   - Q adds to the covariance, Σ_{k|k−1} = Σ_{k−1} + Q (Alg. 2 line 5); eq.
//     13b adds Q to the precision Σ⁻¹, which would shrink the covariance and is
//     read as a typo. Q = q·I, q = 0 by default (Alg. 2 line 1).
//   - eq. 14c's minus sign is a typo: the information form is
//     Σ_k⁻¹ = Σ_{k|k−1}⁻¹ + HᵀR̃⁻¹H (Appendix D.3); the covariance form of
//     Alg. 2 line 14 is used, which is exact.
//   - eq. 22c's last factor (σ_{k|k−1})^j carries the output index j; the
//     diagonal of K̃HΣ is Σ_j K̃_ij H_ji σ_i, so it is read as (σ_{k|k−1})^i.
//     The gain in eq. 22c is the regularized K̃ of eq. 22a (Alg. 2 line 14).
//   - h is the model's predictive mean: the probabilities p = softmax(z) for
//     cross-entropy (y one-hot) and the outputs z for MSE (§3.3 after eq. 14).
//   - R0 = 0 (Alg. 2 line 1): at step 1 R_1 = (1−β)R̂_1, which is positive
//     definite wherever HΣHᵀ is. With β = 1 the filter keeps R fixed at R0,
//     which SetR sets: the classical linear-Gaussian filter of the tests.
//   - Softmax probabilities sum to 1, so every row of ∂p/∂z = diag(p) − ppᵀ
//     sums to zero: 1ᵀH = 0, 1ᵀ(y − ŷ) = 0, and A (built from HΣHᵀ, (y−ŷ)(y−ŷ)ᵀ
//     and R0 = 0) is singular along 1. For cross-entropy A is completed by
//     δ·11ᵀ/d_o, δ = tr(A)/d_o, before it is inverted: since A·1 = 0, the
//     completed inverse is A⁺ + 11ᵀ/(δd_o), and Hᵀ1 = 0 removes the second
//     term from every use (K̃ and the covariance update), so this is exactly
//     the filter in the d_o − 1 dimensions the probabilities live in.
//   - On top, A gets a relative jitter Jitter·tr(A)/d_o·I (1e-6 by default)
//     against rounding: HΣHᵀ is accumulated in float32, and where some
//     probabilities underflow it is only semidefinite to that precision.
//   - A mini-batch of m samples is m filter steps in order (the paper uses
//     batch size 1, Tables 4–5); Stats are the batch's loss and gradient norm
//     before the first of them.
//
// The d_o×d_o quantities (R, R̃, A, A⁻¹) live on the host in float64: a
// sample reads HΣHᵀ (d_o²) and y − ŷ (d_o), stacked in one matrix, its one
// sync point, and uploads A⁻¹ and A⁻¹(y − ŷ). The divergence guard of the
// update needs no other: the host bounds |K̃(y − ŷ)| from HΣHᵀ, A⁻¹(y − ŷ)
// and a bound on σ that a Step measures once (one AbsMaxes for the batch).
//
// Defaults (registry "rkalman"): σ0 = 0.5, β = 0.98, ρ = 0.1. σ0 and β were
// chosen on an MNIST validation split, by the sweep that chose every
// optimizer's defaults with the same budget (tunedOn; Table 4 has σ0 = 0.2,
// 0.3 points below on validation there).
// Table 4's β = 0.2 fails when training an MLP from scratch with batch 1
// (sklearn digits 64-64-10, 1 epoch: 31% test accuracy against 92–93% for
// β ∈ [0.95, 0.99]; MNIST likewise): with R0 = 0 and a short memory, R
// follows the last sample and the filter drives the softmax into saturation,
// where H vanishes. Appendix H's range 0.94 ≤ β ≤ 0.99 works, hence 0.98.
// Table 4 gives no ρ for R-Kalman; ρ only acts where R ≳ 1/ρ, and for
// probabilities R is small (its diagonal is ~1e-3 after a few hundred
// samples), so results hardly depend on ρ ≤ 1; 0.1 honours §3.3's ρ ≪ 1.
//
// Diagonal covariance. The state is μ (the model's weights: every matrix of
// its Weights, so only the adapters of a LoRA network) and σ, one variance
// per weight, with the shapes of the weights; everything of size n runs on
// the device. With Σ_{k|k−1} = diag(σ'), σ' = σ + q, Algorithm 2 lines 12–14
// need no n×n matrix: with h_a column a of H (d_o×n),
//
//	HΣ'Hᵀ       = Σ_a σ'_a·h_ah_aᵀ = (H ⊙ 1σ'ᵀ)Hᵀ                   (eq. 22a, inner)
//	K̃(y−ŷ)     = Σ'HᵀA⁻¹(y−ŷ) = σ' ⊙ (vᵀH)ᵀ,  v = A⁻¹(y−ŷ)          (eqs. 22a, 22b)
//	diag(K̃HΣ') = σ'_a²·h_aᵀA⁻¹h_a = σ'² ⊙ colsum(H ⊙ A⁻¹H)          (eq. 22c)
//
// and σ ← σ' − diag(K̃HΣ'): eq. 22 with the weight matrices side by side,
// each adding its columns to HΣ'Hᵀ and taking its own rows of the gain.
//
// Rank-1 blocks. For a Dense block applied once per sample (the layers of
// an MLP, a classifier on pooled features) the Jacobian of output j with
// respect to its W ((In+1)×Out) is the outer product H_j|W = x̄ᵀe_j (x̄ the
// layer's homogeneous input, e_j row j of E from the seeded backward pass,
// see observe), h_(a,b) = x̄_a·E_{:,b}, and the three lines factor, with x̄²
// and σ' elementwise:
//
//	HΣ'Hᵀ       ∋ (E ⊙ s)Eᵀ,     s = x̄²σ' (1×Out)
//	K̃(y−ŷ)     = σ' ⊙ (x̄ᵀu),    u = vᵀE
//	diag(K̃HΣ') = σ'² ⊙ (x̄²ᵀt),  t_b = Σ_j (A⁻¹E)_{jb}E_{jb}
//
// So such a block costs a few GEMMs of d_o×Out, one product x̄²σ' that reads
// σ, and one pass of the fused Device.KalmanDiagUpdate over μ and σ (the
// outer products x̄ᵀu and x̄²ᵀt are never formed).
//
// Other weight matrices (dense layers and convolutions shared over
// positions, attention's projections, layer norms' γ and β, embeddings)
// have no such factorisation: sample s's Jacobian sums over its positions.
// For them H_w (d_o×n_w) is formed, row j the twin's per-sample gradient of
// replica j (nn.SampleGradder; replica j is seeded with ∂ŷ_j/∂z, see
// observe), and the three lines run as written on flattened copies of σ'
// (Reshape, MulRow, Gemm, Apply, SumRows, Clamp, Axpby): O(d_o²·n_w) a
// sample, on top of the d_o-replica forward and backward passes and
// SampleGrads' products.
//
// Neither the n×n covariance nor the n×d_o gain is ever formed. The new
// variance is σ' − σ'²·h_aᵀA⁻¹h_a = σ'(1 − σ'·h_aᵀA⁻¹h_a), which is in
// (0, σ'] because A ⪰ HΣ'Hᵀ ⪰ σ'_a·h_ah_aᵀ; rounding is caught by a floor
// of 1e-12·σ0.
//
// After one sample from the prior Σ0 = σ0·I, μ and σ equal the mean and the
// diagonal of the dense filter's posterior exactly; later they differ, since
// the dense filter keeps the correlations the diagonal drops.
type RKalman struct {
	*kalman
	sigma, sp []core.Mat // σ per weight matrix, shaped like it; σ + q when q > 0
	// per rank-1 block (nil for the other weights):
	s, t, u []core.Mat // 1×Out: x̄²σ, diag(EᵀA⁻¹E), vᵀE
	es      []core.Mat // d_o×Out: E ⊙ s, then A⁻¹E ⊙ E
	xb2     []core.Mat // 1×(In+1): x̄²
	// per weight matrix without a rank-1 block (nil for the others):
	hw  []core.Mat // d_o×n_w: H ⊙ σ'ᵀ, then A⁻¹H ⊙ H
	sf  []core.Mat // 1×n_w: σ' flattened, then the new σ
	row []core.Mat // 1×n_w: K̃(y − ŷ), then diag(K̃HΣ')
	dw  []core.Mat // shaped like the weight: K̃(y − ŷ)
	hsh core.Mat   // d_o×d_o
	// innov stacks HΣHᵀ over y − ŷ ((d_o+1)×d_o), put there by two GEMMs
	// with the selectors top = [I; 0] and bottom = [0 … 0 1]ᵀ, so that a
	// sample reads both in one download.
	innov, top, bottom core.Mat
	hostI              []float32
	v, ainv            core.Mat // d_o×1, d_o×d_o
	sBak               []core.Mat
	floor              float32
	// sigmaMax bounds every σ from above: measured at the start of a Step,
	// raised by q each sample (σ_k ≤ σ_{k−1} + q).
	sigmaMax float64
	bound    float64 // updateBound of the last sample (tests)
}

// maxKalmanUpdate is the largest bound on |K̃(y − ŷ)| that R-Kalman writes
// into the weights: float32's range with room for rounding.
const maxKalmanUpdate = math.MaxFloat32 / 4

// updateBound returns the host-side bound on every entry of K̃(y − ŷ) of a
// sample (see sample) from v = A⁻¹(y − ŷ) and HΣHᵀ (o.s64), or +Inf when v
// or A⁻¹ do not fit in float32 (their uploads would hold ±Inf).
func (o *RKalman) updateBound(v, ainv []float64) float64 {
	for _, x := range ainv {
		if !(math.Abs(x) <= math.MaxFloat32) {
			return math.Inf(1)
		}
	}
	var sum float64
	for j, x := range v {
		if !(math.Abs(x) <= math.MaxFloat32) {
			return math.Inf(1)
		}
		sum += math.Abs(x) * math.Sqrt(max(o.s64[j*o.do+j], 0))
	}
	return math.Sqrt(o.sigmaMax+o.cfg.Q) * sum
}

// NewRKalman builds the diagonal R-Kalman filter for net with prior
// N(current weights, cfg.Sigma0·I) and R0 = 0.
func NewRKalman(net nn.Model, cfg KalmanConfig) (*RKalman, error) {
	k, err := newKalman("rkalman", net, cfg)
	if err != nil {
		return nil, err
	}
	dev := net.Device()
	o := &RKalman{kalman: k, floor: float32(1e-12 * cfg.Sigma0)}
	if o.floor == 0 {
		o.floor = math.SmallestNonzeroFloat32
	}
	for i, w := range net.Weights() {
		sg := dev.New(w.Rows(), w.Cols())
		dev.Fill(sg, float32(cfg.Sigma0))
		o.sigma = append(o.sigma, sg)
		if cfg.Q > 0 {
			o.sp = append(o.sp, dev.New(w.Rows(), w.Cols()))
		}
		var s, t, u, es, xb2, hw, sf, row, dw core.Mat
		if l := k.jacBlocks[i]; l != nil {
			s, t, u = dev.New(1, l.Out), dev.New(1, l.Out), dev.New(1, l.Out)
			es, xb2 = dev.New(k.do, l.Out), dev.New(1, l.In+1)
		} else {
			n := core.Len(w)
			hw, sf, row, dw = dev.New(k.do, n), dev.New(1, n), dev.New(1, n), dev.New(w.Rows(), w.Cols())
		}
		o.s, o.t, o.u, o.es, o.xb2 = append(o.s, s), append(o.t, t), append(o.u, u), append(o.es, es), append(o.xb2, xb2)
		o.hw, o.sf, o.row, o.dw = append(o.hw, hw), append(o.sf, sf), append(o.row, row), append(o.dw, dw)
	}
	if cfg.Q == 0 {
		o.sp = o.sigma
	}
	o.hsh = dev.New(k.do, k.do)
	o.innov, o.top, o.bottom = dev.New(k.do+1, k.do), dev.New(k.do+1, k.do), dev.New(k.do+1, 1)
	sel := make([]float32, (k.do+1)*k.do)
	for j := 0; j < k.do; j++ {
		sel[j*k.do+j] = 1
	}
	dev.Upload(o.top, sel)
	sel = sel[:k.do+1]
	clear(sel)
	sel[k.do] = 1
	dev.Upload(o.bottom, sel)
	o.hostI = make([]float32, (k.do+1)*k.do)
	o.v, o.ainv = dev.New(k.do, 1), dev.New(k.do, k.do)
	return o, nil
}

// Var returns σ, the diagonal of the covariance, one matrix per weight
// matrix (in the order of the model's Weights) shaped like it. The matrices are the optimizer's own; do not write them.
func (o *RKalman) Var() []core.Mat { return o.sigma }

// Step runs one filter step per sample of (x, y), in order. When a sample is
// rejected (a non-finite quantity), the weights, σ and R return to where they
// were before the batch.
func (o *RKalman) Step(x, y core.Mat) (Stats, error) {
	o.sigmaMax = absMax(o.dev, o.sigma) // σ may have been loaded or backed off
	return o.step(x, y, o.sample, o.backup, o.restore)
}

func (o *RKalman) backup() {
	if o.sBak == nil {
		o.sBak = newLike(o.dev, o.sigma)
	}
	for i, s := range o.sigma {
		o.dev.Copy(o.sBak[i], s)
	}
}

func (o *RKalman) restore() {
	for i, s := range o.sigma {
		o.dev.Copy(s, o.sBak[i])
	}
}

func (o *RKalman) sample(x, y core.Mat, i int) error {
	dev := o.dev
	o.observe(x, y, i)
	blocks := o.jacBlocks // per weight matrix: its rank-1 block, or nil
	// Prediction: Σ_{k|k−1} = Σ_{k−1} + qI (Alg. 2 line 5), kept apart from σ
	// until the step is accepted.
	if o.cfg.Q > 0 {
		for l, s := range o.sigma {
			dev.AddScalar(o.sp[l], s, float32(o.cfg.Q))
		}
	}
	// HΣHᵀ = Σ_blocks (E ⊙ x̄²σ)Eᵀ + Σ_others (H ⊙ σ'ᵀ)Hᵀ.
	for l, L := range blocks {
		beta := float32(1)
		if l == 0 {
			beta = 0
		}
		if L == nil {
			dev.Reshape(o.sf[l], o.sp[l])
			dev.MulRow(o.hw[l], o.sgrad[l], o.sf[l])
			dev.Gemm(false, true, 1, o.hw[l], o.sgrad[l], beta, o.hsh)
			continue
		}
		dev.Map(core.Square, o.xb2[l], o.xbar[l])
		dev.Gemm(false, false, 1, o.xb2[l], o.sp[l], 0, o.s[l])
		dev.MulRow(o.es[l], L.E, o.s[l])
		dev.Gemm(false, true, 1, o.es[l], L.E, beta, o.hsh)
	}
	o.readInnovation()
	rNew, ainv, v, err := o.gain(o.s64, o.e64)
	if err != nil {
		return err
	}
	// The update is written only if every entry of K̃(y − ŷ) is finite, and
	// the host knows a bound on them without a sync: with σ'_a ≤ σmax + q
	// and σ'_a·H_ja² ≤ (HΣHᵀ)_jj (a term of that sum, H_ja = x̄_a·E_jb for
	// entry (a, b) of a rank-1 block),
	// |σ'_a·Σ_j v_jH_ja| ≤ Σ_j |v_j|·√σ'_a·√(σ'_a·H_ja²)
	// ≤ √(σmax + q)·Σ_j |v_j|·√(HΣHᵀ)_jj.
	if o.bound = o.updateBound(v, ainv); !(o.bound <= maxKalmanUpdate) {
		return &Diverged{Optimizer: o.name, What: "the update"}
	}
	dev.Upload(o.v, kalF32(v))
	dev.Upload(o.ainv, kalF32(ainv))
	ws := o.net.Weights()
	for l, L := range blocks {
		if L == nil {
			o.generalUpdate(l, ws[l])
			continue
		}
		// u = vᵀE for K̃(y − ŷ) = σ' ⊙ x̄ᵀu (eqs. 22a, 22b) and
		// t = colsum(A⁻¹E ⊙ E) for diag(K̃HΣ) = σ'² ⊙ x̄²ᵀt (eq. 22c), then
		// μ and σ in one pass. σ' − diag(K̃HΣ) needs no finiteness check:
		// 0 ≤ σ'_ab²x̄_a²t_b ≤ σ'_ab·s_b·t_b ≤ σ'_ab, since A ⪰ HΣHᵀ ⪰
		// s_b·E_bE_bᵀ (E_b column b of E) gives s_b·t_b ≤ 1.
		dev.Gemm(true, false, 1, o.v, L.E, 0, o.u[l])
		dev.Gemm(false, false, 1, o.ainv, L.E, 0, o.es[l])
		dev.Apply(core.Mul, o.es[l], o.es[l], L.E)
		dev.SumRows(o.t[l], o.es[l])
		dev.KalmanDiagUpdate(ws[l], o.sigma[l], o.xbar[l], o.u[l], o.t[l], float32(o.cfg.Q), o.floor)
	}
	o.sigmaMax += o.cfg.Q
	o.r = rNew
	return nil
}

// generalUpdate is the update of weight matrix l without a rank-1 block,
// from its H (k.sgrad[l], d_o×n), σ' flattened (sf[l]), v and A⁻¹:
// K̃(y − ŷ) = σ' ⊙ vᵀH (eqs. 22a, 22b) into w, and
// σ = max(σ' − σ'²⊙colsum(A⁻¹H ⊙ H), floor) (eq. 22c), with the products
// rounded in KalmanDiagUpdate's order. σ' − diag(K̃HΣ') needs no
// finiteness check: 0 ≤ σ'_a²·h_aᵀA⁻¹h_a ≤ σ'_a, since A ⪰ HΣ'Hᵀ ⪰
// σ'_a·h_ah_aᵀ (h_a column a of H) gives σ'_a·h_aᵀA⁻¹h_a ≤ 1.
func (o *RKalman) generalUpdate(l int, w core.Mat) {
	dev, h, sf, row := o.dev, o.sgrad[l], o.sf[l], o.row[l]
	dev.Gemm(true, false, 1, o.v, h, 0, row)
	dev.Apply(core.Mul, row, row, sf)
	dev.Reshape(o.dw[l], row)
	dev.Axpby(1, o.dw[l], 1, w)
	dev.Gemm(false, false, 1, o.ainv, h, 0, o.hw[l])
	dev.Apply(core.Mul, o.hw[l], o.hw[l], h)
	dev.SumRows(row, o.hw[l])
	dev.Apply(core.Mul, row, row, sf)
	dev.Apply(core.Mul, row, row, sf)
	dev.Axpby(-1, row, 1, sf)
	dev.Clamp(sf, sf, o.floor, math.MaxFloat32)
	dev.Reshape(o.sigma[l], sf)
}

// readInnovation reads HΣHᵀ and y − ŷ to the host in float64 (s64, e64):
// the one sync point of a sample.
func (o *RKalman) readInnovation() {
	dev, d := o.dev, o.do
	dev.Gemm(false, false, 1, o.top, o.hsh, 0, o.innov)
	dev.Gemm(false, false, 1, o.bottom, o.eps, 1, o.innov)
	dev.Download(o.innov, o.hostI)
	for i, v := range o.hostI[:d*d] {
		o.s64[i] = float64(v)
	}
	for i, v := range o.hostI[d*d:] {
		o.e64[i] = float64(v)
	}
}

// kalF32 converts to float32 for an upload.
func kalF32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// kalSymmetrize sets a (n×n) to (a + aᵀ)/2.
func kalSymmetrize(a []float64, n int) {
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			m := 0.5 * (a[i*n+j] + a[j*n+i])
			a[i*n+j], a[j*n+i] = m, m
		}
	}
}

// kalMul returns a (r×c) times b (c×k), row-major.
func kalMul(a, b []float64, r, c, k int) []float64 {
	out := make([]float64, r*k)
	for i := 0; i < r; i++ {
		for l := 0; l < c; l++ {
			ail := a[i*c+l]
			if ail == 0 {
				continue
			}
			for j := 0; j < k; j++ {
				out[i*k+j] += ail * b[l*k+j]
			}
		}
	}
	return out
}

// kalSPDInverse inverts the symmetric positive definite n×n matrix a by
// Cholesky in float64; ok is false when a is not positive definite (NaN
// included).
func kalSPDInverse(a []float64, n int) (inv []float64, ok bool) {
	l := make([]float64, n*n)
	for j := 0; j < n; j++ {
		d := a[j*n+j]
		for k := 0; k < j; k++ {
			d -= l[j*n+k] * l[j*n+k]
		}
		if !(d > 0) || math.IsInf(d, 0) {
			return nil, false
		}
		ljj := math.Sqrt(d)
		l[j*n+j] = ljj
		for i := j + 1; i < n; i++ {
			s := a[i*n+j]
			for k := 0; k < j; k++ {
				s -= l[i*n+k] * l[j*n+k]
			}
			l[i*n+j] = s / ljj
		}
	}
	// inv = L⁻ᵀL⁻¹: invert L column by column, then multiply.
	li := make([]float64, n*n)
	for c := 0; c < n; c++ {
		for i := c; i < n; i++ {
			s := 0.0
			if i == c {
				s = 1
			}
			for k := c; k < i; k++ {
				s -= l[i*n+k] * li[k*n+c]
			}
			li[i*n+c] = s / l[i*n+i]
		}
	}
	inv = make([]float64, n*n)
	for i := 0; i < n; i++ {
		for j := 0; j <= i; j++ {
			var s float64
			for k := i; k < n; k++ {
				s += li[k*n+i] * li[k*n+j]
			}
			inv[i*n+j], inv[j*n+i] = s, s
		}
	}
	return inv, true
}
