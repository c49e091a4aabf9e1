package optim

import (
	"fmt"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/nn"
)

// MaxKalmanFullParams is the largest model KalmanFull accepts: its dense
// covariance has n² float64 entries and each sample costs ~2n²d_o flops.
const MaxKalmanFullParams = 5000

// KalmanFull is R-Kalman (Algorithm 2) with a dense covariance Σ (n×n),
// kept in float64 on the host: the reference the diagonal RKalman is tested
// against, and a usable optimizer for very small models (2D landscapes).
// The Jacobian pass is RKalman's (observe); H (d_o×n) is assembled on the
// host, the parameters being the model's Weights in order, each row-major
// (the layers of a plain MLP, the adapter blocks of a LoRA network, every
// parameter matrix of a composed model): from each rank-1 block's x̄ and E,
// H_j[off_l + a·Out + b] = x̄_a·E[j,b], and from the per-sample gradients
// of the other weight matrices, H_j[off_l + p] = sgrad_l[j, p]; and then
//
//	Σp = Σ + qI,  S = HΣpHᵀ,  A = S + R̃,  K̃ = ΣpHᵀA⁻¹      (Alg. 2 lines 5, 9–12; eq. 15)
//	μ ← μ + K̃(y − ŷ),  Σ ← Σp − K̃HΣp                      (Alg. 2 lines 13–14)
//
// with R, R̃ and the completion of A for softmax outputs exactly as in
// RKalman. Only the update K̃(y − ŷ) goes back to the device.
type KalmanFull struct {
	*kalman
	dense  *KalmanDense
	n      int
	off    []int
	covBak []float64
	h, d64 []float64   // H (d_o×n), K̃(y − ŷ) (n)
	delta  []core.Mat  // per weight matrix: K̃(y − ŷ)
	xb, e  [][]float32 // per rank-1 block: downloads of x̄ and E (nil for the others)
	hb     [][]float32 // per other weight matrix: download of its H (nil for the blocks)
	dbuf   [][]float32
}

// NewKalmanFull builds the dense R-Kalman filter for net with prior
// N(current weights, cfg.Sigma0·I) and R0 = 0. It refuses models with more
// than MaxKalmanFullParams parameters.
func NewKalmanFull(net nn.Model, cfg KalmanConfig) (*KalmanFull, error) {
	n := nn.NumParams(net) // the adapters only for LoRA
	if n > MaxKalmanFullParams {
		return nil, fmt.Errorf("kalman-full: model %s has %d trainable parameters; its dense covariance allows at most %d (use rkalman, the diagonal variant)", net.Arch(), n, MaxKalmanFullParams)
	}
	k, err := newKalman("kalman-full", net, cfg)
	if err != nil {
		return nil, err
	}
	dev := net.Device()
	o := &KalmanFull{kalman: k, dense: newKalmanDense(k.name, &k.cfg, n, k.loss.SimplexMean()), n: n, h: make([]float64, k.do*n), d64: make([]float64, n)}
	off := 0
	for i, w := range net.Weights() {
		o.off = append(o.off, off)
		off += core.Len(w)
		o.delta = append(o.delta, dev.New(w.Rows(), w.Cols()))
		var xb, e, hb []float32
		if l := k.jacBlocks[i]; l != nil {
			xb, e = make([]float32, l.In+1), make([]float32, k.do*l.Out)
		} else {
			hb = make([]float32, k.do*core.Len(w))
		}
		o.xb, o.e, o.hb = append(o.xb, xb), append(o.e, e), append(o.hb, hb)
		o.dbuf = append(o.dbuf, make([]float32, core.Len(w)))
	}
	return o, nil
}

// Cov returns a copy of the covariance Σ (n×n, row-major, the parameters
// ordered layer by layer, each W row-major).
func (o *KalmanFull) Cov() []float64 { return o.dense.Cov() }

// Step runs one filter step per sample of (x, y), in order; a rejected
// sample rolls the whole batch back.
func (o *KalmanFull) Step(x, y core.Mat) (Stats, error) {
	return o.step(x, y, o.sample,
		func() { o.covBak = append(o.covBak[:0], o.dense.cov...) },
		func() { copy(o.dense.cov, o.covBak) })
}

func (o *KalmanFull) sample(x, y core.Mat, i int) error {
	dev, n, d := o.dev, o.n, o.do
	o.observe(x, y, i)
	// H (d_o×n) on the host.
	for l, L := range o.jacBlocks {
		if L == nil {
			dev.Download(o.sgrad[l], o.hb[l])
			w := len(o.dbuf[l])
			for j := 0; j < d; j++ {
				row := o.h[j*n+o.off[l] : j*n+o.off[l]+w]
				for p, v := range o.hb[l][j*w : (j+1)*w] {
					row[p] = float64(v)
				}
			}
			continue
		}
		dev.Download(o.xbar[l], o.xb[l])
		dev.Download(L.E, o.e[l])
		for j := 0; j < d; j++ {
			row := o.h[j*n+o.off[l]:]
			for a, xa := range o.xb[l] {
				for b := 0; b < L.Out; b++ {
					row[a*L.Out+b] = float64(xa) * float64(o.e[l][j*L.Out+b])
				}
			}
		}
	}
	dev.Download(o.eps, o.hostE)
	for j, v := range o.hostE {
		o.e64[j] = float64(v)
	}
	rNew, rt, err := o.dense.Update(o.r, o.h, o.e64, o.d64)
	if rt != nil {
		o.lastRTild = rt
	}
	if err != nil {
		return err
	}
	for l := range o.jacBlocks {
		buf := o.dbuf[l]
		for p := range buf {
			buf[p] = float32(o.d64[o.off[l]+p])
		}
		dev.Upload(o.delta[l], buf)
	}
	if err := applyUpdate(dev, o.name, o.net.Weights(), o.delta, -1); err != nil {
		return err
	}
	o.dense.Commit()
	o.r = rNew
	return nil
}

// KalmanDense is R-Kalman's filter with a dense covariance Σ (n×n) on the
// host in float64, for a model whose Jacobian H (d×n) and innovation
// ε = y − ŷ (d) the caller forms: the filter of KalmanFull, and of the
// two-parameter lessons of core/landscape. One sample is
//
//	Σp = Σ + qI,  S = HΣpHᵀ,  A = S + R̃,  K̃ = ΣpHᵀA⁻¹      (Alg. 2 lines 5, 9–12; eq. 15)
//	μ ← μ + K̃ε,  Σ ← Σp − K̃HΣp                            (Alg. 2 lines 13–14)
//
// with R, R̃ and A as KalmanConfig.Gain forms them.
type KalmanDense struct {
	name      string
	cfg       *KalmanConfig // KalmanFull's own, whose jitter its Backoff raises
	n         int
	simplex   bool
	cov, next []float64 // Σ and the Σ_k that Commit makes current
	hs        []float64 // HΣp (d×n)
}

// NewKalmanDense returns the filter of n parameters with Σ0 = cfg.Sigma0·I;
// simplex says that the outputs are probabilities (see Gain). name labels
// its errors.
func NewKalmanDense(name string, cfg KalmanConfig, n int, simplex bool) (*KalmanDense, error) {
	if err := cfg.validate(name); err != nil {
		return nil, err
	}
	return newKalmanDense(name, &cfg, n, simplex), nil
}

func newKalmanDense(name string, cfg *KalmanConfig, n int, simplex bool) *KalmanDense {
	k := &KalmanDense{name: name, cfg: cfg, n: n, simplex: simplex, cov: make([]float64, n*n), next: make([]float64, n*n)}
	for i := 0; i < n; i++ {
		k.cov[i*n+i] = cfg.Sigma0
	}
	return k
}

// Cov returns a copy of Σ (n×n, row-major).
func (k *KalmanDense) Cov() []float64 { return append([]float64(nil), k.cov...) }

// Update runs one sample: from R_{k−1} = r (d×d), H (d×n, row-major) and
// ε (d), it writes the mean update K̃ε into delta (n) and returns R_k and
// R̃_k (Gain). The new Σ takes effect at Commit, so that a caller can
// reject the step; rTilde is set whenever R̃_k could be formed.
func (k *KalmanDense) Update(r, h, eps, delta []float64) (rNew, rTilde []float64, err error) {
	n, d, q := k.n, len(eps), k.cfg.Q
	// HΣp = HΣ + qH, S = HΣpHᵀ.
	if len(k.hs) != d*n {
		k.hs = make([]float64, d*n)
	}
	clear(k.hs)
	for j := 0; j < d; j++ {
		hj, hsj := h[j*n:(j+1)*n], k.hs[j*n:(j+1)*n]
		for a, ha := range hj {
			if ha == 0 {
				continue
			}
			ca := k.cov[a*n : (a+1)*n]
			for b, c := range ca {
				hsj[b] += ha * c
			}
		}
		for b := range hsj {
			hsj[b] += q * hj[b]
		}
	}
	s := make([]float64, d*d)
	for j := 0; j < d; j++ {
		for c := 0; c < d; c++ {
			var acc float64
			for b := 0; b < n; b++ {
				acc += k.hs[j*n+b] * h[c*n+b]
			}
			s[j*d+c] = acc
		}
	}
	rNew, rTilde, ainv, v, err := k.cfg.Gain(k.name, r, s, eps, k.simplex)
	if err != nil {
		return nil, rTilde, err
	}
	// K̃ = (HΣp)ᵀA⁻¹ (n×d); Δμ = K̃ε = (HΣp)ᵀv; Σ_k = Σp − K̃(HΣp).
	kg := make([]float64, n*d)
	for a := 0; a < n; a++ {
		for c := 0; c < d; c++ {
			var acc float64
			for j := 0; j < d; j++ {
				acc += k.hs[j*n+a] * ainv[j*d+c]
			}
			kg[a*d+c] = acc
		}
	}
	for a := 0; a < n; a++ {
		var acc float64
		for j := 0; j < d; j++ {
			acc += k.hs[j*n+a] * v[j]
		}
		delta[a] = acc
	}
	for a := 0; a < n; a++ {
		ka := kg[a*d : (a+1)*d]
		row, prev := k.next[a*n:(a+1)*n], k.cov[a*n:(a+1)*n]
		copy(row, prev)
		row[a] += q
		for j, kj := range ka {
			if kj == 0 {
				continue
			}
			hsj := k.hs[j*n : (j+1)*n]
			for b := range row {
				row[b] -= kj * hsj[b]
			}
		}
	}
	kalSymmetrize(k.next, n)
	return rNew, rTilde, nil
}

// Commit makes the Σ of the last Update current.
func (k *KalmanDense) Commit() { k.cov, k.next = k.next, k.cov }
