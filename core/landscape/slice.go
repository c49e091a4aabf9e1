package landscape

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/mat"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/nn"
)

// Flatten returns the weights of net as one float64 vector: its weight
// matrices in the order of Weights, each row-major (a dense or convolution
// block's W is (In+1)×Out with the bias row last). It downloads the weights
// (a sync point).
func Flatten(net nn.Model) []float64 {
	dev := net.Device()
	out := make([]float64, 0, nn.NumParams(net))
	for _, w := range net.Weights() {
		buf := make([]float32, core.Len(w))
		dev.Download(w, buf)
		for _, v := range buf {
			out = append(out, float64(v))
		}
	}
	return out
}

// SetFlat uploads the flat vector w (as from Flatten) into net's weights.
func SetFlat(net nn.Model, w []float64) {
	if n := nn.NumParams(net); len(w) != n {
		panic(&core.ShapeError{Op: "landscape.SetFlat", What: fmt.Sprintf("%d values for %d parameters", len(w), n)})
	}
	dev := net.Device()
	off := 0
	for _, m := range net.Weights() {
		n := core.Len(m)
		buf := make([]float32, n)
		for i := range buf {
			buf[i] = float32(w[off+i])
		}
		dev.Upload(m, buf)
		off += n
	}
}

// FilterNormalized returns a random Gaussian direction shaped like the flat
// weights w of net (as from Flatten), with every filter rescaled to the
// norm of the same filter of w and everything that is not a filter zero:
// the filter-normalized direction of Li, Xu, Taylor, Studer & Goldstein,
// "Visualizing the Loss Landscape of Neural Nets" (NeurIPS 2018), §4. A
// filter is the weights into one output unit of a Kronecker block (a column
// of a dense layer's W without its bias row; for a convolution, one output
// channel's kernel); biases and the parameters of diagonal blocks (layer
// norms, learned positions) are not perturbed, as Li et al. leave batch
// norm's. It says which layer has no curvature block to tell filters by.
func FilterNormalized(net nn.Model, w []float64, seed uint64) ([]float64, error) {
	if n := nn.NumParams(net); len(w) != n {
		panic(&core.ShapeError{Op: "landscape.FilterNormalized", What: fmt.Sprintf("%d values for %d parameters", len(w), n)})
	}
	cs, err := net.Curvature()
	if err != nil {
		return nil, fmt.Errorf("landscape: filter-normalized direction: %w", err)
	}
	// kron[i]: weight matrix i is a Kronecker block's W.
	var kron []bool
	for _, c := range cs {
		if c.Kron != nil {
			for range c.Kron {
				kron = append(kron, true)
			}
		} else {
			for range c.Diag.Params() {
				kron = append(kron, false)
			}
		}
	}
	ws := net.Weights()
	if len(kron) != len(ws) {
		return nil, fmt.Errorf("landscape: %s has %d weight matrices but %d curvature blocks", net.Arch(), len(ws), len(kron))
	}
	r := rand.New(rand.NewPCG(seed, 0x11e7a1))
	d := make([]float64, len(w))
	off := 0
	for k, m := range ws {
		rows, out := m.Rows(), m.Cols()
		if kron[k] {
			in := rows - 1 // the last row is the bias
			for j := range out {
				var nw, nd float64
				for i := range in {
					q := off + i*out + j
					d[q] = r.NormFloat64()
					nw += w[q] * w[q]
					nd += d[q] * d[q]
				}
				s := 0.0
				if nd > 0 {
					s = math.Sqrt(nw / nd)
				}
				for i := range in {
					d[off+i*out+j] *= s
				}
			}
		}
		off += rows * out
	}
	return d, nil
}

// Plane is an affine plane of weight space: Center + a·D1 + b·D2.
type Plane struct {
	Center, D1, D2 []float64
	// Explained is the fraction of the trajectory's variance (about its
	// mean, as in PCA) along D1 and D2 (PCA planes only; zero otherwise).
	Explained [2]float64
}

// Point returns Center + a·D1 + b·D2.
func (p Plane) Point(a, b float64) []float64 {
	w := make([]float64, len(p.Center))
	for i := range w {
		w[i] = p.Center[i] + a*p.D1[i] + b*p.D2[i]
	}
	return w
}

// Project returns the coordinates (a, b) of the point of the plane nearest
// to w (least squares; for orthonormal D1, D2 the dot products).
func (p Plane) Project(w []float64) Vec2 {
	var g Mat2
	var r Vec2
	for i := range w {
		d := w[i] - p.Center[i]
		r[0] += d * p.D1[i]
		r[1] += d * p.D2[i]
		g[0][0] += p.D1[i] * p.D1[i]
		g[0][1] += p.D1[i] * p.D2[i]
		g[1][1] += p.D2[i] * p.D2[i]
	}
	g[1][0] = g[0][1]
	c, ok := g.Solve(r)
	if !ok {
		return Vec2{}
	}
	return c
}

// TrajectoryPCA returns the plane through center spanned by the first two
// principal directions of the points traj[i] − center (Li et al. 2018, §7:
// center is the final weights, and the directions explain most of the path).
// As in Li et al.'s code (scikit-learn's PCA of the matrix of the rows
// traj[i] − center), the rows are centred on their mean before the SVD, so
// that Explained is the fraction of the path's variance, not of its second
// moment about center; the plane still passes through center.
// The directions are unit vectors and orthogonal; the sign of each is chosen
// so that the first point of the trajectory has non-negative coordinates.
func TrajectoryPCA(traj [][]float64, center []float64) (Plane, error) {
	if len(traj) < 3 {
		return Plane{}, errors.New("landscape: a trajectory of at least 3 points is needed for PCA")
	}
	n := len(center)
	mean := make([]float64, n)
	for i, w := range traj {
		if len(w) != n {
			return Plane{}, fmt.Errorf("landscape: trajectory point %d has %d values, center %d", i, len(w), n)
		}
		for j := range w {
			mean[j] += (w[j] - center[j]) / float64(len(traj))
		}
	}
	m := mat.NewDense(len(traj), n, nil)
	for i, w := range traj {
		for j := range w {
			m.Set(i, j, w[j]-center[j]-mean[j])
		}
	}
	var svd mat.SVD
	if !svd.Factorize(m, mat.SVDThin) {
		return Plane{}, errors.New("landscape: SVD of the trajectory did not converge")
	}
	s := svd.Values(nil)
	var v mat.Dense
	svd.VTo(&v)
	var total float64
	for _, x := range s {
		total += x * x
	}
	if len(s) < 2 || total == 0 {
		return Plane{}, errors.New("landscape: the trajectory does not move")
	}
	p := Plane{Center: append([]float64(nil), center...), D1: make([]float64, n), D2: make([]float64, n)}
	for j := range n {
		p.D1[j] = v.At(j, 0)
		p.D2[j] = v.At(j, 1)
	}
	p.Explained = [2]float64{s[0] * s[0] / total, s[1] * s[1] / total}
	first := p.Project(traj[0])
	for k, d := range [][]float64{p.D1, p.D2} {
		if first[k] < 0 {
			for j := range d {
				d[j] = -d[j]
			}
		}
	}
	return p, nil
}

// Slice evaluates the loss of a network on a grid of a plane, a few points
// at a time so that a UI can spread the work over frames.
type Slice struct {
	Plane
	Box    Box // plane coordinates covered: a ∈ [X0, X1], b ∈ [Y0, Y1]
	NX, NY int
	// Values holds the loss at grid point (i, j) (a = X0 + i·(X1−X0)/(NX−1),
	// b likewise) in Values[j·NX + i]; NaN until evaluated.
	Values []float64

	net  nn.Model
	x, y core.Mat
	next int
}

// NewSlice prepares the slice of the loss of net on (x, y) over box of the
// plane (of the weights as Flatten lays them out), on an nx×ny grid. net is
// used as scratch: its weights are overwritten, so pass a network that is
// not training (one built from the same architecture).
func NewSlice(net nn.Model, x, y core.Mat, p Plane, box Box, nx, ny int) *Slice {
	nx, ny = max(nx, 2), max(ny, 2)
	s := &Slice{Plane: p, Box: box, NX: nx, NY: ny, Values: make([]float64, nx*ny), net: net, x: x, y: y}
	for i := range s.Values {
		s.Values[i] = math.NaN()
	}
	return s
}

// Coord returns the plane coordinates of grid point (i, j).
func (s *Slice) Coord(i, j int) Vec2 {
	return Vec2{s.Box.X0 + float64(i)*(s.Box.X1-s.Box.X0)/float64(s.NX-1),
		s.Box.Y0 + float64(j)*(s.Box.Y1-s.Box.Y0)/float64(s.NY-1)}
}

// Step evaluates up to n more grid points and reports whether the slice is
// complete.
func (s *Slice) Step(n int) bool {
	for ; n > 0 && s.next < len(s.Values); n-- {
		i, j := s.next%s.NX, s.next/s.NX
		c := s.Coord(i, j)
		SetFlat(s.net, s.Point(c[0], c[1]))
		s.Values[s.next] = float64(s.net.Loss(s.x, s.y))
		s.next++
	}
	return s.Done()
}

// Done reports whether every grid point is evaluated.
func (s *Slice) Done() bool { return s.next >= len(s.Values) }

// Progress is the evaluated fraction in [0, 1].
func (s *Slice) Progress() float64 { return float64(s.next) / float64(len(s.Values)) }
