// Package text turns strings into the token ids of a pretrained model's
// vocabulary. It knows nothing about devices or layers: a Tokenizer maps a
// string to a slice of ids, which the caller uploads.
//
// The one tokenizer today is that of the Universal Sentence Encoder lite
// (data set "use-lite" of core/data): SentencePiece unigram pieces with
// scores, segmented exactly as the TF.js Universal Sentence Encoder's
// Tokenizer (npm @tensorflow-models/universal-sentence-encoder 1.3.3,
// dist/tokenizer) segments them, quirks included, so that the ids equal those
// the published model was run with. A test runs that reference under Node and
// compares.
package text

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Separator is SentencePiece's word-boundary mark, U+2581 (▁), which stands
// for a space and starts the input.
const Separator = "\u2581"

// USEReserved is the number of reserved pieces at the start of the
// Universal Sentence Encoder's vocabulary (the unknown piece, <s>, </s> and
// three extra tokens): they are never produced by matching, but id 0 is the
// unknown piece's.
const USEReserved = 6

// Piece is a vocabulary entry: the piece's text and its log-probability
// score.
type Piece struct {
	Text  string
	Score float64
}

// Tokenizer segments text into the pieces of a vocabulary. It is safe for
// concurrent use.
type Tokenizer struct {
	pieces []Piece
	len16  []int // each piece's length in UTF-16 code units
	root   *node
}

// node is a trie node over UTF-16 code units.
type node struct {
	next map[uint16]*node
	id   int32 // the piece ending here, -1 for none
}

// NewTokenizer returns a tokenizer over pieces, of which the first reserved
// are not matched against the input (USEReserved for the Universal Sentence
// Encoder). Piece 0 is the unknown piece: the id of any stretch of input no
// piece matches. A piece's text appearing twice keeps the later id and score,
// and empty pieces never match, as in the reference. It returns an error if
// there are no more pieces than reserved, or if piece 0 is empty (the
// reference would never end on input it does not know).
func NewTokenizer(pieces []Piece, reserved int) (*Tokenizer, error) {
	if reserved < 1 || len(pieces) <= reserved {
		return nil, fmt.Errorf("text: %d pieces with %d reserved: want more pieces than reserved, and at least the unknown piece reserved", len(pieces), reserved)
	}
	if pieces[0].Text == "" {
		return nil, errors.New("text: the unknown piece (0) is empty")
	}
	t := &Tokenizer{pieces: append([]Piece(nil), pieces...), len16: make([]int, len(pieces)), root: &node{id: -1}}
	for i, p := range pieces {
		u := utf16.Encode([]rune(p.Text))
		t.len16[i] = len(u)
		if i < reserved || len(u) == 0 {
			continue
		}
		n := t.root
		for _, c := range u {
			if n.next == nil {
				n.next = map[uint16]*node{}
			}
			m := n.next[c]
			if m == nil {
				m = &node{id: -1}
				n.next[c] = m
			}
			n = m
		}
		n.id = int32(i)
	}
	return t, nil
}

// ReadVocab reads a vocabulary in the format of the Universal Sentence
// Encoder's vocab.json: a JSON array of [piece, score] pairs, id = position.
// Anything else (another shape, a non-string piece, a non-number score,
// trailing data) is an error naming name.
func ReadVocab(r io.Reader, name string) ([]Piece, error) {
	dec := json.NewDecoder(r)
	var raw []json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("text: %s: want a JSON array of [piece, score] pairs: %w", name, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("text: %s: data after the array", name)
	}
	pieces := make([]Piece, len(raw))
	for i, m := range raw {
		var pair []json.RawMessage
		if err := json.Unmarshal(m, &pair); err != nil || len(pair) != 2 {
			return nil, fmt.Errorf("text: %s: entry %d is %.40s, want [piece, score]", name, i, m)
		}
		if err := json.Unmarshal(pair[0], &pieces[i].Text); err != nil {
			return nil, fmt.Errorf("text: %s: entry %d: piece %.40s is not a string", name, i, pair[0])
		}
		if err := json.Unmarshal(pair[1], &pieces[i].Score); err != nil {
			return nil, fmt.Errorf("text: %s: entry %d: score %.40s is not a number", name, i, pair[1])
		}
	}
	return pieces, nil
}

// LoadUSE reads the Universal Sentence Encoder's vocab.json at path and
// returns its tokenizer (USEReserved reserved pieces).
func LoadUSE(path string) (*Tokenizer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("text: %w", err)
	}
	defer f.Close()
	pieces, err := ReadVocab(f, path)
	if err != nil {
		return nil, err
	}
	return NewTokenizer(pieces, USEReserved)
}

// Len is the vocabulary's size: ids are in [0, Len()).
func (t *Tokenizer) Len() int { return len(t.pieces) }

// Piece returns the vocabulary entry of id. It panics if id is out of range.
func (t *Tokenizer) Piece(id int) Piece { return t.pieces[id] }

// Normalize is the string that Encode segments: s in Unicode normalization
// form NFKC, then, unless empty, Separator before it and in place of every
// space (U+0020 only: tabs and line feeds stay as they are and, having no
// piece, come out as the unknown piece). NFKC is that of
// golang.org/x/text (Unicode 15.0); the reference uses its JavaScript
// engine's, so text with characters assigned after Unicode 15.0 may
// normalize differently. Each invalid UTF-8 byte reads as U+FFFD (the
// reference takes JavaScript strings, which hold no invalid UTF-8).
func Normalize(s string) string {
	if !utf8.ValidString(s) {
		s = string([]rune(s)) // each invalid byte becomes U+FFFD
	}
	s = norm.NFKC.String(s)
	if s == "" {
		return ""
	}
	return Separator + strings.ReplaceAll(s, " ", Separator)
}

// Encode returns the ids of the pieces that segment Normalize(s), as the
// reference's encode does (a port of SentencePiece's Viterbi search):
//
//   - The input is a sequence of UTF-16 code units (a JavaScript string's
//     characters), so a character outside the Basic Multilingual Plane is
//     two positions and can only be matched by pieces that hold it whole.
//   - Every piece that matches at a position is an edge of the lattice with
//     the piece's score; a position where no piece matches gets one edge of a
//     single code unit: the unknown piece (id 0), score 0.
//   - For each end position in turn, the edges ending there are visited in
//     the order of their starts, and an edge replaces the position's best
//     when its score plus the best at its start is ≥ the current best, or
//     when the current best is exactly 0 (the reference's mark for "none
//     yet", which a real path of score 0 also hits, and which a position no
//     edge reaches keeps, with id 0).
//   - The path is read back from the end, each step going back the UTF-16
//     length of its piece's text; runs of unknown pieces merge into one id 0.
//
// The empty string gives no ids. Encode does not truncate: the model reads
// at most its first 128 ids.
func (t *Tokenizer) Encode(s string) []int {
	u := utf16.Encode([]rune(Normalize(s)))
	n := len(u)
	type edge struct {
		start int32
		id    int32 // -1: the unknown single unit
	}
	ends := make([][]edge, n+1) // by end position, in the order of their starts
	for i := range n {
		matched := false
		nd := t.root
		for j := i; j < n; j++ {
			if nd = nd.next[u[j]]; nd == nil {
				break
			}
			if nd.id >= 0 {
				ends[j+1] = append(ends[j+1], edge{int32(i), nd.id})
				matched = true
			}
		}
		if !matched {
			ends[i+1] = append(ends[i+1], edge{int32(i), -1})
		}
	}
	best := make([]float64, n+1)
	words := make([]int32, n+1)
	for end := 1; end <= n; end++ {
		for _, e := range ends[end] {
			id, score := int32(0), 0.0
			if e.id >= 0 {
				id, score = e.id, t.pieces[e.id].Score
			}
			if s := score + best[e.start]; best[end] == 0 || s >= best[end] {
				best[end], words[end] = s, id
			}
		}
	}
	var ids []int
	for i := n; i > 0; i -= t.len16[words[i]] {
		ids = append(ids, int(words[i]))
	}
	out := make([]int, 0, len(ids))
	for k := len(ids) - 1; k >= 0; k-- { // reversed, merging the unknown runs as the reference does before it reverses
		if ids[k] == 0 && k+1 < len(ids) && ids[k+1] == 0 {
			continue
		}
		out = append(out, ids[k])
	}
	return out
}
