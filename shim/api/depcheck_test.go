package api

import (
	"os/exec"
	"strings"
	"testing"
)

// TestAPIStaysSmall fails when the contract links the shim's server side:
// both the daemon and the shim import it.
func TestAPIStaysSmall(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	forbidden := []string{
		"github.com/raind/condenser/shim/runtime",
		"github.com/raind/condenser/shim/reaper",
		"github.com/raind/condenser/shim/stats",
		"github.com/raind/condenser/shim/logging",
		"github.com/raind/condenser/shim/client",
		"github.com/containerd/cgroups",
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "github.com/raind/condenser/shim" {
			t.Errorf("shim/api links %s", dep)
		}
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("shim/api links %s", dep)
			}
		}
	}
}
