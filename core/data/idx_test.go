package data

import (
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Reading an IDX image file, raw or gzipped, allocates its float32 pixels
// once and little besides: no copy of the raw bytes, no slice outgrown (the
// peak memory of loading MNIST is its pixels).
func TestIDXImagesAllocateOnce(t *testing.T) {
	const n, side = 500, 28
	raw := make([]byte, 16+n*side*side)
	binary.BigEndian.PutUint32(raw, idxImagesMagic)
	binary.BigEndian.PutUint32(raw[4:], n)
	binary.BigEndian.PutUint32(raw[8:], side)
	binary.BigEndian.PutUint32(raw[12:], side)
	for i := range raw[16:] {
		raw[16+i] = byte(i * 7)
	}
	for name, b := range map[string][]byte{"raw": raw, "gzip": gz(raw)} {
		path := filepath.Join(t.TempDir(), "images")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		d, err := loadFile(path, func(r io.Reader) (*Dataset, error) { return ReadIDXImages(r, path) })
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		if d.N != n || d.X[1] != float32(7)/255 {
			t.Fatalf("%s: %d images, pixel 1 = %v", name, d.N, d.X[1])
		}
		pixels := uint64(4 * n * side * side)
		if got := after.TotalAlloc - before.TotalAlloc; got > pixels+256<<10 {
			t.Errorf("%s: %d B allocated for %d B of pixels", name, got, pixels)
		}
	}
}
