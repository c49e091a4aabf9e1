package tfjs

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// smallModel is the JSON of a graph model y = MatMul(x, w) with a float32
// 2×3 weight and an int64 scalar constant (stored as int32), and the bytes
// of its one shard: w = 1…6, k = −7.
func smallModel() (map[string]any, []byte) {
	tensor := func(dt int, dims ...int) map[string]any {
		var ds []any
		for _, d := range dims {
			ds = append(ds, map[string]any{"size": json.Number(itoa(d))})
		}
		return map[string]any{"tensor": map[string]any{"dtype": dt, "tensorShape": map[string]any{"dim": ds},
			"floatVal": []any{}, "intVal": []any{}}}
	}
	m := map[string]any{
		"format": "graph-model", "generatedBy": "test", "convertedBy": "hand",
		"modelTopology": map[string]any{
			"node": []any{
				map[string]any{"name": "x", "op": "Placeholder", "attr": map[string]any{
					"dtype": map[string]any{"type": 1},
					"shape": map[string]any{"shape": map[string]any{"dim": []any{map[string]any{"size": "-1"}, map[string]any{"size": "2"}}}}}},
				map[string]any{"name": "w", "op": "Const", "attr": map[string]any{"dtype": map[string]any{"type": 1}, "value": tensor(1, 2, 3)}},
				map[string]any{"name": "k", "op": "Const", "attr": map[string]any{"dtype": map[string]any{"type": 9}, "value": tensor(9)}},
				map[string]any{"name": "y", "op": "MatMul", "input": []any{"x", "w:0"}, "attr": map[string]any{
					"T":           map[string]any{"type": 1},
					"transpose_a": map[string]any{"b": false},
					"data_format": map[string]any{"s": []any{78, 72, 87, 67}},
					"strides":     map[string]any{"list": map[string]any{"i": []any{"1", "2"}, "s": []any{}}},
					"n":           map[string]any{"i": "3"}}},
			},
			"library":  map[string]any{"function": []any{}},
			"versions": map[string]any{},
		},
		"weightsManifest": []any{map[string]any{
			"paths": []any{"shard1", "shard2"},
			"weights": []any{
				map[string]any{"name": "w", "shape": []any{2, 3}, "dtype": "float32"},
				map[string]any{"name": "k", "shape": []any{}, "dtype": "int32"},
			},
		}},
	}
	data := make([]byte, 28)
	for i := range 6 {
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(float32(i+1)))
	}
	binary.LittleEndian.PutUint32(data[24:], uint32(0xfffffff9)) // −7
	return m, data
}

func itoa(d int) string { b, _ := json.Marshal(d); return string(b) }

// write writes model m and the shard bytes (split after 10 bytes) to a
// fresh folder.
func write(t *testing.T, m map[string]any, data []byte) string {
	t.Helper()
	dir := t.TempDir()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string][]byte{"model.json": b, "shard1": data[:min(10, len(data))], "shard2": data[min(10, len(data)):]} {
		if err := os.WriteFile(filepath.Join(dir, name), v, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestReadSmallModel(t *testing.T) {
	m, data := smallModel()
	g, err := Read(write(t, m, data))
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Nodes) != 4 || g.Format != "graph-model" || g.GeneratedBy != "test" || g.ConvertedBy != "hand" {
		t.Fatalf("%d nodes, format %q %q %q", len(g.Nodes), g.Format, g.GeneratedBy, g.ConvertedBy)
	}
	y := g.Node("y")
	if y.Op != "MatMul" || !slices.Equal(y.Inputs, []string{"x", "w:0"}) {
		t.Fatalf("y: %+v", y)
	}
	for k, want := range map[string]string{"T": "float32", "transpose_a": "false", "data_format": "NHWC", "strides": "[1 2]", "n": "3"} {
		if got := y.Attrs[k].String(); got != want {
			t.Errorf("y.%s = %q, want %q", k, got, want)
		}
	}
	if got := g.Node("x").Attrs["shape"].String(); got != "shape [-1 2]" {
		t.Errorf("x.shape = %q", got)
	}
	if got := g.Node("w").Attrs["value"].String(); got != "tensor float32 [2 3]" {
		t.Errorf("w.value = %q", got)
	}
	w, k := g.Weight("w"), g.Weight("k")
	if !slices.Equal(w.Float32, []float32{1, 2, 3, 4, 5, 6}) || !slices.Equal(w.Shape, []int{2, 3}) || w.Len() != 6 {
		t.Errorf("w = %+v", w)
	}
	if !slices.Equal(k.Int32, []int32{-7}) || k.Len() != 1 {
		t.Errorf("k = %+v", k)
	}
	if name, out, err := SplitInput("w:0"); name != "w" || out != 0 || err != nil {
		t.Errorf("SplitInput: %q %d %v", name, out, err)
	}
}

// Each broken model.json or shard is refused with an error that says what
// and names the node, weight or file.
func TestReadRefusals(t *testing.T) {
	node := func(m map[string]any, name string) map[string]any {
		for _, n := range m["modelTopology"].(map[string]any)["node"].([]any) {
			if n.(map[string]any)["name"] == name {
				return n.(map[string]any)
			}
		}
		panic(name)
	}
	weights := func(m map[string]any) []any {
		return m["weightsManifest"].([]any)[0].(map[string]any)["weights"].([]any)
	}
	for _, tc := range []struct {
		name  string
		edit  func(m map[string]any, data []byte) []byte
		raw   string // model.json instead of the edited model
		want  string
		isNot bool // os.ErrNotExist
	}{
		{name: "truncated shard", edit: func(_ map[string]any, d []byte) []byte { return d[:27] },
			want: "tfjs: weights group 1: the shards shard1, shard2 hold 27 bytes, the manifest's 2 weights need 28 (a truncated or altered shard?)"},
		{name: "longer shard", edit: func(_ map[string]any, d []byte) []byte { return append(d, 0) },
			want: "hold 29 bytes, the manifest's 2 weights need 28"},
		{name: "not JSON", raw: "{\"modelTopology\": ", want: "tfjs: model.json: unexpected EOF"},
		{name: "layers model", raw: `{"modelTopology": {"class_name": "Sequential", "config": {}}, "weightsManifest": []}`,
			want: "tfjs: model.json holds a layers model (Keras), not a graph model"},
		{name: "no topology", raw: `{"weightsManifest": []}`, want: "tfjs: model.json has no modelTopology"},
		{name: "unknown field", edit: func(m map[string]any, d []byte) []byte { m["modelInitializer"] = map[string]any{}; return d },
			want: `tfjs: model.json: json: unknown field "modelInitializer"`},
		{name: "no manifest", edit: func(m map[string]any, d []byte) []byte { delete(m, "weightsManifest"); return d },
			want: "tfjs: model.json has no weightsManifest"},
		{name: "functions", edit: func(m map[string]any, d []byte) []byte {
			m["modelTopology"].(map[string]any)["library"] = map[string]any{"function": []any{map[string]any{}}}
			return d
		}, want: "the graph's library has function entries (functions are not supported)"},
		{name: "duplicate node", edit: func(m map[string]any, d []byte) []byte { node(m, "k")["name"] = "w"; return d },
			want: "tfjs: node w: the name is used twice"},
		{name: "no op", edit: func(m map[string]any, d []byte) []byte { delete(node(m, "y"), "op"); return d },
			want: "tfjs: node y: no op"},
		{name: "unknown node field", edit: func(m map[string]any, d []byte) []byte { node(m, "y")["experimental"] = 1; return d },
			want: `tfjs: model.json: modelTopology: json: unknown field "experimental"`},
		{name: "dangling input", edit: func(m map[string]any, d []byte) []byte { node(m, "y")["input"] = []any{"x", "v"}; return d },
			want: `tfjs: node y: input "v" names no node`},
		{name: "control input", edit: func(m map[string]any, d []byte) []byte { node(m, "y")["input"] = []any{"x", "^w"}; return d },
			want: `tfjs: node y: control input "^w" is not supported`},
		{name: "unknown attribute kind", edit: func(m map[string]any, d []byte) []byte {
			node(m, "y")["attr"].(map[string]any)["T"] = map[string]any{"weird": 1}
			return d
		}, want: `tfjs: node y: attribute T: json: unknown field "weird"`},
		{name: "two attribute kinds", edit: func(m map[string]any, d []byte) []byte {
			node(m, "y")["attr"].(map[string]any)["T"] = map[string]any{"type": 1, "i": "2"}
			return d
		}, want: "tfjs: node y: attribute T: 2 value fields set, want one"},
		{name: "inline values", edit: func(m map[string]any, d []byte) []byte {
			node(m, "k")["attr"].(map[string]any)["value"].(map[string]any)["tensor"].(map[string]any)["intVal"] = []any{3}
			return d
		}, want: "tfjs: node k: attribute value: values stored in model.json are not supported"},
		{name: "quantized", edit: func(m map[string]any, d []byte) []byte {
			weights(m)[0].(map[string]any)["quantization"] = map[string]any{"dtype": "uint8"}
			return d
		}, want: "tfjs: weight w: quantized weights are not supported"},
		{name: "float16", edit: func(m map[string]any, d []byte) []byte { weights(m)[0].(map[string]any)["dtype"] = "float16"; return d },
			want: `tfjs: weight w: dtype "float16" is not supported (float32 and int32 are)`},
		{name: "const shape", edit: func(m map[string]any, d []byte) []byte {
			weights(m)[0].(map[string]any)["shape"] = []any{3, 2}
			return d
		},
			want: "tfjs: node w: shape [2 3] in the graph, [3 2] in the manifest"},
		{name: "const dtype", edit: func(m map[string]any, d []byte) []byte { weights(m)[1].(map[string]any)["dtype"] = "float32"; return d },
			want: "tfjs: node k: a int64 constant stored as float32"},
		{name: "const without weight", edit: func(m map[string]any, d []byte) []byte { weights(m)[1].(map[string]any)["name"] = "k2"; return d },
			want: "tfjs: node k: a Const whose values are not in the weights manifest"},
		{name: "weight without const", edit: func(m map[string]any, d []byte) []byte {
			ws := m["weightsManifest"].([]any)[0].(map[string]any)
			ws["weights"] = append(weights(m), map[string]any{"name": "extra", "shape": []any{}, "dtype": "int32"})
			return append(d, 0, 0, 0, 0)
		}, want: "tfjs: weight extra: no Const node of that name in the graph"},
		{name: "path outside", edit: func(m map[string]any, d []byte) []byte {
			m["weightsManifest"].([]any)[0].(map[string]any)["paths"] = []any{"../shard1", "shard2"}
			return d
		}, want: `tfjs: weights group 1: shard path "../shard1" is not a file name in the model's folder`},
		{name: "missing shard", edit: func(m map[string]any, d []byte) []byte {
			m["weightsManifest"].([]any)[0].(map[string]any)["paths"] = []any{"shard1", "shard3"}
			return d
		}, want: "tfjs: weights group 1: shard shard3: open ", isNot: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, data := smallModel()
			if tc.edit != nil {
				data = tc.edit(m, data)
			}
			dir := write(t, m, data)
			if tc.raw != "" {
				if err := os.WriteFile(filepath.Join(dir, "model.json"), []byte(tc.raw), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Read(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if tc.isNot != errors.Is(err, os.ErrNotExist) {
				t.Fatalf("error %v: errors.Is(ErrNotExist) = %v", err, !tc.isNot)
			}
		})
	}
}

// FuzzParse: any model.json and shard bytes give a model or an error,
// never a panic.
func FuzzParse(f *testing.F) {
	m, data := smallModel()
	b, _ := json.Marshal(m)
	f.Add(b, data)
	f.Add([]byte(`{"modelTopology":{"node":[]},"weightsManifest":[{"paths":["a"],"weights":[]}]}`), []byte{})
	f.Fuzz(func(t *testing.T, js, shard []byte) {
		Parse(js, func(string) ([]byte, error) { return shard, nil })
	})
}
