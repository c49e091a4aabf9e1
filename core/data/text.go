package data

import (
	"errors"
	"fmt"
	"html"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// TextSet is a labelled text data set: the texts themselves, before any
// featurization (hashed bags of words with BagOfWords, or a model's
// tokenizer). Open gives the same sets as bags of words.
type TextSet struct {
	Samples    []Sentence // a text and its class each
	Classes    int
	Name       string
	ClassNames []string
}

// Len is the number of texts.
func (t *TextSet) Len() int { return len(t.Samples) }

// Validate checks that every text is valid UTF-8 and every class is in
// [0, Classes). Loaders return only valid sets.
func (t *TextSet) Validate() error {
	if t.Classes < 1 || (t.ClassNames != nil && len(t.ClassNames) != t.Classes) {
		return fmt.Errorf("data: %s: %d classes, %d class names", t.Name, t.Classes, len(t.ClassNames))
	}
	for i, s := range t.Samples {
		if s.Class < 0 || s.Class >= t.Classes {
			return fmt.Errorf("data: %s: text %d: class %d out of range [0,%d)", t.Name, i, s.Class, t.Classes)
		}
		if !utf8.ValidString(s.Text) {
			return fmt.Errorf("data: %s: text %d is not valid UTF-8", t.Name, i)
		}
	}
	return nil
}

// Subset returns a new TextSet holding the samples idx, in that order. It
// panics if an index is out of range (a programmer error).
func (t *TextSet) Subset(idx []int) *TextSet {
	s := &TextSet{Samples: make([]Sentence, len(idx)), Classes: t.Classes, Name: t.Name,
		ClassNames: append([]string(nil), t.ClassNames...)}
	for k, i := range idx {
		s.Samples[k] = t.Samples[i]
	}
	return s
}

// Split shuffles the texts and returns the first round(frac·N) of them as a
// and the rest as b, with the permutation Dataset.Split uses for the same
// N and seed: a text set split and then featurized holds the same samples as
// its featurized set split. frac is clamped to [0, 1].
func (t *TextSet) Split(frac float64, seed int64) (a, b *TextSet) {
	frac = math.Min(1, math.Max(0, frac))
	p := rng(uint64(seed), 0).Perm(t.Len())
	k := int(math.Round(frac * float64(t.Len())))
	return t.Subset(p[:k]), t.Subset(p[k:])
}

// ClassCounts returns the number of texts of each class.
func (t *TextSet) ClassCounts() []int {
	c := make([]int, t.Classes)
	for _, s := range t.Samples {
		if s.Class >= 0 && s.Class < len(c) {
			c[s.Class]++
		}
	}
	return c
}

// BagOfWords featurizes the texts as d-bucket hashed bags of words (see
// BagOfWords), one row per text in order.
func (t *TextSet) BagOfWords(d int) *Dataset {
	ds := &Dataset{X: make([]float32, t.Len()*d), Y: make([]float32, t.Len()), N: t.Len(), D: d,
		Classes: t.Classes, Name: t.Name, ClassNames: append([]string(nil), t.ClassNames...)}
	for i, s := range t.Samples {
		BagOfWords(s.Text, ds.Row(i))
		ds.Y[i] = float32(s.Class)
	}
	return ds
}

// IsText reports whether name is a text data set, which OpenText opens.
func IsText(name string) bool {
	switch name {
	case "sentiment", "spam-assassin", "reuters-grain":
		return true
	}
	return false
}

// The SpamAssassin corpus's groups, in the order OpenText reads them: the
// first three are ham (class 0), the last two spam (class 1).
var spamGroups = []string{"easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2"}

// SpamAssassinSize is the number of e-mails in the corpus.
const SpamAssassinSize = 6046

// OpenText loads the fetched text data set name from dataDir/name/ as a
// training and a test set of texts:
//   - sentiment: the IMDb, Yelp and Amazon sentences combined (negative 0,
//     positive 1), split SplitFrac/1−SplitFrac by Split(SplitFrac, SplitSeed);
//   - spam-assassin: the 6046 e-mails of the five groups (easy-ham-1,
//     easy-ham-2 and hard-ham-1 are ham, 0; spam-1 and spam-2 spam, 1), read
//     from the npm tarball in the order of the groups and then of the file
//     names, each reduced to its text by EmailText (headers dropped), split
//     like sentiment;
//   - reuters-grain: Weka's ReutersGrain-train.arff and -test.arff, the
//     Reuters-21578 ModApte stories labelled grain (1) or not (0), as their
//     own training and test sets, with the SGML remnants of the original
//     cleaned (character references such as &lt; decoded, then control
//     characters other than \n and \t removed: the &#3; end marks; white
//     space around a story trimmed).
//
// Missing files give a *NotFetchedError. OpenText does not check the hashes
// (Verify does); it does check the formats.
func OpenText(name, dataDir string) (train, test *TextSet, err error) {
	if !IsText(name) {
		if _, err := lookup(name); err != nil {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("data: %s is not a text data set", name)
	}
	s, _ := lookup(name)
	dir := filepath.Join(dataDir, name)
	p := func(i int) string { return filepath.Join(dir, s.files[i].file) }
	for i := range s.files {
		if _, err := os.Stat(p(i)); errors.Is(err, fs.ErrNotExist) {
			return nil, nil, &NotFetchedError{name, dataDir}
		}
	}
	all := &TextSet{Classes: 2, Name: name}
	switch name {
	case "sentiment":
		parts := make([][]Sentence, len(s.files))
		for i := range s.files {
			if parts[i], err = LoadSentences(p(i)); err != nil {
				return nil, nil, err
			}
		}
		train, test = SentimentSet(parts...)
		return train, test, nil
	case "spam-assassin":
		all.ClassNames = []string{"ham", "spam"}
		if all.Samples, err = readSpamAssassin(p(0)); err != nil {
			return nil, nil, err
		}
	case "reuters-grain":
		var sets [2]*TextSet
		for i := range sets {
			ss, classes, err := LoadTextARFF(p(i))
			if err != nil {
				return nil, nil, err
			}
			if len(classes) != 2 || classes[0] != "0" || classes[1] != "1" {
				return nil, nil, &FormatError{File: p(i), Line: 1, Msg: fmt.Sprintf("classes %v, want {0,1}", classes)}
			}
			for j := range ss {
				ss[j].Text = cleanSGML(ss[j].Text)
			}
			sets[i] = &TextSet{Samples: ss, Classes: 2, Name: name, ClassNames: []string{"other", "grain"}}
		}
		return sets[0], sets[1], nil
	}
	train, test = all.Split(SplitFrac, SplitSeed)
	return train, test, nil
}

// SentimentSet is the sentiment set made of the sentences of its files
// (ReadSentences of imdb.json, yelp.json and amazon.json, in the order of
// Files("sentiment")), split as OpenText splits it: the one place that
// labels and splits them, for the files of a data directory and for those
// a browser fetched.
func SentimentSet(parts ...[]Sentence) (train, test *TextSet) {
	all := &TextSet{Classes: 2, Name: "sentiment", ClassNames: []string{"negative", "positive"}}
	for _, p := range parts {
		all.Samples = append(all.Samples, p...)
	}
	return all.Split(SplitFrac, SplitSeed)
}

// cleanSGML decodes the character references of a Reuters story, removes
// the control characters other than \n and \t that some of them stand for,
// and trims the white space around the story.
func cleanSGML(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || !unicode.IsControl(r) {
			return r
		}
		return -1
	}, html.UnescapeString(s)))
}
