package data_test

import (
	"fmt"

	"grng/core/data"
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
