package main

import (
	"go/build"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestClientImportsOnlyTheWireTypes fails when condenserctl links the
// daemon's code: of this module it may import the wire types (rest/api), the
// frame codec of the stdio sessions (internal/frame) and pure helpers, never
// the server (rest), the supervisor, the image store, the shim or the root
// filesystems — a client of the contract is built on the contract alone. Of
// other modules it links only the ones listed: cobra, a WebSocket client and
// the terminal.
func TestClientImportsOnlyTheWireTypes(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(build.Default.GOROOT, "bin", "go")
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const module = "github.com/raind/condenser"
	allowed := map[string]bool{
		module + "/rest/api":         true,
		module + "/internal/errdefs": true,
		module + "/internal/names":   true,
		module + "/internal/frame":   true,
	}
	// Modules other than this one and the standard library.
	modules := []string{
		"github.com/spf13/cobra",
		"github.com/spf13/pflag",
		"github.com/inconshreveable/mousetrap", // cobra's, on Windows
		"github.com/coder/websocket",
		"golang.org/x/term",
		"golang.org/x/sys",
	}
	forbidden := []string{
		"github.com/julienschmidt/httprouter",
		"github.com/google/go-containerregistry",
		"go.etcd.io/bbolt",
		"github.com/containerd/ttrpc",
	}
	var sawAPI bool
	for _, dep := range strings.Fields(string(out)) {
		if dep == module+"/cmd/condenserctl" {
			continue
		}
		if dep == module+"/rest/api" {
			sawAPI = true
		}
		if dep == module || strings.HasPrefix(dep, module+"/") {
			if !allowed[dep] {
				t.Errorf("condenserctl imports %s: a client may use only the wire types (%s/rest/api, internal/frame) of the daemon's packages", dep, module)
			}
		} else if !slices.ContainsFunc(modules, func(m string) bool { return dep == m || strings.HasPrefix(dep, m+"/") }) {
			t.Errorf("condenserctl links %s, not among its dependencies %q", dep, modules)
		}
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("condenserctl links %s", dep)
			}
		}
	}
	if !sawAPI {
		t.Errorf("go list -deps does not show %s/rest/api: is the check looking at the right package?", module)
	}
}
