// Command grng-ui is the desktop teaching UI of grng: the landscape lab,
// the network lab and the Kronecker view in an ebiten window.
//
// Every view's state can be given as flags (grng-ui -view landscape
// -problem rosenbrock -start -1,1 -opts sgd,adam,ngd,ring -lr 0.001) or as
// one string, the form the browser build keeps in its URL (-state
// "view=network&data=moons"); pressing S in the window prints the current
// state in that form. For tests and screenshots, -frames N runs N frames and
// exits, saving the last one with -shot out.png.
//
// It needs a display: under a headless X server run it as
// xvfb-run -a -s "-screen 0 1280x800x24" grng-ui.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/grng/grng/app"
	"github.com/grng/grng/app/ui"
	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/data"
)

func main() {
	st := ui.DefaultState()
	st.RegisterFlags(flag.CommandLine)
	frames := flag.Int("frames", 0, "run this many frames, then exit (0: until the window closes)")
	shot := flag.String("shot", "", "save the last frame to this PNG file (with -frames)")
	advance := flag.Int("advance", 0, "advance the UI this many ticks before opening the window (trains the network lab ahead)")
	fps := flag.Bool("fps", false, "re-render every frame and print the frame rate at exit")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: grng-ui [flags]\n\nThe GRNG teaching UI. Flags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *shot != "" && *frames == 0 {
		fmt.Fprintln(os.Stderr, "grng-ui: -shot needs -frames N")
		os.Exit(2)
	}
	u, err := ui.New(st, ui.Options{
		Device:       func() (core.Device, error) { return cpu.New(), nil },
		LoadData:     func(name string) (*data.Dataset, *data.Dataset, error) { return data.Open(name, data.DefaultDir()) },
		QuitOnEscape: true,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "grng-ui:", err)
		os.Exit(2)
	}
	u.OnSave = func(s string) { fmt.Println(s) }
	u.Advance(*advance)
	g := app.New(u, app.Options{Frames: *frames, Shot: *shot, ForceRedraw: *fps})
	start := time.Now()
	if err := app.Run(g, "GRNG: gradient-regularized natural gradients"); err != nil {
		fmt.Fprintln(os.Stderr, "grng-ui:", err)
		os.Exit(1)
	}
	if *fps {
		sec := time.Since(start).Seconds()
		fmt.Printf("%s: %d frames in %.2f s: %.1f frames/s\n", u.View(), g.Frames(), sec, float64(g.Frames())/sec)
	}
}
