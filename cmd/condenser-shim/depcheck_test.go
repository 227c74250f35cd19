package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestShimStaysSmall fails when condenser-shim links what only the daemon
// needs: the image store, the REST layer, the supervisor or an HTTP stack.
// Its memory per container is a headline figure.
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
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("condenser-shim links %s", dep)
			}
		}
	}
}
