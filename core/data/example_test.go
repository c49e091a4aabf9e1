package data_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/grng/grng/core/data"
)

func ExampleDataset_Split() {
	d := data.Moons(10, 0.1, 1)
	train, test := d.Split(0.8, 1)
	data.Standardize(train, test)
	fmt.Println(train.N, test.N, train.D)
	// Output:
	// 8 2 2
}

func ExampleTokenize() {
	fmt.Printf("%q\n", data.Tokenize("Don't stop -- it's GREAT!"))
	v := make([]float32, 8)
	data.BagOfWords("good good", v)
	fmt.Println(data.HashBucket("good", 8), v[data.HashBucket("good", 8)])
	// Output:
	// ["don't" "stop" "it's" "great"]
	// 0 1
}

// A file of one's own: a CSV with a header and class names as labels,
// split 80/20 with a seed and standardized with the training statistics.
func ExampleOpenFiles() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "points.csv")
	csv := "x,y,kind\n"
	for i := range 50 {
		csv += fmt.Sprintf("%d,%d,%s\n", i, i%7, []string{"odd", "even"}[(i+1)%2])
	}
	os.WriteFile(path, []byte(csv), 0o644)
	train, test, err := data.OpenFiles(path, data.FileOptions{Label: "kind", SplitSeed: 1})
	if err != nil {
		panic(err)
	}
	fmt.Println(train.N, test.N, train.D, train.ClassNames)
	// Output:
	// 40 10 2 [even odd]
}
