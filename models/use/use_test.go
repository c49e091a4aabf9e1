package use

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/tfjs"
)

var (
	loadOnce  sync.Once
	loaded    *Model
	loadErr   error
	graphOnce sync.Once
	graph     *tfjs.Model
)

// modelDir is the registry's use-lite folder; the test fails, saying how
// to fetch it, when it is missing or altered.
func modelDir(t testing.TB) string {
	t.Helper()
	dir := data.DefaultDir()
	if err := data.Verify("use-lite", dir); err != nil {
		t.Fatalf("%v\n(fetch the model first: go run ./cmd/native data fetch use-lite)", err)
	}
	return filepath.Join(dir, "use-lite")
}

// model is the published model, loaded once per test binary.
func model(t testing.TB) *Model {
	t.Helper()
	dir := modelDir(t)
	loadOnce.Do(func() { loaded, loadErr = Load(dir) })
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	return loaded
}

// readGraph is the published graph as core/tfjs reads it, once per test
// binary: tests that alter it restore it.
func readGraph(t *testing.T) *tfjs.Model {
	t.Helper()
	dir := modelDir(t)
	graphOnce.Do(func() {
		var err error
		if graph, err = tfjs.Read(dir); err != nil {
			t.Fatal(err)
		}
	})
	if graph == nil {
		t.Fatal("the graph did not load")
	}
	return graph
}

// The loader refuses a graph that differs from the template anywhere, with
// an error naming the node: another op, an attribute, an input, an extra or
// a missing node, another width, clip length, ε or mask bias, other timing
// frequencies.
func TestFromGraphRefusals(t *testing.T) {
	g := readGraph(t)
	if _, err := FromGraph(g); err != nil {
		t.Fatalf("the published graph: %v", err)
	}
	att := pS + "Layer_1/TransformerLayer/MultiheadAttention/"
	soft := att + "DotProductAttention/BaseDotProductAttention/Softmax"
	conv := att + "qkv_transform_single/Conv2D"
	for _, tc := range []struct {
		name string
		edit func() (undo func())
		want string
	}{
		{"op", func() func() {
			n := g.Node(soft)
			n.Op = "Sigmoid"
			return func() { n.Op = "Softmax" }
		}, "use: node " + soft + ": op Sigmoid, want Softmax"},
		{"attribute", func() func() {
			n := g.Node(conv)
			a := n.Attrs["padding"]
			n.Attrs["padding"] = tfjs.Attr{Kind: "s", Str: "SAME"}
			return func() { n.Attrs["padding"] = a }
		}, "use: node " + conv + " (Conv2D): attributes T=float32;data_format=NHWC;dilations=[1 1 1 1];padding=SAME"},
		{"extra attribute", func() func() {
			n := g.Node(soft)
			n.Attrs["beta"] = tfjs.Attr{Kind: "f", Float: 2}
			return func() { delete(n.Attrs, "beta") }
		}, "use: node " + soft + " (Softmax): attributes T=float32;beta=2, want T=float32"},
		{"input", func() func() {
			n := g.Node(output)
			in := n.Inputs
			n.Inputs = []string{in[1], in[0]}
			return func() { n.Inputs = in }
		}, "use: node " + output + " (Mul): inputs"},
		{"extra node", func() func() {
			g.Nodes = append(g.Nodes, &tfjs.Node{Name: "extra", Op: "Identity", Inputs: []string{output}})
			return func() { g.Nodes = g.Nodes[:len(g.Nodes)-1] }
		}, "use: node extra (Identity) is not part of the Universal Sentence Encoder lite's graph"},
		{"missing node", func() func() {
			i := slices.IndexFunc(g.Nodes, func(n *tfjs.Node) bool { return n.Name == output })
			n := g.Nodes[i]
			g.Nodes = slices.Delete(g.Nodes, i, i+1)
			return func() { g.Nodes = slices.Insert(g.Nodes, i, n) }
		}, "use: the graph lacks node " + output},
		{"clip length", func() func() {
			w := g.Weight(cMaxLen)
			w.Int32[0] = 64
			return func() { w.Int32[0] = 128 }
		}, "use: node " + cMaxLen + " (Const): value [64], want [128]"},
		{"epsilon", func() func() {
			w := g.Weight(cEps)
			w.Float32[0] = 1e-5
			return func() { w.Float32[0] = 1e-6 }
		}, "use: node " + cEps + " (Const): value [1e-05], want [1e-06]"},
		{"heads", func() func() {
			w := g.Weight(cHeads)
			w.Int32[0] = 8
			return func() { w.Int32[0] = 4 }
		}, "use: node " + cHeads + " (Const): value [8], want [4]"},
		{"width", func() func() {
			w := g.Weight(namesOf(0).qkv)
			w.Shape[3] = 769
			return func() { w.Shape[3] = 768 }
		}, "use: node " + namesOf(0).qkv + " (Const): shape [1 1 256 769], want [1 1 256 768]"},
		{"timing", func() func() {
			w := g.Weight(cFreqs)
			w.Float32[5] *= 1.01
			return func() { w.Float32[5] /= 1.01 }
		}, "use: node " + cFreqs + " (Const): frequency 5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			undo := tc.edit()
			defer undo()
			_, err := FromGraph(g)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := FromGraph(g); err != nil {
		t.Fatalf("the restored graph: %v", err)
	}
}

// copyModel copies the model's files to a fresh folder, passing each
// through edit (name, contents).
func copyModel(t *testing.T, edit func(name string, b []byte) []byte) string {
	t.Helper()
	src, dst := modelDir(t), t.TempDir()
	es, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), edit(e.Name(), b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// Altered files: a truncated shard, an altered op in model.json, a
// model.json that is not one; and, through the registry, a shard with a
// byte flipped.
func TestLoadRefusesAlteredFiles(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(name string, b []byte) []byte
		want string
	}{
		{"truncated shard", func(name string, b []byte) []byte {
			if name == "group1-shard7of7" {
				return b[:len(b)-100]
			}
			return b
		}, "the manifest's 61 weights need 27903656 (a truncated or altered shard?)"},
		{"altered op", func(name string, b []byte) []byte {
			if name == "model.json" {
				return []byte(strings.Replace(string(b), `"op": "Tanh"`, `"op": "Sigmoid"`, 1))
			}
			return b
		}, "use: node " + pH + "tanh_layer_0/Tanh: op Sigmoid, want Tanh"},
		{"not model.json", func(name string, b []byte) []byte {
			if name == "model.json" {
				return []byte(`[1, 2, 3]`)
			}
			return b
		}, "tfjs: model.json: json: cannot unmarshal array"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(copyModel(t, tc.edit))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := LoadData(t.TempDir()); !errors.As(err, new(*data.NotFetchedError)) {
		t.Fatalf("LoadData of an empty folder: %v", err)
	}
	// A shard altered in place keeps its size: the registry's sha256 refuses it.
	flipped := copyModel(t, func(name string, b []byte) []byte {
		if name == "group1-shard3of7" {
			b[1000] ^= 1
		}
		return b
	})
	root := t.TempDir()
	if err := os.Rename(flipped, filepath.Join(root, "use-lite")); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadData(root); err == nil || !strings.Contains(err.Error(), "group1-shard3of7: sha256") {
		t.Fatalf("LoadData of an altered shard: %v", err)
	}
}

// ReadPretrained on the files given as bytes (as a browser fetches them)
// gives LoadPretrained's model and tokenizer, refuses an altered vocabulary
// by its sha256 and passes on the reader's error.
func TestReadPretrained(t *testing.T) {
	dir := modelDir(t)
	want, err := LoadPretrained(filepath.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	names, _ := data.Files("use-lite")
	for _, f := range names {
		if files[f], err = os.ReadFile(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	read := func(f string) ([]byte, error) {
		if b, ok := files[f]; ok {
			return b, nil
		}
		return nil, fmt.Errorf("no %s", f)
	}
	got, err := ReadPretrained(read)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Model.embed, want.Model.embed) || !slices.Equal(got.Model.layers[1].v, want.Model.layers[1].v) ||
		!slices.Equal(got.Tokenizer.Encode("the movie was great"), []int{9, 888, 33, 318}) {
		t.Error("ReadPretrained differs from LoadPretrained")
	}
	files["vocab.json"] = []byte(strings.Replace(string(files["vocab.json"]), `"▁the"`, `"▁teh"`, 1))
	if _, err := ReadPretrained(read); err == nil || !strings.Contains(err.Error(), "use-lite/vocab.json: sha256") {
		t.Errorf("an altered vocab.json: %v", err)
	}
	delete(files, "group1-shard2of7")
	if _, err := ReadPretrained(read); err == nil || !strings.Contains(err.Error(), "no group1-shard2of7") {
		t.Errorf("a missing shard: %v", err)
	}
}

func TestBatch(t *testing.T) {
	m := model(t)
	x, err := m.Batch([][]int{{3, 4}, {}, {5, 6, 7}}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := []float32{3, 4, nn.PadID, nn.PadID, nn.PadID, nn.PadID, 5, 6, 7}; !slices.Equal(x, want) {
		t.Fatalf("Batch: %v, want %v", x, want)
	}
	long := make([]int, 200)
	if x, err := m.Batch([][]int{long}, MaxTokens); err != nil || len(x) != MaxTokens {
		t.Fatalf("a 200-token sentence at T = %d: %d ids, %v", MaxTokens, len(x), err)
	}
	if _, err := m.Batch([][]int{{1, 2, 3}}, 2); !errors.Is(err, ErrTooLong) {
		t.Fatalf("3 tokens at T = 2: %v", err)
	}
	if _, err := m.Batch([][]int{{8002}}, 2); err == nil || !strings.Contains(err.Error(), "id 8002 outside [0, 8002)") {
		t.Fatalf("id 8002: %v", err)
	}
	for _, T := range []int{0, MaxTokens + 1} {
		if _, err := m.Batch(nil, T); err == nil {
			t.Errorf("T = %d accepted", T)
		}
		if _, err := m.Layers(cpu.New(), T); err == nil {
			t.Errorf("Layers(T = %d) accepted", T)
		}
	}
}

// The encoder's structure: q, k and v are Dense projections cut from the
// fused qkv kernel's column blocks (bias as their last row), so that LoRA
// on q and v adapts exactly those; the adapted classifier computes the
// classifier's function and trains 4 adapters (A and B) and the head.
func TestClassifierUnderLoRA(t *testing.T) {
	m := model(t)
	g := readGraph(t)
	dev := cpu.New()
	const T = 6
	s, err := m.Classifier(dev, T, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	var atts []*nn.Attention
	var walk func(ls []nn.Layer)
	walk = func(ls []nn.Layer) {
		for _, l := range ls {
			if a, ok := l.(*nn.Attention); ok {
				atts = append(atts, a)
			}
			if c, ok := l.(nn.Container); ok {
				walk(c.Layers())
			}
		}
	}
	walk(s.Layers())
	if len(atts) != 2 {
		t.Fatalf("%d attention layers", len(atts))
	}
	down := func(w core.Mat) []float32 {
		v := make([]float32, core.Len(w))
		dev.Download(w, v)
		return v
	}
	for l, a := range atts {
		c := []int{256, 512}[l]
		kernel, bias := g.Weight(namesOf(l).qkv).Float32, g.Weight(namesOf(l).qkvBias).Float32
		for b, p := range []nn.Projection{a.Q, a.K, a.V} {
			w := down(p.(*nn.Dense).W)
			for _, ij := range [][2]int{{0, 0}, {7, 5}, {c - 1, c - 1}} {
				if got, want := w[ij[0]*c+ij[1]], kernel[ij[0]*3*c+b*c+ij[1]]; got != want {
					t.Fatalf("layer %d projection %d W[%v] = %v, the fused kernel's %v", l, b, ij, got, want)
				}
			}
			if got, want := w[c*c+3], bias[b*c+3]; got != want {
				t.Fatalf("layer %d projection %d bias[3] = %v, the fused bias's %v", l, b, got, want)
			}
		}
		if a.OutShape().C != 512 || a.Heads != 4 {
			t.Fatalf("layer %d: attention to %v, %d heads", l, a.OutShape(), a.Heads)
		}
	}
	ids, err := m.Batch([][]int{{9, 888, 33, 318}, {12}, {5, 6, 7, 8, 9, 10}}, T)
	if err != nil {
		t.Fatal(err)
	}
	x := dev.New(3, T)
	dev.Upload(x, ids)
	want := down(s.Forward(x))
	tuned, err := nn.ApplyLoRA(s, nn.LoRAOptions{Rank: 8, Alpha: 8, Targets: []string{"q", "v"}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(tuned.Weights()); n != 9 {
		t.Fatalf("%d trainable matrices under LoRA, want 9 (A and B of q and v in 2 layers, the head)", n)
	}
	if got := down(tuned.Forward(x)); !slices.Equal(got, want) {
		t.Fatalf("the adapted classifier gives %v, the classifier %v", got, want)
	}
	for _, err := range []error{tuned.CanHVP(), tuned.CanTwin(), tuned.CanSampleGrads()} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tuned.Curvature(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkForward: the encoder's forward pass on the CPU device, batches
// of 32 sentences padded to T tokens (real sentences' lengths vary: the
// sentiment set's are mostly under 32, e-mails and stories are clipped at
// 128), reported as sentences a second.
func BenchmarkForward(b *testing.B) {
	m := model(b)
	dev := cpu.New()
	for _, T := range []int{16, 32, 128} {
		b.Run(fmt.Sprint("T=", T), func(b *testing.B) {
			const n = 32
			s, err := m.Embedder(dev, T)
			if err != nil {
				b.Fatal(err)
			}
			sentences := make([][]int, n)
			for i := range sentences {
				sentences[i] = make([]int, T-i%4) // some padding
				for j := range sentences[i] {
					sentences[i][j] = 3 + (i*31+j*7)%7990
				}
			}
			ids, err := m.Batch(sentences, T)
			if err != nil {
				b.Fatal(err)
			}
			x := dev.New(n, T)
			dev.Upload(x, ids)
			y := make([]float32, n*Dim)
			b.ResetTimer()
			for range b.N {
				dev.Download(s.Forward(x), y)
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "sentences/s")
		})
	}
}
