package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestShimStaysSmall fails when condenser-shim links what only the daemon
// needs: the image store, the REST layer, the supervisor or an HTTP stack;
// or the cgroups library, whose eBPF and D-Bus dependencies were a fifth of
// the shim's text (shim/stats reads the few cgroup files itself); or
// protoc-gen-go's code for its messages. Its
// memory per container is a headline figure.
func TestShimStaysSmall(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	forbidden := []string{
		"github.com/raind/condenser/imagestore",
		"github.com/raind/condenser/rest",
		"github.com/raind/condenser/supervisor",
		"github.com/google/go-containerregistry",
		"github.com/julienschmidt/httprouter",
		"go.etcd.io/bbolt",
		"net/http",
		"github.com/containerd/cgroups",
		"github.com/cilium/ebpf",
		"github.com/godbus/dbus",
		// protoc-gen-go's code for shim.proto is the tests' reference;
		// the shim's messages encode themselves (shim/api/wire.go).
		"github.com/raind/condenser/shim/api/pbref",
		"google.golang.org/protobuf/types/known/timestamppb",
		// Linking runtime.MemProfile turns the heap profiler on: its
		// buckets cost each shim ~30 KiB (measured).
		"runtime/pprof",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("condenser-shim links %s", dep)
			}
		}
	}
}
