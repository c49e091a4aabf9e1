package use

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/tfjs"
)

// Node-name prefixes of the graph (docs/use-lite.md names them K/, E/, S/).
const (
	pK = "module_apply_default/Encoder_en/KonaTransformer/"
	pE = pK + "Encode/"
	pS = pE + "TransformerStack/"
	pH = "module_apply_default/Encoder_en/hidden_layers/"
	pW = "module/Encoder_en/KonaTransformer/Encode/" // the attention kernels
)

// Attributes of the nodes, as "key=value" pairs sorted by key and joined
// by ";" (tfjs.Attr.String values), for the kinds of node the graph has.
const (
	aF           = "T=float32"
	aI64         = "T=int64"
	aShape       = "T=float32;out_type=int32"
	aSliceShrink = "Index=int32;T=int32;begin_mask=0;ellipsis_mask=0;end_mask=0;new_axis_mask=0;shrink_axis_mask=1"
	aSliceTail   = "Index=int32;T=int32;begin_mask=0;ellipsis_mask=0;end_mask=1;new_axis_mask=0;shrink_axis_mask=0"
	aSliceColumn = "Index=int32;T=int64;begin_mask=1;ellipsis_mask=0;end_mask=1;new_axis_mask=0;shrink_axis_mask=2"
	aExpandF     = "T=float32;Tdim=int32"
	aConcatI     = "N=2;T=int32;Tidx=int32"
	aScatter     = "T=float32;Tindices=int32"
	aGatherNd    = "Tindices=int32;Tparams=float32"
	aGatherShape = "Taxis=int32;Tindices=int32;Tparams=int32"
	aMatMul      = "T=float32;transpose_a=false;transpose_b=false"
	aBiasAdd     = "T=float32;data_format=NHWC"
	aReshape     = "T=float32;Tshape=int32"
	aMean        = "T=float32;Tidx=int32;keep_dims=true"
	aConv        = "T=float32;data_format=NHWC;dilations=[1 1 1 1];padding=VALID;strides=[1 1 1 1];use_cudnn_on_gpu=true"
	aTranspose   = "T=float32;Tperm=int32"
	aProd        = "T=int32;Tidx=int32;keep_dims=false"
)

func cast(from, to string) string { return "DstT=" + to + ";SrcT=" + from + ";Truncate=false" }

// tnode is a node of the template: what the graph's node of that name must
// be.
type tnode struct {
	op, attrs string
	inputs    []string
}

// tconst is a constant of the template: its dtype (as the graph's Const
// attribute), its shape, and, for the small constants that fix the
// function (widths, the clip length, ε, the mask bias), its values.
type tconst struct {
	dtype  string
	shape  []int
	ints   []int32
	floats []float32
}

// template is the whole graph of the Universal Sentence Encoder lite as
// the TF.js converter wrote it, node by node: checkGraph compares the
// model's graph with it, so that every node, op, input and attribute the
// loader maps onto grng's layers is the one it understands.
type template struct {
	nodes  map[string]tnode
	consts map[string]tconst
}

func (t *template) add(name, op, attrs string, inputs ...string) string {
	if _, dup := t.nodes[name]; dup {
		panic("use: template node twice: " + name)
	}
	t.nodes[name] = tnode{op: op, attrs: attrs, inputs: inputs}
	return name
}

func (t *template) konst(name, dtype string, shape []int, ints []int32, floats []float32) string {
	if _, dup := t.consts[name]; dup {
		return name
	}
	t.add(name, "Const", "dtype="+dtype)
	t.consts[name] = tconst{dtype: dtype, shape: shape, ints: ints, floats: floats}
	return name
}

func (t *template) intc(name string, shape []int, v ...int32) string {
	return t.konst(name, "int32", shape, v, nil)
}

func (t *template) weight(name string, shape ...int) string {
	return t.konst(name, "float32", shape, nil, nil)
}

// arch is what the template is made for, and what the layers need: the
// widths of the two transformer layers.
type arch struct {
	vocab, embed, width, hidden, heads, maxLen int
}

// useLite is the architecture of the published model.
var useLite = arch{vocab: 8002, embed: 256, width: 512, hidden: 1536, heads: 4, maxLen: 128}

// Shared constants' names.
var (
	cZero     = pK + "SequenceMask/Const"
	cMinusOne = pK + "SequenceMask/ExpandDims/dim"
	cOne      = pS + "Layer_1/TransformerLayer/MultiheadAttention/DotProductAttention/attention_bias_ignore_padding/ExpandDims/dim"
	cTwo      = pS + "Layer_1/TransformerLayer/MultiheadAttention/ExpandDims/dim"
	cV1       = pS + "Layer_1/TransformerLayer/FFN/Scatter/strided_slice/stack"
	cV0       = pS + "Layer_1/TransformerLayer/FFN/conv2/Tensordot/Const"
	cV2       = pS + "Layer_1/TransformerLayer/FFN/conv1/Tensordot/add_1"
	cLastAxis = pS + "Layer_1/TransformerLayer/FFN/layer_prepostprocess/layer_norm/Mean/reduction_indices"
	cEps      = pS + "Layer_1/TransformerLayer/FFN/layer_prepostprocess/layer_norm/Cast/x"
	cV01      = "ConstantFolding/" + pS + "Layer_1/TransformerLayer/FFN/conv1/Tensordot/ListDiff-folded-0"
	cV02      = pS + "Layer_0/AddTimingSignal/strided_slice_2/stack_1"
	cV11      = pS + "Layer_0/AddTimingSignal/strided_slice_2/stack_2"
	cV3       = pS + "Layer_1/TransformerLayer/MultiheadAttention/DotProductAttention/BaseDotProductAttention/Slice/begin"
	cPerm     = pS + "Layer_1/TransformerLayer/MultiheadAttention/split_heads/transpose/perm"
	cHeads    = pS + "Layer_1/TransformerLayer/MultiheadAttention/split_heads/split_last_dimension/Reshape/shape/2"
	cMaxLen   = pK + "ClipToMaxLength/Less/y"
	cPad      = pE + "SparseToDense/default_value"
	cBias     = pS + "Layer_1/TransformerLayer/MultiheadAttention/DotProductAttention/attention_bias_ignore_padding/mul/y"
	cL2Eps    = pH + "l2_normalize/Maximum/y"
	cFreqs    = pS + "Layer_0/AddTimingSignal/TimingSignal/ExpandDims_1"
	cEmbed    = "module/Embeddings_en"
	cTanhW    = "module/Encoder_en/hidden_layers/tanh_layer_0/weights"
	cTanhB    = "module/Encoder_en/hidden_layers/tanh_layer_0/bias"
	sm        = pS + "Layer_1/TransformerLayer/FFN/StoreMask/"
	dpa       = pS + "Layer_1/TransformerLayer/MultiheadAttention/DotProductAttention/"
	abip      = dpa + "attention_bias_ignore_padding/"
	output    = pH + "l2_normalize"
)

// layerNames are the names of one transformer layer's weights.
type layerNames struct {
	ln, lnFFN                  [2]string // scale, bias
	qkv, qkvBias, out, outBias string
	adjust, adjustBias         string // layer 0 only
	up, upBias, down, downBias string
	scale                      string // q's scale, 1/√d
	split, headDim             string // [C, C, C] and d
}

func namesOf(l int) layerNames {
	e := fmt.Sprintf("%sLayer_%d/TransformerLayer/", pE, l)
	s := fmt.Sprintf("%sLayer_%d/TransformerLayer/", pS, l)
	w := fmt.Sprintf("%sLayer_%d/TransformerLayer/MultiheadAttention/", pW, l)
	cc := "/ConcatPartitions/concat"
	n := layerNames{
		ln:      [2]string{e + "layer_prepostprocess/layer_norm/layer_norm_scale" + cc, e + "layer_prepostprocess/layer_norm/layer_norm_bias" + cc},
		lnFFN:   [2]string{e + "FFN/layer_prepostprocess/layer_norm/layer_norm_scale" + cc, e + "FFN/layer_prepostprocess/layer_norm/layer_norm_bias" + cc},
		qkv:     w + "qkv_transform_single/kernel/part_0",
		qkvBias: e + "MultiheadAttention/qkv_transform_single/bias" + cc,
		out:     w + "output_transform_single/kernel/part_0",
		outBias: e + "MultiheadAttention/output_transform_single/bias" + cc,
		up:      s + "FFN/conv1/Tensordot/Reshape_1", upBias: e + "FFN/conv1/bias" + cc,
		down: s + "FFN/conv2/Tensordot/Reshape_1", downBias: e + "FFN/conv2/bias" + cc,
		scale: s + "MultiheadAttention/mul/y",
		split: s + "MultiheadAttention/Const", headDim: s + "MultiheadAttention/split_heads/split_last_dimension/Reshape/shape/3",
	}
	if l == 0 {
		n.adjust, n.adjustBias = e+"dense/kernel"+cc, e+"dense/bias"+cc
	}
	return n
}

// newTemplate builds the graph of a USE lite of architecture a.
func newTemplate(a arch) *template {
	t := &template{nodes: map[string]tnode{}, consts: map[string]tconst{}}
	v := func(x ...int32) []int32 { return x }
	s1 := []int{1}
	t.intc(cZero, nil, 0)
	t.intc(cMinusOne, nil, -1)
	t.intc(cOne, nil, 1)
	t.intc(cTwo, nil, 2)
	t.intc(cV1, s1, 1)
	t.intc(cV0, s1, 0)
	t.intc(cV2, s1, 2)
	t.intc(cLastAxis, s1, -1)
	t.intc(cV01, []int{2}, 0, 1)
	t.intc(cV02, []int{2}, 0, 2)
	t.intc(cV11, []int{2}, 1, 1)
	t.intc(cV3, s1, 3)
	t.intc(cPerm, []int{4}, 0, 2, 1, 3)
	t.intc(cHeads, nil, int32(a.heads))
	t.konst(cMaxLen, "int64", nil, v(int32(a.maxLen)), nil)
	t.konst(cPad, "int64", nil, v(padIDGraph), nil)
	t.konst(pK+"ClipToMaxLength/Const", "int64", nil, v(0), nil)
	t.konst(pK+"ClipToMaxLength/ones_like", "int64", []int{2}, v(1, 1), nil)
	t.konst(cEps, "float32", nil, nil, []float32{1e-6})
	t.konst(cBias, "float32", nil, nil, []float32{-1e9})
	t.konst(cL2Eps, "float32", nil, nil, []float32{1e-12})
	t.weight(cFreqs, 1, a.embed/2)
	t.weight(cEmbed, a.vocab, a.embed)
	t.weight(cTanhW, a.width, a.width)
	t.weight(cTanhB, a.width)

	// Inputs, clipped to maxLen positions and made dense (docs/use-lite.md, step 1).
	t.add("indices", "Placeholder", "dtype=int64;shape=shape [-1 2]")
	t.add("values", "Placeholder", "dtype=int64;shape=shape [-1]")
	c := pK + "ClipToMaxLength/"
	t.add(c+"strided_slice", "StridedSlice", aSliceColumn, "indices", cV01, cV02, cV11)
	t.add(c+"Less", "Less", aI64, c+"strided_slice", cMaxLen)
	t.add(c+"Where", "Where", "T=bool", c+"Less")
	t.add(c+"Reshape", "Reshape", "T=int64;Tshape=int32", c+"Where", cLastAxis)
	gather64 := "Taxis=int32;Tindices=int64;Tparams=int64"
	t.add(c+"GatherV2", "GatherV2", gather64, "indices", c+"Reshape", cZero)
	t.add(c+"GatherV2_1", "GatherV2", gather64, "values", c+"Reshape", cZero)
	t.add(c+"Max", "Max", "T=int64;Tidx=int32;keep_dims=false", c+"GatherV2", cZero)
	t.add(c+"Add", "Add", aI64, c+"Max", c+"ones_like")
	t.add(c+"Maximum", "Maximum", aI64, c+"Const", c+"Add")
	lookup := t.add(pE+"embedding_lookup", "GatherV2", "Taxis=int32;Tindices=int64;Tparams=float32", cEmbed, c+"GatherV2_1", cZero)
	t.add(pE+"SparseToDense", "SparseToDense", "T=int64;Tindices=int64;validate_indices=true", c+"GatherV2", c+"Maximum", c+"GatherV2_1", cPad)
	valid := t.add(pE+"Greater", "Greater", aI64, pE+"SparseToDense", cPad)

	// The masks: the key bias, the valid positions, the lengths.
	t.add(dpa+"LogicalNot", "LogicalNot", "", valid)
	t.add(dpa+"ToFloat", "Cast", cast("bool", "float32"), dpa+"LogicalNot")
	t.add(abip+"mul", "Mul", aF, dpa+"ToFloat", cBias)
	t.add(abip+"ExpandDims", "ExpandDims", aExpandF, abip+"mul", cOne)
	keyBias := t.add(abip+"ExpandDims_1", "ExpandDims", aExpandF, abip+"ExpandDims", cOne)
	t.add(sm+"Shape", "Shape", "T=bool;out_type=int32", valid)
	t.add(sm+"Where", "Where", "T=bool", valid)
	t.add(sm+"ToInt32", "Cast", cast("int64", "int32"), sm+"Where")
	t.add(pS+"MaskLength/ToInt32", "Cast", cast("bool", "int32"), valid)
	length := t.add(pS+"MaskLength/Sum", "Sum", "T=int32;Tidx=int32;keep_dims=false", pS+"MaskLength/ToInt32", cOne)

	// Token embeddings and the timing signal, at the valid positions.
	emb := t.scatter(pE, lookup)
	ts := pS + "Layer_0/AddTimingSignal/"
	t.add(ts+"strided_slice_2", "StridedSlice", aSliceColumn, sm+"Where", cV01, cV02, cV11)
	t.add(ts+"TimingSignal/ToFloat_2", "Cast", cast("int64", "float32"), ts+"strided_slice_2")
	t.add(ts+"TimingSignal/ExpandDims", "ExpandDims", aExpandF, ts+"TimingSignal/ToFloat_2", cOne)
	t.add(ts+"TimingSignal/mul_2", "Mul", aF, ts+"TimingSignal/ExpandDims", cFreqs)
	t.add(ts+"TimingSignal/Sin", "Sin", aF, ts+"TimingSignal/mul_2")
	t.add(ts+"TimingSignal/Cos", "Cos", aF, ts+"TimingSignal/mul_2")
	t.add(ts+"TimingSignal/concat", "ConcatV2", "N=2;T=float32;Tidx=int32", ts+"TimingSignal/Sin", ts+"TimingSignal/Cos", cOne)
	t.add(ts+"Gather/GatherNd", "GatherNd", aGatherNd, emb, sm+"ToInt32")
	t.add(ts+"add", "Add", aF, ts+"Gather/GatherNd", ts+"TimingSignal/concat")
	x := t.add(pS+"Layer_0/add", "Add", aF, emb, t.scatter(ts, ts+"add"))

	// The two transformer layers.
	for l := range 2 {
		x = t.layer(a, l, x, keyBias)
	}

	// Pooling over positions 0 … length−1, the tanh projection, the L2
	// normalization.
	t.add(pK+"Shape", "Shape", aShape, x)
	t.add(pK+"strided_slice", "StridedSlice", aSliceShrink, pK+"Shape", cV1, cV2, cV1)
	t.add(pK+"SequenceMask/Range", "Range", "Tidx=int32", cZero, pK+"strided_slice", cOne)
	t.add(pK+"SequenceMask/ExpandDims", "ExpandDims", "T=int32;Tdim=int32", length, cMinusOne)
	t.add(pK+"SequenceMask/Less", "Less", "T=int32", pK+"SequenceMask/Range", pK+"SequenceMask/ExpandDims")
	t.add(pK+"ToFloat", "Cast", cast("bool", "float32"), pK+"SequenceMask/Less")
	t.add(pK+"ExpandDims", "ExpandDims", aExpandF, pK+"ToFloat", cTwo)
	t.add(pK+"mul", "Mul", aF, x, pK+"ExpandDims")
	t.add(pK+"Sum", "Sum", "T=float32;Tidx=int32;keep_dims=false", pK+"mul", cOne)
	t.add(pK+"Maximum", "Maximum", "T=int32", length, cOne)
	t.add(pK+"ToFloat_1", "Cast", cast("int32", "float32"), pK+"Maximum")
	t.add(pK+"ExpandDims_1", "ExpandDims", aExpandF, pK+"ToFloat_1", cOne)
	t.add(pK+"div", "RealDiv", aF, pK+"Sum", pK+"ExpandDims_1")
	h := pH + "tanh_layer_0/"
	t.add(h+"MatMul", "MatMul", aMatMul, pK+"div", cTanhW)
	t.add(h+"BiasAdd", "BiasAdd", aBiasAdd, h+"MatMul", cTanhB)
	t.add(h+"Tanh", "Tanh", aF, h+"BiasAdd")
	n := pH + "l2_normalize/"
	t.add(n+"Square", "Square", aF, h+"Tanh")
	t.add(n+"Sum", "Sum", "T=float32;Tidx=int32;keep_dims=true", n+"Square", cOne)
	t.add(n+"Maximum", "Maximum", aF, n+"Sum", cL2Eps)
	t.add(n+"Rsqrt", "Rsqrt", aF, n+"Maximum")
	t.add(output, "Mul", aF, h+"Tanh", n+"Rsqrt")
	return t
}

// padIDGraph is the padding id of the graph's dense batch (SparseToDense's
// default value), which grng's nn.PadID equals.
const padIDGraph = nn.PadID

// scatter adds the nodes that scatter values (one row per valid position)
// back into the dense batch, zero at padding: prefix+"Scatter/ScatterNd".
func (t *template) scatter(prefix, values string) string {
	p := prefix + "Scatter/"
	t.add(p+"Shape", "Shape", aShape, values)
	t.add(p+"strided_slice", "StridedSlice", aSliceTail, p+"Shape", cV1, cV0, cV1)
	t.add(p+"concat", "ConcatV2", aConcatI, sm+"Shape", p+"strided_slice", cZero)
	return t.add(p+"ScatterNd", "ScatterNd", aScatter, sm+"ToInt32", values, p+"concat")
}

// layerNorm adds a layer norm of x (prefix "…/layer_norm/") with the given
// scale and bias constants, ε = cEps.
func (t *template) layerNorm(p, x string, w [2]string) string {
	t.add(p+"Mean", "Mean", aMean, x, cLastAxis)
	t.add(p+"sub_1", "Sub", aF, x, p+"Mean")
	t.add(p+"Square", "Square", aF, p+"sub_1")
	t.add(p+"Mean_1", "Mean", aMean, p+"Square", cLastAxis)
	t.add(p+"add", "Add", aF, p+"Mean_1", cEps)
	t.add(p+"Rsqrt", "Rsqrt", aF, p+"add")
	t.add(p+"mul", "Mul", aF, w[0], p+"Rsqrt")
	t.add(p+"mul_1", "Mul", aF, p+"mul", p+"sub_1")
	return t.add(p+"add_1", "Add", aF, p+"mul_1", w[1])
}

// tensordot adds a dense map of x by kernel over the last axis, then the
// bias (prefix "…/conv1/"), whose output width is the constant width.
func (t *template) tensordot(p, x, kernel, width, bias string) string {
	d := p + "Tensordot/"
	t.add(d+"Shape", "Shape", aShape, x)
	t.add(d+"GatherV2_1", "GatherV2", aGatherShape, d+"Shape", cV2, cZero)
	t.add(d+"GatherV2", "GatherV2", aGatherShape, d+"Shape", cV01, cZero)
	t.add(d+"Prod_1", "Prod", aProd, d+"GatherV2_1", cV0)
	t.add(d+"Prod", "Prod", aProd, d+"GatherV2", cV0)
	t.add(d+"concat_2", "ConcatV2", aConcatI, d+"GatherV2", width, cZero)
	t.add(d+"stack", "Pack", "N=2;T=int32;axis=0", d+"Prod", d+"Prod_1")
	t.add(d+"Reshape", "Reshape", aReshape, x, d+"stack")
	t.add(d+"MatMul", "MatMul", aMatMul, d+"Reshape", kernel)
	t.add(p+"Tensordot", "Reshape", aReshape, d+"MatMul", d+"concat_2")
	return t.add(p+"BiasAdd", "BiasAdd", aBiasAdd, p+"Tensordot", bias)
}

// layer adds transformer layer l on x (docs/use-lite.md, steps 4 and 5).
func (t *template) layer(a arch, l int, x, keyBias string) string {
	n := namesOf(l)
	in := a.embed
	if l > 0 {
		in = a.width
	}
	c, c1 := in, namesOf(1) // q, k and v are as wide as the input
	d := c / a.heads
	s := fmt.Sprintf("%sLayer_%d/TransformerLayer/", pS, l)
	t.weight(n.ln[0], in)
	t.weight(n.ln[1], in)
	t.weight(n.qkv, 1, 1, in, 3*c)
	t.weight(n.qkvBias, 3*c)
	t.weight(n.out, 1, 1, c, a.width)
	t.weight(n.outBias, a.width)
	t.weight(n.lnFFN[0], a.width)
	t.weight(n.lnFFN[1], a.width)
	t.weight(n.up, a.width, a.hidden)
	t.weight(n.upBias, a.hidden)
	t.weight(n.down, a.hidden, a.width)
	t.weight(n.downBias, a.width)
	t.intc(n.split, []int{3}, int32(c), int32(c), int32(c))
	t.intc(n.headDim, nil, int32(d))
	t.konst(n.scale, "float32", nil, nil, []float32{float32(1 / math.Sqrt(float64(d)))})
	combineWidth := t.intc(s+"MultiheadAttention/combine_heads/combine_last_two_dimensions/Reshape/shape/2", nil, int32(c))
	upWidth := t.intc(strings.Replace(c1.up, "Reshape_1", "Const_2", 1), []int{1}, int32(a.hidden))
	downWidth := t.intc(strings.Replace(c1.down, "Reshape_1", "Const_2", 1), []int{1}, int32(a.width))

	h := t.layerNorm(s+"layer_prepostprocess/layer_norm/", x, n.ln)
	skip := x
	if l == 0 { // the projected residual
		t.weight(n.adjust, in, a.width)
		t.weight(n.adjustBias, a.width)
		r := s + "AdjustResidualInput/"
		t.add(r+"Gather/GatherNd", "GatherNd", aGatherNd, x, sm+"ToInt32")
		t.add(r+"dense/MatMul", "MatMul", aMatMul, r+"Gather/GatherNd", n.adjust)
		t.add(r+"dense/BiasAdd", "BiasAdd", aBiasAdd, r+"dense/MatMul", n.adjustBias)
		skip = t.scatter(r, r+"dense/BiasAdd")
	}
	m := s + "MultiheadAttention/"
	t.add(m+"ExpandDims", "ExpandDims", aExpandF, h, cTwo)
	t.add(m+"qkv_transform_single/Conv2D", "Conv2D", aConv, m+"ExpandDims", n.qkv)
	t.add(m+"qkv_transform_single/BiasAdd", "BiasAdd", aBiasAdd, m+"qkv_transform_single/Conv2D", n.qkvBias)
	t.add(m+"Squeeze", "Squeeze", "T=float32;squeeze_dims=[2]", m+"qkv_transform_single/BiasAdd")
	t.add(m+"split", "SplitV", "T=float32;Tlen=int32;num_split=3", m+"Squeeze", n.split, cTwo)
	var heads [3]string
	for i, in := range []string{m + "split", m + "split:1", m + "split:2"} {
		sh := m + "split_heads/"
		if i > 0 {
			sh = fmt.Sprintf("%ssplit_heads_%d/", m, i)
		}
		sl := sh + "split_last_dimension/"
		t.add(sl+"Shape", "Shape", aShape, in)
		t.add(sl+"strided_slice", "StridedSlice", aSliceShrink, sl+"Shape", cV0, cV1, cV1)
		t.add(sl+"strided_slice_1", "StridedSlice", aSliceShrink, sl+"Shape", cV1, cV2, cV1)
		t.add(sl+"Reshape/shape", "Pack", "N=4;T=int32;axis=0", sl+"strided_slice", sl+"strided_slice_1", cHeads, namesOf(l).headDim)
		t.add(sl+"Reshape", "Reshape", aReshape, in, sl+"Reshape/shape")
		heads[i] = t.add(sh+"transpose", "Transpose", aTranspose, sl+"Reshape", cPerm)
	}
	t.add(m+"mul", "Mul", aF, heads[0], n.scale)
	b := m + "DotProductAttention/BaseDotProductAttention/"
	t.add(b+"MatMul", "BatchMatMul", "T=float32;adj_x=false;adj_y=true", m+"mul", heads[1])
	t.add(b+"add", "Add", aF, b+"MatMul", keyBias)
	t.add(b+"Shape_1", "Shape", aShape, b+"add")
	t.add(b+"Slice", "Slice", "Index=int32;T=int32", b+"Shape_1", cV3, cV1)
	t.add(b+"concat", "ConcatV2", aConcatI, cLastAxis, b+"Slice", cZero)
	t.add(b+"Reshape", "Reshape", aReshape, b+"add", b+"concat")
	t.add(b+"Softmax", "Softmax", aF, b+"Reshape")
	t.add(b+"attention_weights", "Reshape", aReshape, b+"Softmax", b+"Shape_1")
	t.add(b+"MatMul_1", "BatchMatMul", "T=float32;adj_x=false;adj_y=false", b+"attention_weights", heads[2])
	ch := m + "combine_heads/"
	t.add(ch+"transpose", "Transpose", aTranspose, b+"MatMul_1", cPerm)
	cl := ch + "combine_last_two_dimensions/"
	t.add(cl+"Shape", "Shape", aShape, ch+"transpose")
	t.add(cl+"strided_slice", "StridedSlice", aSliceShrink, cl+"Shape", cV0, cV1, cV1)
	t.add(cl+"strided_slice_1", "StridedSlice", aSliceShrink, cl+"Shape", cV1, cV2, cV1)
	t.add(cl+"Reshape/shape", "Pack", "N=3;T=int32;axis=0", cl+"strided_slice", cl+"strided_slice_1", combineWidth)
	t.add(cl+"Reshape", "Reshape", aReshape, ch+"transpose", cl+"Reshape/shape")
	t.add(m+"ExpandDims_1", "ExpandDims", aExpandF, cl+"Reshape", cTwo)
	t.add(m+"output_transform_single/Conv2D", "Conv2D", aConv, m+"ExpandDims_1", n.out)
	t.add(m+"output_transform_single/BiasAdd", "BiasAdd", aBiasAdd, m+"output_transform_single/Conv2D", n.outBias)
	t.add(m+"Squeeze_1", "Squeeze", "T=float32;squeeze_dims=[2]", m+"output_transform_single/BiasAdd")
	y := t.add(s+"layer_postprocess/add", "Add", aF, m+"Squeeze_1", skip)

	f := s + "FFN/"
	h = t.layerNorm(f+"layer_prepostprocess/layer_norm/", y, n.lnFFN)
	t.add(f+"Gather/GatherNd", "GatherNd", aGatherNd, h, sm+"ToInt32")
	t.add(f+"ExpandDims", "ExpandDims", aExpandF, f+"Gather/GatherNd", cZero)
	up := t.tensordot(f+"conv1/", f+"ExpandDims", n.up, upWidth, n.upBias)
	t.add(f+"conv1/Relu", "Relu", aF, up)
	down := t.tensordot(f+"conv2/", f+"conv1/Relu", n.down, downWidth, n.downBias)
	t.add(f+"Squeeze", "Squeeze", "T=float32;squeeze_dims=[0]", down)
	return t.add(f+"layer_postprocess/add", "Add", aF, t.scatter(f, f+"Squeeze"), y)
}

// attrString is a node's attributes in the template's form (a Const's
// value is left to the constants' check).
func attrString(n *tfjs.Node) string {
	var kv []string
	for k, a := range n.Attrs {
		if n.Op == "Const" && k == "value" {
			continue
		}
		kv = append(kv, k+"="+a.String())
	}
	sort.Strings(kv)
	return strings.Join(kv, ";")
}

// checkGraph compares g with the template node by node and the constants
// with their shapes and values: the first difference is an error naming
// the node.
func checkGraph(g *tfjs.Model, t *template) error {
	seen := map[string]bool{}
	for _, n := range g.Nodes {
		seen[n.Name] = true
		want, ok := t.nodes[n.Name]
		if !ok {
			return fmt.Errorf("use: node %s (%s) is not part of the Universal Sentence Encoder lite's graph", n.Name, n.Op)
		}
		if n.Op != want.op {
			return fmt.Errorf("use: node %s: op %s, want %s", n.Name, n.Op, want.op)
		}
		if !slices.Equal(n.Inputs, want.inputs) {
			return fmt.Errorf("use: node %s (%s): inputs %q, want %q", n.Name, n.Op, n.Inputs, want.inputs)
		}
		if got := attrString(n); got != want.attrs {
			return fmt.Errorf("use: node %s (%s): attributes %s, want %s", n.Name, n.Op, got, want.attrs)
		}
	}
	var missing []string
	for name := range t.nodes {
		if !seen[name] {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("use: the graph lacks node %s (and %d more)", missing[0], len(missing)-1)
	}
	names := make([]string, 0, len(t.consts))
	for name := range t.consts {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		c, w := t.consts[name], g.Weight(name)
		if w == nil {
			return fmt.Errorf("use: node %s (Const): no values", name)
		}
		if !slices.Equal(w.Shape, c.shape) && !(len(w.Shape) == 0 && len(c.shape) == 0) {
			return fmt.Errorf("use: node %s (Const): shape %v, want %v", name, w.Shape, c.shape)
		}
		if c.ints != nil && !slices.Equal(w.Int32, c.ints) {
			return fmt.Errorf("use: node %s (Const): value %v, want %v", name, w.Int32, c.ints)
		}
		if c.floats != nil && !slices.Equal(w.Float32, c.floats) {
			return fmt.Errorf("use: node %s (Const): value %v, want %v", name, w.Float32, c.floats)
		}
	}
	return nil
}
