//go:build !((linux || freebsd || netbsd || openbsd) && !android)

package app

// preferDesktopGL has nothing to choose outside Linux and the BSDs: ebiten
// takes the platform's own graphics library (WebGL in the browser).
func preferDesktopGL() {}
