package client

import (
	"os/exec"
	"strings"
	"testing"
)

// TestClientStaysSmall fails when the client links the shim's server side:
// the daemon imports the client, and only the shim process may drive a
// runtime, reap or read cgroups.
func TestClientStaysSmall(t *testing.T) {
	checkDeps(t, ".", []string{
		"github.com/raind/condenser/shim/runtime",
		"github.com/raind/condenser/shim/reaper",
		"github.com/raind/condenser/shim/stats",
		"github.com/raind/condenser/shim/logging",
		"github.com/containerd/cgroups",
	}, "github.com/raind/condenser/shim")
}

// checkDeps fails when pkg links a package below one of the prefixes, or
// one of the exact packages.
func checkDeps(t *testing.T, pkg string, prefixes []string, exact ...string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list printed no dependencies")
	}
	for _, dep := range deps {
		for _, f := range prefixes {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("%s links %s", pkg, dep)
			}
		}
		for _, f := range exact {
			if dep == f {
				t.Errorf("%s links %s", pkg, dep)
			}
		}
	}
}
