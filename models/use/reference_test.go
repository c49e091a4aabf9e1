//go:build !js

package use

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/text"
	"github.com/grng/grng/internal/jsref"
)

// refPins are the files of the reference runtime that the parity test
// runs, by package: the Node builds of TF.js 4.22.0.
var refPins = map[string]map[string]string{
	"@tensorflow/tfjs-core":        {"dist/tf-core.node.js": "39f898b3a3cead712d62489f069861dc6f11bdb31ef981f58e89b0a8c9ec5654"},
	"@tensorflow/tfjs-backend-cpu": {"dist/tf-backend-cpu.node.js": "647bbae169aa72269da63dc0cc78ea34317f2795e28222e118f71da1516ecc1e"},
	"@tensorflow/tfjs-converter":   {"dist/tf-converter.node.js": "157daad56cc7ecf8dc2ff3ec91c9b4160830a241acc195b4beb739736034a05c"},
}

// refScript loads model.json and its shards from input.dir through a
// custom IOHandler (the topology, the manifest's weight specs, the shards
// concatenated) into TF.js's own GraphModel on its CPU backend, and runs
// executeAsync({indices, values}) on every batch of input.batches (each a
// list of sentences' ids; sentence i's ids at positions 0, 1, …), printing
// each batch's output shape and values.
const refScript = `
const path = require('path'), fs = require('fs');
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const converter = require('@tensorflow/tfjs-converter');
(async () => {
  const input = JSON.parse(fs.readFileSync(0, 'utf8'));
  const mj = JSON.parse(fs.readFileSync(path.join(input.dir, 'model.json'), 'utf8'));
  const specs = [], shards = [];
  for (const g of mj.weightsManifest) {
    specs.push(...g.weights);
    for (const p of g.paths) shards.push(fs.readFileSync(path.join(input.dir, p)));
  }
  const all = Buffer.concat(shards);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  const handler = {load: async () => ({modelTopology: mj.modelTopology, weightSpecs: specs, weightData})};
  await tf.setBackend('cpu');
  const model = await converter.loadGraphModel(handler);
  const out = [];
  for (const batch of input.batches) {
    const idx = [], vals = [];
    batch.forEach((ids, i) => ids.forEach((id, j) => { idx.push(i, j); vals.push(id); }));
    const indices = tf.tensor2d(idx, [vals.length, 2], 'int32'), values = tf.tensor1d(vals, 'int32');
    const y = await model.executeAsync({indices, values});
    out.push({shape: y.shape, data: Array.from(await y.data())});
    tf.dispose([indices, values, y]);
  }
  process.stdout.write(JSON.stringify({backend: tf.getBackend(), version: tf.version_core, out}));
})().catch(e => { console.error(e); process.exit(1); });
`

// reference runs refScript on batches of sentences' ids and returns each
// sentence's embedding, batch after batch. The batches are shared between
// two Node processes (the reference runs about 50 tokens a second on one
// core of the project's machines).
func reference(t *testing.T, batches [][][]int) [][]float32 {
	t.Helper()
	if jsref.OptedOut() {
		t.Skipf("%s=1: reference tests skipped", jsref.OptOut)
	}
	for name, pins := range refPins {
		dir, err := jsref.Package(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := jsref.CheckFiles(dir, pins); err != nil {
			t.Fatal(err)
		}
	}
	type result struct {
		Backend, Version string
		Out              []struct {
			Shape []int
			Data  []float32
		}
	}
	const procs = 2
	var part [procs][][][]int
	var load [procs]int
	for _, b := range batches { // the next batch to the process with fewer tokens
		p := 0
		if load[1] < load[0] {
			p = 1
		}
		part[p] = append(part[p], b)
		for _, s := range b {
			load[p] += min(len(s), MaxTokens)
		}
	}
	var res [procs]result
	var errs [procs]error
	var wg sync.WaitGroup
	for p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[p] = jsref.Run(refScript, map[string]any{"dir": modelDir(t), "batches": part[p]}, &res[p])
		}()
	}
	wg.Wait()
	byBatch := make([][][]float32, 0, len(batches))
	var next [procs]int
	for _, b := range batches {
		p := 0
		if next[0] >= len(part[0]) || !sameBatch(part[0][next[0]], b) {
			p = 1
		}
		if errs[p] != nil {
			t.Fatal(errs[p])
		}
		r := res[p]
		if r.Backend != "cpu" || r.Version != "4.22.0" || len(r.Out) != len(part[p]) {
			t.Fatalf("the reference ran on %q, TF.js %s, and gave %d outputs for %d batches", r.Backend, r.Version, len(r.Out), len(part[p]))
		}
		o := r.Out[next[p]]
		next[p]++
		if !slices.Equal(o.Shape, []int{len(b), Dim}) || len(o.Data) != len(b)*Dim {
			t.Fatalf("the reference's output is %v for a batch of %d sentences, want [%d %d]", o.Shape, len(b), len(b), Dim)
		}
		var embs [][]float32
		for i := range b {
			embs = append(embs, o.Data[i*Dim:(i+1)*Dim])
		}
		byBatch = append(byBatch, embs)
	}
	return slices.Concat(byBatch...)
}

// sameBatch reports whether a and b are the same batch (the same slice).
func sameBatch(a, b [][]int) bool { return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0]) }

// paritySentences are the texts of the parity test, tokenized: every 10th
// sentiment sentence (300), the openings (first 12 tokens) of every 60th
// SpamAssassin e-mail (101) and of every 20th Reuters grain story (108),
// and two whole e-mails and two whole stories of at least MaxTokens
// tokens (the graph reads their first 128). The reference runs about 50 tokens a
// second a core, so whole texts are few by default; GRNG_USE_PARITY=full
// takes whole texts of every 40th e-mail and every 10th story instead of
// the openings (743 texts, 49174 tokens: about 15 minutes at the
// reference's speed on two cores, estimated, not measured; give go test a
// -timeout to match).
// Texts without tokens are left out (the reference drops a batch's
// trailing empty sentences; the edge batch of TestReferenceParity has an
// empty one among others).
func paritySentences(t *testing.T) (ids [][]int, from map[string]int) {
	t.Helper()
	dir := data.DefaultDir()
	vocab, err := data.FilePath("use-lite", "vocab.json", dir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := text.LoadUSE(vocab)
	if err != nil {
		t.Fatal(err)
	}
	full := os.Getenv("GRNG_USE_PARITY") == "full"
	from = map[string]int{}
	for _, set := range []struct {
		name         string
		every, clip  int
		whole        int // whole texts of ≥ MaxTokens tokens taken besides
		fEvery, fClp int // with GRNG_USE_PARITY=full
	}{{"sentiment", 10, 0, 0, 8, 0}, {"spam-assassin", 60, 12, 2, 40, 0}, {"reuters-grain", 20, 12, 2, 10, 0}} {
		if err := data.Verify(set.name, dir); err != nil {
			t.Fatalf("%v\n(fetch the data first: go run ./cmd/native data fetch all)", err)
		}
		tr, te, err := data.OpenText(set.name, dir)
		if err != nil {
			t.Fatal(err)
		}
		every, clip, whole := set.every, set.clip, set.whole
		if full {
			every, clip, whole = set.fEvery, set.fClp, 0
		}
		for i, s := range append(tr.Samples, te.Samples...) {
			e := tok.Encode(s.Text)
			switch {
			case len(e) == 0:
			case i%every == 0:
				if clip > 0 {
					e = e[:min(len(e), clip)]
				}
				ids = append(ids, e)
				from[set.name]++
			case whole > 0 && len(e) >= MaxTokens:
				ids = append(ids, e)
				from[set.name+" (whole)"]++
				whole--
			}
		}
	}
	return ids, from
}

// encoders builds one embedder per batch width on dev and keeps them.
type encoders struct {
	m    *Model
	dev  core.Device
	byT  map[int]*nn.Sequential
	rows int // sentences embedded
	took time.Duration
}

// embed returns the embeddings of sentences (at most MaxTokens tokens
// used), run as one batch of width T.
func (e *encoders) embed(t testing.TB, sentences [][]int, T int) [][]float32 {
	t.Helper()
	s := e.byT[T]
	if s == nil {
		var err error
		if s, err = e.m.Embedder(e.dev, T); err != nil {
			t.Fatal(err)
		}
		e.byT[T] = s
	}
	ids, err := e.m.Batch(sentences, T)
	if err != nil {
		t.Fatal(err)
	}
	x := e.dev.New(len(sentences), T)
	defer e.dev.Free(x)
	e.dev.Upload(x, ids)
	t0 := time.Now()
	y := s.Forward(x)
	out := make([]float32, len(sentences)*Dim)
	e.dev.Download(y, out)
	e.took += time.Since(t0)
	e.rows += len(sentences)
	var embs [][]float32
	for i := range sentences {
		embs = append(embs, out[i*Dim:(i+1)*Dim])
	}
	return embs
}

// bucket is the batch width for a longest sentence of n tokens: 16, 32,
// 64 or MaxTokens.
func bucket(n int) int {
	for _, T := range []int{16, 32, 64} {
		if n <= T {
			return T
		}
	}
	return MaxTokens
}

// byLength returns the indices of sentences, shortest first.
func byLength(sentences [][]int) []int {
	order := make([]int, len(sentences))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return len(sentences[a]) - len(sentences[b]) })
	return order
}

// byLength embeds sentences in batches of up to size sentences of similar
// lengths, each padded to its bucket, and returns them in their order.
func (e *encoders) byLength(t testing.TB, sentences [][]int, size int) [][]float32 {
	order := byLength(sentences)
	out := make([][]float32, len(sentences))
	for lo := 0; lo < len(order); lo += size {
		hi := min(lo+size, len(order))
		var batch [][]int
		for _, i := range order[lo:hi] {
			batch = append(batch, sentences[i])
		}
		for j, emb := range e.embed(t, batch, bucket(min(len(batch[len(batch)-1]), MaxTokens))) {
			out[order[lo+j]] = emb
		}
	}
	return out
}

// parityTol bounds |grng − TF.js| in every component of every embedding.
// The issue asks for 1e-4; the differences measured are below 1e-6, and
// 1e-5 also fails a layer norm ε of 1e-5 instead of the graph's 1e-6
// (2.4e-5), which 1e-4 lets through.
const parityTol = 1e-5

func maxAbsDiff(a, b [][]float32) (float64, int) {
	worst, at := 0.0, -1
	for i := range a {
		for j := range a[i] {
			if d := math.Abs(float64(a[i][j]) - float64(b[i][j])); d > worst || math.IsNaN(d) {
				worst, at = d, i
			}
		}
	}
	return worst, at
}

// TestReferenceParity: for 513 sentences of the three text sets, the CPU
// device's embeddings equal those of TF.js 4.22.0 running the published
// graph itself, within parityTol (1e-5) in every component, with grng batching by
// length into widths 16, 32, 64 and 128 (padding within every batch)
// and TF.js in its own batches of 16 (its own dense layout). A batch with
// an empty sentence among others matches too.
func TestReferenceParity(t *testing.T) {
	m := model(t)
	sentences, from := paritySentences(t)
	if len(sentences) < 500 {
		t.Fatalf("only %d sentences", len(sentences))
	}
	// The reference in batches of 16 sentences of similar lengths (padding
	// costs it as much as tokens), in its own dense layout.
	order := byLength(sentences)
	var batches [][][]int
	for lo := 0; lo < len(order); lo += 16 {
		var b [][]int
		for _, i := range order[lo:min(lo+16, len(order))] {
			b = append(b, sentences[i][:min(len(sentences[i]), 300)]) // the graph clips at 128 itself
		}
		batches = append(batches, b)
	}
	edge := [][]int{{9, 888, 33, 318}, {}, {12}}
	batches = append(batches, edge)
	t0 := time.Now()
	ref := reference(t, batches)
	refTime := time.Since(t0)
	want := make([][]float32, len(sentences))
	for j, i := range order {
		want[i] = ref[j]
	}
	want = append(want, ref[len(order):]...)

	e := &encoders{m: m, dev: cpu.New(), byT: map[int]*nn.Sequential{}}
	got := e.byLength(t, sentences, 32)
	got = append(got, e.embed(t, edge, 4)...)
	worst, at := maxAbsDiff(got, want)
	tokens := 0
	for _, s := range sentences {
		tokens += min(len(s), MaxTokens)
	}
	var srcs []string
	for _, name := range []string{"sentiment", "spam-assassin", "spam-assassin (whole)", "reuters-grain", "reuters-grain (whole)"} {
		srcs = append(srcs, fmt.Sprintf("%d %s", from[name], name))
	}
	t.Logf("%d sentences (%s; %d tokens used) and an edge batch: max |grng − TF.js| = %.3g (sentence %d); grng's CPU forward %.1f sentences/s, the reference took %.1fs in all",
		len(sentences), strings.Join(srcs, ", "), tokens, worst, at, float64(e.rows)/e.took.Seconds(), refTime.Seconds())
	if worst > parityTol || at >= 0 && math.IsNaN(worst) {
		t.Fatalf("max |grng − TF.js| = %v at sentence %d, want ≤ %g", worst, at, parityTol)
	}
	for i, v := range got {
		var n2 float64
		for _, x := range v {
			n2 += float64(x) * float64(x)
		}
		if math.Abs(n2-1) > 1e-5 {
			t.Fatalf("sentence %d: ‖embedding‖² = %v", i, n2)
		}
	}
}

// TestMixedLengthsMatchSingleSentences: a sentence's embedding in a batch
// of sentences of other lengths, padded to the longest (or beyond), is the
// one it gets alone in a batch exactly its length.
func TestMixedLengthsMatchSingleSentences(t *testing.T) {
	m := model(t)
	sentences, _ := paritySentences(t)
	var pick [][]int
	for i, s := range sentences {
		if i%23 == 0 || len(s) >= MaxTokens { // the whole texts too
			pick = append(pick, s[:min(len(s), MaxTokens)])
		}
	}
	e := &encoders{m: m, dev: cpu.New(), byT: map[int]*nn.Sequential{}}
	batched := e.embed(t, pick, MaxTokens) // all lengths in one batch
	worst := 0.0
	for i, s := range pick {
		alone := (&encoders{m: m, dev: e.dev, byT: map[int]*nn.Sequential{}}).embed(t, [][]int{s}, len(s))[0]
		d, _ := maxAbsDiff([][]float32{batched[i]}, [][]float32{alone})
		worst = max(worst, d)
		if d > 1e-5 {
			t.Fatalf("sentence %d (%d tokens): batched and alone differ by %v", i, len(s), d)
		}
	}
	byLen := func(a, b []int) int { return len(a) - len(b) }
	t.Logf("%d sentences of %d to %d tokens in one batch of width %d: max |batched − alone| = %.3g",
		len(pick), len(slices.MinFunc(pick, byLen)), len(slices.MaxFunc(pick, byLen)), MaxTokens, worst)
}
