// Package tfjs reads TensorFlow.js graph models as the converter writes
// them: model.json, whose modelTopology is a frozen TensorFlow GraphDef as
// JSON (nodes with their op, inputs and attributes), and whose
// weightsManifest lists the values of the graph's constants, stored in
// binary shards that read, in the order of their paths, as one
// little-endian byte stream.
//
// It reads the format, not any model: it checks what the format promises
// and returns the nodes and the constants' values, leaving what the graph
// computes to the caller (models/use maps one graph onto grng's layers).
// Read refuses, with an error naming the node, the weight or the file:
// model.json that is not a graph model (a Keras layers model, functions in
// the library, fields it does not know), a node without a name or op, a
// duplicate name, an input that names no node, an attribute of a kind it
// does not know, a constant without stored values or whose dtype or shape
// differs from its manifest entry, a manifest entry without a constant,
// quantized weights, dtypes other than float32 and int32 (int64 graph
// tensors, which the converter stores as int32, are read as int32), a
// shard path that leaves the model's folder, and shards that hold more or
// fewer bytes than the manifest's weights need (a truncated or padded
// shard). The files' contents are not hashed here: the data registry pins
// their sha256s.
package tfjs

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// DataType is a TensorFlow DataType, as graph attributes store it.
type DataType int

// The DataTypes this package names; others print as DataType(n).
const (
	Float32 DataType = 1
	Int32   DataType = 3
	Int64   DataType = 9
	Bool    DataType = 10
)

var dataTypeNames = map[DataType]string{Float32: "float32", Int32: "int32", Int64: "int64", Bool: "bool",
	2: "float64", 4: "uint8", 5: "int16", 6: "int8", 7: "string", 19: "float16"}

func (t DataType) String() string {
	if n, ok := dataTypeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("DataType(%d)", int(t))
}

// Node is one node of the graph.
type Node struct {
	Name string
	Op   string
	// Inputs names the nodes whose outputs the node reads, as the graph
	// does: "name" for output 0, "name:k" for output k.
	Inputs []string
	Attrs  map[string]Attr
}

// Attr is a node attribute in a canonical form: Kind is "type", "i", "f",
// "b", "s", "shape", "tensor" or "list", and the field of that kind holds
// the value (a list holds its integers in Ints, its types in Types).
type Attr struct {
	Kind  string
	Type  DataType
	Int   int64
	Float float64
	Bool  bool
	Str   string
	// Shape is the shape of a "shape" or "tensor" attribute (−1: unknown
	// size), Ints the integers of a list.
	Shape []int64
	Ints  []int64
	Types []DataType
}

// String is the attribute's value in one form for comparisons and errors:
// "float32", "2", "true", "NHWC", "[1 1 1 1]", "shape [-1 2]",
// "tensor int32 [3]".
func (a Attr) String() string {
	switch a.Kind {
	case "type":
		return a.Type.String()
	case "i":
		return strconv.FormatInt(a.Int, 10)
	case "f":
		return strconv.FormatFloat(a.Float, 'g', -1, 64)
	case "b":
		return strconv.FormatBool(a.Bool)
	case "s":
		return a.Str
	case "shape":
		return fmt.Sprint("shape ", a.Shape)
	case "tensor":
		return fmt.Sprint("tensor ", a.Type, " ", a.Shape)
	case "list":
		if len(a.Types) > 0 {
			return fmt.Sprint(a.Types)
		}
		return fmt.Sprint(a.Ints)
	}
	return a.Kind
}

// Tensor is the value of a constant: its manifest entry and data, Float32
// for float32 weights, Int32 for int32 (and int64 graph tensors).
type Tensor struct {
	Name    string
	DType   string // "float32" or "int32", as in the manifest
	Shape   []int
	Float32 []float32
	Int32   []int32
}

// Len is the number of elements, the product of Shape.
func (t *Tensor) Len() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Model is a graph model: its nodes in the file's order and the values of
// its constants in the manifest's order.
type Model struct {
	Nodes   []*Node
	Weights []*Tensor
	// Format, GeneratedBy and ConvertedBy are model.json's fields of those
	// names (empty when absent).
	Format, GeneratedBy, ConvertedBy string

	nodes   map[string]*Node
	weights map[string]*Tensor
}

// Node returns the node of that name, or nil.
func (m *Model) Node(name string) *Node { return m.nodes[name] }

// Weight returns the value of the constant of that name, or nil.
func (m *Model) Weight(name string) *Tensor { return m.weights[name] }

// Read reads dir/model.json and the shards it names, relative to dir.
func Read(dir string) (*Model, error) {
	b, err := os.ReadFile(filepath.Join(dir, "model.json"))
	if err != nil {
		return nil, fmt.Errorf("tfjs: %w", err)
	}
	return Parse(b, func(path string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, path)) })
}

// The JSON of model.json. Fields the package does not know are refused
// (decoded into extra maps, checked by Parse).
type fileJSON struct {
	ModelTopology   json.RawMessage `json:"modelTopology"`
	WeightsManifest []groupJSON     `json:"weightsManifest"`
	Format          string          `json:"format"`
	GeneratedBy     string          `json:"generatedBy"`
	ConvertedBy     string          `json:"convertedBy"`
	Signature       json.RawMessage `json:"signature"`
	UserMeta        json.RawMessage `json:"userDefinedMetadata"`
}

type groupJSON struct {
	Paths   []string     `json:"paths"`
	Weights []weightJSON `json:"weights"`
}

type weightJSON struct {
	Name         string          `json:"name"`
	Shape        []int           `json:"shape"`
	DType        string          `json:"dtype"`
	Quantization json.RawMessage `json:"quantization"`
	Group        string          `json:"group"`
}

type topologyJSON struct {
	Node     []nodeJSON      `json:"node"`
	Library  json.RawMessage `json:"library"`
	Versions json.RawMessage `json:"versions"`
}

type nodeJSON struct {
	Name   string                     `json:"name"`
	Op     string                     `json:"op"`
	Input  []string                   `json:"input"`
	Attr   map[string]json.RawMessage `json:"attr"`
	Device string                     `json:"device"`
}

// strict decodes b into v refusing fields v does not have.
func strict(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("data after the JSON value")
	}
	return nil
}

// Parse reads a model from the contents of model.json, with shard
// returning the contents of a shard given its path from the manifest.
func Parse(modelJSON []byte, shard func(path string) ([]byte, error)) (*Model, error) {
	var f fileJSON
	if err := strict(modelJSON, &f); err != nil {
		return nil, fmt.Errorf("tfjs: model.json: %w", err)
	}
	if len(f.ModelTopology) == 0 {
		return nil, errors.New("tfjs: model.json has no modelTopology")
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(f.ModelTopology, &probe); err != nil {
		return nil, fmt.Errorf("tfjs: model.json: modelTopology: %w", err)
	}
	if _, ok := probe["node"]; !ok {
		if _, keras := probe["class_name"]; keras {
			return nil, errors.New("tfjs: model.json holds a layers model (Keras), not a graph model")
		}
		return nil, errors.New("tfjs: model.json: modelTopology has no nodes: not a graph model")
	}
	var top topologyJSON
	if err := strict(f.ModelTopology, &top); err != nil {
		return nil, fmt.Errorf("tfjs: model.json: modelTopology: %w", err)
	}
	if err := emptyLibrary(top.Library); err != nil {
		return nil, err
	}
	m := &Model{Format: f.Format, GeneratedBy: f.GeneratedBy, ConvertedBy: f.ConvertedBy,
		nodes: map[string]*Node{}, weights: map[string]*Tensor{}}
	for i, nj := range top.Node {
		n, err := parseNode(nj)
		if err != nil {
			if nj.Name == "" {
				return nil, fmt.Errorf("tfjs: model.json: node %d: %w", i, err)
			}
			return nil, fmt.Errorf("tfjs: node %s: %w", nj.Name, err)
		}
		if m.nodes[n.Name] != nil {
			return nil, fmt.Errorf("tfjs: node %s: the name is used twice", n.Name)
		}
		m.nodes[n.Name] = n
		m.Nodes = append(m.Nodes, n)
	}
	for _, n := range m.Nodes {
		for _, in := range n.Inputs {
			src, _, err := SplitInput(in)
			if err != nil {
				return nil, fmt.Errorf("tfjs: node %s: %w", n.Name, err)
			}
			if m.nodes[src] == nil {
				return nil, fmt.Errorf("tfjs: node %s: input %q names no node", n.Name, in)
			}
		}
	}
	if len(f.WeightsManifest) == 0 {
		return nil, errors.New("tfjs: model.json has no weightsManifest")
	}
	for g, grp := range f.WeightsManifest {
		if err := m.readGroup(g+1, grp, shard); err != nil {
			return nil, err
		}
	}
	if err := m.checkConstants(); err != nil {
		return nil, err
	}
	return m, nil
}

// SplitInput splits a node input "name" or "name:k" into the node's name
// and the output index; a control input ("^name") is an error.
func SplitInput(in string) (name string, output int, err error) {
	if strings.HasPrefix(in, "^") {
		return "", 0, fmt.Errorf("control input %q is not supported", in)
	}
	if i := strings.LastIndexByte(in, ':'); i >= 0 {
		k, err := strconv.Atoi(in[i+1:])
		if err != nil || k < 0 {
			return "", 0, fmt.Errorf("input %q: bad output index", in)
		}
		return in[:i], k, nil
	}
	return in, 0, nil
}

func emptyLibrary(lib json.RawMessage) error {
	if len(lib) == 0 {
		return nil
	}
	var l map[string]json.RawMessage
	if err := json.Unmarshal(lib, &l); err != nil {
		return fmt.Errorf("tfjs: model.json: library: %w", err)
	}
	for k, v := range l {
		var items []json.RawMessage
		if err := json.Unmarshal(v, &items); err != nil || len(items) > 0 {
			return fmt.Errorf("tfjs: model.json: the graph's library has %s entries (functions are not supported)", k)
		}
	}
	return nil
}

func parseNode(nj nodeJSON) (*Node, error) {
	if nj.Name == "" {
		return nil, errors.New("no name")
	}
	if nj.Op == "" {
		return nil, errors.New("no op")
	}
	n := &Node{Name: nj.Name, Op: nj.Op, Inputs: nj.Input, Attrs: map[string]Attr{}}
	for k, raw := range nj.Attr {
		a, err := parseAttr(raw)
		if err != nil {
			return nil, fmt.Errorf("attribute %s: %w", k, err)
		}
		n.Attrs[k] = a
	}
	return n, nil
}

// attrJSON is an AttrValue in the JSON of the protobuf: one field set.
type attrJSON struct {
	Type        json.RawMessage `json:"type"`
	I           json.RawMessage `json:"i"`
	F           json.RawMessage `json:"f"`
	B           json.RawMessage `json:"b"`
	S           json.RawMessage `json:"s"`
	Shape       json.RawMessage `json:"shape"`
	Tensor      json.RawMessage `json:"tensor"`
	List        json.RawMessage `json:"list"`
	Func        json.RawMessage `json:"func"`
	Placeholder json.RawMessage `json:"placeholder"`
}

type listJSON struct {
	S      []json.RawMessage `json:"s"`
	I      []json.RawMessage `json:"i"`
	F      []json.RawMessage `json:"f"`
	B      []json.RawMessage `json:"b"`
	Type   []json.RawMessage `json:"type"`
	Shape  []json.RawMessage `json:"shape"`
	Tensor []json.RawMessage `json:"tensor"`
	Func   []json.RawMessage `json:"func"`
}

type shapeJSON struct {
	Dim []struct {
		Size json.RawMessage `json:"size"`
		Name string          `json:"name"`
	} `json:"dim"`
	UnknownRank bool `json:"unknownRank"`
}

type tensorJSON struct {
	DType       json.RawMessage   `json:"dtype"`
	TensorShape shapeJSON         `json:"tensorShape"`
	Content     json.RawMessage   `json:"tensorContent"`
	FloatVal    []json.RawMessage `json:"floatVal"`
	DoubleVal   []json.RawMessage `json:"doubleVal"`
	IntVal      []json.RawMessage `json:"intVal"`
	StringVal   []json.RawMessage `json:"stringVal"`
	ScomplexVal []json.RawMessage `json:"scomplexVal"`
	Int64Val    []json.RawMessage `json:"int64Val"`
	BoolVal     []json.RawMessage `json:"boolVal"`
	Uint32Val   []json.RawMessage `json:"uint32Val"`
	Uint64Val   []json.RawMessage `json:"uint64Val"`
	HalfVal     []json.RawMessage `json:"halfVal"`
	DcomplexVal []json.RawMessage `json:"dcomplexVal"`
}

func parseAttr(raw json.RawMessage) (Attr, error) {
	var aj attrJSON
	if err := strict(raw, &aj); err != nil {
		return Attr{}, err
	}
	set := 0
	for _, f := range []json.RawMessage{aj.Type, aj.I, aj.F, aj.B, aj.S, aj.Shape, aj.Tensor, aj.List, aj.Func, aj.Placeholder} {
		if len(f) > 0 {
			set++
		}
	}
	if set != 1 {
		return Attr{}, fmt.Errorf("%d value fields set, want one", set)
	}
	var a Attr
	var err error
	switch {
	case len(aj.Type) > 0:
		a.Kind = "type"
		a.Type, err = parseType(aj.Type)
	case len(aj.I) > 0:
		a.Kind = "i"
		a.Int, err = parseInt(aj.I)
	case len(aj.F) > 0:
		a.Kind = "f"
		err = json.Unmarshal(aj.F, &a.Float)
	case len(aj.B) > 0:
		a.Kind = "b"
		err = json.Unmarshal(aj.B, &a.Bool)
	case len(aj.S) > 0:
		a.Kind = "s"
		a.Str, err = parseBytes(aj.S)
	case len(aj.Shape) > 0:
		a.Kind = "shape"
		var sj shapeJSON
		if err = strict(aj.Shape, &sj); err == nil {
			a.Shape, err = parseShape(sj)
		}
	case len(aj.Tensor) > 0:
		a.Kind = "tensor"
		var tj tensorJSON
		if err = strict(aj.Tensor, &tj); err != nil {
			break
		}
		if a.Type, err = parseType(tj.DType); err != nil {
			break
		}
		if a.Shape, err = parseShape(tj.TensorShape); err != nil {
			break
		}
		for _, v := range [][]json.RawMessage{tj.FloatVal, tj.DoubleVal, tj.IntVal, tj.StringVal, tj.ScomplexVal,
			tj.Int64Val, tj.BoolVal, tj.Uint32Val, tj.Uint64Val, tj.HalfVal, tj.DcomplexVal} {
			if len(v) > 0 {
				return Attr{}, errors.New("values stored in model.json are not supported (want them in the weights manifest)")
			}
		}
		if len(tj.Content) > 0 && string(tj.Content) != `""` {
			return Attr{}, errors.New("tensorContent stored in model.json is not supported (want it in the weights manifest)")
		}
	case len(aj.List) > 0:
		a.Kind = "list"
		var lj listJSON
		if err = strict(aj.List, &lj); err != nil {
			break
		}
		if len(lj.S)+len(lj.F)+len(lj.B)+len(lj.Shape)+len(lj.Tensor)+len(lj.Func) > 0 {
			return Attr{}, errors.New("lists of other than integers and types are not supported")
		}
		if len(lj.I) > 0 && len(lj.Type) > 0 {
			return Attr{}, errors.New("a list of integers and types")
		}
		a.Ints = []int64{}
		for _, v := range lj.I {
			var n int64
			if n, err = parseInt(v); err != nil {
				break
			}
			a.Ints = append(a.Ints, n)
		}
		for _, v := range lj.Type {
			var t DataType
			if t, err = parseType(v); err != nil {
				break
			}
			a.Types = append(a.Types, t)
		}
	default:
		return Attr{}, errors.New("function and placeholder attributes are not supported")
	}
	if err != nil {
		return Attr{}, fmt.Errorf("%s: %w", a.Kind, err)
	}
	return a, nil
}

// parseInt reads an int64 written as a JSON string (protobuf's form) or
// number.
func parseInt(raw json.RawMessage) (int64, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strconv.ParseInt(s, 10, 64)
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, err
	}
	if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, fmt.Errorf("%v is not an integer", f)
	}
	return int64(f), nil
}

// parseType reads a DataType written as a number or as "DT_FLOAT" and the
// like.
func parseType(raw json.RawMessage) (DataType, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		for t, n := range map[string]DataType{"DT_FLOAT": Float32, "DT_INT32": Int32, "DT_INT64": Int64, "DT_BOOL": Bool} {
			if s == t {
				return n, nil
			}
		}
		return 0, fmt.Errorf("data type %q is not supported", s)
	}
	n, err := parseInt(raw)
	return DataType(n), err
}

// parseBytes reads bytes written as base64 (protobuf's JSON) or as an
// array of byte values (the converter's).
func parseBytes(raw json.RawMessage) (string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		b, err := base64.StdEncoding.DecodeString(s)
		return string(b), err
	}
	var bs []int
	if err := json.Unmarshal(raw, &bs); err != nil {
		return "", err
	}
	b := make([]byte, len(bs))
	for i, v := range bs {
		if v < 0 || v > 255 {
			return "", fmt.Errorf("byte %d is %d", i, v)
		}
		b[i] = byte(v)
	}
	return string(b), nil
}

func parseShape(sj shapeJSON) ([]int64, error) {
	if sj.UnknownRank {
		return nil, errors.New("unknown rank")
	}
	s := []int64{}
	for _, d := range sj.Dim {
		n, err := parseInt(d.Size)
		if err != nil {
			return nil, err
		}
		if n < -1 {
			return nil, fmt.Errorf("dimension %d", n)
		}
		s = append(s, n)
	}
	return s, nil
}

// readGroup reads one group of the manifest: its weights, in order, from
// the concatenation of its shards, whose total size must be exactly what
// the weights need.
func (m *Model) readGroup(g int, grp groupJSON, shard func(string) ([]byte, error)) error {
	if len(grp.Paths) == 0 {
		return fmt.Errorf("tfjs: weights group %d has no paths", g)
	}
	need := 0
	for _, w := range grp.Weights {
		if w.Name == "" {
			return fmt.Errorf("tfjs: weights group %d: a weight without a name", g)
		}
		if len(w.Quantization) > 0 && string(w.Quantization) != "null" {
			return fmt.Errorf("tfjs: weight %s: quantized weights are not supported", w.Name)
		}
		if w.DType != "float32" && w.DType != "int32" {
			return fmt.Errorf("tfjs: weight %s: dtype %q is not supported (float32 and int32 are)", w.Name, w.DType)
		}
		n := 1
		for _, d := range w.Shape {
			if d < 0 || d > math.MaxInt32 || n > math.MaxInt32/max(d, 1) {
				return fmt.Errorf("tfjs: weight %s: shape %v", w.Name, w.Shape)
			}
			n *= d
		}
		need += 4 * n
	}
	var data []byte
	for _, p := range grp.Paths {
		if p == "" || strings.ContainsAny(p, `/\`) || p == "." || p == ".." || !fs.ValidPath(p) {
			return fmt.Errorf("tfjs: weights group %d: shard path %q is not a file name in the model's folder", g, p)
		}
		b, err := shard(p)
		if err != nil {
			return fmt.Errorf("tfjs: weights group %d: shard %s: %w", g, p, err)
		}
		data = append(data, b...)
	}
	if len(data) != need {
		return fmt.Errorf("tfjs: weights group %d: the shards %s hold %d bytes, the manifest's %d weights need %d (a truncated or altered shard?)",
			g, strings.Join(grp.Paths, ", "), len(data), len(grp.Weights), need)
	}
	off := 0
	for _, w := range grp.Weights {
		if m.weights[w.Name] != nil {
			return fmt.Errorf("tfjs: weight %s: listed twice in the manifest", w.Name)
		}
		t := &Tensor{Name: w.Name, DType: w.DType, Shape: slices.Clone(w.Shape)}
		n := t.Len()
		if w.DType == "float32" {
			t.Float32 = make([]float32, n)
			for i := range t.Float32 {
				t.Float32[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[off+4*i:]))
			}
		} else {
			t.Int32 = make([]int32, n)
			for i := range t.Int32 {
				t.Int32[i] = int32(binary.LittleEndian.Uint32(data[off+4*i:]))
			}
		}
		off += 4 * n
		m.weights[w.Name] = t
		m.Weights = append(m.Weights, t)
	}
	return nil
}

// checkConstants matches the Const nodes with the manifest: each has a
// weight of its name, of its dtype (int64 stored as int32) and shape, and
// each weight a Const node.
func (m *Model) checkConstants() error {
	consts := 0
	for _, n := range m.Nodes {
		if n.Op != "Const" {
			continue
		}
		consts++
		v, ok := n.Attrs["value"]
		if !ok || v.Kind != "tensor" {
			return fmt.Errorf("tfjs: node %s: a Const without a tensor value", n.Name)
		}
		if dt, ok := n.Attrs["dtype"]; !ok || dt.Kind != "type" || dt.Type != v.Type {
			return fmt.Errorf("tfjs: node %s: dtype %v, value of %v", n.Name, dt, v.Type)
		}
		w := m.weights[n.Name]
		if w == nil {
			return fmt.Errorf("tfjs: node %s: a Const whose values are not in the weights manifest", n.Name)
		}
		want := map[DataType]string{Float32: "float32", Int32: "int32", Int64: "int32"}[v.Type]
		if w.DType != want {
			return fmt.Errorf("tfjs: node %s: a %v constant stored as %s", n.Name, v.Type, w.DType)
		}
		if len(v.Shape) != len(w.Shape) {
			return fmt.Errorf("tfjs: node %s: shape %v in the graph, %v in the manifest", n.Name, v.Shape, w.Shape)
		}
		for i, d := range v.Shape {
			if int64(w.Shape[i]) != d {
				return fmt.Errorf("tfjs: node %s: shape %v in the graph, %v in the manifest", n.Name, v.Shape, w.Shape)
			}
		}
	}
	if consts != len(m.Weights) {
		for _, w := range m.Weights {
			if n := m.nodes[w.Name]; n == nil || n.Op != "Const" {
				return fmt.Errorf("tfjs: weight %s: no Const node of that name in the graph", w.Name)
			}
		}
	}
	return nil
}
