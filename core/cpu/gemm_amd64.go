//go:build !purego

package cpu

import xcpu "golang.org/x/sys/cpu"

var (
	avx2Kernel   = kernel{kind: kernAVX2, mr: 6, nr: 16, kc: 256, mc: 144, nc: 4096}
	avx512Kernel = kernel{kind: kernAVX512, mr: 12, nr: 32, kc: 256, mc: 144, nc: 4096}
)

// hasDot4 reports whether dot4 may be called (AVX2 and FMA).
var hasDot4 = xcpu.X86.HasAVX2 && xcpu.X86.HasFMA

func init() {
	switch {
	case xcpu.X86.HasAVX512F:
		bestKernel = avx512Kernel
	case hasDot4:
		bestKernel = avx2Kernel
	}
}

// kernels lists the kernels this CPU can run, best last (for the tests).
func kernels() []kernel {
	ks := []kernel{goKernel}
	if hasDot4 {
		ks = append(ks, avx2Kernel)
	}
	if xcpu.X86.HasAVX512F {
		ks = append(ks, avx512Kernel)
	}
	return ks
}

// sgemmKernelAVX2 adds a·b to the 6×16 tile at c (row stride ldc floats),
// for panels a (6×k) and b (k×16) packed as packA and packB write them;
// k ≥ 1.
//
//go:noescape
func sgemmKernelAVX2(k int, a, b, c *float32, ldc int)

// sgemmKernelAVX512 is sgemmKernelAVX2 for 12×32 tiles.
//
//go:noescape
func sgemmKernelAVX512(k int, a, b, c *float32, ldc int)

// sdot4AVX2 sets y[r] = Σ_{j<n} a[r·lda+j]·x[j] for r = 0..3; n is a
// positive multiple of 8.
//
//go:noescape
func sdot4AVX2(n int, a *float32, lda int, x, y *float32)

// microKernel adds a·b to the mr×nr tile at c for the kernel kind.
func microKernel(kind kernelKind, k int, a, b, c []float32, ldc int) {
	switch kind {
	case kernAVX2:
		_, _, _ = a[6*k-1], b[16*k-1], c[5*ldc+15]
		sgemmKernelAVX2(k, &a[0], &b[0], &c[0], ldc)
	case kernAVX512:
		_, _, _ = a[12*k-1], b[32*k-1], c[11*ldc+31]
		sgemmKernelAVX512(k, &a[0], &b[0], &c[0], ldc)
	default:
		kernelGo4x4(k, a, b, c, ldc)
	}
}

// dot4 is sdot4AVX2 on slices; call it only when hasDot4.
func dot4(n int, a []float32, lda int, x, y []float32) {
	_, _, _ = a[3*lda+n-1], x[n-1], y[3]
	sdot4AVX2(n, &a[0], lda, &x[0], &y[0])
}
