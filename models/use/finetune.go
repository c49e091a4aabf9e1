package use

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/nn"
)

// FineTuneName names the fine-tuned classifier on the command line
// (`--model use-lite:tokens=64,rank=8`).
const FineTuneName = "use-lite"

// fineTuneParams are FineTune's parameters as ParseFineTune reads them.
var fineTuneParams = []nn.ArchParam{
	{Name: "tokens", Default: "64", Doc: "tokens a text (1 to 128): a longer text keeps its first tokens (the graph keeps 128), a shorter one is padded"},
	{Name: "rank", Default: "8", Doc: "LoRA rank r of the adapters on q and v of both attention layers (the paper: 8); 0 is a linear probe: the encoder frozen, the head alone trained"},
	{Name: "alpha", Default: "8", Doc: "LoRA α: the adapters are scaled by α/r (the paper: α = r = 8)"},
}

// FineTune is the paper's language fine-tuning model on this encoder: the
// Universal Sentence Encoder lite with LoRA adapters (rank Rank, scale
// Alpha/Rank, B = 0 at first) on the q and v projections of both attention
// layers, the rest of the encoder frozen, and a dense head from the 512-d
// embedding to the classes, trained (Classifier, nn.ApplyLoRA). Rank 0 is
// the linear probe: the whole encoder frozen, the head alone trained on
// the embeddings. It is an nn.Arch over the token ids of Tokens positions
// a text (Encode), built from the use-lite files fetched into DataDir.
type FineTune struct {
	Tokens, Rank, Alpha int
	DataDir             string
	// Pretrained, when set, is the model to fine-tune, already loaded
	// (ReadPretrained: a browser's fetched files); DataDir is then unused.
	Pretrained *Pretrained
}

// ParseFineTune reads a model text "use-lite[:tokens=…,rank=…,alpha=…]";
// ok is false, with no error, when s names another model. dataDir is where
// use-lite is fetched.
func ParseFineTune(s, dataDir string) (f FineTune, ok bool, err error) {
	s = strings.TrimSpace(s)
	name, rest, _ := strings.Cut(s, ":")
	if name != FineTuneName {
		return FineTune{}, false, nil
	}
	p, err := nn.ParseArchParams(s, rest, fineTuneParams)
	if err != nil {
		return FineTune{}, true, err
	}
	f = FineTune{Tokens: p.Int("tokens"), Rank: p.Int("rank"), Alpha: p.Int("alpha"), DataDir: dataDir}
	switch {
	case f.Tokens < 1 || f.Tokens > MaxTokens:
		return FineTune{}, true, fmt.Errorf("model %q: tokens=%d, want 1 to %d", s, f.Tokens, MaxTokens)
	case f.Rank > 0 && f.Alpha < 1:
		return FineTune{}, true, fmt.Errorf("model %q: alpha=%d, want at least 1 with LoRA (rank %d)", s, f.Alpha, f.Rank)
	}
	return f, true, nil
}

// ParseModel reads a model text as --model does: this package's
// fine-tuning model (ParseFineTune, its files fetched into dataDir), or any
// architecture of nn.ParseArch.
func ParseModel(s, dataDir string) (nn.Arch, error) {
	if f, ok, err := ParseFineTune(s, dataDir); ok {
		if err != nil {
			return nil, err
		}
		return f, nil
	}
	return nn.ParseArch(s)
}

// FineTuneDoc describes the model and its parameters for --help.
func FineTuneDoc() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: the Universal Sentence Encoder lite (pretrained, data set use-lite) fine-tuned with LoRA on q and v, and a dense head, on a text data set\n", FineTuneName)
	for _, p := range fineTuneParams {
		fmt.Fprintf(&b, "  %s=%s\t%s\n", p.Name, p.Default, p.Doc)
	}
	return b.String()
}

// String is the canonical text: every parameter, in order.
func (f FineTune) String() string {
	return fmt.Sprintf("%s:tokens=%d,rank=%d,alpha=%d", FineTuneName, f.Tokens, f.Rank, f.Alpha)
}

// Build makes the classifier for classes classes on dev, its head drawn
// from seed (and the adapters' A from seed too); its input is Tokens ids
// a sample, as Encode lays them out.
func (f FineTune) Build(dev core.Device, in nn.Shape, classes int, loss nn.Loss, seed uint64) (nn.Model, error) {
	if want := (nn.Shape{H: f.Tokens, W: 1, C: 1}); in != want {
		return nil, fmt.Errorf("model %s: takes %d token ids a sample (a text data set encoded by it), not data of shape %v", f, f.Tokens, in)
	}
	if !loss.Func().Labels() {
		return nil, fmt.Errorf("model %s: a classifier, trained under cross-entropy, not %s", f, loss)
	}
	p, err := f.pretrained()
	if err != nil {
		return nil, err
	}
	c, err := p.Model.Classifier(dev, f.Tokens, classes, seed)
	if err != nil {
		return nil, err
	}
	ls := slices.Clone(c.Layers())
	if f.Rank == 0 {
		for i := range len(ls) - 1 {
			ls[i] = nn.Freeze(dev, ls[i])
		}
	} else {
		t, err := nn.ApplyLoRA(c, nn.LoRAOptions{Rank: f.Rank, Alpha: float64(f.Alpha), Targets: []string{"q", "v"}, Seed: seed})
		if err != nil {
			return nil, err
		}
		ls = t.Layers()
	}
	return nn.NewSequential(dev, f.String(), loss, ls...)
}

// Encode tokenizes the texts of ts (core/text, the model's own
// SentencePiece vocabulary) into a data set of Tokens ids a sample, each
// text's first Tokens ids and nn.PadID after its end (Model.Batch); its
// Shape is [Tokens 1].
func (f FineTune) Encode(ts *data.TextSet) (*data.Dataset, error) {
	x, err := f.Tokenize(texts(ts))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ts.Name, err)
	}
	ds := &data.Dataset{X: x, Y: make([]float32, ts.Len()), N: ts.Len(), D: f.Tokens, Classes: ts.Classes,
		Name: ts.Name, Shape: []int{f.Tokens, 1}, ClassNames: append([]string(nil), ts.ClassNames...)}
	for i, s := range ts.Samples {
		ds.Y[i] = float32(s.Class)
	}
	return ds, ds.Validate()
}

// texts lists the texts of ts.
func texts(ts *data.TextSet) []string {
	out := make([]string, ts.Len())
	for i, s := range ts.Samples {
		out[i] = s.Text
	}
	return out
}

// Tokenize lays out texts as the model's input, len(texts) rows of Tokens
// ids (Model.Batch): each text's first Tokens ids of the model's own
// SentencePiece vocabulary, nn.PadID after its end.
func (f FineTune) Tokenize(texts []string) ([]float32, error) {
	p, err := f.pretrained()
	if err != nil {
		return nil, err
	}
	ids := make([][]int, len(texts))
	for i, s := range texts {
		ids[i] = p.Tokenizer.Encode(s)
		if len(ids[i]) > f.Tokens {
			ids[i] = ids[i][:f.Tokens]
		}
	}
	return p.Model.Batch(ids, f.Tokens)
}

// pretrained is f.Pretrained, or use-lite loaded from f.DataDir once a
// directory.
func (f FineTune) pretrained() (*Pretrained, error) {
	if f.Pretrained != nil {
		return f.Pretrained, nil
	}
	cache.Lock()
	defer cache.Unlock()
	if p, ok := cache.m[f.DataDir]; ok {
		return p, nil
	}
	p, err := LoadPretrained(f.DataDir)
	if err != nil {
		return nil, err
	}
	cache.m[f.DataDir] = p
	return p, nil
}

// Encoding names how Encode lays texts out: the models of one Encoding
// (any rank and alpha) take the same data.
func (f FineTune) Encoding() string { return fmt.Sprintf("%s:tokens=%d", FineTuneName, f.Tokens) }

// OpenText opens the fetched text data set name (data.OpenText) from
// f.DataDir and encodes its training and test texts (Encode).
func (f FineTune) OpenText(name string) (train, test *data.Dataset, err error) {
	tr, te, err := data.OpenText(name, f.DataDir)
	if err != nil {
		return nil, nil, err
	}
	if train, err = f.Encode(tr); err != nil {
		return nil, nil, err
	}
	if test, err = f.Encode(te); err != nil {
		return nil, nil, err
	}
	return train, test, nil
}

// cache keeps the checked model and its tokenizer by data directory:
// a run builds its model once a seed and an evaluation twin or two.
var cache = struct {
	sync.Mutex
	m map[string]*Pretrained
}{m: map[string]*Pretrained{}}
