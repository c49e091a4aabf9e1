// Command refpkgs prints the JavaScript reference packages (jsref.Packages),
// name@version, one a line, for .ci/run to install.
package main

import (
	"fmt"

	"github.com/grng/grng/internal/jsref"
)

func main() {
	for _, p := range jsref.Packages {
		fmt.Println(p)
	}
}
