package xla

import (
	"testing"

	"github.com/grng/grng/models/use/usetest"
)

// TestUSEMatchesCPU runs the Universal Sentence Encoder lite on the XLA
// device (SimpleGo unless GOMLX_BACKEND says otherwise) and on the CPU
// (usetest.CheckEncoder): embeddings within 1e-5, the gradients of a LoRA
// step within 1e-4 of each gradient's largest.
func TestUSEMatchesCPU(t *testing.T) { usetest.CheckEncoder(t, testDevice(t), "XLA") }

// TestUSEFineTuneStepsMatchCPU runs one NGD step of the fine-tuning model
// on the XLA device and on the CPU (usetest.CheckFineTuneStep), with
// K-FAC-expand and K-FAC-reduce over padded sentences.
func TestUSEFineTuneStepsMatchCPU(t *testing.T) { usetest.CheckFineTuneStep(t, testDevice(t), "XLA") }
