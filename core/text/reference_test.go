//go:build !js

package text

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/grng/grng/core/data"
	"github.com/grng/grng/internal/jsref"
)

// refTokenizer pins the reference's files: the tokenizer of npm
// @tensorflow-models/universal-sentence-encoder@1.3.3.
var refTokenizer = map[string]string{
	"dist/tokenizer/index.js": "ecbc876d2027564f9766a928a13105ce05a6eb1155f7023d611bf02cb59ff5cc",
	"dist/tokenizer/trie.js":  "2637bc41c93a89acd3f0321bc0ba9abc6e7701eec2f602839666caf8aaf963b1",
	"dist/util.js":            "6ecbaa468d5f5f414064f55cbc105589e9dcb8a9252f1e7b9880c31be9d4451a",
}

// refScript encodes every text of its input ({vocab, texts}) with the
// reference Tokenizer and prints the ids.
const refScript = `
const path = require('path'), fs = require('fs');
const {Tokenizer} = require(path.join(process.argv[1], 'dist/tokenizer'));
const input = JSON.parse(fs.readFileSync(0, 'utf8'));
const tok = new Tokenizer(JSON.parse(fs.readFileSync(input.vocab, 'utf8')));
process.stdout.write(JSON.stringify(input.texts.map(s => tok.encode(s))));
`

// runeCut returns s's first n runes.
func runeCut(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}

// referenceTexts are the texts the parity test segments: every sentiment
// sentence, every 20th SpamAssassin e-mail (its first 1000 characters: the
// reference's search is quadratic in the length) and two whole long ones
// (10000 to 16000 characters),
// every 8th Reuters story, and hand-made cases for normalization, white
// space, scripts, unknown and astral characters.
func referenceTexts(t *testing.T) (texts []string, from map[string]int) {
	dir := data.DefaultDir()
	from = map[string]int{}
	add := func(src string, ss ...string) {
		texts = append(texts, ss...)
		from[src] += len(ss)
	}
	open := func(name string) []data.Sentence {
		if err := data.Verify(name, dir); err != nil {
			t.Fatalf("%v\n(fetch the data first: go run ./cmd/native data fetch all)", err)
		}
		tr, te, err := data.OpenText(name, dir)
		if err != nil {
			t.Fatal(err)
		}
		return append(tr.Samples, te.Samples...)
	}
	for _, s := range open("sentiment") {
		add("sentiment", s.Text)
	}
	long := 0
	for i, s := range open("spam-assassin") {
		switch {
		case i%20 == 0:
			add("spam-assassin", runeCut(s.Text, 1000))
		case long < 2 && utf8.RuneCountInString(s.Text) > 10000 && utf8.RuneCountInString(s.Text) < 16000:
			add("spam-assassin (whole, long)", s.Text)
			long++
		}
	}
	for i, s := range open("reuters-grain") {
		if i%8 == 0 {
			add("reuters-grain", s.Text)
		}
	}
	add("hand-made",
		"", " ", "  ", "\t", "\n", "\r\n", " leading", "trailing ", "two  spaces", "tab\tand\nnewline", "\u00a0no-break\u00a0space",
		"\u3000ideographic space", "zero\u200bwidth\u200djoiner", "\ufeffbyte order mark", "em\u2003space",
		"ＦＵＬＬ　ｗｉｄｔｈ", "ﬁ ﬂ ﬀ ligatures", "Ⅻ ½ ² ㎏ ℌ", "e\u0301 vs é, A\u030a vs Å", "Hangul 한국어 ᄀ\u1161",
		"日本語のテキスト、カタカナ", "中文文本", "Русский текст", "العربية", "עברית", "हिन्दी", "ภาษาไทย", "Ελληνικά",
		"emoji 😀👍🏽 👨\u200d👩\u200d👧 🇩🇪", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝐛𝐨𝐥𝐝", "\U0001F600\U0001F600\U0001F600", "a😀b",
		"▁already▁marked▁", "\ufffd replacement", "invalid \xff\xfe bytes", "control \x01\x02\x7f chars",
		"UPPER lower MiXeD", "numbers 3.14159 1,000,000 -42 1e-9", "punctuation!?.,;:'\"()[]{}<>/\\|@#$%^&*_-+=~`",
		"http://example.com/path?q=1&r=2 mail@example.org", "don't won't it's I'm", "ˈfəʊnɛtɪk", "the movie was great",
		strings.Repeat("a", 5000), strings.Repeat("the ", 2000), strings.Repeat("😀", 500), strings.Repeat("x y\t", 700),
	)
	return texts, from
}

// TestReferenceParity compares Encode with the reference tokenizer run under
// Node on the texts of referenceTexts: every id of every text must agree.
func TestReferenceParity(t *testing.T) {
	if jsref.OptedOut() {
		t.Skipf("%s=1: reference tests skipped", jsref.OptOut)
	}
	pkg, err := jsref.Package("@tensorflow-models/universal-sentence-encoder")
	if err != nil {
		t.Fatal(err)
	}
	if err := jsref.CheckFiles(pkg, refTokenizer); err != nil {
		t.Fatal(err)
	}
	tok := useTokenizer(t)
	vocab, _ := data.FilePath("use-lite", "vocab.json", data.DefaultDir())
	texts, from := referenceTexts(t)
	var want [][]int
	t0 := time.Now()
	if err := jsref.Run(refScript, map[string]any{"vocab": vocab, "texts": texts}, &want, pkg); err != nil {
		t.Fatal(err)
	}
	refTime := time.Since(t0)
	if len(want) != len(texts) {
		t.Fatalf("the reference gave %d segmentations for %d texts", len(want), len(texts))
	}
	bad, units, ids := 0, 0, 0
	for i, s := range texts {
		got := tok.Encode(s)
		units += len(Normalize(s))
		ids += len(want[i])
		if !reflect.DeepEqual(got, want[i]) && !(len(got) == 0 && len(want[i]) == 0) {
			if bad++; bad <= 5 {
				k := 0
				for k < min(len(got), len(want[i])) && got[k] == want[i][k] {
					k++
				}
				t.Errorf("text %d %.80q: ids differ from position %d: got %v, want %v", i, s, k,
					got[k:min(len(got), k+8)], want[i][k:min(len(want[i]), k+8)])
			}
		}
	}
	var srcs []string
	for _, src := range []string{"sentiment", "spam-assassin", "spam-assassin (whole, long)", "reuters-grain", "hand-made"} {
		srcs = append(srcs, fmt.Sprintf("%d %s", from[src], src))
	}
	t.Logf("%d texts (%s), %d bytes normalized, %d ids: %d mismatches (the reference took %.1fs)",
		len(texts), strings.Join(srcs, ", "), units, ids, bad, refTime.Seconds())
	if len(texts) < 500 {
		t.Errorf("only %d texts compared", len(texts))
	}
}
