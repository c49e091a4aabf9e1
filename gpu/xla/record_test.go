package xla

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/optim"
)

// Recording (record.go) against op-by-op mode, on the backend New("") picks:
// the same ops in one program per sync point, or in one executable each,
// must give the same bits on SimpleGo, where a program runs the graphs of
// its ops one after the other with the same kernels. XLA may fuse the ops
// of a program and round some of them differently (see the package
// comment), so on it the tests compare as the CPU parity tests do, within
// float32 tolerances, and leave out the runs that amplify rounding.

// exact reports whether d's two modes must agree to the bit: on SimpleGo.
func exact(d *Device) bool { return strings.HasPrefix(d.Name(), "xla/go") }

var (
	modesOnce    sync.Once
	modesErr     error
	recDev, opDv *Device
)

// modeDevices returns two devices of their own on the backend New("")
// picks: one recording, one op by op.
func modeDevices(t testing.TB) (rec, op *Device) {
	t.Helper()
	modesOnce.Do(func() {
		if recDev, modesErr = New(""); modesErr != nil {
			return
		}
		if opDv, modesErr = New(""); modesErr != nil {
			return
		}
		recDev.SetRecording(true)
		opDv.SetRecording(false)
	})
	if modesErr != nil {
		t.Fatalf("cannot open the xla device (%s=%q): %v", EnvBackend, os.Getenv(EnvBackend), modesErr)
	}
	return recDev, opDv
}

// sameBits reports whether two values are the same float32 bits (any two
// NaNs match) and, if not, where they first differ.
func sameBits(a, b []float32) (int, bool) {
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) && !(a[i] != a[i] && b[i] != b[i]) {
			return i, false
		}
	}
	return -1, true
}

func same64(a, b float64) bool { return a == b || a != a && b != b }

// near32 reports whether b matches a: the same bits when exact, else
// within rtol of the largest finite |a| (NaN matching NaN, infinities
// exactly); if not, where they first differ.
func near32(exact bool, a, b []float32, rtol float64) (int, bool) {
	if exact {
		return sameBits(a, b)
	}
	var scale float64
	for _, x := range a {
		if v := math.Abs(float64(x)); v > scale && !math.IsInf(v, 0) {
			scale = v
		}
	}
	for i := range a {
		if !near(float64(b[i]), float64(a[i]), 0, rtol*scale, 0) {
			return i, false
		}
	}
	return -1, true
}

// nearLoss is near32 for a loss: the same bits, or the CPU parity tests'
// loss tolerance.
func nearLoss(exact bool, a, b float64) bool {
	if exact {
		return same64(a, b)
	}
	return near(b, a, trainLossRTol, trainLossATol, math.Abs(a))
}

// sameWeights fails t unless the two models' weights match (near32 with
// trainWeightTol; when not exact, the attention key biases are left out,
// as in the parity tests: see keyBiases).
func sameWeights(t *testing.T, exact bool, what string, rd, od core.Device, r, o nn.Model) {
	t.Helper()
	skip := map[int]bool{}
	if !exact {
		skip = keyBiases(r)
	}
	for l, rw := range r.Weights() {
		rv, ov := download(rd, rw), download(od, o.Weights()[l])
		if skip[l] {
			n := (rw.Rows() - 1) * rw.Cols()
			rv, ov = rv[:n], ov[:n]
		}
		if i, ok := near32(exact, rv, ov, trainWeightTol); !ok {
			t.Fatalf("%s: matrix %d (%d×%d), entry %d: recorded %.9g, op by op %.9g", what, l, rw.Rows(), rw.Cols(), i, rv[i], ov[i])
		}
	}
}

// recordModels are the MLPs TestRecordedTrainingMatchesOpByOp trains: the
// parity model under every optimizer, and a deeper ReLU net shaped like the
// MNIST one (784-256-256-10, scaled down) under AdamW and RING.
var recordModels = []struct {
	model string
	opts  []string // nil: every registered optimizer
}{
	{trainModel, nil},
	{"48-32-32-10:relu", []string{"adamw", "ring"}},
}

// TestRecordedTrainingMatchesOpByOp trains the same MLP on a recording
// device and on an op-by-op one, 30 steps, and requires every step's loss
// and error and, at the end, every weight to be the same bits. Each
// optimizer runs at its defaults: with the same arithmetic in both modes
// even the runs that amplify rounding chaotically (lr = 1 for K-FAC, see
// trainOptimizers) must agree exactly. Where the modes may round
// differently (not SimpleGo), only trainOptimizers run, at their settings,
// compared within the parity tests' tolerances.
func TestRecordedTrainingMatchesOpByOp(t *testing.T) {
	rd, od := modeDevices(t)
	ex := exact(rd)
	const steps = 30
	for _, m := range recordModels {
		names := m.opts
		if names == nil {
			names = optim.Names()
		}
		for _, name := range names {
			spec, stable := "", false
			for _, o := range trainOptimizers {
				if o.name == name && !ex {
					spec, stable = o.spec, true
				}
			}
			if !ex && !stable {
				continue
			}
			t.Run(m.model+"/"+name, func(t *testing.T) {
				rnet, rb := blobs(rd, m.model, 64, 16)
				onet, ob := blobs(od, m.model, 64, 16)
				ropt, err := optim.Build(name, spec, rnet, 3)
				if err != nil {
					t.Fatal(err)
				}
				oopt, err := optim.Build(name, spec, onet, 3)
				if err != nil {
					t.Fatal(err)
				}
				r0, o0 := rd.Stats(), od.Stats()
				for s := range steps {
					b := s % len(rb)
					rs, rerr := ropt.Step(rb[b][0], rb[b][1])
					os, oerr := oopt.Step(ob[b][0], ob[b][1])
					if fmt.Sprint(rerr) != fmt.Sprint(oerr) {
						t.Fatalf("step %d: recorded error %v, op by op %v", s, rerr, oerr)
					}
					if !nearLoss(ex, rs.Loss, os.Loss) {
						t.Fatalf("step %d: loss recorded %.17g, op by op %.17g", s, rs.Loss, os.Loss)
					}
				}
				sameWeights(t, ex, fmt.Sprintf("after %d steps", steps), rd, od, rnet, onet)
				r1, o1 := rd.Stats(), od.Stats()
				t.Logf("%d steps: %d programs recorded (%d ops), %d op by op; %d and %d syncs",
					steps, r1.Programs-r0.Programs, r1.Ops-r0.Ops, o1.Programs-o0.Programs, r1.Syncs-r0.Syncs, o1.Syncs-o0.Syncs)
			})
		}
	}
}

// TestRecordedArchMatchesOpByOp trains the CNNs and the ViT of
// archTrainCases through train.Session on a recording device and on an
// op-by-op one and requires the same bits: every step's loss, the final
// test loss and accuracy, and every weight at the end (not on SimpleGo:
// within the parity tests' tolerances, the accuracy free).
func TestRecordedArchMatchesOpByOp(t *testing.T) {
	rd, od := modeDevices(t)
	ex := exact(rd)
	for _, c := range archTrainCases {
		t.Run(c.model+"/"+c.opt, func(t *testing.T) {
			rs, os := archSession(t, rd, c.model, c.opt, c.spec), archSession(t, od, c.model, c.opt, c.spec)
			for s := 0; !rs.Done(); s++ {
				rm, rerr := rs.Step()
				om, oerr := os.Step()
				if fmt.Sprint(rerr) != fmt.Sprint(oerr) {
					t.Fatalf("step %d: recorded error %v, op by op %v", s+1, rerr, oerr)
				}
				if !nearLoss(ex, rm.Loss, om.Loss) || rm.Rejected != om.Rejected {
					t.Fatalf("step %d: loss recorded %.17g (%d rejected), op by op %.17g (%d rejected)", s+1, rm.Loss, rm.Rejected, om.Loss, om.Rejected)
				}
				if rm.Eval != om.Eval || !nearLoss(ex, rm.TestLoss, om.TestLoss) || ex && !same64(rm.TestAcc, om.TestAcc) {
					t.Fatalf("step %d: evaluation recorded %v %.17g %.17g, op by op %v %.17g %.17g", s+1, rm.Eval, rm.TestLoss, rm.TestAcc, om.Eval, om.TestLoss, om.TestAcc)
				}
			}
			sameWeights(t, ex, "at the end", rd, od, rs.Net, os.Net)
		})
	}
}

// TestRecordingRandomOps plays seeded random sequences of ops on a small
// pool of matrices, on a recording device and on an op-by-op one, and
// requires every value read back (Sum, Dot, SpectralNorm, Download) and, at
// the end, every matrix to be the same bits. The sequences exercise what a
// recording must get right: a matrix written twice before a sync (its first
// value read in between), outputs that alias inputs (Axpby(x, x),
// Apply(a, a, a), Copy onto itself), uploads over pending values and over
// values a pending op reads, Free of a matrix with pending writes or whose
// tensor a pending op reads (donated), and syncs at random points. (Not
// on SimpleGo: within 1e-3 of the largest magnitude read or held by the
// matrix; a lifetime error is far larger.)
func TestRecordingRandomOps(t *testing.T) {
	rd, od := modeDevices(t)
	ex := exact(rd)
	for seed := range uint64(24) {
		rv, rm := playRandomOps(rd, seed)
		ov, om := playRandomOps(od, seed)
		if len(rv) != len(ov) {
			t.Fatalf("seed %d: %d reads recorded, %d op by op", seed, len(rv), len(ov))
		}
		if i, ok := near32(ex, rv, ov, 1e-3); !ok {
			t.Fatalf("seed %d: read %d: recorded %v, op by op %v (of %d and %d reads)", seed, i, rv[i], ov[i], len(rv), len(ov))
		}
		for k := range rm {
			if i, ok := near32(ex, rm[k], om[k], 1e-3); !ok {
				t.Fatalf("seed %d: matrix %d, entry %d: recorded %v, op by op %v", seed, k, i, rm[k][i], om[k][i])
			}
		}
	}
}

// playRandomOps runs 300 random ops (seeded) on a pool of eight 5×5
// matrices of dev and returns the values it read back and the pool's
// final contents.
func playRandomOps(dev core.Device, seed uint64) (reads []float32, final [][]float32) {
	const n, pool = 5, 8
	rng := rand.New(rand.NewPCG(seed, 41))
	vals := func() []float32 {
		v := make([]float32, n*n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	ms := make([]core.Mat, pool)
	for i := range ms {
		ms[i] = dev.New(n, n)
		dev.Upload(ms[i], vals())
	}
	vec := dev.New(n, 1)
	pick := func() core.Mat { return ms[rng.IntN(pool)] }
	scalar := func() float32 { return float32(rng.NormFloat64()) }
	for range 300 {
		switch rng.IntN(14) {
		case 0:
			dev.Upload(pick(), vals())
		case 1:
			dev.Copy(pick(), pick())
		case 2:
			x := pick()
			y := x
			if rng.IntN(2) == 0 {
				y = pick()
			}
			dev.Axpby(scalar(), x, []float32{0, 1, scalar()}[rng.IntN(3)], y)
		case 3:
			dev.Apply(core.Binary(rng.IntN(6)), pick(), pick(), pick())
		case 4:
			dev.Map([]core.Unary{core.Tanh, core.Square, core.Abs, core.Neg, core.Sigmoid}[rng.IntN(5)], pick(), pick())
		case 5:
			c := pick()
			a, b := pick(), pick()
			if a == c || b == c {
				continue
			}
			dev.Gemm(rng.IntN(2) == 0, rng.IntN(2) == 0, scalar(), a, b, []float32{0, 0.5}[rng.IntN(2)], c)
		case 6:
			dev.Fill(pick(), scalar())
		case 7:
			dev.AddDiag(pick(), scalar())
		case 8: // free a matrix (perhaps with pending writes) and put a new one in its place
			i := rng.IntN(pool)
			dev.Free(ms[i])
			ms[i] = dev.New(n, n)
			if rng.IntN(2) == 0 {
				dev.Upload(ms[i], vals())
			}
		case 9:
			reads = append(reads, dev.Sum(pick()))
		case 10:
			reads = append(reads, dev.Dot(pick(), pick()))
		case 11:
			v := make([]float32, n*n)
			dev.Download(pick(), v)
			reads = append(reads, v...)
		case 12:
			dev.Clamp(pick(), pick(), -2, 2) // keeps the values from running away
		case 13:
			reads = append(reads, dev.SpectralNorm(pick(), vec, 3))
		}
	}
	for _, m := range ms {
		v := make([]float32, n*n)
		dev.Download(m, v)
		final = append(final, v)
		dev.Free(m)
	}
	dev.Free(vec)
	return reads, final
}

// syncCount is the xla device counting its sync points by the Device
// contract: every call that returns values to the host is one; so is every
// round of residual checks of NewtonSchulz and NewtonSchulzAll with tol > 0,
// which the caller cannot see: those calls count the device's own readbacks
// (Stats.Syncs), checked against the contract's bound of one per iteration
// and one for the start when recording (op by op, NewtonSchulzAll reads
// each pair's residuals on their own).
type syncCount struct {
	*Device
	n int
}

func (s *syncCount) Download(m core.Mat, dst []float32) { s.n++; s.Device.Download(m, dst) }
func (s *syncCount) Sum(m core.Mat) float32             { s.n++; return s.Device.Sum(m) }
func (s *syncCount) Dot(a, b core.Mat) float32          { s.n++; return s.Device.Dot(a, b) }
func (s *syncCount) AbsMax(m core.Mat) float32          { s.n++; return s.Device.AbsMax(m) }
func (s *syncCount) Dots(dst []float32, as, bs []core.Mat) {
	s.n++
	s.Device.Dots(dst, as, bs)
}
func (s *syncCount) AbsMaxes(dst []float32, ms []core.Mat) { s.n++; s.Device.AbsMaxes(dst, ms) }
func (s *syncCount) SpectralNorm(a, v core.Mat, iters int) float32 {
	s.n++
	return s.Device.SpectralNorm(a, v, iters)
}
func (s *syncCount) SpectralNorms(dst []float32, as, vs []core.Mat, iters int) {
	s.n++
	s.Device.SpectralNorms(dst, as, vs, iters)
}
func (s *syncCount) CholeskyInverse(dst, a core.Mat) error {
	s.n++
	return s.Device.CholeskyInverse(dst, a)
}
func (s *syncCount) NewtonSchulz(x, a core.Mat, order, iters int, warm bool, tol float32) float32 {
	before := s.Device.Stats().Syncs
	r := s.Device.NewtonSchulz(x, a, order, iters, warm, tol)
	s.newtonSchulz(s.Device.Stats().Syncs-before, iters, tol > 0)
	return r
}
func (s *syncCount) NewtonSchulzAll(res []float32, xs, as []core.Mat, order, iters int, warm bool, tols []float32) {
	before := s.Device.Stats().Syncs
	s.Device.NewtonSchulzAll(res, xs, as, order, iters, warm, tols)
	checked := false
	for _, t := range tols {
		checked = checked || t > 0
	}
	s.newtonSchulz(s.Device.Stats().Syncs-before, iters, checked)
}

// newtonSchulz counts the k readbacks of a Newton–Schulz call, at most one
// without residual checks, 1 + iters with them.
func (s *syncCount) newtonSchulz(k int64, iters int, checked bool) {
	bound := int64(1)
	if checked {
		bound += int64(max(iters, 0))
	}
	if k > bound && s.Device.Recording() {
		panic(fmt.Sprintf("a Newton–Schulz call read back %d times, the contract allows %d", k, bound))
	}
	s.n += int(k)
}

// TestProgramsPerStep counts, on a recording device, the programs each step
// of RING and of AdamW runs against the sync points it makes (syncCount):
// RING on the parity MLP at its defaults (refreshes every few steps, the
// Levenberg–Marquardt check, warm Newton–Schulz with residual checks), 48
// steps of which the first 24 warm up. In steady state a step runs at most
// one program per sync point (exactly one: every sync point has pending
// work before it here). It logs the counts of the op-by-op device beside
// them, and the programs compiled after the warm-up: a round of
// NewtonSchulzAll's residual checks is one program for the pairs still
// iterating, so a set of pairs that stop at a round for the first time
// compiles a new (one-op-a-pair) program.
func TestProgramsPerStep(t *testing.T) {
	rd, od := modeDevices(t)
	for _, name := range []string{"ring", "adamw"} {
		t.Run(name, func(t *testing.T) {
			type count struct{ programs, syncs, compiled, ops int64 }
			run := func(d *Device) (steady []count) {
				dev := &syncCount{Device: d}
				net, b := blobs(dev, trainModel, 64, 16)
				opt, err := optim.Build(name, "", net, 3)
				if err != nil {
					t.Fatal(err)
				}
				for s := range 48 {
					st0, n0 := d.Stats(), dev.n
					if _, err := opt.Step(b[s%len(b)][0], b[s%len(b)][1]); err != nil {
						t.Logf("step %d: %v", s, err)
					}
					st := d.Stats()
					if s >= 24 {
						steady = append(steady, count{st.Programs - st0.Programs, int64(dev.n - n0), st.Compiled - st0.Compiled, st.Ops - st0.Ops})
					}
				}
				return steady
			}
			rec, op := run(rd), run(od)
			var rp, rs, op0, ops, comp int64
			for s, c := range rec {
				if c.programs > c.syncs {
					t.Errorf("step %d: %d programs for %d sync points", 24+s, c.programs, c.syncs)
				}
				if c.programs != c.syncs {
					t.Logf("step %d: %d programs for %d sync points", 24+s, c.programs, c.syncs)
				}
				rp, rs, ops, comp = rp+c.programs, rs+c.syncs, ops+c.ops, comp+c.compiled
				op0 += op[s].programs
			}
			t.Logf("%s, steps 24–47: %d ops, %d sync points; %d programs recorded, %d op by op (%.1f and %.1f a step); %d programs compiled",
				name, ops, rs, rp, op0, float64(rp)/float64(len(rec)), float64(op0)/float64(len(rec)), comp)
		})
	}
}

// TestRecordingLifetimes spells out, one case each, the lifetimes
// TestRecordingRandomOps draws at random, on a recording device, with
// values exact in float32.
func TestRecordingLifetimes(t *testing.T) {
	rd, _ := modeDevices(t)
	const n = 6
	fill := func(v float32) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = v
		}
		return s
	}
	mat := func(v float32) core.Mat {
		m := rd.New(2, 3)
		rd.Upload(m, fill(v))
		return m
	}
	want := func(what string, m core.Mat, v float32) {
		t.Helper()
		got := download(rd, m)
		if i, ok := sameBits(got, fill(v)); !ok {
			t.Errorf("%s: entry %d is %v, want %v", what, i, got[i], v)
		}
	}
	t.Run("free with pending writes", func(t *testing.T) {
		a, b := mat(1), mat(2)
		rd.Axpby(1, a, 1, b) // b pending
		rd.Free(b)
		if s := rd.Sum(a); s != n {
			t.Errorf("Sum = %v, want %d", s, n)
		}
		rd.Free(a)
	})
	t.Run("written twice, the first value read in between", func(t *testing.T) {
		x, y := mat(0), mat(0)
		rd.Fill(x, 2)
		rd.Copy(y, x)
		rd.Fill(x, 3)
		want("y", y, 2)
		want("x", x, 3)
		rd.Free(x)
		rd.Free(y)
	})
	t.Run("outputs alias inputs", func(t *testing.T) {
		a := mat(1)
		rd.Apply(core.Add, a, a, a) // 2
		rd.Axpby(2, a, 3, a)        // 10
		rd.Copy(a, a)
		want("a", a, 10)
		rd.Free(a)
	})
	t.Run("upload over a value a pending op reads", func(t *testing.T) {
		x, y := mat(0), mat(0)
		rd.Fill(x, 1)
		rd.Copy(y, x)
		rd.Upload(x, fill(5))
		want("y", y, 1)
		want("x", x, 5)
		rd.Free(x)
		rd.Free(y)
	})
	t.Run("free and overwrite tensors a pending op reads (donated)", func(t *testing.T) {
		x, y, z := mat(4), mat(0), mat(6)
		rd.Copy(y, x)
		rd.Free(x)
		rd.Apply(core.Mul, y, y, z) // reads z's tensor ...
		rd.Fill(z, 7)               // ... which z no longer needs
		want("y", y, 24)
		want("z", z, 7)
		rd.Free(y)
		rd.Free(z)
	})
	t.Run("longer than a program may be", func(t *testing.T) {
		a, b := mat(1), mat(0)
		rd.Flush()
		before := rd.Stats().Programs
		for range maxRecorded + 10 {
			rd.Axpby(1, a, 1, b)
		}
		want("b", b, maxRecorded+10)
		if p := rd.Stats().Programs - before; p != 2 {
			t.Errorf("%d ops ran as %d programs, want 2", maxRecorded+10, p)
		}
		rd.Free(a)
		rd.Free(b)
	})
	t.Run("nothing left to compute", func(t *testing.T) {
		x := mat(1)
		rd.Flush()
		before := rd.Stats().Programs
		rd.Fill(x, 2)
		rd.Free(x)
		rd.Flush()
		if p := rd.Stats().Programs - before; p != 0 {
			t.Errorf("%d programs ran for ops whose results were all freed", p)
		}
	})
}
