package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// go test ./core/data -run TestGenerateTestdata -gen rewrites the small
// synthetic files under testdata/ that the error tests and the fuzz seed
// corpora use. Without -gen the test only checks that they are present.
var gen = flag.Bool("gen", false, "rewrite core/data/testdata")

func idxFile(magic uint32, dims []uint32, body []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, magic)
	binary.Write(&b, binary.BigEndian, dims)
	b.Write(body)
	return b.Bytes()
}

func gz(b []byte) []byte {
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

// testFiles are the synthetic test inputs, by path under testdata/.
func testFiles() map[string][]byte {
	img := idxFile(0x803, []uint32{3, 2, 2}, []byte{0, 255, 51, 102, 1, 2, 3, 4, 255, 255, 0, 0})
	lab := idxFile(0x801, []uint32{3}, []byte{0, 9, 3})
	corrupt := gz(img)
	corrupt[len(corrupt)-6] ^= 0xff // inside the CRC-32 trailer
	return map[string][]byte{
		"idx/images.idx":           img,
		"idx/images.idx.gz":        gz(img),
		"idx/labels.idx":           lab,
		"idx/labels.idx.gz":        gz(lab),
		"idx/images-truncated.idx": img[:len(img)-3],
		"idx/images-truncated.gz":  gz(img)[:30],
		"idx/images-header.idx":    img[:10],
		"idx/images-corrupt.gz":    corrupt,
		"idx/images-magic.idx":     idxFile(0x00000903, []uint32{3, 2, 2}, img[16:]),
		"idx/images-dims.idx":      idxFile(0x802, []uint32{3, 2}, img[16:]),
		"idx/images-huge.idx":      idxFile(0x803, []uint32{0xffffffff, 0xffff, 0xffff}, img[16:]),
		"idx/images-trailing.idx":  append(append([]byte(nil), img...), 7),
		"idx/labels-range.idx":     idxFile(0x801, []uint32{3}, []byte{0, 10, 3}),
		"idx/labels-2.idx":         idxFile(0x801, []uint32{2}, []byte{0, 1}),
		"idx/labels-magic.idx":     idxFile(0x803, []uint32{3}, []byte{0, 1, 2}),

		"csv/small.csv":        []byte("4,2,a,b,c\n1.5,2,0\n-3,4e2,2\n0,0,1\n7,8,1\n"),
		"csv/small.csv.gz":     gz([]byte("4,2,a,b,c\n1.5,2,0\n-3,4e2,2\n0,0,1\n7,8,1\n")),
		"csv/nohead.csv":       []byte("1,2,0\n3,4,2\n"),
		"csv/bad-number.csv":   []byte("3,2,a,b,c\n1,2,0\n3,abc,1\n5,6,2\n"),
		"csv/bad-label.csv":    []byte("3,2,a,b,c\n1,2,0\n3,4,1\n5,6,3\n"),
		"csv/bad-label2.csv":   []byte("2,2,a,b,c\n1,2,0.5\n3,4,1\n"),
		"csv/bad-width.csv":    []byte("2,2,a,b,c\n1,2,0\n3,4\n"),
		"csv/bad-count.csv":    []byte("3,2,a,b,c\n1,2,0\n3,4,1\n"),
		"csv/bad-header.csv":   []byte("x,2,a,b\n1,2,0\n"),
		"csv/bad-nan.csv":      []byte("1,2,a,b\nNaN,2,0\n"),
		"csv/bad-quote.csv":    []byte("1,2,a,b\n1,\"2,0\n"),
		"csv/bad-gzip.csv.gz":  gz([]byte("1,2,a,b\n1,2,0\n"))[:20],
		"json/small.json":      []byte(`[{"text":"Good movie, don't miss.","class":1},{"text":"Bad.","class":0},{"text":"","class":null}]`),
		"json/small.json.gz":   gz([]byte(`[{"text":"Good movie, don't miss.","class":1},{"text":"Bad.","class":0},{"text":"","class":null}]`)),
		"json/bad-syntax.json": []byte(`[{"text":"ok","class":1},{"text":"x" "class":0}]`),
		"json/bad-class.json":  []byte(`[{"text":"ok","class":1},{"text":"x","class":2}]`),
		"json/bad-type.json":   []byte(`[{"text":"ok","class":1},{"text":5,"class":0}]`),
		"json/no-text.json":    []byte(`[{"text":"ok","class":1},{"class":0}]`),
		"json/truncated.json":  []byte(`[{"text":"ok","class":1},{"text":"x`),
		"json/not-array.json":  []byte(`{"text":"ok","class":1}`),
		"json/trailing.json":   []byte(`[{"text":"ok","class":1}] []`),
	}
}

// fuzzSeeds are the committed seed corpora, by fuzz target, from testFiles.
func fuzzSeeds(files map[string][]byte) map[string][]string {
	return map[string][]string{
		"FuzzIDXImages": {"idx/images.idx", "idx/images.idx.gz", "idx/images-truncated.idx", "idx/images-corrupt.gz", "idx/images-magic.idx", "idx/images-huge.idx"},
		"FuzzIDXLabels": {"idx/labels.idx", "idx/labels.idx.gz", "idx/labels-range.idx", "idx/labels-magic.idx"},
		"FuzzCSV":       {"csv/small.csv", "csv/nohead.csv", "csv/bad-number.csv", "csv/bad-quote.csv", "csv/small.csv.gz"},
		"FuzzSentences": {"json/small.json", "json/bad-syntax.json", "json/bad-class.json", "json/truncated.json", "json/small.json.gz"},
	}
}

func TestGenerateTestdata(t *testing.T) {
	files := testFiles()
	for target, names := range fuzzSeeds(files) {
		for i, n := range names {
			files[filepath.Join("fuzz", target, fmt.Sprintf("seed%d", i))] =
				[]byte("go test fuzz v1\n[]byte(" + strconv.Quote(string(files[n])) + ")\n")
		}
	}
	for name, want := range files {
		path := filepath.Join("testdata", name)
		if *gen {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := os.Stat(path); err != nil { // gzip output may differ between Go versions: no byte comparison
			t.Errorf("%v: run go test ./core/data -run TestGenerateTestdata -gen", err)
		}
	}
}
