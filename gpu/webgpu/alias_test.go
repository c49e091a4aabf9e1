//go:build cgo || js

package webgpu

import (
	"fmt"
	"testing"
)

// The writes read off the shaders are the ones each kernel documents:
// browsers need them to bind copies for aliased inputs.
func TestWrittenBindings(t *testing.T) {
	for _, tc := range []struct {
		kernel string
		want   string
	}{
		{"gemm64", "map[3:true]"}, // through the helper store_c
		{"gemm128", "map[3:true]"},
		{"axpby", "map[2:true]"}, // y = αx + βy
		{"map", "map[1:true]"},   // dst, src
		{"reduce2", "map[4:true]"},
		{"absmax1", "map[3:true]"},
	} {
		src, err := shaderSource(kernelSpec[tc.kernel].file)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(writtenBindings(src, tc.kernel)); got != tc.want {
			t.Errorf("%s writes %s, want %s", tc.kernel, got, tc.want)
		}
	}
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{"[i] = v;", true}, {"[i] += v;", true}, {"[i] == v", false}, {"[a[i]] = 1;", true},
		{"[i];", false}, {"[i][j] = 2;", true}, {"[i] <= v", false},
	} {
		if got := assigns(tc.s); got != tc.want {
			t.Errorf("assigns(%q) = %v", tc.s, got)
		}
	}
}
