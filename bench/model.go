package bench

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/train"
)

// modelMagic starts a saved MLP: the magic line, one JSON header line, then
// every layer's W ((In+1)×Out, bias row last) as little-endian float32.
const modelMagic = "grng-mlp 1\n"

type modelHeader struct {
	Spec      string `json:"spec"`
	Objective string `json:"objective"`
	Hash      string `json:"hash"` // the configuration that produced it
}

// SaveMLP writes net's weights to path atomically, with hash recording the
// configuration that produced them.
func SaveMLP(path string, net *nn.MLP, hash string) error {
	var b bytes.Buffer
	b.WriteString(modelMagic)
	h, _ := json.Marshal(modelHeader{Spec: net.Spec.String(), Objective: net.Objective().String(), Hash: hash})
	b.Write(h)
	b.WriteByte('\n')
	for _, l := range net.Dense {
		w := make([]float32, core.Len(l.W))
		net.Device().Download(l.W, w)
		for _, v := range w {
			binary.Write(&b, binary.LittleEndian, math.Float32bits(v))
		}
	}
	return train.WriteFileAtomic(path, b.Bytes())
}

// LoadMLP reads a model saved by SaveMLP onto dev; it returns the hash it
// was saved with.
func LoadMLP(path string, dev core.Device) (*nn.MLP, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	magic := make([]byte, len(modelMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != modelMagic {
		return nil, "", fmt.Errorf("%s: not a saved grng MLP", path)
	}
	line, err := r.ReadBytes('\n')
	if err != nil {
		return nil, "", fmt.Errorf("%s: header: %w", path, err)
	}
	var h modelHeader
	if err := json.Unmarshal(line, &h); err != nil {
		return nil, "", fmt.Errorf("%s: header: %w", path, err)
	}
	spec, err := nn.ParseSpec(h.Spec)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	obj, _ := nn.ParseLoss(h.Objective) // cross-entropy for anything else, as before
	net := nn.NewMLP(dev, spec, obj, 0)
	for _, l := range net.Dense {
		w := make([]float32, core.Len(l.W))
		buf := make([]byte, 4*len(w))
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, "", fmt.Errorf("%s: weights: %w", path, err)
		}
		for i := range w {
			w[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
		}
		dev.Upload(l.W, w)
	}
	if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
		return nil, "", fmt.Errorf("%s: trailing bytes after the weights", path)
	}
	return net, h.Hash, nil
}
