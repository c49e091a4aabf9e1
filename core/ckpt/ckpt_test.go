package ckpt

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/optim"
)

// sample is a variable set of every kind with awkward values.
type sample struct {
	dev  core.Device
	m    core.Mat
	f    float64
	fs   []float64
	i    int
	is   []int
	b    bool
	rng  *rand.PCG
	vars []optim.Var
}

func newSample(seed uint64) *sample {
	dev := cpu.New()
	s := &sample{dev: dev, m: dev.New(3, 2), f: -0.0, fs: make([]float64, 4), is: make([]int, 3), rng: rand.NewPCG(seed, 9)}
	s.vars = []optim.Var{
		{Name: "w/0", Mat: s.m}, {Name: "rho", F64: &s.f}, {Name: "R", F64s: &s.fs},
		{Name: "step", Int: &s.i}, {Name: "perm", Ints: &s.is}, {Name: "have", Bool: &s.b}, {Name: "rng", RNG: s.rng},
	}
	return s
}

func (s *sample) fill() {
	nan := math.Float32frombits(0x7fc00123) // a NaN with a payload
	s.dev.Upload(s.m, []float32{1, -2, float32(math.Inf(1)), nan, float32(math.Copysign(0, -1)), 1e-45})
	s.f = math.Copysign(0, -1)
	s.fs = []float64{math.Inf(-1), math.NaN(), 1e308, 5e-324}
	s.i = -7
	s.is = []int{2, 0, 1}
	s.b = true
	for range 5 {
		s.rng.Uint64()
	}
}

func testRun() Run {
	return Run{Data: "moons", DataSHA256: "ab", TrainSize: 10, TestSize: 5, Features: 2, Classes: 2, Model: "2-3-2:tanh",
		Loss: "cross-entropy", Optimizer: "ring", Hyperparameters: map[string]float64{"lr": 1, "rho": 1e-3},
		Seed: 1, Batch: 2, Epochs: 1, TotalSteps: 5, Schedule: "linear"}
}

func saveSample(t testing.TB, dir string) (string, *sample) {
	t.Helper()
	s := newSample(1)
	s.fill()
	path := filepath.Join(dir, "checkpoint.grng")
	if err := Save(path, s.dev, Header{Step: 3, Device: "cpu", Run: testRun(), Meta: map[string]string{"data": "moons"}}, s.vars); err != nil {
		t.Fatal(err)
	}
	return path, s
}

func matBits(dev core.Device, m core.Mat) []uint32 {
	h := make([]float32, core.Len(m))
	dev.Download(m, h)
	b := make([]uint32, len(h))
	for i, v := range h {
		b[i] = math.Float32bits(v)
	}
	return b
}

// Every kind survives a save and a load bit for bit (NaN payloads, −0,
// infinities, subnormals, the random source's position).
func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path, s := saveSample(t, dir)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Header.Step != 3 || c.Header.Device != "cpu" || c.Header.Run.Model != "2-3-2:tanh" || c.Header.Meta["data"] != "moons" || len(c.Header.Vars) != 7 {
		t.Fatalf("header %+v", c.Header)
	}
	r := newSample(2)
	r.fs, r.is = make([]float64, 4), make([]int, 3)
	if err := c.Restore(r.dev, r.vars); err != nil {
		t.Fatal(err)
	}
	if a, b := matBits(s.dev, s.m), matBits(r.dev, r.m); !equalU32(a, b) {
		t.Fatalf("matrix %x vs %x", a, b)
	}
	if math.Float64bits(r.f) != math.Float64bits(s.f) || r.i != s.i || !r.b || r.is[0] != 2 || r.is[2] != 1 {
		t.Fatalf("scalars %v %v %v %v", r.f, r.i, r.b, r.is)
	}
	for i := range s.fs {
		if math.Float64bits(r.fs[i]) != math.Float64bits(s.fs[i]) {
			t.Fatalf("f64s[%d] %v vs %v", i, r.fs[i], s.fs[i])
		}
	}
	if r.rng.Uint64() != s.rng.Uint64() {
		t.Fatal("the random source does not continue where it was saved")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v", st.Mode())
	}
}

func equalU32(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func rehash(b []byte) []byte {
	b = append([]byte(nil), b...)
	s := sha256.Sum256(b[:len(b)-sumLen])
	copy(b[len(b)-sumLen:], s[:])
	return b
}

// A damaged file is refused with an error that names it and says what is
// wrong: every truncation, every flipped byte, a wrong magic or version,
// trailing bytes, and headers that do not add up.
func TestLoadRefusesDamage(t *testing.T) {
	dir := t.TempDir()
	path, _ := saveSample(t, dir)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, b []byte, want string) {
		t.Helper()
		_, err := Parse(path, b)
		var ce *Error
		if err == nil || !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), "checkpoint "+path+": ") || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v, want a *ckpt.Error naming %s and saying %q", what, err, path, want)
		}
	}
	for n := 0; n < len(good); n++ {
		want := "truncated"
		check("truncated to "+strconv.Itoa(n), good[:n], want)
	}
	for i := 0; i < len(good); i++ {
		b := append([]byte(nil), good...)
		b[i] ^= 0x40
		_, err := Parse(path, b)
		if err == nil {
			t.Fatalf("byte %d flipped: loaded", i)
		}
	}
	bad := append([]byte("NOTACKPT"), good[8:]...)
	check("wrong magic", bad, `not a grng checkpoint (starts with "NOTACKPT"`)
	check("empty", nil, "truncated")
	v2 := append([]byte(nil), good...)
	binary.LittleEndian.PutUint32(v2[8:], 2)
	check("version 2", rehash(v2), "format version 2; this build reads version 1")
	check("trailing bytes", append(append([]byte(nil), good...), 0), "1 bytes after the checksum")
	mid := append([]byte(nil), good...)
	mid[len(mid)-40] ^= 1
	check("payload bit flip", mid, "SHA-256 mismatch")
	huge := append([]byte(nil), good...)
	binary.LittleEndian.PutUint32(huge[12:], MaxHeader+1)
	check("header length", huge, "header length")
	plen := append([]byte(nil), good...)
	binary.LittleEndian.PutUint64(plen[16:], 1<<62)
	check("payload length", plen, "truncated")

	// A header that lies about its variables, with a valid checksum.
	hlen := binary.LittleEndian.Uint32(good[12:])
	hdr := string(good[prefixLen : prefixLen+int(hlen)])
	for _, tc := range []struct{ from, to, want string }{
		{`"kind":"mat","shape":[3,2]`, `"kind":"mat","shape":[2,2]`, "says 24 bytes, its shape 16"},
		{`"kind":"mat"`, `"kind":"xyz"`, `unknown kind "xyz"`},
		{`"format":"grng checkpoint"`, `"format":"grng checkpoinT"`, "format"},
		{`"name":"rho"`, `"name":"R"`, "repeated"},
		{`"step":3`, `"step":-3`, "step -3"},
		{`"step":3`, `"stop":3`, "unknown field"},
	} {
		if !strings.Contains(hdr, tc.from) {
			t.Fatalf("header lacks %s: %s", tc.from, hdr)
		}
		h := strings.Replace(hdr, tc.from, tc.to, 1)
		b := rebuild(good, h)
		check("header "+tc.to, b, tc.want)
	}
}

// rebuild replaces the header of a checkpoint and fixes its lengths and sum.
func rebuild(good []byte, header string) []byte {
	hlen := binary.LittleEndian.Uint32(good[12:])
	rest := good[prefixLen+int(hlen):]
	b := append([]byte(nil), good[:prefixLen]...)
	binary.LittleEndian.PutUint32(b[12:], uint32(len(header)))
	b = append(b, header...)
	b = append(b, rest...)
	return rehash(b)
}

// Restore refuses a variable set that differs in any way, naming the first
// difference, and writes nothing then.
func TestRestoreRefusesMismatch(t *testing.T) {
	path, _ := saveSample(t, t.TempDir())
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mod  func(s *sample)
		want string
	}{
		{func(s *sample) { s.vars[1].Name = "lambda" }, "variable 1 is rho (f64 scalar) in the file, lambda (f64 scalar) in this run"},
		{func(s *sample) { s.vars[0].Mat = s.dev.New(2, 3) }, "variable 0 is w/0 (mat 3×2) in the file, w/0 (mat 2×3) in this run"},
		{func(s *sample) { s.fs = make([]float64, 5) }, "R (f64s 4) in the file, R (f64s 5)"},
		{func(s *sample) { s.vars = s.vars[:6] }, "holds 7 variables, this run has 6: the first extra one is rng"},
		{func(s *sample) { s.vars = append(s.vars, optim.Var{Name: "extra", F64: new(float64)}) }, "extra (f64 scalar) is missing from the file"},
		{func(s *sample) { s.vars[3] = optim.Var{Name: "step", F64: new(float64)} }, "step (int scalar) in the file, step (f64 scalar)"},
	} {
		s := newSample(3)
		s.fs, s.is = make([]float64, 4), make([]int, 3)
		tc.mod(s)
		err := c.Restore(s.dev, s.vars)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err %v, want %q", err, tc.want)
		}
		if s.i != 0 || s.f != 0 {
			t.Errorf("a refused restore wrote values")
		}
	}
}

func TestCheckRun(t *testing.T) {
	path, _ := saveSample(t, t.TempDir())
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckRun(testRun()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mod  func(r *Run)
		want string
	}{
		{func(r *Run) { r.Model = "2-4-2:tanh" }, "model 2-3-2:tanh; this run has 2-4-2:tanh"},
		{func(r *Run) { r.Optimizer = "sgd" }, "optimizer ring; this run has sgd"},
		{func(r *Run) { r.Hyperparameters = map[string]float64{"lr": 1, "rho": 2e-3} }, "hyperparameter rho = 0.001; this run has 0.002"},
		{func(r *Run) { r.Hyperparameters = map[string]float64{"lr": 1} }, "hyperparameter rho = 0.001; this run has (none)"},
		{func(r *Run) { r.DataSHA256 = "cd" }, "data fingerprint ab; this run has cd"},
		{func(r *Run) { r.Seed = 2 }, "seed 1; this run has 2"},
		{func(r *Run) { r.Batch = 3 }, "batch size"},
		{func(r *Run) { r.TotalSteps = 6 }, "total steps"},
		{func(r *Run) { r.Schedule = "cosine" }, "schedule linear"},
		{func(r *Run) { r.TrainSize = 11 }, "data shape"},
	} {
		r := testRun()
		tc.mod(&r)
		if err := c.CheckRun(r); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err %v, want %q", err, tc.want)
		}
	}
}

// A failed save leaves the previous checkpoint as it was and no temporary
// file.
func TestSaveFailureKeepsOld(t *testing.T) {
	dir := t.TempDir()
	path, s := saveSample(t, dir)
	old, _ := os.ReadFile(path)
	bad := append(append([]optim.Var(nil), s.vars...), optim.Var{Name: "both", F64: new(float64), Int: new(int)})
	if err := Save(path, s.dev, Header{}, bad); err == nil || !strings.Contains(err.Error(), "both") {
		t.Fatalf("err %v", err)
	}
	dup := append(append([]optim.Var(nil), s.vars...), s.vars[0])
	if err := Save(path, s.dev, Header{}, dup); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("err %v", err)
	}
	nan := Header{Run: Run{Epochs: math.NaN()}}
	if err := Save(path, s.dev, nan, s.vars); err == nil || !strings.Contains(err.Error(), "header") {
		t.Fatalf("err %v", err)
	}
	if err := Save(filepath.Join(dir, "nodir", "c.grng"), s.dev, Header{}, s.vars); err == nil || !strings.Contains(err.Error(), "nodir") {
		t.Fatalf("err %v", err)
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, old) {
		t.Fatal("a failed save changed the checkpoint")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	if _, err := Load(filepath.Join(dir, "none.grng")); err == nil || !strings.Contains(err.Error(), "none.grng: no such file") {
		t.Fatalf("err %v", err)
	}
}

func TestRemoveTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "checkpoint.grng")
	for _, n := range []string{".checkpoint.grng-123", ".checkpoint.grng-4", "keep", ".metrics-1.csv"} {
		os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644)
	}
	if err := RemoveTemp(path); err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*")) // Glob's * matches dot files
	if len(left) != 2 || filepath.Base(left[0]) != ".metrics-1.csv" || filepath.Base(left[1]) != "keep" {
		t.Fatalf("left %v", left)
	}
}
