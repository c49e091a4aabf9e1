package core

import (
	"fmt"
	"math"
)

// CholeskyBlock is the block size nb of BlockedCholeskyInverse: the width
// of its panels and of the diagonal blocks it factors on the host.
const CholeskyBlock = 128

// BlockedCholeskyInverse sets dst = A⁻¹ for a symmetric positive definite A
// (n×n, its lower triangle read) in float32 on d, by a right-looking
// blocked Cholesky factorization A = LLᵀ and A⁻¹ = L⁻ᵀL⁻¹, composed from
// the device's Gemm, GatherRows and CopyCols. It is the O(n³) inverse that
// the paper's E.1 counts for K-FAC, at the speed of the device's GEMM.
//
// With nb = CholeskyBlock and p = ⌈n/nb⌉ blocks, step k of the
// factorization takes the trailing matrix S (S = A at k = 0), downloads its
// nb×nb diagonal block D (a sync point: p of them in all), factors D = L_kk
// L_kkᵀ and inverts L_kk on the host in float64 (n·nb² work in all), and on
// the device forms the panel below, L_k = S[nb:, :nb]·L_kk⁻ᵀ, and the next
// trailing matrix S[nb:, nb:] − L_k L_kᵀ. The inverse follows by block
// forward substitution, Y_i = L_ii⁻¹(E_i − Σ_{l<i} L_il Y_l) for the
// block rows Y_i of Y = L⁻¹ (E_i the rows of I), and A⁻¹ = YᵀY = Σ_i Y_iᵀY_i.
// Every product is a float32 Gemm on full matrices (no triangular kernel,
// no writes into a sub-block): about 11n³/3 flops, three times the
// triangle-aware count, for kernels every device already has.
//
// Accuracy: the error of a float32 Cholesky inverse grows like the unit
// roundoff times κ(A), so the caller checks the residual ‖I − A·X‖ of what
// it gets (optim.NewtonSchulz does, and falls back to the float64
// CholeskyInverse when it misses the tolerance). It returns an error naming
// the failed pivot when a diagonal block is not positive definite (in
// float32 that happens from κ ≈ 1e7 on, earlier than in float64). dst may
// not alias a; a is not written.
func BlockedCholeskyInverse(d Device, dst, a Mat) error {
	const op = "BlockedCholeskyInverse"
	n := a.Rows()
	CheckShape(op, "A", a, n, n)
	CheckShape(op, "dst", dst, n, n)
	if n == 0 {
		return nil
	}
	nb := CholeskyBlock
	p := (n + nb - 1) / nb
	size := func(k int) int { return min(nb, n-k*nb) }

	var tmp []Mat // freed on return
	newMat := func(r, c int) Mat {
		m := d.New(r, c)
		tmp = append(tmp, m)
		return m
	}
	defer func() {
		for _, m := range tmp {
			d.Free(m)
		}
	}()
	// rows returns an r×1 index matrix of rows lo … lo+r−1 (GatherRows).
	rows := func(lo, r int) Mat {
		idx := make([]float32, r)
		for i := range idx {
			idx[i] = float32(lo + i)
		}
		m := newMat(r, 1)
		d.Upload(m, idx)
		return m
	}

	linv := make([]Mat, p)  // L_kk⁻¹, nb×nb, on the device
	panel := make([]Mat, p) // L_k = L[(k+1)·nb:, k-th block], on the device
	host := make([]float64, nb*nb)
	h32 := make([]float32, nb*nb)
	S := a
	for k := range p {
		m, b := n-k*nb, size(k)
		// the first b columns of S: [D; B]
		col := S
		if m > b {
			col = newMat(m, b)
			d.CopyCols(col, S, 0)
		}
		D := col
		if m > b {
			D = newMat(b, b)
			d.GatherRows(D, col, rows(0, b))
		}
		d.Download(D, h32[:b*b])
		for i, v := range h32[:b*b] {
			host[i] = float64(v)
		}
		if j, piv := cholInvLower(host[:b*b], b); j >= 0 {
			return fmt.Errorf("cholesky: %d×%d matrix is not positive definite: pivot %d is %g", n, n, k*nb+j, piv)
		}
		for i, v := range host[:b*b] {
			h32[i] = float32(v)
		}
		linv[k] = newMat(b, b)
		d.Upload(linv[k], h32[:b*b])
		if m == b {
			break
		}
		B := newMat(m-b, b)
		d.GatherRows(B, col, rows(b, m-b))
		panel[k] = newMat(m-b, b)
		d.Gemm(false, true, 1, B, linv[k], 0, panel[k]) // B·L_kk⁻ᵀ
		right := newMat(m, m-b)
		d.CopyCols(right, S, b)
		T := newMat(m-b, m-b)
		d.GatherRows(T, right, rows(b, m-b))
		d.Gemm(false, true, -1, panel[k], panel[k], 1, T) // S[b:, b:] − L_k L_kᵀ
		S = T
	}

	// Y = L⁻¹ by block rows, and dst = Σ_i Y_iᵀ Y_i.
	Y := make([]Mat, p)
	e := make([]float32, nb*n)
	for i := range p {
		b := size(i)
		clear(e[:b*n])
		for r := range b {
			e[r*n+i*nb+r] = 1
		}
		C := newMat(b, n)
		d.Upload(C, e[:b*n])
		for l := range i {
			// L_il: rows (i−l−1)·nb … of panel l (whose row 0 is global row (l+1)·nb)
			Lil := newMat(b, nb)
			d.GatherRows(Lil, panel[l], rows((i-l-1)*nb, b))
			d.Gemm(false, false, -1, Lil, Y[l], 1, C)
		}
		Y[i] = newMat(b, n)
		d.Gemm(false, false, 1, linv[i], C, 0, Y[i])
		beta := float32(1)
		if i == 0 {
			beta = 0
		}
		d.Gemm(true, false, 1, Y[i], Y[i], beta, dst)
	}
	return nil
}

// cholInvLower overwrites the b×b row-major s (its lower triangle read)
// with L⁻¹, L the lower Cholesky factor of s, in float64, and returns −1; or
// returns the index and value of the first pivot that is not positive (NaN
// included).
func cholInvLower(s []float64, b int) (int, float64) {
	// factor in place: the lower triangle becomes L
	for j := range b {
		dj := s[j*b+j]
		for k := range j {
			dj -= s[j*b+k] * s[j*b+k]
		}
		if !(dj > 0) || math.IsInf(dj, 0) {
			return j, dj
		}
		ljj := math.Sqrt(dj)
		s[j*b+j] = ljj
		for i := j + 1; i < b; i++ {
			v := s[i*b+j]
			for k := range j {
				v -= s[i*b+k] * s[j*b+k]
			}
			s[i*b+j] = v / ljj
		}
	}
	// invert L in place, column by column of L⁻¹ (forward substitution):
	// (L⁻¹)_jj = 1/L_jj, (L⁻¹)_ij = −(Σ_{j≤k<i} L_ik (L⁻¹)_kj)/L_ii.
	inv := make([]float64, b*b)
	for j := range b {
		inv[j*b+j] = 1 / s[j*b+j]
		for i := j + 1; i < b; i++ {
			var v float64
			for k := j; k < i; k++ {
				v += s[i*b+k] * inv[k*b+j]
			}
			inv[i*b+j] = -v / s[i*b+i]
		}
	}
	copy(s, inv) // the upper triangle becomes 0
	return -1, 0
}
