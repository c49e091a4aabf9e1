package optim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/nn"
)

// Every registered optimizer lists its state and can back off.
func TestEveryOptimizerIsStateful(t *testing.T) {
	for _, name := range Names() {
		net, _, _ := fixedProblem(t, 8)
		opt, err := Build(name, "", net, 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := opt.(Stateful); !ok {
			t.Errorf("%s (%T) does not implement Stateful", name, opt)
		}
		if _, ok := opt.(Backoff); !ok {
			t.Errorf("%s (%T) does not implement Backoff", name, opt)
		}
		vs, err := StateOf(name, opt)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if len(vs) == 0 {
			t.Errorf("%s: empty state", name)
		}
	}
}

// notState classifies the fields of the optimizers that are not in State,
// with the reason. TestStateCoversEveryField walks each optimizer's struct
// (through embedded and pointed-to structs) and fails on any field that is
// neither reached by State nor listed here: a new field must be classified.
var notState = map[string]string{
	// the model (its weights are saved with the model, not the optimizer)
	"SGD.net": "model", "AdamW.net": "model", "SAM.net": "model", "Sophia.net": "model",
	"KFAC.net": "model", "kalman.net": "model", "kalman.jac": "twin of the model (shares W)",
	"kalman.jacBlocks": "the twin's layers", "kalman.general": "derived from the model",
	"kfacLayer.l": "model layer", "kfacDiagLayer.l": "model layer", "kfacBufs.at": "index into the model's weights",
	// hyperparameters fixed at construction
	"SGD.Momentum": "hyper", "SGD.Nesterov": "hyper", "SGD.WD": "hyper",
	"AdamW.Beta1": "hyper", "AdamW.Beta2": "hyper", "AdamW.Eps": "hyper", "AdamW.WD": "hyper", "AdamW.Warmup": "hyper",
	"SAM.Rho":      "hyper",
	"Sophia.Beta1": "hyper", "Sophia.Beta2": "hyper", "Sophia.Gamma": "hyper", "Sophia.Eps": "hyper", "Sophia.WD": "hyper", "Sophia.K": "hyper",
	"KFAC.name": "label", "KFAC.cfg": "hyper (ρ's current value is KFAC.rho)",
	"FactorStats.DimA": "shape", "FactorStats.DimG": "shape",
	"FactorStats.NormF": "set only on the copy heldStats passes to the damping rule, from the blocks' held norms",
	"kalman.name":       "label", "kalman.dev": "device", "kalman.do": "shape", "kalman.loss": "the model's loss",
	"KalmanConfig.Sigma0": "hyper (prior)", "KalmanConfig.Q": "hyper", "KalmanConfig.Beta": "hyper", "KalmanConfig.Rho": "hyper",
	"RKalman.floor": "derived from σ0", "KalmanFull.n": "shape", "KalmanFull.off": "shape",
	// random generators whose source is listed
	"Sophia.rng": "draws from Sophia.src", "KFAC.rng": "draws from KFAC.src",
	// scratch: written before it is read within every step
	"AdamW.d": "scratch", "AdamW.t": "scratch", "SAM.saved": "scratch (pre-ascent weights)",
	"Sophia.g": "scratch", "Sophia.hhat": "scratch (read only on the step that estimates it)",
	"Sophia.rows": "buffer size", "Sophia.seed": "scratch", "Sophia.scr": "scratch",
	"KFAC.eta": "scratch", "KFAC.gd": "scratch", "KFAC.gtd": "scratch", "KFAC.dnorm": "scratch", "KFAC.m": "buffer size", "KFAC.seed": "scratch",
	"KFAC.scr":    "scratch",
	"KFAC.deltas": "aliases of kfacBufs.d", "KFAC.ws": "the model's weights", "KFAC.gradsIn": "per-step pointers",
	"KFAC.trueG": "per-step pointers", "KFAC.Last": "diagnostics of the last step (reset by each step)",
	"kfacLayer.wa": "scratch", "kfacLayer.wg": "scratch", "KFAC.shared": "scratch (the wa, wg of large factors)", "kfacBufs.g": "scratch", "kfacBufs.hg": "scratch",
	"kfacBufs.gt": "scratch", "kfacLayer.tmp": "scratch", "kfacBufs.d": "scratch", "kfacLayer.p": "scratch",
	"kfacLayer.q": "scratch", "kfacLayer.estash": "scratch", "kfacLayer.stashed": "reset by each step", "kfacBufs.wsave": "scratch", "kfacBufs.cv": "scratch", "kfacEigen.rA": "scratch", "kfacEigen.rG": "scratch",
	"kfacDiag.work": "scratch", "kfacDiagLayer.batch": "aliases of kfacDiag.work",
	"kfacDiag.folded": "reset by each step", "kfacDiag.kept": "set by Backoff for the retry within a step",
	"kfacLayer.kept": "set by Backoff for the retry within a step", "kfacLayer.prevHave": "rollback copy within a step",
	"kfacLayer.prevTrA": "rollback copy within a step", "kfacLayer.prevTrG": "rollback copy within a step",
	"kfacLayer.folded": "reset by each step", "KFAC.src0": "rollback copy within a step", "kfacLayer.att": "rollback copy within a step",
	"kfacLayer.reduce": "hyper (KFAC.cfg.Reduce for a block over several positions)", "kfacLayer.ones": "constant",
	"kfacLayer.foldA": "this refresh's fold, consumed in the same step", "kfacLayer.foldG": "this refresh's fold, consumed in the same step",
	"kfacLayer.xbar": "scratch", "kfacLayer.ebar": "scratch", "kfacLayer.xmask": "scratch",
	"kalman.xr": "scratch", "kalman.rep": "constant index vectors", "kalman.one": "constant index vectors",
	"kalman.zero": "constant", "kalman.label": "scratch", "kalman.yt": "scratch", "kalman.z1": "scratch",
	"kalman.p": "scratch", "kalman.eps": "scratch", "kalman.seed": "scratch", "kalman.eye": "constant",
	"kalman.xbar": "scratch", "kalman.sgrad": "scratch", "kalman.hostE": "scratch", "kalman.s64": "scratch",
	"kalman.e64": "scratch", "kalman.bak": "rollback copy within a step", "kalman.rBak": "rollback copy within a step",
	"kalman.lastRTild": "diagnostics of the last sample",
	"RKalman.sp":       "σ itself (q = 0) or scratch σ + q", "RKalman.s": "scratch", "RKalman.t": "scratch", "RKalman.u": "scratch",
	"RKalman.es": "scratch", "RKalman.xb2": "scratch", "RKalman.sigmaMax": "measured at the start of every Step", "RKalman.bound": "diagnostics",
	"RKalman.hw": "scratch", "RKalman.sf": "scratch", "RKalman.row": "scratch", "RKalman.dw": "scratch",
	"RKalman.hsh": "scratch", "RKalman.innov": "scratch", "RKalman.top": "constant selector", "RKalman.bottom": "constant selector", "RKalman.hostI": "scratch", "RKalman.v": "scratch", "RKalman.ainv": "scratch", "RKalman.sBak": "rollback copy within a step",
	"KalmanDense.next": "scratch (swapped with cov)", "KalmanFull.covBak": "rollback copy within a step",
	"KalmanDense.name": "label", "KalmanDense.n": "shape", "KalmanDense.simplex": "from the loss", "KalmanDense.hs": "scratch",
	"KalmanFull.h": "scratch", "KalmanFull.d64": "scratch", "KalmanFull.delta": "scratch", "KalmanFull.xb": "scratch",
	"KalmanFull.e": "scratch", "KalmanFull.hb": "scratch", "KalmanFull.dbuf": "scratch",
}

var (
	matType    = reflect.TypeFor[core.Mat]()
	pcgPtrType = reflect.TypeFor[*rand.PCG]()
)

// Every field of every registered optimizer is either reached by State or
// classified in notState; the K-FAC engine's diagonal blocks are reached on
// a vision transformer (layer norms, learned positions).
func TestStateCoversEveryField(t *testing.T) {
	used := map[string]bool{}
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			net, x, y := fixedProblem(t, 16)
			checkStateCovers(t, name, net, x, y, used)
		})
	}
	for _, name := range []string{"ngd", "ring", "reng"} {
		t.Run(name+"/vit", func(t *testing.T) {
			net, x, y := vitProblem(t, 8, 1)
			checkStateCovers(t, name, net, x, y, used)
		})
	}
	// The staggered refresh, which the eigen inverse of the combined
	// options excludes, with the options that add state of their own.
	for _, name := range []string{"ngd", "ring", "reng"} {
		t.Run(name+"/stagger", func(t *testing.T) {
			net, x, y := fixedProblem(t, 16)
			checkStateCoversHyper(t, name, "stagger=1,S=2,damping=1,F=2,momentum=0.9", net, x, y, used)
		})
	}
	for path := range notState {
		if !used[path] {
			t.Errorf("notState lists %s, which no optimizer has", path)
		}
	}
}

// checkStateCovers builds the optimizer name on net (with every optional
// buffer), takes a few steps on (x, y) and walks its fields: each must be
// reached by State or classified in notState (marked in used).
func checkStateCovers(t *testing.T, name string, net nn.Model, x, y core.Mat, used map[string]bool) {
	t.Helper()
	var hps []string
	if e, _ := Lookup(name); e.Name != "" {
		for _, p := range e.Params {
			switch {
			case p.Name == "gamma" && e.Name != "sophia":
				hps = append(hps, "gamma=0.05,fdhvp=1") // allocate the regularizer's buffers too
			case p.Name == "damping":
				hps = append(hps, "damping=1") // and the power-iteration vectors of RING's rule
			case p.Name == "reduce":
				hps = append(hps, "reduce=1") // and K-FAC-reduce's buffers
			case p.Name == "eigen":
				hps = append(hps, "cholesky=0,eigen=1") // and the eigenbases
			case p.Name == "F":
				hps = append(hps, "F=2") // and the statistics held for a factor period of its own
			case p.Name == "momentum" && e.Name != "sgd" && e.Name != "sam":
				hps = append(hps, "momentum=0.9") // and the K-FAC engine's velocities
			}
		}
	}
	checkStateCoversHyper(t, name, strings.Join(hps, ","), net, x, y, used)
}

// checkStateCoversHyper is checkStateCovers for the optimizer name with
// hyperparameters hp.
func checkStateCoversHyper(t *testing.T, name, hp string, net nn.Model, x, y core.Mat, used map[string]bool) {
	t.Helper()
	opt, err := Build(name, hp, net, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ { // lazily allocated buffers exist after a few steps
		if _, err := opt.Step(x, y); err != nil {
			t.Fatal(err)
		}
	}
	covered := map[uintptr]bool{}
	mats := map[core.Mat]bool{}
	for _, v := range opt.(Stateful).State() {
		switch {
		case v.Mat != nil:
			mats[v.Mat] = true
		case v.F64 != nil:
			covered[uintptr(unsafe.Pointer(v.F64))] = true
		case v.F64s != nil:
			covered[uintptr(unsafe.Pointer(v.F64s))] = true
		case v.Int != nil:
			covered[uintptr(unsafe.Pointer(v.Int))] = true
		case v.Ints != nil:
			covered[uintptr(unsafe.Pointer(v.Ints))] = true
		case v.Bool != nil:
			covered[uintptr(unsafe.Pointer(v.Bool))] = true
		case v.RNG != nil:
			covered[uintptr(unsafe.Pointer(v.RNG))] = true
		}
	}
	var walk func(v reflect.Value, typeName string)
	walk = func(v reflect.Value, typeName string) {
		for i := 0; i < v.NumField(); i++ {
			sf := v.Type().Field(i)
			f := v.Field(i)
			path := typeName + "." + sf.Name
			if _, ok := notState[path]; ok {
				used[path] = true
				continue
			}
			f = reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem() // readable
			addr := f.Addr().Pointer()
			switch {
			case f.Type() == matType:
				if f.IsNil() || !mats[f.Interface().(core.Mat)] {
					t.Errorf("%s: matrix field %s is neither in State nor classified as not state", name, path)
				}
			case f.Kind() == reflect.Slice && f.Type().Elem() == matType:
				for j := 0; j < f.Len(); j++ {
					if m := f.Index(j).Interface(); m == nil || !mats[m.(core.Mat)] {
						t.Errorf("%s: matrix %s[%d] is neither in State nor classified", name, path, j)
					}
				}
			case f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.Struct && f.Type() != pcgPtrType:
				if !f.IsNil() {
					walk(f.Elem(), f.Type().Elem().Name())
				}
			case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Pointer && f.Type().Elem().Elem().Kind() == reflect.Struct:
				for j := 0; j < f.Len(); j++ {
					walk(f.Index(j).Elem(), f.Type().Elem().Elem().Name())
				}
			case f.Kind() == reflect.Struct:
				walk(f, f.Type().Name())
			case f.Type() == pcgPtrType:
				if !covered[f.Pointer()] {
					t.Errorf("%s: random source %s is not in State", name, path)
				}
			default:
				if !covered[addr] {
					t.Errorf("%s: field %s (%s) is neither in State nor classified as not state", name, path, f.Type())
				}
			}
		}
	}
	walk(reflect.ValueOf(opt).Elem(), reflect.TypeOf(opt).Elem().Name())
}

// batches cuts x, y (m rows) into k consecutive mini-batches.
func batches(t *testing.T, dev core.Device, x, y core.Mat, k int) (xs, ys []core.Mat) {
	t.Helper()
	hx, hy := make([]float32, core.Len(x)), make([]float32, core.Len(y))
	dev.Download(x, hx)
	dev.Download(y, hy)
	b := x.Rows() / k
	for i := 0; i < k; i++ {
		bx, by := dev.New(b, x.Cols()), dev.New(b, y.Cols())
		dev.Upload(bx, hx[i*b*x.Cols():(i+1)*b*x.Cols()])
		dev.Upload(by, hy[i*b*y.Cols():(i+1)*b*y.Cols()])
		xs, ys = append(xs, bx), append(ys, by)
	}
	return xs, ys
}

// copyState copies src's state into dst through host values (what a
// checkpoint does, without the file).
func copyState(t *testing.T, dev core.Device, dst, src []Var) {
	t.Helper()
	if len(dst) != len(src) {
		t.Fatalf("%d vars, want %d", len(dst), len(src))
	}
	for i, s := range src {
		d := dst[i]
		if d.Name != s.Name || d.Kind() != s.Kind() || fmt.Sprint(d.Shape()) != fmt.Sprint(s.Shape()) {
			t.Fatalf("var %d: %s %s %v vs %s %s %v", i, d.Name, d.Kind(), d.Shape(), s.Name, s.Kind(), s.Shape())
		}
		switch s.Kind() {
		case KindMat:
			h := make([]float32, core.Len(s.Mat))
			dev.Download(s.Mat, h)
			dev.Upload(d.Mat, h)
		case KindF64:
			*d.F64 = *s.F64
		case KindF64s:
			copy(*d.F64s, *s.F64s)
		case KindInt:
			*d.Int = *s.Int
		case KindInts:
			copy(*d.Ints, *s.Ints)
		case KindBool:
			*d.Bool = *s.Bool
		case KindRNG:
			b, err := s.RNG.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if err := d.RNG.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// stateBits renders weights and state bit for bit.
func stateBits(dev core.Device, net nn.Model, vs []Var) string {
	var b strings.Builder
	b.WriteString(snapshot(dev, net.Weights()))
	for _, v := range vs {
		fmt.Fprintf(&b, "|%s:", v.Name)
		switch v.Kind() {
		case KindMat:
			b.WriteString(snapshot(dev, []core.Mat{v.Mat}))
		case KindF64:
			fmt.Fprintf(&b, "%x", math.Float64bits(*v.F64))
		case KindF64s:
			for _, f := range *v.F64s {
				fmt.Fprintf(&b, "%x,", math.Float64bits(f))
			}
		case KindInt:
			fmt.Fprint(&b, *v.Int)
		case KindInts:
			fmt.Fprint(&b, *v.Ints)
		case KindBool:
			fmt.Fprint(&b, *v.Bool)
		case KindRNG:
			p, _ := v.RNG.MarshalBinary()
			fmt.Fprintf(&b, "%x", p)
		}
	}
	return b.String()
}

// An optimizer built afresh, given the weights and the State of another
// after k steps, continues bit for bit like the original; given the weights
// alone, it does not (so the state matters, and the test can fail).
func TestStateTransferContinuesBitForBit(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) { checkResume(t, name, "") })
	}
	// The K-FAC engine's options that keep state of their own: a factor
	// period apart from the inverse period (held statistics), momentum (the
	// velocity) and the eigenbasis inverse (the bases and spectra).
	for _, hp := range kfacOptionHypers {
		for _, name := range []string{"ngd", "ring", "reng"} {
			t.Run(name+"/"+hp, func(t *testing.T) { checkResume(t, name, hp) })
		}
	}
}

// kfacOptionHypers switch on the K-FAC options with state of their own.
var kfacOptionHypers = []string{"F=2,S=4", "momentum=0.9", "cholesky=0,eigen=1,S=11", staggerResumeHypers[0], staggerResumeHypers[1], staggerResumeHypers[2]}

// checkResume checks that the optimizer name with hyperparameters hp,
// built afresh and given the weights and the State of another after k
// steps, continues bit for bit like the original, and that without the
// State it does not.
func checkResume(t *testing.T, name, hp string) {
	t.Helper()
	netA, x, y := fixedProblem(t, 64)
	dev := netA.Device()
	xs, ys := batches(t, dev, x, y, 4)
	optA, err := Build(name, hp, netA, 7)
	if err != nil {
		t.Fatal(err)
	}
	const k, more = 6, 11 // K-FAC: a refresh (S = 8) and LM checks (T = 5) on both sides
	for i := 0; i < k; i++ {
		if _, err := optA.Step(xs[i%4], ys[i%4]); err != nil {
			t.Fatal(err)
		}
	}
	resume := func(withState bool) (*nn.MLP, Optimizer) {
		net2 := nn.NewMLP(dev, netA.Spec, netA.Objective(), 99) // other initial weights
		opt, err := Build(name, hp, net2, 7)
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range netA.Weights() {
			h := make([]float32, core.Len(w))
			dev.Download(w, h)
			dev.Upload(net2.Weights()[i], h)
		}
		if withState {
			copyState(t, dev, opt.(Stateful).State(), optA.(Stateful).State())
		}
		return net2, opt
	}
	netB, optB := resume(true)
	netC, optC := resume(false)
	if a, b := stateBits(dev, netA, optA.(Stateful).State()), stateBits(dev, netB, optB.(Stateful).State()); a != b {
		t.Fatal("the copied state differs from the original")
	}
	for i := k; i < k+more; i++ {
		stA, errA := optA.Step(xs[i%4], ys[i%4])
		stB, errB := optB.Step(xs[i%4], ys[i%4])
		optC.Step(xs[i%4], ys[i%4])
		if errA != nil || errB != nil {
			t.Fatalf("step %d: %v / %v", i, errA, errB)
		}
		if math.Float64bits(stA.Loss) != math.Float64bits(stB.Loss) || math.Float64bits(stA.GradNorm) != math.Float64bits(stB.GradNorm) {
			t.Fatalf("step %d: stats %+v vs %+v", i, stA, stB)
		}
	}
	a, b := stateBits(dev, netA, optA.(Stateful).State()), stateBits(dev, netB, optB.(Stateful).State())
	if a != b {
		t.Fatal("weights or state differ after the resumed steps")
	}
	if snapshot(dev, netA.Weights()) == snapshot(dev, netC.Weights()) {
		t.Fatal("an optimizer without the state continued identically: the test cannot see a missing state")
	}
}

// Backoff makes the next step more conservative: ρ up tenfold for the
// K-FAC engine, the learning rate halved for the first-order methods, σ down
// and the jitter up for R-Kalman; the change is visible in State.
func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		name, want, varName string
		factor              float64
	}{
		{"sgd", "halving the learning rate to lr=0.1 and restarting the momentum", "lr", 0.5},
		{"adamw", "halving the learning rate to lr=0.0025", "lr", 0.5},
		{"sam", "halving the learning rate to lr=0.1 and restarting the momentum", "lr", 0.5},
		{"sophia", "halving the learning rate to lr=0.0005", "lr", 0.5},
		{"ngd", "raising ρ to 0.01", "rho", 10},
		{"ring", "raising ρ to 0.001", "rho", 10},
		{"reng", "raising ρ to 0.01", "rho", 10},
		{"rkalman", "shrinking σ by 0.1 and raising the jitter to 1e-05", "jitter", 10},
		{"kalman-full", "shrinking Σ by 0.1 and raising the jitter to 1e-05", "jitter", 10},
	} {
		net, _, _ := fixedProblem(t, 8)
		opt, err := Build(tc.name, "", net, 1)
		if err != nil {
			t.Fatal(err)
		}
		var before float64
		get := func() float64 {
			for _, v := range opt.(Stateful).State() {
				if v.Name == tc.varName {
					return *v.F64
				}
			}
			t.Fatalf("%s: no state %q", tc.name, tc.varName)
			return 0
		}
		before = get()
		if got := opt.(Backoff).Backoff(); got != tc.want {
			t.Errorf("%s: Backoff() = %q, want %q", tc.name, got, tc.want)
		}
		if after := get(); math.Abs(after/before-tc.factor) > 1e-12 {
			t.Errorf("%s: %s %v → %v, want ×%v", tc.name, tc.varName, before, after, tc.factor)
		}
	}
	// The damping stops at its cap.
	net, _, _ := fixedProblem(t, 8)
	opt, _ := Build("ring", "rho=5000", net, 1)
	if got := opt.(Backoff).Backoff(); got != "raising ρ to 1e+04" {
		t.Fatalf("%q", got)
	}
	if got := opt.(Backoff).Backoff(); got != "keeping ρ at its cap 1e+04" {
		t.Fatalf("%q", got)
	}
	// SGD's momentum restarts.
	net, x, y := fixedProblem(t, 8)
	sgd, _ := Build("sgd", "", net, 1)
	sgd.Step(x, y)
	vel := sgd.(*SGD).vel[0]
	if a := net.Device().AbsMax(vel); a == 0 {
		t.Fatal("no velocity after a step")
	}
	sgd.(Backoff).Backoff()
	if a := net.Device().AbsMax(vel); a != 0 {
		t.Fatalf("velocity %v after backoff, want 0", a)
	}
	// R-Kalman's σ shrinks tenfold.
	net, _, _ = fixedProblem(t, 8)
	rk, _ := Build("rkalman", "", net, 1)
	sig := rk.(*RKalman).Var()[0]
	h := make([]float32, core.Len(sig))
	rk.(Backoff).Backoff()
	net.Device().Download(sig, h)
	if h[0] != float32(0.5)*0.1 {
		t.Fatalf("σ %v after backoff, want 0.05", h[0])
	}
}
