package cpu

import (
	"runtime"
	"sync"
)

// The device's matrix products run through one float32 GEMM of the Goto
// scheme (Goto & van de Geijn 2008): op(B) is packed into kc×nr panels and
// op(A) into mr×kc panels (transposes and alpha applied while packing, edges
// zero-padded), and a register-blocked micro-kernel multiplies one A panel
// by one B panel into an mr×nr tile of C. The micro-kernel is assembly where
// the CPU has it (gemm_amd64.s) and plain Go elsewhere.

// kernelKind names a micro-kernel; microKernel dispatches on it.
type kernelKind uint8

const (
	kernGo     kernelKind = iota // 4×4, plain Go
	kernAVX2                     // 6×16, AVX2 + FMA
	kernAVX512                   // 12×32, AVX-512F
)

// kernel is a micro-kernel with its blocking: mr×nr tiles of C; kc, the
// depth of one packed panel (a kc×nr panel of B is reused from L1 across a
// tile's A panels); mc, the most rows of a task's tile (its mc×kc block of A
// stays in L2); nc, the widest column block packed at once.
type kernel struct {
	kind       kernelKind
	mr, nr     int
	kc, mc, nc int
}

var goKernel = kernel{kind: kernGo, mr: 4, nr: 4, kc: 256, mc: 64, nc: 4096}

// bestKernel is the fastest kernel this CPU runs; set by the arch files.
var bestKernel = goKernel

// packCap bounds the packed copies of op(A) and op(B) held at once, in
// values (16 MiB); a variable for the tests.
var packCap = 1 << 22

// parallelMNK is the product m·n·k from which a GEMM is split over
// goroutines: 8 MFLOP, ~80 µs on one core. A split product costs two rounds
// of goroutines of several µs each; at 128³ (4 MFLOP) it measured no faster
// than one core.
const parallelMNK = 1 << 22

// gemmArgs describes C = alpha·op(A)·op(B) + beta·C for row-major slices,
// op(A) m×k with leading dimension lda (of A as stored), op(B) k×n, C m×n.
// With upper set (C square, result symmetric) only tiles that touch C's
// upper triangle are computed; the caller mirrors it.
type gemmArgs struct {
	tA, tB  bool
	m, n, k int
	alpha   float32
	a       []float32
	lda     int
	b       []float32
	ldb     int
	beta    float32
	c       []float32
	ldc     int
	upper   bool
}

// gemm computes C = alpha·op(A)·op(B) + beta·C with the best kernel. C must
// not overlap A or B. With beta = 0, C is overwritten (NaNs included); with
// alpha = 0 or k = 0, A and B are not read.
func gemm(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	bestKernel.gemm(&gemmArgs{tA: tA, tB: tB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc})
}

// gemmBuf is a pooled packing buffer.
type gemmBuf struct{ d []float32 }

var gemmPool = sync.Pool{New: func() any { return new(gemmBuf) }}

func roundUp(x, m int) int { return (x + m - 1) / m * m }

// tile is a task's block of C: rows [i0, i1), columns [j0, j1) of the
// current column block.
type tile struct{ i0, i1, j0, j1 int }

func (kn *kernel) gemm(g *gemmArgs) {
	m, n, k := g.m, g.n, g.k
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || g.alpha == 0 {
		for i := 0; i < m; i++ {
			scale(g.c[i*g.ldc:i*g.ldc+n], g.beta)
		}
		return
	}
	if rank1OK(g) {
		gemmRank1(g, kn.kind != kernGo)
		return
	}
	if gemvRowOK(kn, g) {
		gemvRow(kn, g)
		return
	}
	mr, nr := kn.mr, kn.nr
	workers := 1
	if p := runtime.GOMAXPROCS(0); p > 1 && float64(m)*float64(n)*float64(k) >= parallelMNK {
		workers = p
	}
	// Balanced blocks: k = 400 gives two panels of 200, not 384 + 16.
	kBlocks := (k + kn.kc - 1) / kn.kc
	kc := (k + kBlocks - 1) / kBlocks
	nBlocks := (n + kn.nc - 1) / kn.nc
	nc := roundUp((n+nBlocks-1)/nBlocks, nr)
	mp := roundUp(m, mr)
	// A group of consecutive k blocks is packed at once, as many as packCap
	// values allow (usually all of them): each group costs two rounds of
	// goroutines, one packing and one multiplying.
	kg := max(1, packCap/((mp+nc)*kc)) * kc

	tiles := makeTiles(m, min(nc, n), mr, nr, kn.mc, workers)
	bp := gemmPool.Get().(*gemmBuf)
	defer gemmPool.Put(bp)
	depth := min(kg, kBlocks*kc)
	need := depth*(mp+nc) + workers*mr*nr
	if cap(bp.d) < need {
		bp.d = make([]float32, need)
	}
	buf := bp.d[:need]
	apack, bpack, tmps := buf[:depth*mp], buf[depth*mp:depth*(mp+nc)], buf[depth*(mp+nc):]

	for jc := 0; jc < n; jc += nc {
		ncur := min(nc, n-jc)
		if jc > 0 && ncur != nc {
			tiles = makeTiles(m, ncur, mr, nr, kn.mc, workers)
		}
		aPanels, bPanels := (m+mr-1)/mr, (ncur+nr-1)/nr
		if g.upper { // rows below the block's last panel are never read
			aPanels = min(aPanels, (jc+bPanels*nr+mr-1)/mr)
		}
		// group panels so each packing task moves ≥ 16K values
		ag := max(1, (1<<14)/(kc*mr))
		bg := max(1, (1<<14)/(kc*nr))
		aTasks, bTasks := (aPanels+ag-1)/ag, (bPanels+bg-1)/bg
		for pg := 0; pg < k; pg += kg {
			pgEnd := min(pg+kg, k)
			blocks := (pgEnd - pg + kc - 1) / kc
			// Phase 1: pack op(A)[:, pg:pgEnd] and op(B)[pg:pgEnd, jc:jc+ncur],
			// block by block; the block at pc starts at (pc−pg)·mp in apack
			// and (pc−pg)·nc in bpack.
			runTasks(workers, blocks*(aTasks+bTasks), func(_, t int) {
				pc := pg + t/(aTasks+bTasks)*kc
				kcur := min(kc, k-pc)
				ap, bp := apack[(pc-pg)*mp:], bpack[(pc-pg)*nc:]
				if t %= aTasks + bTasks; t < aTasks {
					for p := t * ag; p < min((t+1)*ag, aPanels); p++ {
						packA(g, p*mr, min(mr, m-p*mr), mr, pc, kcur, ap[p*mr*kcur:(p+1)*mr*kcur])
					}
					return
				}
				t -= aTasks
				for p := t * bg; p < min((t+1)*bg, bPanels); p++ {
					packB(g, jc+p*nr, min(nr, ncur-p*nr), nr, pc, kcur, bp[p*nr*kcur:(p+1)*nr*kcur])
				}
			})
			// Phase 2: each task updates its tile of C with every block.
			runTasks(workers, len(tiles), func(w, t int) {
				tl := tiles[t]
				if g.upper && tl.i0 >= jc+tl.j1 {
					return // strictly below the diagonal
				}
				if pg == 0 {
					for i := tl.i0; i < tl.i1; i++ {
						o := i*g.ldc + jc
						scale(g.c[o+tl.j0:o+tl.j1], g.beta)
					}
				}
				for pc := pg; pc < pgEnd; pc += kc {
					kn.tile(g, tl, jc, min(kc, k-pc), apack[(pc-pg)*mp:], bpack[(pc-pg)*nc:], tmps[w*mr*nr:(w+1)*mr*nr])
				}
			})
		}
	}
}

// tile multiplies the packed panels into C's block tl (columns relative to
// jc): for each B panel (held in L1), every A panel of the tile.
func (kn *kernel) tile(g *gemmArgs, tl tile, jc, kc int, apack, bpack, tmp []float32) {
	mr, nr, ldc := kn.mr, kn.nr, g.ldc
	for j := tl.j0; j < tl.j1; j += nr {
		b := bpack[(j/nr)*nr*kc : (j/nr+1)*nr*kc]
		nn := min(nr, tl.j1-j)
		for i := tl.i0; i < tl.i1; i += mr {
			if g.upper && i >= jc+j+nr {
				break // this and the later tiles lie below the diagonal
			}
			a := apack[(i/mr)*mr*kc : (i/mr+1)*mr*kc]
			mm := min(mr, tl.i1-i)
			c := g.c[i*ldc+jc+j:]
			if mm == mr && nn == nr {
				microKernel(kn.kind, kc, a, b, c, ldc)
				continue
			}
			clear(tmp)
			microKernel(kn.kind, kc, a, b, tmp, nr)
			for r := 0; r < mm; r++ {
				cr, tr := c[r*ldc:r*ldc+nn], tmp[r*nr:r*nr+nn]
				for q, v := range tr {
					cr[q] += v
				}
			}
		}
	}
}

// makeTiles splits an m×n block of C into tiles of whole mr×nr micro-tiles,
// at most mc rows high, and halves them until there are about four per
// worker, so that a worker slowed by other load does not hold up the rest.
func makeTiles(m, n, mr, nr, mc, workers int) []tile {
	tm := min(roundUp(m, mr), mc)
	tn := roundUp(n, nr)
	count := func() int { return ((m + tm - 1) / tm) * ((n + tn - 1) / tn) }
	for workers > 1 && count() < 4*workers {
		switch {
		case tn >= tm && tn > nr:
			tn = roundUp((tn+1)/2, nr)
		case tm > mr:
			tm = roundUp((tm+1)/2, mr)
		case tn > nr:
			tn = roundUp((tn+1)/2, nr)
		default:
			workers = 1 // cannot split further
		}
	}
	tiles := make([]tile, 0, count())
	for i := 0; i < m; i += tm {
		for j := 0; j < n; j += tn {
			tiles = append(tiles, tile{i, min(i+tm, m), j, min(j+tn, n)})
		}
	}
	return tiles
}

// packA writes rows [i0, i0+rows) of alpha·op(A), columns [pc, pc+kc), as an
// mr×kc panel: for each p the mr values of column p, rows past m as zeros.
func packA(g *gemmArgs, i0, rows, mr, pc, kc int, dst []float32) {
	alpha, a, lda := g.alpha, g.a, g.lda
	if g.tA { // A is stored k×m: the mr values for one p are contiguous
		packRows(a[pc*lda+i0:], lda, rows, kc, alpha, dst, mr)
		return
	}
	p0 := 0
	if rows == mr {
		p0 = packTransposed(rows, alpha, a[i0*lda+pc:], lda, kc, dst, mr)
	}
	for r := 0; r < rows && p0 < kc; r++ {
		s := a[(i0+r)*lda+pc+p0 : (i0+r)*lda+pc+kc]
		d := dst[p0*mr+r:]
		for p, v := range s {
			d[p*mr] = alpha * v
		}
	}
	if rows < mr {
		for p := 0; p < kc; p++ {
			clear(dst[p*mr+rows : (p+1)*mr])
		}
	}
}

// packB writes columns [j0, j0+cols) of op(B), rows [pc, pc+kc), as a kc×nr
// panel: for each p the nr values of row p, columns past n as zeros.
func packB(g *gemmArgs, j0, cols, nr, pc, kc int, dst []float32) {
	b, ldb := g.b, g.ldb
	if !g.tB { // B is stored k×n: the nr values for one p are contiguous
		packRows(b[pc*ldb+j0:], ldb, cols, kc, 1, dst, nr)
		return
	}
	p0 := 0
	if cols == nr && nr%16 == 0 {
		for h := 0; h < nr; h += 16 {
			p0 = packTransposed(16, 1, b[(j0+h)*ldb+pc:], ldb, kc, dst[h:], nr)
		}
	}
	for c := 0; c < cols && p0 < kc; c++ {
		s := b[(j0+c)*ldb+pc+p0 : (j0+c)*ldb+pc+kc]
		d := dst[p0*nr+c:]
		for p, v := range s {
			d[p*nr] = v
		}
	}
	if cols < nr {
		for p := 0; p < kc; p++ {
			clear(dst[p*nr+cols : (p+1)*nr])
		}
	}
}

// packRows copies kc rows of w values (row stride lds) times alpha into
// rows of width ld, zero-padding each.
func packRows(src []float32, lds, w, kc int, alpha float32, dst []float32, ld int) {
	if packCopy(w, alpha, src, lds, kc, dst, ld) {
		return
	}
	if w == ld && alpha == 1 {
		switch ld { // fixed-size copies compile to a few vector moves
		case 12:
			for p := 0; p < kc; p++ {
				*(*[12]float32)(dst[p*12:]) = *(*[12]float32)(src[p*lds:])
			}
			return
		case 16:
			for p := 0; p < kc; p++ {
				*(*[16]float32)(dst[p*16:]) = *(*[16]float32)(src[p*lds:])
			}
			return
		case 32:
			for p := 0; p < kc; p++ {
				*(*[32]float32)(dst[p*32:]) = *(*[32]float32)(src[p*lds:])
			}
			return
		}
	}
	for p := 0; p < kc; p++ {
		d, s := dst[p*ld:(p+1)*ld], src[p*lds:p*lds+w]
		if alpha == 1 {
			copy(d, s)
		} else {
			for r, v := range s {
				d[r] = alpha * v
			}
		}
		clear(d[w:])
	}
}

// kernelGo4x4 adds a·b to the 4×4 tile at c (row stride ldc), for a 4×k
// panel a and a k×4 panel b packed as packA and packB write them.
func kernelGo4x4(k int, a, b, c []float32, ldc int) {
	var c00, c01, c02, c03, c10, c11, c12, c13 float32
	var c20, c21, c22, c23, c30, c31, c32, c33 float32
	a, b = a[:4*k], b[:4*k]
	for p := 0; p+4 <= len(a); p += 4 {
		ap, bp := a[p:p+4:p+4], b[p:p+4:p+4]
		a0, a1, a2, a3 := ap[0], ap[1], ap[2], ap[3]
		b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	r := c[0:4:4]
	r[0] += c00
	r[1] += c01
	r[2] += c02
	r[3] += c03
	r = c[ldc : ldc+4 : ldc+4]
	r[0] += c10
	r[1] += c11
	r[2] += c12
	r[3] += c13
	r = c[2*ldc : 2*ldc+4 : 2*ldc+4]
	r[0] += c20
	r[1] += c21
	r[2] += c22
	r[3] += c23
	r = c[3*ldc : 3*ldc+4 : 3*ldc+4]
	r[0] += c30
	r[1] += c31
	r[2] += c32
	r[3] += c33
}

// mirrorUpper copies the upper triangle of the n×n row-major c onto the
// lower one, in square blocks so that both sides stay in cache.
func mirrorUpper(n int, c []float32) {
	const bs = 64
	for ib := 0; ib < n; ib += bs {
		for jb := 0; jb <= ib; jb += bs {
			for i := ib; i < min(ib+bs, n); i++ {
				row := c[i*n : i*n+min(jb+bs, i)]
				for j := jb; j < len(row); j++ {
					row[j] = c[j*n+i]
				}
			}
		}
	}
}

// gemv sets y = A·x for the row-major m×n matrix A (row stride lda).
func gemv(m, n int, a []float32, lda int, x, y []float32) {
	x = x[:n]
	i := 0
	if n8 := n &^ 7; hasDot4 && n8 > 0 {
		for ; i+4 <= m; i += 4 {
			_ = a[(i+3)*lda+n-1]
			dot4(n8, a[i*lda:], lda, x, y[i:i+4])
			for r := range 4 {
				row := a[(i+r)*lda : (i+r)*lda+n]
				s := y[i+r]
				for j := n8; j < n; j++ {
					s += row[j] * x[j]
				}
				y[i+r] = s
			}
		}
	}
	for ; i < m; i++ {
		row := a[i*lda : i*lda+n]
		var s0, s1, s2, s3 float32
		j := 0
		for ; j+4 <= n; j += 4 {
			s0 += row[j] * x[j]
			s1 += row[j+1] * x[j+1]
			s2 += row[j+2] * x[j+2]
			s3 += row[j+3] * x[j+3]
		}
		for ; j < n; j++ {
			s0 += row[j] * x[j]
		}
		y[i] = (s0 + s1) + (s2 + s3)
	}
}
