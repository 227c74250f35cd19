package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDaemonLinksNoShimServer fails when the daemon links the shim's server
// side: the daemon reaches a container's processes only through its shim
// (shim/client, shim/api), never by running a runtime, reaping or reading
// cgroups itself.
func TestDaemonLinksNoShimServer(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/raind/condenser/cmd/condenser").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	exact := []string{"github.com/raind/condenser/shim"} // the server; shim/client and shim/api are the daemon's
	prefixes := []string{
		"github.com/raind/condenser/shim/runtime",
		"github.com/raind/condenser/shim/reaper",
		"github.com/raind/condenser/shim/stats",
		"github.com/containerd/cgroups/v3/cgroup1",
		"github.com/containerd/cgroups/v3/cgroup2",
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list printed no dependencies")
	}
	for _, dep := range deps {
		for _, f := range exact {
			if dep == f {
				t.Errorf("condenser links %s", dep)
			}
		}
		for _, f := range prefixes {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("condenser links %s", dep)
			}
		}
	}
}
