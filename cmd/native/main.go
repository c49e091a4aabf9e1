// Command native is the native entry point of grng: it trains models with
// the optimizers of github.com/grng/grng/core/optim on a chosen device, writes their metrics,
// and fetches, lists and verifies the data sets.
//
//	native train --data mnist --model 784-256-10:relu --opt adamw --epochs 1
//	native data fetch all
//	native help
//
// Devices are chosen here, at the entry point (see device.go); the command
// never imports a UI package. Exit status: 0 success, 1 runtime failure,
// 2 bad usage or missing data, 130 interrupted.
package main

import (
	"context"
	"os"
)

func main() {
	a := &app{stdout: os.Stdout, stderr: os.Stderr, stderrTTY: isTerminal(os.Stderr)}
	os.Exit(a.run(context.Background(), os.Args[1:]))
}
