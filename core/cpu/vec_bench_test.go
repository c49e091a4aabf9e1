package cpu

import (
	"testing"

	"github.com/grng/grng/core"
)

// BenchmarkVec times the elementwise ops and reductions that dominate the
// diagonal optimizer steps, on 270k elements (a 784-256-256-10 MLP's
// parameters).
func BenchmarkVec(b *testing.B) {
	const n = 270000
	d := New()
	x, y, z := FromSlice(1, n, benchData(n, 8)), FromSlice(1, n, benchData(n, 9)), d.New(1, n)
	v := FromSlice(1, 1000, benchData(1000, 10))
	rows := FromSlice(n/1000, 1000, x.Data)
	out := d.New(n/1000, 1000)
	run := func(name string, bytes int64, f func()) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(bytes)
			for range b.N {
				f()
			}
		})
	}
	run("mul", 12*n, func() { d.Apply(core.Mul, z, x, y) })
	run("sub", 12*n, func() { d.Apply(core.Sub, z, x, y) })
	run("axpby", 12*n, func() { d.Axpby(0.5, x, 0.9, z) })
	run("clamp", 8*n, func() { d.Clamp(z, x, -1, 1) })
	run("addscalar", 8*n, func() { d.AddScalar(z, x, 1) })
	run("square", 8*n, func() { d.Map(core.Square, z, x) })
	run("mulrow", 8*n, func() { d.MulRow(out, rows, v) })
	run("sumrows", 4*n, func() { d.SumRows(v, rows) })
	run("dot", 8*n, func() { d.Dot(x, y) })
	run("sum", 4*n, func() { d.Sum(x) })
	run("absmax", 4*n, func() { d.AbsMax(x) })
}
