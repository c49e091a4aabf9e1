package core_test

import (
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/optim"
)

// A run built on a Scope (a model and a K-FAC optimizer after a step, which
// allocates batch buffers, factors and inverses) is freed whole by Release:
// every matrix exactly once (the CPU device panics on a second Free), those
// freed on their own are not freed again, and the scope is usable after.
func TestScopeRelease(t *testing.T) {
	dev := cpu.New()
	s := core.NewScope(dev)
	spec, err := nn.ParseSpec("4-8-3:tanh")
	if err != nil {
		t.Fatal(err)
	}
	net := nn.NewMLP(s, spec, nn.CrossEntropy, 1)
	opt, err := optim.Build("ring", "", net, 1)
	if err != nil {
		t.Fatal(err)
	}
	x, y := s.New(5, 4), s.New(5, 1)
	s.Upload(x, []float32{1, 2, 3, 4, 0, 1, 0, 1, 2, 2, 1, 0, 3, 1, 4, 1, 0, 0, 1, 2})
	s.Upload(y, []float32{0, 1, 2, 1, 0})
	if _, err := opt.Step(x, y); err != nil {
		t.Fatal(err)
	}
	s.Free(y)
	held := s.Live()
	if held < 20 {
		t.Fatalf("the scope holds %d matrices after a RING step, want the model's and the optimizer's", held)
	}
	ws := net.Weights()
	s.Release()
	if s.Live() != 0 {
		t.Errorf("%d matrices left after Release", s.Live())
	}
	for i, w := range append(ws, x) {
		if w.(*cpu.Mat).Data != nil {
			t.Errorf("matrix %d not freed by Release", i)
		}
	}
	z := s.New(2, 2)
	if s.Live() != 1 || core.Len(z) != 4 {
		t.Errorf("a matrix made after Release: live %d, len %d", s.Live(), core.Len(z))
	}
}
