// Package ui is the teaching UI of grng without its window: four views
// (the landscape lab, the network lab, the Kronecker view and the
// transformer lesson), their state
// and controls, a fixed-tick Update driven by abstract Input, and rendering
// into an image.RGBA through app/plot. It imports no ebiten, so all of it is
// tested headless; package app puts it in an ebiten window, and the browser
// build will do the same with the state in URL parameters (State.Encode).
package ui

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/grng/grng/core/landscape"
	"github.com/grng/grng/core/nn"
)

// Views, in tab order.
const (
	ViewLandscape = "landscape"
	ViewNetwork   = "network"
	ViewKronecker = "kronecker"
	// ViewTransformer is the transformer lesson.
	ViewTransformer = "transformer"
)

// Views lists the view names in tab order.
var Views = []string{ViewLandscape, ViewNetwork, ViewKronecker, ViewTransformer}

// NetDatasets lists the data sets of the network lab: the synthetic 2D sets
// and the scikit-learn digits (when fetched).
var NetDatasets = []string{"spiral", "moons", "circles", "xor", "digits"}

// NetOptimizers lists the core/optim optimizers the network lab can race.
var NetOptimizers = []string{"sgd", "adamw", "sam", "sophia", "ngd", "ring", "reng", "rkalman"}

// State is what a view needs to be restored: on the desktop it comes from
// flags, in the browser from URL parameters (Encode/Decode). Hyperparameters
// that are NaN take the problem's tuned default.
type State struct {
	View string

	// Landscape lab.
	Problem string
	Start   landscape.Vec2 // NaN: the problem's default start
	Probe   landscape.Vec2 // where the directions are shown; NaN: the start
	Opts    []string       // racing steppers (landscape.StepperNames)
	Hyper   HyperOverride
	Steps   int     // race length
	Speed   float64 // animation speed, steps per second

	// Network lab and Kronecker view.
	Data    string   // one of NetDatasets
	Model   string   // one of NetModels, or an architecture as nn.ParseArch reads it
	NetOpts []string // optimizers trained side by side
	Focus   string   // the optimizer whose network is shown (boundary, slice, factors)
	Layer   int      // Kronecker view: the curvature block, 1-based (a layer's for an MLP)
	Damping string   // Kronecker view: "ring" (√ρ‖·‖₂) or "reng" (√ρ)
	KRho    float64  // Kronecker view: ρ of the damping shown
	TBlock  int      // transformer lesson: the transformer block, 1-based
	Digit   int      // transformer lesson: the digit whose attention is shown, 1-based among the lab's fixed batch
	Seed    uint64
}

// HyperOverride holds the slider values of the landscape lab; NaN keeps the
// problem's default.
type HyperOverride struct {
	LR, AdamLR, Alpha, Rho, Gamma, S, Beta, Sigma0 float64
	KalmanRho                                      float64 // R-Kalman's own ρ (eq. 15)
	Q                                              float64 // R-Kalman's process noise q
}

// NoOverride is the HyperOverride that keeps every default.
func NoOverride() HyperOverride {
	n := math.NaN()
	return HyperOverride{n, n, n, n, n, n, n, n, n, n}
}

// Apply returns h with the overridden values set.
func (o HyperOverride) Apply(h landscape.Hyper) landscape.Hyper {
	set := func(dst *float64, v float64) {
		if !math.IsNaN(v) {
			*dst = v
		}
	}
	set(&h.LR, o.LR)
	set(&h.AdamLR, o.AdamLR)
	set(&h.Alpha, o.Alpha)
	set(&h.Rho, o.Rho)
	set(&h.KalmanRho, o.KalmanRho)
	set(&h.Gamma, o.Gamma)
	set(&h.Beta, o.Beta)
	set(&h.Sigma0, o.Sigma0)
	set(&h.Q, o.Q)
	if !math.IsNaN(o.S) {
		h.S = int(o.S)
	}
	return h
}

func nan2() landscape.Vec2 { return landscape.Vec2{math.NaN(), math.NaN()} }

// DefaultState is the state a newcomer sees first.
func DefaultState() State {
	return State{
		View: ViewLandscape, Problem: "quadratic", Start: nan2(), Probe: nan2(),
		Opts:  []string{"sgd", "adam", "ngd", "ring", "reng", "rkalman"},
		Hyper: NoOverride(), Steps: 400, Speed: 40,
		Data: "spiral", Model: "mlp", NetOpts: []string{"sgd", "adamw", "sam", "ngd", "ring", "reng", "rkalman"},
		Focus: "ring", Layer: 2, Damping: "ring", KRho: 1e-3, TBlock: 1, Digit: 1, Seed: 1,
	}
}

// param describes one field of the string form and of the flags.
type param struct {
	name, usage string
	get         func(*State) string // "" when the field has its default
	set         func(*State, string) error
}

func fmtF(v float64) string {
	if math.IsNaN(v) {
		return ""
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func parseF(s string, lo, hi float64) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if !(v >= lo && v <= hi) {
		return 0, fmt.Errorf("%v is out of range [%v, %v]", v, lo, hi)
	}
	return v, nil
}

func fmtVec(v landscape.Vec2) string {
	if math.IsNaN(v[0]) {
		return ""
	}
	return fmtF(v[0]) + "," + fmtF(v[1])
}

func parseVec(s string) (landscape.Vec2, error) {
	a, b, ok := strings.Cut(s, ",")
	if !ok {
		return landscape.Vec2{}, fmt.Errorf("%q: want x,y", s)
	}
	x, err := parseF(a, -1e6, 1e6)
	if err != nil {
		return landscape.Vec2{}, err
	}
	y, err := parseF(b, -1e6, 1e6)
	if err != nil {
		return landscape.Vec2{}, err
	}
	return landscape.Vec2{x, y}, nil
}

func oneOf(s string, allowed []string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if !slices.Contains(allowed, s) {
		return "", fmt.Errorf("%q: want one of %s", s, strings.Join(allowed, ", "))
	}
	return s, nil
}

func listOf(s string, allowed []string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		v, err := oneOf(p, allowed)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out, nil
}

// hyperParam is a slider value: lo..hi, NaN (empty) for the default.
func hyperParam(name, usage string, field func(*HyperOverride) *float64, lo, hi float64) param {
	return param{name, usage,
		func(s *State) string { return fmtF(*field(&s.Hyper)) },
		func(s *State, v string) error {
			if v == "" || v == "default" {
				*field(&s.Hyper) = math.NaN()
				return nil
			}
			f, err := parseF(v, lo, hi)
			*field(&s.Hyper) = f
			return err
		}}
}

var params = []param{
	{"view", "view: " + strings.Join(Views, ", "),
		func(s *State) string { return s.View },
		func(s *State, v string) (err error) { s.View, err = oneOf(v, Views); return }},
	{"problem", "landscape problem: " + strings.Join(landscape.ProblemNames(), ", "),
		func(s *State) string { return s.Problem },
		func(s *State, v string) (err error) { s.Problem, err = oneOf(v, landscape.ProblemNames()); return }},
	{"start", "landscape start point x,y (empty: the problem's default)",
		func(s *State) string { return fmtVec(s.Start) },
		func(s *State, v string) (err error) {
			if v == "" {
				s.Start = nan2()
				return nil
			}
			s.Start, err = parseVec(v)
			return
		}},
	{"probe", "point x,y where the directions and the Fisher ellipse are drawn (empty: the start)",
		func(s *State) string { return fmtVec(s.Probe) },
		func(s *State, v string) (err error) {
			if v == "" {
				s.Probe = nan2()
				return nil
			}
			s.Probe, err = parseVec(v)
			return
		}},
	{"opts", "landscape racers, comma-separated: " + strings.Join(landscape.StepperNames(), ","),
		func(s *State) string { return strings.Join(s.Opts, ",") },
		func(s *State, v string) (err error) { s.Opts, err = listOf(v, landscape.StepperNames()); return }},
	hyperParam("lr", "learning rate of SGD, momentum and SAM (empty: the problem's default)", func(h *HyperOverride) *float64 { return &h.LR }, 1e-6, 100),
	hyperParam("adamlr", "Adam's learning rate", func(h *HyperOverride) *float64 { return &h.AdamLR }, 1e-6, 100),
	hyperParam("alpha", "step size α of NGD, RING and RENG", func(h *HyperOverride) *float64 { return &h.Alpha }, 1e-4, 10),
	hyperParam("rho", "damping ρ of RING (F + ρ‖F‖₂I) and RENG (F + ρI): the block damping of eq. 10's per-factor √ρ (App. D.2)", func(h *HyperOverride) *float64 { return &h.Rho }, 1e-8, 100),
	hyperParam("kalmanrho", "R-Kalman's ρ in the noise R(I+ρR)⁻¹ (eq. 15), which it caps at 1/ρ", func(h *HyperOverride) *float64 { return &h.KalmanRho }, 0, 100),
	hyperParam("gamma", "RENG's gradient regularizer γ (g + γHg)", func(h *HyperOverride) *float64 { return &h.Gamma }, 0, 10),
	hyperParam("S", "RING/RENG Fisher refresh interval S (steps)", func(h *HyperOverride) *float64 { return &h.S }, 1, 100),
	hyperParam("beta", "R-Kalman's EMA factor β of R", func(h *HyperOverride) *float64 { return &h.Beta }, 0, 1),
	hyperParam("sigma0", "R-Kalman's prior variance σ0", func(h *HyperOverride) *float64 { return &h.Sigma0 }, 1e-6, 1e4),
	hyperParam("q", "R-Kalman's process noise q: Σ + qI before each sample", func(h *HyperOverride) *float64 { return &h.Q }, 0, 1),
	{"steps", "landscape race length in steps",
		func(s *State) string { return strconv.Itoa(s.Steps) },
		func(s *State, v string) error {
			f, err := parseF(v, 1, 100000)
			s.Steps = int(f)
			return err
		}},
	{"speed", "landscape animation speed in steps per second",
		func(s *State) string { return fmtF(s.Speed) },
		func(s *State, v string) (err error) { s.Speed, err = parseF(v, 0.1, 10000); return }},
	{"data", "network lab data set: " + strings.Join(NetDatasets, ", "),
		func(s *State) string { return s.Data },
		func(s *State, v string) (err error) { s.Data, err = oneOf(v, NetDatasets); return }},
	{"model", "network lab model: " + strings.Join(NetModels, ", ") + " (sized for the data set; cnn and vit take images), or an architecture such as cnn:channels=4-8 (native train's --model)",
		func(s *State) string { return s.Model },
		func(s *State, v string) error {
			if m, err := oneOf(v, NetModels); err == nil {
				s.Model = m
				return nil
			}
			if _, err := nn.ParseArch(v); err != nil {
				return fmt.Errorf("%q: want one of %s, or an architecture: %w", v, strings.Join(NetModels, ", "), err)
			}
			s.Model = strings.TrimSpace(v)
			return nil
		}},
	{"netopts", "network lab optimizers, comma-separated: " + strings.Join(NetOptimizers, ","),
		func(s *State) string { return strings.Join(s.NetOpts, ",") },
		func(s *State, v string) (err error) { s.NetOpts, err = listOf(v, NetOptimizers); return }},
	{"focus", "the network lab optimizer whose network is shown",
		func(s *State) string { return s.Focus },
		func(s *State, v string) (err error) { s.Focus, err = oneOf(v, NetOptimizers); return }},
	{"layer", "Kronecker view curvature block (1-based; an MLP has one per layer)",
		func(s *State) string { return strconv.Itoa(s.Layer) },
		func(s *State, v string) error {
			f, err := parseF(v, 1, 1024)
			s.Layer = int(f)
			return err
		}},
	{"damping", "Kronecker view damping rule: ring (√ρ‖·‖₂) or reng (√ρ)",
		func(s *State) string { return s.Damping },
		func(s *State, v string) (err error) { s.Damping, err = oneOf(v, []string{"ring", "reng"}); return }},
	{"krho", "Kronecker view damping ρ",
		func(s *State) string { return fmtF(s.KRho) },
		func(s *State, v string) (err error) { s.KRho, err = parseF(v, 1e-8, 100); return }},
	{"tblock", "transformer lesson: the transformer block (1-based)",
		func(s *State) string { return strconv.Itoa(s.TBlock) },
		func(s *State, v string) error {
			f, err := parseF(v, 1, 1024)
			s.TBlock = int(f)
			return err
		}},
	{"digit", "transformer lesson: the digit whose attention is shown (1-based, among the first 256 training samples)",
		func(s *State) string { return strconv.Itoa(s.Digit) },
		func(s *State, v string) error {
			f, err := parseF(v, 1, 1<<20)
			s.Digit = int(f)
			return err
		}},
	{"seed", "seed of the network lab (initial weights, batches)",
		func(s *State) string { return strconv.FormatUint(s.Seed, 10) },
		func(s *State, v string) (err error) {
			s.Seed, err = strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return
		}},
}

// Encode returns the state as URL query parameters, only those that differ
// from DefaultState, in a fixed order: "view=network&data=moons&…".
func (s State) Encode() string {
	def := DefaultState()
	var parts []string
	for _, p := range params {
		v := p.get(&s)
		if v != p.get(&def) {
			parts = append(parts, url.QueryEscape(p.name)+"="+url.QueryEscape(v))
		}
	}
	return strings.Join(parts, "&")
}

// Decode reads the string form (a URL query, with or without a leading
// "?") over DefaultState. Unknown parameters and invalid values are errors.
func Decode(q string) (State, error) {
	s := DefaultState()
	vals, err := url.ParseQuery(strings.TrimPrefix(q, "?"))
	if err != nil {
		return s, fmt.Errorf("state %q: %w", q, err)
	}
	var errs []error
	for name, vs := range vals {
		i := slices.IndexFunc(params, func(p param) bool { return p.name == name })
		if i < 0 {
			errs = append(errs, fmt.Errorf("unknown state parameter %q", name))
			continue
		}
		if err := params[i].set(&s, vs[len(vs)-1]); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	if len(errs) > 0 {
		return DefaultState(), errors.Join(errs...)
	}
	return s, s.Validate()
}

// Validate checks the cross-field rules that single parameters cannot.
func (s State) Validate() error {
	if s.Steps < 1 || s.Speed <= 0 || s.Layer < 1 || s.TBlock < 1 || s.Digit < 1 {
		return fmt.Errorf("state: steps %d, speed %v, layer %d, tblock %d, digit %d must be positive", s.Steps, s.Speed, s.Layer, s.TBlock, s.Digit)
	}
	return nil
}

// RegisterFlags adds one flag per state parameter to fs, writing into s,
// plus -state for the whole string form. Flags apply in the order given, so
// put -state first when combining it with single flags.
func (s *State) RegisterFlags(fs *flag.FlagSet) {
	for _, p := range params {
		p := p
		def := p.get(s)
		fs.Func(p.name, p.usage+" (default "+strconv.Quote(def)+")", func(v string) error { return p.set(s, v) })
	}
	fs.Func("state", "the whole state in its URL-parameter form, e.g. \"view=network&data=moons\"", func(v string) error {
		st, err := Decode(v)
		if err != nil {
			return err
		}
		*s = st
		return nil
	})
}
