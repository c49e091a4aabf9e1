package text

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/grng/grng/core/data"
)

// tinyPieces is a small vocabulary whose segmentations the reference
// tokenizer was run on (the expected ids below are its output).
func tinyPieces(unk string) []Piece {
	return []Piece{{unk, 0}, {"r", 0}, {"▁", -1}, {"a", -2}, {"b", -2}, {"ab", -3}, {"▁ab", -3.5}, {"c", -1},
		{"bc", -2}, {"😀", -1}, {"x", 0}, {"xy", -5}, {"dd", -1}, {"d", -1.5}}
}

func TestEncodeTiny(t *testing.T) {
	for _, c := range []struct {
		unk  string // piece 0
		pcs  []Piece
		in   string
		want []int
	}{
		{"\ufffd", nil, "", []int{}},
		{"\ufffd", nil, "ab", []int{6}},                        // ▁ab (−3.5) beats ▁ + ab (−4)
		{"\ufffd", nil, "abc", []int{6, 7}},                    // ▁ab c (−4.5) beats ▁ a bc (−5)
		{"\ufffd", nil, "a b", []int{2, 3, 2, 4}},              // a space is ▁
		{"\ufffd", nil, "a b\u00a0c", []int{2, 3, 2, 4, 2, 7}}, // NFKC makes the no-break space a space
		{"\ufffd", nil, "ａｂ", []int{6}},                        // full-width letters fold
		{"\ufffd", nil, "zz", []int{2, 0}},                     // unknown runs merge
		{"\ufffd", nil, "q\tq", []int{2, 0}},                   // a tab is not a space: unknown
		{"\ufffd", nil, "x0x", []int{2, 10, 0, 10}},            // an unknown between knowns stays
		{"\ufffd", nil, "xy", []int{2, 10, 0}},                 // a score-0 unknown beats xy (−5)
		{"\ufffd", nil, "a😀", []int{2, 3, 0}},                  // 😀's second code unit is reached by no edge: its best stays 0
		{"\ufffd", nil, "ddd", []int{2, 12, 13}},               // a tie goes to the later start: dd d over d dd
		{"\ufffd", nil, "ﬁ", []int{2, 0}},                      // NFKC: fi, both unknown
		{"<unk>", nil, "zz", []int{0}},                         // reading back steps the unknown piece's text length (5)
		{"<unk>", nil, "xy", []int{0}},
		{"<unk>", nil, "x", []int{2, 10}},
		// A best of exactly 0 counts as none yet: ▁yy (0) is replaced by a worse
		// path, and a repeated piece keeps its later id and score.
		{"\ufffd", []Piece{{"\ufffd", 0}, {"r", 0}, {"▁", -1}, {"▁yy", 0}, {"y", -1}, {"y", -0.5}}, "yy", []int{2, 5, 5}},
	} {
		pcs := c.pcs
		if pcs == nil {
			pcs = tinyPieces(c.unk)
		}
		tok, err := NewTokenizer(pcs, 2)
		if err != nil {
			t.Fatal(err)
		}
		if got := tok.Encode(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("unk %q: Encode(%q) = %v, want %v", c.unk, c.in, got, c.want)
		}
	}
}

func TestNewTokenizerErrors(t *testing.T) {
	if _, err := NewTokenizer([]Piece{{"", 0}, {"a", -1}}, 1); err == nil {
		t.Error("an empty unknown piece was accepted")
	}
	if _, err := NewTokenizer([]Piece{{"?", 0}}, 1); err == nil {
		t.Error("a vocabulary of reserved pieces only was accepted")
	}
	if _, err := NewTokenizer([]Piece{{"?", 0}, {"a", -1}}, 0); err == nil {
		t.Error("no reserved unknown piece was accepted")
	}
}

func TestReadVocab(t *testing.T) {
	pcs, err := ReadVocab(strings.NewReader(`[["\ufffd",0],["▁the",-3.56637144089],["a\"b",-1e-3]]`), "v")
	if err != nil || !reflect.DeepEqual(pcs, []Piece{{"\ufffd", 0}, {"▁the", -3.56637144089}, {`a"b`, -1e-3}}) {
		t.Errorf("got %v, %v", pcs, err)
	}
	for _, in := range []string{``, `{}`, `[["a"]]`, `[["a",1,2]]`, `[[1,1]]`, `[["a","1"]]`, `[["a",1]] x`, `[["a",1]`} {
		if _, err := ReadVocab(strings.NewReader(in), "v"); err == nil || !strings.HasPrefix(err.Error(), "text: v: ") {
			t.Errorf("%q: got %v", in, err)
		}
	}
}

// useTokenizer loads the fetched Universal Sentence Encoder vocabulary,
// failing (not skipping) when it is missing.
func useTokenizer(t testing.TB) *Tokenizer {
	t.Helper()
	dir := data.DefaultDir()
	if err := data.Verify("use-lite", dir); err != nil {
		t.Fatalf("%v\n(fetch the model first: go run ./cmd/native data fetch use-lite)", err)
	}
	p, err := data.FilePath("use-lite", "vocab.json", dir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := LoadUSE(p)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestEncodeUSE(t *testing.T) {
	tok := useTokenizer(t)
	if tok.Len() != 8000 || tok.Piece(9).Text != "▁the" {
		t.Fatalf("%d pieces, piece 9 %q", tok.Len(), tok.Piece(9).Text)
	}
	// Seen with the reference in Node.
	for _, c := range []struct {
		in   string
		want []int
	}{
		{"the movie was great", []int{9, 888, 33, 318}},
		{"", []int{}},
		{" ", []int{30, 30}},
		{"Héllo  wörld\t\n!", []int{341, 1133, 120, 102, 30, 848, 6781, 93, 2706, 0, 78}},
		{"😀 ﬁne", []int{30, 0, 839}},
	} {
		if got := tok.Encode(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Encode(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

// The pieces of a segmentation without unknowns spell the normalized input.
func TestEncodeSpells(t *testing.T) {
	tok := useTokenizer(t)
	for _, s := range []string{"the movie was great", "Héllo wörld", "It's 3.14 — well, roughly!", "ＦＵＬＬ width", "i\u0301 e\u0301"} {
		var b strings.Builder
		for _, id := range tok.Encode(s) {
			if id == 0 {
				t.Fatalf("%q has an unknown", s)
			}
			b.WriteString(tok.Piece(id).Text)
		}
		if b.String() != Normalize(s) {
			t.Errorf("%q: pieces spell %q, want %q", s, b.String(), Normalize(s))
		}
	}
}

func FuzzEncode(f *testing.F) {
	pcs := tinyPieces("\ufffd")
	tok, err := NewTokenizer(pcs, 2)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"ab c", "😀x\t", "ddd", "\xff\xfe", "ａ b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids := tok.Encode(s)
		var b strings.Builder
		for k, id := range ids {
			if id < 0 || id >= tok.Len() || (id > 0 && id < 2) {
				t.Fatalf("id %d", id)
			}
			if id == 0 && k > 0 && ids[k-1] == 0 {
				t.Fatalf("unmerged unknowns in %v", ids)
			}
			b.WriteString(tok.Piece(id).Text)
		}
		if !strings.Contains(Normalize(s), "\ufffd") && !utf8.ValidString(s) {
			t.Fatalf("invalid UTF-8 %q not read as U+FFFD", s)
		}
		if !containsID(ids, 0) && b.String() != Normalize(s) {
			t.Fatalf("%q: pieces spell %q, want %q", s, b.String(), Normalize(s))
		}
	})
}

func containsID(ids []int, id int) bool {
	for _, i := range ids {
		if i == id {
			return true
		}
	}
	return false
}
