// Package web holds the static assets of grng's browser build: the page
// (index.html), its style sheet and the loader script that fetches and starts
// the WebAssembly module (github.com/grng/grng/wasm, GOOS=js). The server of `native serve`
// (github.com/grng/grng/wasm/server) serves them from this embedded copy, next to the
// wasm_exec.js of the Go toolchain that built the module.
package web

import (
	"embed"
	"io/fs"
)

//go:embed index.html loader.js style.css
var files embed.FS

// Asset is one static file of the page.
type Asset struct {
	Name        string // path below the site root, e.g. "loader.js"
	ContentType string
	Body        []byte
}

// Assets returns the page's static files, index.html first.
func Assets() []Asset {
	types := []struct{ name, ctype string }{
		{"index.html", "text/html; charset=utf-8"},
		{"loader.js", "text/javascript; charset=utf-8"},
		{"style.css", "text/css; charset=utf-8"},
	}
	out := make([]Asset, len(types))
	for i, t := range types {
		b, err := fs.ReadFile(files, t.name)
		if err != nil {
			panic(err) // embedded above: cannot happen
		}
		out[i] = Asset{t.name, t.ctype, b}
	}
	return out
}

// The names of the files the page loads besides the assets.
const (
	WasmName     = "grng.wasm"    // the module, application/wasm
	WasmExecName = "wasm_exec.js" // the Go toolchain's JS support file
	DataPrefix   = "data/"        // data sets: data/NAME/FILE
)

// PageData lists the registered data sets (and models) the page fetches
// from the server under DataPrefix, each with what it is for.
var PageData = []struct{ Name, For string }{
	{"digits", "digits training"},
	{"use-lite", "fine-tuning lesson (?lesson=finetune)"},
	{"sentiment", "fine-tuning lesson (?lesson=finetune)"},
}
