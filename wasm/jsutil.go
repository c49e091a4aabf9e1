//go:build js && wasm

package main

import (
	"errors"
	"fmt"
	"strings"
	"syscall/js"
)

// await blocks the calling goroutine until the promise p settles and
// returns its value, or its rejection as an error. Never call it on the
// goroutine of a js.FuncOf callback: the event loop that settles p would
// wait for the callback (start a goroutine there).
func await(p js.Value) (js.Value, error) {
	type result struct {
		v   js.Value
		err error
	}
	ch := make(chan result, 1)
	var then, catch js.Func
	then = js.FuncOf(func(_ js.Value, args []js.Value) any {
		ch <- result{v: arg0(args)}
		return nil
	})
	catch = js.FuncOf(func(_ js.Value, args []js.Value) any {
		ch <- result{err: jsError(arg0(args))}
		return nil
	})
	p.Call("then", then, catch)
	r := <-ch
	then.Release()
	catch.Release()
	return r.v, r.err
}

func arg0(args []js.Value) js.Value {
	if len(args) == 0 {
		return js.Undefined()
	}
	return args[0]
}

// jsError turns a JS exception or rejection value into a Go error.
func jsError(v js.Value) error {
	if v.Type() == js.TypeObject {
		if m := v.Get("message"); m.Type() == js.TypeString {
			return errors.New(m.String())
		}
	}
	return errors.New(v.String())
}

// promise returns a JS Promise settled by f, which runs on a new goroutine
// (so it may await promises and map GPU buffers: a js.FuncOf callback must
// not block). A panic in f rejects the promise.
func promise(f func() (any, error)) js.Value {
	var exec js.Func
	exec = js.FuncOf(func(_ js.Value, args []js.Value) any {
		resolve, reject := args[0], args[1]
		go func() {
			v, err := func() (v any, err error) {
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("panic: %v", r)
					}
				}()
				return f()
			}()
			if err != nil {
				reject.Invoke(js.Global().Get("Error").New(err.Error()))
				return
			}
			resolve.Invoke(v)
		}()
		return nil
	})
	p := js.Global().Get("Promise").New(exec) // the executor runs synchronously
	exec.Release()
	return p
}

// fetchBytes fetches a URL relative to the page and returns its body.
func fetchBytes(url string) ([]byte, error) {
	resp, err := await(js.Global().Call("fetch", url))
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %v", url, err)
	}
	if !resp.Get("ok").Bool() {
		body, _ := await(resp.Call("text"))
		msg := ""
		if body.Type() == js.TypeString {
			msg = ": " + strings.TrimSpace(body.String())
		}
		return nil, fmt.Errorf("fetch %s: HTTP %d%s", url, resp.Get("status").Int(), msg)
	}
	buf, err := await(resp.Call("arrayBuffer"))
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %v", url, err)
	}
	u8 := js.Global().Get("Uint8Array").New(buf)
	b := make([]byte, u8.Length())
	js.CopyBytesToGo(b, u8)
	return b, nil
}

// num returns v for JS, with NaN and ±Inf as null (JSON has no NaN).
func num(v float64) any {
	if v != v || v > 1e308 || v < -1e308 {
		return nil
	}
	return v
}

// now is performance.now(): milliseconds since navigation start.
func now() float64 { return js.Global().Get("performance").Call("now").Float() }
