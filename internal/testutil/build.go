package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// built holds the binaries BuildBinaries made in this test process.
var built struct {
	sync.Mutex
	dir  string
	errs map[string]error // by package
}

// BuildBinaries builds the commands pkgs (paths as `go build` takes them
// from the test's directory, e.g. "../condenser-shim") into one temporary
// directory, each at most once per test process, and returns the directory.
// Binaries are named after their package's last element. A TestMain calls
// RemoveBinaries after m.Run.
func BuildBinaries(t testing.TB, pkgs ...string) string {
	t.Helper()
	built.Lock()
	defer built.Unlock()
	if built.dir == "" {
		dir, err := os.MkdirTemp("", "condenser-bin-")
		if err != nil {
			t.Fatal(err)
		}
		built.dir, built.errs = dir, map[string]error{}
	}
	for _, p := range pkgs {
		err, done := built.errs[p]
		if !done {
			out, berr := exec.Command("go", "build", "-o", built.dir+"/", p).CombinedOutput()
			if berr != nil {
				err = fmt.Errorf("go build %s: %v: %s", p, berr, out)
			}
			built.errs[p] = err
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return built.dir
}

// RemoveBinaries deletes what BuildBinaries built.
func RemoveBinaries() {
	built.Lock()
	defer built.Unlock()
	if built.dir != "" {
		os.RemoveAll(built.dir)
		built.dir = ""
	}
}
