package optim

import (
	"math"
	"strings"
	"testing"
)

// SAM's second gradient is the gradient at w + ρg/‖g‖, computed here
// independently (host float64 perturbation, uploaded, LossGrad on a clone);
// with momentum 0 the weights after the step are exactly w − lr·g_SAM, which
// also shows that w was restored bit for bit before the base step.
func TestSAMPerturbedGradientAndStep(t *testing.T) {
	const rho, lr = 0.05, 0.1
	net, x, y := fixedProblem(t, 32)
	dev := net.Device()

	// The reference: g at w, then ∇L(w + ρg/‖g‖) on a clone of the same net.
	ref, _, _ := fixedProblem(t, 32)
	loss0 := float64(ref.LossGrad(x, y))
	g := download(dev, ref.Grads())
	var n2 float64
	for _, gi := range g {
		for _, v := range gi {
			n2 += float64(v) * float64(v)
		}
	}
	norm := math.Sqrt(n2)
	w0 := download(dev, ref.Weights())
	for i, w := range ref.Weights() {
		p := make([]float32, len(w0[i]))
		for j := range p {
			p[j] = float32(float64(w0[i][j]) + rho*float64(g[i][j])/norm)
		}
		dev.Upload(w, p)
	}
	ref.LossGrad(x, y)
	gref := download(dev, ref.Grads())

	o := NewSAM(net, lr, 0, rho, 0)
	st, err := o.Step(x, y)
	if err != nil {
		t.Fatal(err)
	}
	if st.Loss != loss0 || math.Abs(st.GradNorm-norm) > 1e-6*norm {
		t.Fatalf("stats %+v, want the first pass: loss %v, ‖g‖ %v", st, loss0, norm)
	}
	gsam := download(dev, net.Grads()) // g_SAM (wd 0: G is left as computed)
	var maxDiff, maxRef, maxMove float64
	for i := range gref {
		for j := range gref[i] {
			maxDiff = math.Max(maxDiff, math.Abs(float64(gsam[i][j]-gref[i][j])))
			maxRef = math.Max(maxRef, math.Abs(float64(gref[i][j])))
			maxMove = math.Max(maxMove, math.Abs(float64(gref[i][j]-g[i][j])))
		}
	}
	if maxDiff > 1e-5*maxRef {
		t.Fatalf("g_SAM differs from ∇L(w + ρg/‖g‖) by %g (scale %g)", maxDiff, maxRef)
	}
	if maxMove < 100*1e-5*maxRef {
		t.Fatalf("the perturbation barely moved the gradient (%g): the check above is vacuous", maxMove)
	}
	after := download(dev, net.Weights())
	for i := range after {
		for j, w := range after[i] {
			if want := float32(-lr)*gsam[i][j] + w0[i][j]; math.Float32bits(w) != math.Float32bits(want) {
				t.Fatalf("w[%d][%d] = %g after the step, want w − lr·g_SAM = %g", i, j, w, want)
			}
		}
	}
}

// With lr = 0 the step must leave the weights bit for bit as they were: the
// ascent to w + ε̂ is undone from a copy, not by subtraction.
func TestSAMRestoresWeightsExactly(t *testing.T) {
	net, x, y := fixedProblem(t, 32)
	dev := net.Device()
	for _, rho := range []float64{0.05, 0.7, 3} {
		o := NewSAM(net, 0, 0.9, rho, 0)
		before := download(dev, net.Weights())
		for s := 0; s < 3; s++ {
			if _, err := o.Step(x, y); err != nil {
				t.Fatal(err)
			}
		}
		if !sameAs(before, download(dev, net.Weights())) {
			t.Fatalf("ρ = %g: weights changed by steps with lr = 0", rho)
		}
	}
}

// With ρ = 0 SAM is SGD with momentum, bit for bit.
func TestSAMWithoutRadiusIsSGD(t *testing.T) {
	a, x, y := fixedProblem(t, 32)
	b, _, _ := fixedProblem(t, 32)
	sam := NewSAM(a, 0.1, 0.9, 0, 0.01)
	sgd := &SGD{net: b, LR: 0.1, Momentum: 0.9, WD: 0.01, vel: newLike(b.Device(), b.Weights())}
	for s := 0; s < 5; s++ {
		sa, err := sam.Step(x, y)
		if err != nil {
			t.Fatal(err)
		}
		sb, err := sgd.Step(x, y)
		if err != nil {
			t.Fatal(err)
		}
		if sa != sb {
			t.Fatalf("step %d: stats %+v vs SGD %+v", s, sa, sb)
		}
	}
	if !sameAs(download(a.Device(), a.Weights()), download(b.Device(), b.Weights())) {
		t.Fatal("SAM with ρ = 0 and SGD disagree")
	}
}

func TestSAMHyperValidation(t *testing.T) {
	e, err := Lookup("sam")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ spec, want string }{
		{"rho=-0.1", "out of range"},
		{"momentum=1", "out of range"},
		{"lr=nan", "out of range"},
		{"gamma=1", "no hyperparameter"},
	} {
		if _, err := e.Parse(tc.spec); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.spec, err, tc.want)
		}
	}
	if hp := e.Defaults(); hp["rho"] != 0.05 || hp["lr"] != 0.2 || hp["momentum"] != 0.9 {
		t.Fatalf("defaults %v", hp)
	}
}
