//go:build !purego

package cpu

import xcpu "golang.org/x/sys/cpu"

// The blocking was measured on a Xeon with 48 KiB of L1d and 2 MiB of L2 a
// core: for the AVX-512 kernel, kc = 384 ran a few percent faster than 256
// or 512 on the 785-wide products, and mc from 96 to 576 made no difference.
var (
	avx2Kernel   = kernel{kind: kernAVX2, mr: 6, nr: 16, kc: 256, mc: 144, nc: 4096}
	avx512Kernel = kernel{kind: kernAVX512, mr: 12, nr: 32, kc: 384, mc: 144, nc: 4096}
)

var (
	// hasDot4 reports whether dot4 may be called (AVX2 and FMA).
	hasDot4 = xcpu.X86.HasAVX2 && xcpu.X86.HasFMA
	// hasAVX512 enables the AVX-512 kernel and packing.
	hasAVX512 = xcpu.X86.HasAVX512F
)

func init() {
	switch {
	case hasAVX512:
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
	if hasAVX512 {
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

// transpose16AVX512 sets dst[p·ldd + r] = alpha·src[r·lds + p] for p < 16
// and r < rows, rows 12 or 16.
//
//go:noescape
func transpose16AVX512(rows int, alpha float32, src *float32, lds int, dst *float32, ldd int)

// packCopyAVX512 sets, for p < kc, the ld floats at dst[p·ld:] to
// alpha·src[p·lds:], lanes outside lmask (bit j for lane j) read as zero and
// lanes outside smask not written; kc ≥ 1, ld ≤ 32.
//
//go:noescape
func packCopyAVX512(kc int, alpha float32, src *float32, lds int, dst *float32, ld int, lmask, smask uint32)

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

// packTransposed writes dst[p·ldd + r] = alpha·src[r·lds + p] for p < kc
// and r < rows, with 16×16 register transposes where the CPU has AVX-512
// and rows is 12 or 16, and returns how many p it wrote (a multiple of 16;
// the caller writes the rest).
func packTransposed(rows int, alpha float32, src []float32, lds, kc int, dst []float32, ldd int) int {
	if !hasAVX512 || (rows != 12 && rows != 16) || kc < 16 {
		return 0
	}
	k16 := kc &^ 15
	_, _ = src[(rows-1)*lds+k16-1], dst[(k16-1)*ldd+rows-1]
	for p := 0; p < k16; p += 16 {
		transpose16AVX512(rows, alpha, &src[p], lds, &dst[p*ldd], ldd)
	}
	return k16
}

// packCopy writes, for p < kc, dst[p·ld:(p+1)·ld] = alpha·src[p·lds:p·lds+w]
// followed by zeros, with masked AVX-512 moves where the CPU has them, and
// reports whether it did.
func packCopy(w int, alpha float32, src []float32, lds, kc int, dst []float32, ld int) bool {
	if !hasAVX512 || ld > 32 || kc < 1 || w < 1 {
		return false
	}
	_, _ = src[(kc-1)*lds+w-1], dst[kc*ld-1]
	packCopyAVX512(kc, alpha, &src[0], lds, &dst[0], ld, uint32(1)<<w-1, uint32(1)<<ld-1)
	return true
}
