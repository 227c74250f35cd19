// Command condenser-shim monitors one container:
//
//	condenser-shim start  --id ID --bundle B --runtime R --runtime-root DIR [--socket PATH]
//	condenser-shim delete --id ID --bundle B --runtime R --runtime-root DIR [--socket PATH]
//
// `start` starts a detached shim server (`serve`) for the container and
// prints the address it serves on; the server also serves the standard
// streams of the container's processes on bundle/io.sock. `delete` cleans up after a container
// whose shim is gone or must go (the shim, the runtime's container, the
// mounts, the cgroup; see shim.Delete) and prints its exit status as one
// JSON line: exit.json's content, or {"unknown":true}. Both take the
// bundle's lock (bundle/shim.lock), so a delete never runs in the middle of
// a launch. The socket is bundle/shim.sock unless --socket says otherwise.
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
	"github.com/raind/condenser/shim/api"
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
	fs.StringVar(&o.Socket, "socket", "", "unix socket to serve on (default bundle/shim.sock)")
	switch cmd {
	case "start":
		fs.Parse(os.Args[2:])
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		addr, err := shim.StartDetached(ctx, o)
		if err != nil {
			fail(err)
		}
		fmt.Println(addr)
	case "serve":
		fs.Parse(os.Args[2:])
		if err := shim.Serve(o, version); err != nil {
			fail(err)
		}
	case "delete":
		fs.Parse(os.Args[2:])
		// The lock wait (10 s), the shim's and the cgroup's deaths (10 s
		// each) and the runtime's delete, at most.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		e, err := shim.Delete(ctx, o)
		if err != nil {
			fail(fmt.Errorf("delete %s: %w", o.ID, err))
		}
		os.Stdout.Write(api.FormatDeleteOutput(e))
	case "--version", "version":
		fmt.Println("condenser-shim", version)
	default:
		usage()
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "condenser-shim:", err)
	os.Exit(1)
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: condenser-shim start|serve|delete --id ID --bundle DIR --runtime RUNTIME --runtime-root DIR [--socket PATH]")
	os.Exit(2)
}
