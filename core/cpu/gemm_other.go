//go:build !amd64 || purego

package cpu

var hasDot4, hasAVX512 = false, false

// kernels lists the kernels this CPU can run, best last (for the tests).
func kernels() []kernel { return []kernel{goKernel} }

// microKernel adds a·b to the mr×nr tile at c for the kernel kind.
func microKernel(_ kernelKind, k int, a, b, c []float32, ldc int) {
	kernelGo4x4(k, a, b, c, ldc)
}

func dot4(n int, a []float32, lda int, x, y []float32) { panic("cpu: dot4 without AVX2") }

// packTransposed writes nothing without AVX-512: the caller's loops do it.
func packTransposed(rows int, alpha float32, src []float32, lds, kc int, dst []float32, ldd int) int {
	return 0
}

// packCopy does nothing without AVX-512: the caller's loops do it.
func packCopy(w int, alpha float32, src []float32, lds, kc int, dst []float32, ld int) bool {
	return false
}
