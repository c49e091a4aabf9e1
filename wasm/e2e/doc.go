// Package e2e holds the end-to-end tests of grng in the browser: they build
// the WebAssembly module (github.com/grng/grng/wasm), serve it with github.com/grng/grng/wasm/server on
// 127.0.0.1:0 and drive Debian's headless Chromium with chromedp, checking
// the WebGPU adapter the page reports, training parity with the native CPU
// device, the fallback to the CPU device, a non-blank screenshot and that
// mouse and keyboard reach the UI, and the fine-tuning lesson
// (?lesson=finetune) against the same fine-tuning run natively. They need
// Chromium (apt-get install chromium; a missing browser fails them), the
// digits data set (native data fetch digits) and, for the lesson, use-lite
// and sentiment.
package e2e
