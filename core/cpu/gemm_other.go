//go:build !amd64 || purego

package cpu

var hasDot4 = false

// kernels lists the kernels this CPU can run, best last (for the tests).
func kernels() []kernel { return []kernel{goKernel} }

// microKernel adds a·b to the mr×nr tile at c for the kernel kind.
func microKernel(_ kernelKind, k int, a, b, c []float32, ldc int) {
	kernelGo4x4(k, a, b, c, ldc)
}

func dot4(n int, a []float32, lda int, x, y []float32) { panic("cpu: dot4 without AVX2") }
