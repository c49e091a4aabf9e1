//go:build (linux || freebsd || netbsd || openbsd) && !android

package app

import (
	"os"

	"github.com/ebitengine/purego"
)

// preferDesktopGL makes ebiten open desktop OpenGL through GLX instead of
// OpenGL ES. Ebiten v2.9 takes OpenGL ES whenever libGLESv2 is installed,
// and through EGL unless the glxinfo command lists GLX's ES profile; Mesa's
// software rasterizer (llvmpipe) then presents each frame by sending its
// 4 MB of pixels over the X connection, and the X server spent as much CPU
// receiving them as the whole window spent making the frame (the frame-rate
// section of docs/ui.md). Through GLX it hands them over in shared memory,
// at a fiftieth of that cost. The variable that ebiten reads
// for this, SteamEnv=1 (set by Steam, whose overlay needs desktop GL), has
// no other effect in ebiten; when the user has set it, to any value, it
// is left as it is: SteamEnv=0 restores ebiten's own choice. A machine
// without a desktop libGL (some boards have OpenGL ES only) keeps ebiten's
// choice too, since with SteamEnv=1 ebiten would not try OpenGL ES.
func preferDesktopGL() {
	if _, set := os.LookupEnv("SteamEnv"); set || !hasDesktopGL() {
		return
	}
	os.Setenv("SteamEnv", "1")
}

// hasDesktopGL reports whether one of the libraries ebiten loads for
// desktop OpenGL can be opened.
func hasDesktopGL() bool {
	for _, name := range []string{"libGL.so", "libGL.so.2", "libGL.so.1", "libGL.so.0"} {
		if lib, err := purego.Dlopen(name, purego.RTLD_LAZY|purego.RTLD_GLOBAL); err == nil {
			purego.Dlclose(lib)
			return true
		}
	}
	return false
}
