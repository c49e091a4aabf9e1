package ui

import (
	"flag"
	"io"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/grng/grng/core/landscape"
)

func TestDefaultStateEncodesEmpty(t *testing.T) {
	if got := DefaultState().Encode(); got != "" {
		t.Errorf("DefaultState().Encode() = %q, want empty", got)
	}
	s, err := Decode("")
	if err != nil {
		t.Fatal(err)
	}
	if s.Encode() != "" || s.View != ViewLandscape {
		t.Errorf("Decode(\"\") = %+v", s)
	}
}

func TestStateRoundTrip(t *testing.T) {
	s := DefaultState()
	s.View = ViewNetwork
	s.Problem = "rosenbrock"
	s.Start = landscape.Vec2{-1, 1.5}
	s.Probe = landscape.Vec2{0.25, -0.5}
	s.Opts = []string{"sgd", "adam", "ngd", "ring"}
	s.Hyper.LR = 0.001
	s.Hyper.Gamma = 0
	s.Hyper.S = 4
	s.Hyper.Beta = 0.5
	s.Hyper.KalmanRho = 0.02
	s.Hyper.Q = 0
	s.Steps, s.Speed = 250, 12.5
	s.Data, s.Model, s.NetOpts, s.Focus = "moons", "cnn:channels=4-8,kernel=5", []string{"sgd", "reng"}, "reng"
	s.Layer, s.Damping, s.KRho, s.Seed = 3, "reng", 0.01, 42
	s.TBlock, s.Digit = 2, 17
	enc := s.Encode()
	for _, want := range []string{"view=network", "tblock=2", "digit=17", "problem=rosenbrock", "start=-1%2C1.5", "opts=sgd%2Cadam%2Cngd%2Cring", "lr=0.001", "gamma=0", "S=4", "kalmanrho=0.02", "q=0", "seed=42", "model=cnn%3Achannels%3D4-8%2Ckernel%3D5"} {
		if !strings.Contains(enc, want) {
			t.Errorf("Encode() = %q lacks %q", enc, want)
		}
	}
	got, err := Decode("?" + enc)
	if err != nil {
		t.Fatalf("Decode(%q): %v", enc, err)
	}
	if got.Encode() != enc {
		t.Errorf("round trip: %q, want %q", got.Encode(), enc)
	}
	if got.Start != s.Start || got.Probe != s.Probe || got.Hyper.LR != 0.001 || got.Hyper.Gamma != 0 ||
		!math.IsNaN(got.Hyper.Alpha) || !slices.Equal(got.Opts, s.Opts) || got.Seed != 42 || got.Speed != 12.5 || got.Model != s.Model || got.TBlock != 2 || got.Digit != 17 {
		t.Errorf("round trip lost fields: %+v", got)
	}
	// The override applies over a problem's defaults, leaving NaNs alone.
	h := got.Hyper.Apply(landscape.DefaultHyper())
	if h.LR != 0.001 || h.S != 4 || h.Gamma != 0 || h.KalmanRho != 0.02 || h.Q != 0 || h.Rho != landscape.DefaultHyper().Rho || h.Alpha != landscape.DefaultHyper().Alpha {
		t.Errorf("Apply = %+v", h)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, q := range []string{
		"nope=1", "view=tables", "problem=himmelblau", "lr=-1", "lr=abc", "start=1",
		"opts=sgd,lbfgs", "netopts=adam", "layer=0", "tblock=0", "digit=-1", "model=resnet", "model=cnn:width=3", "model=2-x-3", "speed=0", "damping=ngd", "seed=-3", "%zz",
	} {
		if _, err := Decode(q); err == nil {
			t.Errorf("Decode(%q): no error", q)
		}
	}
	// Case and spaces are forgiven; duplicates in lists are dropped.
	s, err := Decode("view=Network&opts=SGD,%20adam,sgd&model=%20ViT")
	if err != nil || s.View != ViewNetwork || !slices.Equal(s.Opts, []string{"sgd", "adam"}) || s.Model != "vit" {
		t.Errorf("lenient decode: %+v, %v", s, err)
	}
	// Empty hyperparameters mean "the problem's default".
	s, err = Decode("lr=&start=")
	if err != nil || !math.IsNaN(s.Hyper.LR) || !math.IsNaN(s.Start[0]) {
		t.Errorf("empty values: %+v, %v", s, err)
	}
}

func TestFlags(t *testing.T) {
	s := DefaultState()
	fs := flag.NewFlagSet("grng-ui", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	s.RegisterFlags(fs)
	err := fs.Parse([]string{"-view", "landscape", "-problem", "rosenbrock", "-start", "-1,1", "-opts", "sgd,adam,ngd,ring", "-lr", "0.01", "-data", "xor"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Problem != "rosenbrock" || s.Start != (landscape.Vec2{-1, 1}) || !slices.Equal(s.Opts, []string{"sgd", "adam", "ngd", "ring"}) ||
		s.Hyper.LR != 0.01 || s.Data != "xor" {
		t.Errorf("flags gave %+v", s)
	}
	s = DefaultState()
	fs = flag.NewFlagSet("grng-ui", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	s.RegisterFlags(fs)
	if err := fs.Parse([]string{"-state", "view=kronecker&layer=2", "-krho", "0.1"}); err != nil {
		t.Fatal(err)
	}
	if s.View != ViewKronecker || s.Layer != 2 || s.KRho != 0.1 {
		t.Errorf("-state then -krho gave %+v", s)
	}
	fs = flag.NewFlagSet("grng-ui", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	s.RegisterFlags(fs)
	if err := fs.Parse([]string{"-problem", "nope"}); err == nil {
		t.Error("-problem nope: no error")
	}
	// Every parameter has a flag and usage text.
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		if f.Usage == "" {
			t.Errorf("flag -%s has no usage", f.Name)
		}
	})
	if n != len(params)+1 {
		t.Errorf("%d flags for %d parameters (+ -state)", n, len(params))
	}
}
