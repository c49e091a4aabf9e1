package nn

import (
	"strings"
	"testing"

	"github.com/grng/grng/core/cpu"
)

// ParseArch reads MLP specs and named architectures, writes them back in
// canonical form, and names the bad part of a wrong one.
func TestParseArch(t *testing.T) {
	for in, want := range map[string]string{
		"784-256-10:relu":              "784-256-10:relu",
		"cnn":                          "cnn:channels=16-32,kernel=3,hidden=0,act=relu",
		"cnn:kernel=5, channels=8":     "cnn:channels=8,kernel=5,hidden=0,act=relu",
		"cnn:channels=4-8-16,act=tanh": "cnn:channels=4-8-16,kernel=3,hidden=0,act=tanh",
		"vit:depth=2":                  "vit:patch=7,width=64,depth=2,heads=4,mlp=2,cls=0",
		"cnn:pool=max,kernel=5":        "cnn:channels=16-32,kernel=5,hidden=0,act=relu,pool=max",
		"cnn:pool=avg":                 "cnn:channels=16-32,kernel=3,hidden=0,act=relu", // the default is left out: older names stay
		"mlp:hidden=64-32":             "mlp:hidden=64-32,act=relu",
		"mlp:act=tanh, hidden=8":       "mlp:hidden=8,act=tanh",
	} {
		a, err := ParseArch(in)
		if err != nil || a.String() != want {
			t.Errorf("ParseArch(%q) = %v, %v; want %s", in, a, err, want)
		}
	}
	for in, want := range map[string]string{
		"resnet:depth=3": `unknown architecture "resnet"`,
		"64-32-10:tanh+lora(r=2,alpha=2,dense,head=frozen)": `model "64-32-10:tanh+lora(r=2,alpha=2,dense,head=frozen)": a LoRA adaptation of 64-32-10:tanh is made from a trained model (nn.ApplyLoRA), not built by name`,
		"cnn:chanels=16":        `"chanels=16" is not name=value with a name among channels, kernel, hidden, act, pool`,
		"cnn:pool=min":          "pool=min: want one of avg, max",
		"cnn:pool=":             "pool=: want one of avg, max",
		"cnn:channels=16-x":     `"x" is not an integer`,
		"cnn:act=softmax":       "unknown activation",
		"cnn:kernel=3,kernel=5": "kernel given twice",
		"784-x-10":              "width 2",
		"mlp:act=tanh":          "want the hidden widths",
		"mlp:hidden=64-0":       `hidden width "0"`,
		"mlp:depth=2":           `"depth=2" is not hidden=`,
	} {
		if _, err := ParseArch(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseArch(%q): %v, want an error containing %q", in, err, want)
		}
	}
	dev := cpu.New()
	for in, want := range map[string]string{
		"cnn:kernel=4":           "want an odd size",
		"cnn:channels=8-0":       "at least 1 channel",
		"cnn:channels=4-4-4-4-4": "too small",
		"vit:patch=3":            "patch=3 does not divide the 8×8×1 image",
		"vit:patch=4,width=6":    "heads=4 does not divide width=6",
		"vit:patch=4,cls=2":      "cls=2: want 0 (mean pooling) or 1 (a class token)",
	} {
		a, err := ParseArch(in)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Build(dev, Shape{H: 8, W: 8, C: 1}, 10, CrossEntropy, 1); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s on 8×8 images: %v, want an error containing %q", in, err, want)
		}
	}
	a, _ := ParseArch("cnn:channels=4-6,hidden=12")
	m, err := a.Build(dev, Shape{H: 12, W: 10, C: 2}, 3, CrossEntropy, 1)
	if err != nil {
		t.Fatal(err)
	}
	// conv 2→4 (3×3), conv 4→6, 3×2×6 flattened → 12 → 3.
	if got, want := NumParams(m), (9*2+1)*4+(9*4+1)*6+(36+1)*12+(12+1)*3; got != want || m.Inputs() != 240 || m.Outputs() != 3 {
		t.Errorf("cnn: %d parameters (want %d), %d inputs, %d outputs", got, want, m.Inputs(), m.Outputs())
	}

	// pool=max: the same layers and parameters, max pooling in place of
	// the average.
	for pool, kind := range map[string]string{"avg": "avgpool", "max": "maxpool"} {
		a, _ = ParseArch("cnn:channels=4-6,hidden=12,pool=" + pool)
		m, err = a.Build(dev, Shape{H: 12, W: 10, C: 2}, 3, CrossEntropy, 1)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, l := range m.(*Sequential).Layers() {
			kinds = append(kinds, l.Kind())
		}
		if got, want := strings.Join(kinds, " "), "conv2d "+kind+" conv2d "+kind+" flatten dense dense"; got != want {
			t.Errorf("cnn with pool=%s: layers %s, want %s", pool, got, want)
		}
		if got, want := NumParams(m), (9*2+1)*4+(9*4+1)*6+(36+1)*12+(12+1)*3; got != want {
			t.Errorf("cnn with pool=%s: %d parameters, want %d", pool, got, want)
		}
	}

	a, _ = ParseArch("vit:patch=4,width=8,depth=2,heads=2,mlp=3")
	m, err = a.Build(dev, Shape{H: 8, W: 12, C: 2}, 3, CrossEntropy, 1)
	if err != nil {
		t.Fatal(err)
	}
	// patches 4·4·2 → 8, 2×3 positions of 8, per block attention 4·(9·8),
	// two layer norms 2·2·8, MLP (9·24 + 25·8); a final norm, 9·3.
	block := 4*9*8 + 2*2*8 + 9*24 + 25*8
	if got, want := NumParams(m), (32+1)*8+6*8+2*block+2*8+9*3; got != want || m.Inputs() != 192 || m.Outputs() != 3 {
		t.Errorf("vit: %d parameters (want %d), %d inputs, %d outputs", got, want, m.Inputs(), m.Outputs())
	}
	x := dev.New(5, 192)
	if y := m.Forward(x); y.Rows() != 5 || y.Cols() != 3 {
		t.Errorf("vit: output %d×%d, want 5×3", y.Rows(), y.Cols())
	}
	// A class token: one more position for the position embedding, and C
	// parameters of its own.
	a, _ = ParseArch("vit:patch=4,width=8,depth=2,heads=2,mlp=3,cls=1")
	m, err = a.Build(dev, Shape{H: 8, W: 12, C: 2}, 3, CrossEntropy, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := NumParams(m), (32+1)*8+8+7*8+2*block+2*8+9*3; got != want {
		t.Errorf("vit with cls=1: %d parameters, want %d", got, want)
	}
	if y := m.Forward(x); y.Rows() != 5 || y.Cols() != 3 {
		t.Errorf("vit with cls=1: output %d×%d, want 5×3", y.Rows(), y.Cols())
	}
	if _, err := m.Curvature(); err != nil {
		t.Errorf("vit with cls=1: %v", err)
	}
}

// The hidden-only MLP takes its input and output widths from the data.
func TestHiddenMLPBuild(t *testing.T) {
	a, err := ParseArch("mlp:hidden=5,act=tanh")
	if err != nil {
		t.Fatal(err)
	}
	m, err := a.Build(cpu.New(), Vector(4), 3, CrossEntropy, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := NumParams(m); got != (4+1)*5+(5+1)*3 {
		t.Errorf("%d parameters, want %d", got, (4+1)*5+(5+1)*3)
	}
	if sp := a.(HiddenMLP).Spec(4, 3).String(); sp != "4-5-3:tanh" {
		t.Errorf("spec %s", sp)
	}
}
