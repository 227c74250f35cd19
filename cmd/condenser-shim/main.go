// One P (see serveOnOneProc) is all the shim ever runs on: the runtime's
// per-second check for a new CPU limit, and its goroutine, are for nothing.
//
//go:debug updatemaxprocs=0

// Command condenser-shim monitors one container:
//
//	condenser-shim start  --id ID --bundle B --runtime R --runtime-root DIR [--socket PATH]
//	condenser-shim delete --id ID --bundle B --runtime R --runtime-root DIR [--socket PATH]
//	condenser-shim stacks --bundle B [--socket PATH]
//
// `start` starts a detached shim server (`serve`) for the container and
// prints the address it serves on; the server also serves the standard
// streams of the container's processes on bundle/io.sock. `delete` cleans up after a container
// whose shim is gone or must go (the shim, the runtime's container, the
// mounts, the cgroup; see shim.Delete) and prints its exit status as one
// JSON line: exit.json's content, or {"unknown":true}. Both take the
// bundle's lock (bundle/shim.lock), so a delete never runs in the middle of
// a launch. `stacks` prints every goroutine's stack of the shim serving
// the socket. The socket is bundle/shim.sock unless --socket says otherwise.
// It links only what it needs (no image store, no HTTP stack).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
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
		serveOnOneProc()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		addr, err := shim.StartDetached(ctx, o)
		if err != nil {
			fail(err)
		}
		fmt.Println(addr)
	case "serve":
		fs.Parse(os.Args[2:])
		restoreGOMAXPROCS()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		trimWhenIdle(ctx)
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
	case "stacks":
		fs.Parse(os.Args[2:])
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		dump, err := shim.Stacks(ctx, o)
		if err != nil {
			fail(fmt.Errorf("stacks %s: %w", o.ID, err))
		}
		fmt.Print(dump)
	case "--version", "version":
		fmt.Println("condenser-shim", version)
	default:
		usage()
	}
}

// outerGOMAXPROCS carries the caller's GOMAXPROCS from `start` through
// `serve` to the processes the shim runs: "=value", or "-" when unset.
const outerGOMAXPROCS = "CONDENSER_SHIM_OUTER_GOMAXPROCS"

// serveOnOneProc makes the server that `start` spawns run on one P: it
// mostly waits, one P is enough for its bursts, and each P more costs its
// own cache of heap spans and more threads (about 0.3 MiB of private
// memory per idle shim, measured). It must come from the environment: set
// with runtime.GOMAXPROCS once running, the memory of the second P is
// already spent.
func serveOnOneProc() {
	outer := "-"
	if v, ok := os.LookupEnv("GOMAXPROCS"); ok {
		outer = "=" + v
	}
	os.Setenv(outerGOMAXPROCS, outer)
	os.Setenv("GOMAXPROCS", "1")
}

// restoreGOMAXPROCS gives the processes `serve` starts (the runtime, its
// hooks) the environment `start` had; the Go runtime has read GOMAXPROCS
// already.
func restoreGOMAXPROCS() {
	outer, ok := os.LookupEnv(outerGOMAXPROCS)
	if !ok {
		return // not started by `start`
	}
	os.Unsetenv(outerGOMAXPROCS)
	if v, ok := strings.CutPrefix(outer, "="); ok {
		os.Setenv("GOMAXPROCS", v)
	} else {
		os.Unsetenv("GOMAXPROCS")
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "condenser-shim:", err)
	os.Exit(1)
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: condenser-shim start|serve|delete --id ID --bundle DIR --runtime RUNTIME --runtime-root DIR [--socket PATH]")
	fmt.Fprintln(os.Stderr, "       condenser-shim stacks --bundle DIR [--socket PATH]")
	os.Exit(2)
}
