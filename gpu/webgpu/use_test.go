//go:build cgo && !js

package webgpu

import (
	"testing"

	"github.com/grng/grng/models/use/usetest"
)

// TestUSEMatchesCPU runs the Universal Sentence Encoder lite on the WebGPU
// device and on the CPU (usetest.CheckEncoder): embeddings within 1e-5,
// the gradients of a LoRA step within 1e-4 of each gradient's largest.
func TestUSEMatchesCPU(t *testing.T) { usetest.CheckEncoder(t, gpu(t), "WebGPU") }

// TestUSEFineTuneStepsMatchCPU runs one NGD step of the fine-tuning model
// on the WebGPU device and on the CPU (usetest.CheckFineTuneStep), with
// K-FAC-expand and K-FAC-reduce over padded sentences.
func TestUSEFineTuneStepsMatchCPU(t *testing.T) { usetest.CheckFineTuneStep(t, gpu(t), "WebGPU") }
