package data

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"unicode"
)

// Sentence is one labelled text: a sentence of the UCI Sentiment Labelled
// Sentences set (Class 0 negative, 1 positive), an e-mail's text, a news
// story; the samples of a TextSet.
type Sentence struct {
	Text  string
	Class int
}

// SentimentDim is the number of hash buckets Open uses for the text sets
// (sentiment, spam-assassin, reuters-grain).
const SentimentDim = 2048

// ReadSentences parses a JSON array of {"text": "...", "class": 0|1} objects
// (raw or gzipped), the format of the npm sentiment package's test fixtures.
// A record {"text": "", "class": null} is skipped: each fixture file ends with
// one. Any other record must have a string text and class 0 or 1. Malformed
// JSON and bad records give a *FormatError naming name and the byte offset;
// it never panics.
func ReadSentences(r io.Reader, name string) ([]Sentence, error) {
	zr, gz, err := maybeGunzip(r, name)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(zr)
	fail := func(off int64, err error, format string, a ...any) error {
		return &FormatError{File: name, Offset: off, Gzip: gz, Msg: fmt.Sprintf(format, a...), Err: err}
	}
	jsonErr := func(base int64, err error, what string) error {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return fail(se.Offset, nil, "%s: %v", what, se)
		case errors.As(err, &te):
			return fail(base+te.Offset, nil, "%s: field %q: %s is not a %v", what, te.Field, te.Value, te.Type)
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return fail(dec.InputOffset(), io.ErrUnexpectedEOF, "truncated %s", what)
		}
		return fail(dec.InputOffset(), err, "%s", what)
	}
	if tok, err := dec.Token(); err != nil {
		return nil, jsonErr(0, err, "want a JSON array")
	} else if tok != json.Delim('[') {
		return nil, fail(0, nil, "want a JSON array, got %v", tok)
	}
	var out []Sentence
	for i := 0; dec.More(); i++ {
		off := dec.InputOffset()
		var rec struct {
			Text  *string          `json:"text"`
			Class *json.RawMessage `json:"class"`
		}
		what := fmt.Sprintf("record %d", i)
		if err := dec.Decode(&rec); err != nil {
			return nil, jsonErr(off, err, what)
		}
		cls := "null"
		if rec.Class != nil {
			cls = string(*rec.Class)
		}
		switch {
		case rec.Text != nil && *rec.Text == "" && cls == "null":
			continue // the fixtures' closing empty record
		case rec.Text == nil:
			return nil, fail(off, nil, "%s: no \"text\"", what)
		case cls != "0" && cls != "1":
			return nil, fail(off, nil, "%s: class %s, want 0 or 1", what, cls)
		}
		out = append(out, Sentence{Text: *rec.Text, Class: int(cls[0] - '0')})
	}
	if _, err := dec.Token(); err != nil {
		return nil, jsonErr(0, err, "want ] closing the array")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fail(dec.InputOffset(), nil, "unexpected data after the array")
	}
	return out, nil
}

// LoadSentences reads a sentiment JSON file (see ReadSentences).
func LoadSentences(path string) ([]Sentence, error) {
	return loadFile(path, func(r io.Reader) ([]Sentence, error) { return ReadSentences(r, path) })
}

// Tokenize splits text into lowercase words: a word is a maximal run of
// Unicode letters and digits, and an apostrophe (' or ’, stored as ') is
// kept only between two such characters, so "Don't stop!" gives
// ["don't" "stop"] and "'quoted'" gives ["quoted"].
func Tokenize(text string) []string {
	rs := []rune(strings.ToLower(text))
	word := func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }
	var toks []string
	var b strings.Builder
	for i, r := range rs {
		switch {
		case word(r):
			b.WriteRune(r)
		case (r == '\'' || r == '’') && i > 0 && word(rs[i-1]) && i+1 < len(rs) && word(rs[i+1]):
			b.WriteByte('\'')
		case b.Len() > 0:
			toks = append(toks, b.String())
			b.Reset()
		}
	}
	if b.Len() > 0 {
		toks = append(toks, b.String())
	}
	return toks
}

// HashBucket is the bag-of-words bucket of a token: the 32-bit FNV-1a hash of
// its UTF-8 bytes (offset basis 2166136261, prime 16777619) modulo d.
func HashBucket(tok string, d int) int {
	h := uint32(2166136261)
	for i := 0; i < len(tok); i++ {
		h ^= uint32(tok[i])
		h *= 16777619
	}
	return int(h % uint32(d))
}

// BagOfWords writes text's hashed bag-of-words into dst (len(dst) buckets):
// dst[HashBucket(t)] counts the tokens t of Tokenize(text), and the vector is
// then scaled to unit L2 norm (a text without tokens gives zeros).
func BagOfWords(text string, dst []float32) {
	clear(dst)
	if len(dst) == 0 {
		return
	}
	for _, t := range Tokenize(text) {
		dst[HashBucket(t, len(dst))]++
	}
	var s float64
	for _, v := range dst {
		s += float64(v) * float64(v)
	}
	if s > 0 {
		inv := float32(1 / math.Sqrt(s))
		for i := range dst {
			dst[i] *= inv
		}
	}
}

// SentenceDataset turns sentences into a 2-class Dataset of d-bucket hashed
// bags of words (see BagOfWords).
func SentenceDataset(ss []Sentence, d int, name string) *Dataset {
	ds := &Dataset{X: make([]float32, len(ss)*d), Y: make([]float32, len(ss)), N: len(ss), D: d,
		Classes: 2, Name: name, ClassNames: []string{"negative", "positive"}}
	for i, s := range ss {
		BagOfWords(s.Text, ds.Row(i))
		ds.Y[i] = float32(s.Class)
	}
	return ds
}
