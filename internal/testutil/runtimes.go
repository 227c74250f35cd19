package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Runtime is an OCI runtime the tests run containers with.
type Runtime struct {
	Name   string // "runc", "crun"
	Binary string // what to execute
}

// Runtimes returns runc and crun (root required). crun 1.8 refuses hybrid
// cgroup layouts like this machine's (v1 hierarchies plus a cgroup2 mount
// holding a controller), so on such hosts crun runs through a wrapper that
// hides the cgroup2 mount in a private mount namespace
// (shared/reference/peers-on-this-machine.md).
func Runtimes(t testing.TB) []Runtime {
	t.Helper()
	RequireRoot(t)
	out := []Runtime{{"runc", RequireBinary(t, "runc")}}
	crun := RequireBinary(t, "crun")
	bin := crun
	if fi, err := os.Stat("/sys/fs/cgroup/unified"); err == nil && fi.IsDir() {
		bin = filepath.Join(t.TempDir(), "crun")
		script := fmt.Sprintf("#!/bin/sh\nexec unshare -m --propagation private sh -c 'mount -t tmpfs -o size=1m hide /sys/fs/cgroup/unified && exec %s \"$@\"' crun \"$@\"\n", crun)
		if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return append(out, Runtime{"crun", bin})
}
