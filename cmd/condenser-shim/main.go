// Command condenser-shim monitors one container: `condenser-shim start`
// starts a detached shim server for it and prints the socket it serves on.
// It links only what it needs (no image store, no HTTP stack).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/raind/condenser/shim"
)

// version is set at build time.
var version = "dev"

func main() {
	// A shim is idle most of its life: keep its heap and threads small.
	debug.SetGCPercent(50)
	debug.SetMemoryLimit(8 << 20)
	if len(os.Args) < 2 {
		usage()
	}
	cmd := os.Args[1]
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	var o shim.Options
	fs.StringVar(&o.ID, "id", "", "container id")
	fs.StringVar(&o.Bundle, "bundle", "", "bundle directory")
	fs.StringVar(&o.Runtime, "runtime", "runc", "OCI runtime binary")
	fs.StringVar(&o.RuntimeRoot, "runtime-root", "/run/condenser/runtime", "the runtime's state directory (--root)")
	fs.StringVar(&o.Socket, "socket", "", "unix socket to serve on")
	switch cmd {
	case "start":
		fs.Parse(os.Args[2:])
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		addr, err := shim.StartDetached(ctx, o)
		if err != nil {
			fmt.Fprintln(os.Stderr, "condenser-shim:", err)
			os.Exit(1)
		}
		fmt.Println(addr)
	case "serve":
		fs.Parse(os.Args[2:])
		if err := shim.Serve(o, version); err != nil {
			fmt.Fprintln(os.Stderr, "condenser-shim:", err)
			os.Exit(1)
		}
	case "--version", "version":
		fmt.Println("condenser-shim", version)
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: condenser-shim start|serve --id ID --bundle DIR --runtime RUNTIME --runtime-root DIR --socket PATH")
	os.Exit(2)
}
