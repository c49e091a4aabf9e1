//go:build (linux || freebsd || netbsd || openbsd) && !android

package app

import "os"

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
// is left as it is: SteamEnv=0 restores ebiten's own choice.
func preferDesktopGL() {
	if _, set := os.LookupEnv("SteamEnv"); !set {
		os.Setenv("SteamEnv", "1")
	}
}
