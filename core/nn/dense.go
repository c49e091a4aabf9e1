package nn

import (
	"math"
	"math/rand/v2"

	"github.com/grng/grng/core"
)

// Dense is a fully connected layer z = x̄·W with the bias folded in as the
// last row of W ((In+1)×Out), followed by an activation a = f(z).
//
// After a forward and backward pass of r rows (m samples, or m samples ×
// positions when the layer acts on every position) it holds X (r×(In+1),
// the homogeneous inputs x̄), Z, A and E = ∂L/∂Z (r×Out), and G = X̄ᵀE, the
// gradient of W (paper eq. 5 summed over the batch).
type Dense struct {
	In, Out int
	Act     core.Unary
	W, G    core.Mat

	X, Z, A, E core.Mat
	dA         core.Mat // ∂L/∂A of the last Backward (the caller's)
	dX, dx     core.Mat // r×(In+1) scratch and r×In input gradient

	dev  core.Device
	h, w int // positions of a sample (0: one)
	rows int // rows the buffers are sized for
	// R-operator buffers (dense.go), allocated by the first RForward.
	rX, rZ, rA, rE, rdX, rdx, t core.Mat
	hasRX                       bool // the last RForward had an R{x}
	// sg is SampleGrads' (m·(In+1))×Out product, allocated by its first call.
	sg core.Mat
	// pad is the Padding of the Padded chain the layer is in (set by its
	// Forward), nil outside one.
	pad *Padding
}

// NewDense returns a dense layer In → Out with activation act, applied to
// every position of a sample of shape at (its channels C must be In), with
// zero weights; its parameter is W ((In+1)×Out, the bias as its last row).
func NewDense(dev core.Device, at Shape, out int, act core.Unary) *Dense {
	return &Dense{In: at.C, Out: out, Act: act, W: dev.New(at.C+1, out), G: dev.New(at.C+1, out),
		dev: dev, h: at.H, w: at.W}
}

// Init draws W from rng: Kaiming normal (std √(2/fan_in)) for ReLU and
// GELU layers, Xavier uniform (±√(6/(fan_in+fan_out))) for the others; the
// bias row 0.
func (l *Dense) Init(rng *rand.Rand) {
	in, out := l.In, l.Out
	w := make([]float32, (in+1)*out)
	if l.Act == core.ReLU || l.Act == core.GELU {
		std := math.Sqrt(2 / float64(in))
		for j := 0; j < in*out; j++ {
			w[j] = float32(rng.NormFloat64() * std)
		}
	} else {
		lim := math.Sqrt(6 / float64(in+out))
		for j := 0; j < in*out; j++ {
			w[j] = float32((2*rng.Float64() - 1) * lim)
		}
	}
	l.dev.Upload(l.W, w)
}

// Kind is "dense".
func (l *Dense) Kind() string { return "dense" }

// InShape and OutShape are the per-sample shapes; a Dense made by NewMLP
// acts on plain vectors.
func (l *Dense) InShape() Shape  { return Shape{H: max(l.h, 1), W: max(l.w, 1), C: l.In} }
func (l *Dense) OutShape() Shape { return Shape{H: max(l.h, 1), W: max(l.w, 1), C: l.Out} }

// Params and Grads are W and G.
func (l *Dense) Params() []core.Mat { return []core.Mat{l.W} }
func (l *Dense) Grads() []core.Mat  { return []core.Mat{l.G} }

// Twin is a Dense on the same W with its own buffers and G.
func (l *Dense) Twin() Layer {
	c := NewDense(l.dev, l.InShape(), l.Out, l.Act)
	l.dev.Free(c.W)
	c.W = l.W
	return c
}

// Padding is the Padding of the Padded chain whose last Forward ran this
// layer, which says which rows of X are tokens (Valid) and the weights of
// each sample's mean over them (Mean); nil when the layer is in no Padded
// chain (every row counts). K-FAC leaves the padded rows out of its input
// factors by it.
func (l *Dense) Padding() *Padding { return l.pad }

// SampleGrads sets dst[0] (m × (In+1)·Out) to the per-sample gradients
// X̄_sᵀE_s of W, s's P rows of X̄ and E (P positions a sample): one
// GemmBatched of the m blocks into an (m·(In+1))×Out product, reshaped. With
// one position, row s is the outer product x̄_sᵀe_s.
func (l *Dense) SampleGrads(dst []core.Mat) {
	if dst[0] == nil {
		return
	}
	d := l.dev
	m := l.rows / (max(l.h, 1) * max(l.w, 1))
	core.CheckShape("Dense.SampleGrads", "dst", dst[0], m, core.Len(l.W))
	if l.sg == nil || l.sg.Rows() != m*(l.In+1) {
		if l.sg != nil {
			d.Free(l.sg)
		}
		l.sg = d.New(m*(l.In+1), l.Out)
	}
	d.GemmBatched(m, true, false, 1, l.X, l.E, 0, l.sg)
	d.Reshape(dst[0], l.sg)
}

// Blocks is the layer itself: one Kronecker block.
func (l *Dense) Blocks() []*Dense { return []*Dense{l} }

// alloc (re)allocates the buffers of a batch of r rows.
func (l *Dense) alloc(r int) {
	d := l.dev
	if l.A == l.Z { // the identity layer's A is its Z (and R{a} its R{z}): free them once
		l.A = nil
	}
	if l.rA == l.rZ {
		l.rA = nil
	}
	for _, b := range []core.Mat{l.X, l.Z, l.A, l.E, l.dX, l.dx, l.rX, l.rZ, l.rA, l.rE, l.rdX, l.rdx, l.t} {
		if b != nil {
			d.Free(b)
		}
	}
	l.rX, l.rZ, l.rA, l.rE, l.rdX, l.rdx, l.t = nil, nil, nil, nil, nil, nil, nil
	l.X, l.dX = d.New(r, l.In+1), d.New(r, l.In+1)
	l.Z, l.E = d.New(r, l.Out), d.New(r, l.Out)
	l.dx = d.New(r, l.In)
	if l.Act == core.Identity {
		l.A = l.Z
	} else {
		l.A = d.New(r, l.Out)
	}
	l.rows = r
}

// Forward sets X = [x | 1], Z = X·W and A = f(Z), and returns A.
func (l *Dense) Forward(x core.Mat, m int) core.Mat {
	l.dev.AppendCol(l.input(x.Rows()), x, 1)
	return l.forwardX()
}

// input returns X, (re)allocated for a batch of r rows, to a caller that
// builds the homogeneous input [x | 1] itself (a convolution gathers its
// patches straight into it); forwardX then runs the layer on it.
func (l *Dense) input(r int) core.Mat {
	if r != l.rows {
		l.alloc(r)
	}
	return l.X
}

// forwardX sets Z = X·W and A = f(Z) for the X in place, and returns A.
func (l *Dense) forwardX() core.Mat {
	d := l.dev
	d.Gemm(false, false, 1, l.X, l.W, 0, l.Z)
	if l.Act != core.Identity {
		d.Map(l.Act, l.A, l.Z)
	}
	return l.A
}

// Backward sets E = f'(Z)⊙dy and G = X̄ᵀE, and returns ∂L/∂x = (E·Wᵀ)[:, :In].
func (l *Dense) Backward(dy core.Mat, p Pass) core.Mat {
	d := l.dev
	l.dA = dy
	if l.Act == core.Identity {
		d.Copy(l.E, dy)
	} else {
		d.MapGrad(l.Act, l.E, l.Z, dy)
	}
	if !p.SkipGrads {
		d.Gemm(true, false, 1, l.X, l.E, 0, l.G)
	}
	if !p.NeedX {
		return nil
	}
	d.Gemm(false, true, 1, l.E, l.W, 0, l.dX)
	d.CopyCols(l.dx, l.dX, 0)
	return l.dx
}

// RForward: R{z} = x̄V + R{x̄}W with R{x̄} = [R{x} | 0], R{a} = f'(z)⊙R{z}.
func (l *Dense) RForward(rx core.Mat, v []core.Mat) core.Mat {
	if rx == nil {
		return l.rForwardX(false, v)
	}
	l.dev.AppendCol(l.rInput(), rx, 0)
	return l.rForwardX(true, v)
}

// rInput returns R{X̄} (sized as X) to a caller that builds [R{x} | 0]
// itself; rForwardX then runs the R-operator with it.
func (l *Dense) rInput() core.Mat {
	d, r := l.dev, l.rows
	if l.rZ == nil {
		l.rX, l.rdX = d.New(r, l.In+1), d.New(r, l.In+1)
		l.rZ, l.rE, l.t, l.rdx = d.New(r, l.Out), d.New(r, l.Out), d.New(r, l.Out), d.New(r, l.In)
		l.rA = l.rZ
		if l.Act != core.Identity {
			l.rA = d.New(r, l.Out)
		}
	}
	return l.rX
}

// rForwardX is RForward with R{X̄} in place when hasRX, and R{x} = 0
// otherwise.
func (l *Dense) rForwardX(hasRX bool, v []core.Mat) core.Mat {
	d := l.dev
	l.rInput()
	core.SameShape("Dense.RForward", v[0], l.W)
	d.Gemm(false, false, 1, l.X, v[0], 0, l.rZ)
	l.hasRX = hasRX
	if l.hasRX {
		d.Gemm(false, false, 1, l.rX, l.W, 1, l.rZ)
	}
	if l.Act != core.Identity {
		d.MapGrad(l.Act, l.rA, l.Z, l.rZ)
	}
	return l.rA
}

// RBackward: R{e} = f'(z)⊙R{∂a} + f”(z)⊙R{z}⊙∂a, H·v = X̄ᵀR{e} + R{x̄}ᵀe,
// R{∂x̄} = R{e}Wᵀ + eVᵀ.
func (l *Dense) RBackward(rdy core.Mat, v, hv []core.Mat, needX bool) core.Mat {
	d := l.dev
	core.SameShape("Dense.RBackward", hv[0], l.W)
	if l.Act == core.Identity {
		d.Copy(l.rE, rdy)
	} else {
		d.MapGrad(l.Act, l.rE, l.Z, rdy)
		d.Apply(core.Mul, l.t, l.rZ, l.dA)
		d.MapGrad2(l.Act, l.t, l.Z, l.t)
		d.Axpby(1, l.t, 1, l.rE)
	}
	d.Gemm(true, false, 1, l.X, l.rE, 0, hv[0])
	if l.hasRX {
		d.Gemm(true, false, 1, l.rX, l.E, 1, hv[0])
	}
	if !needX {
		return nil
	}
	d.Gemm(false, true, 1, l.rE, l.W, 0, l.rdX)
	d.Gemm(false, true, 1, l.E, v[0], 1, l.rdX)
	d.CopyCols(l.rdx, l.rdX, 0)
	return l.rdx
}
