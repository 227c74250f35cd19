package shim

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ShimCgroup is where shims go when they are started by a systemd service:
// out of the service's cgroup, so that stopping or restarting the service
// never reaches them and their memory is not the daemon's.
const ShimCgroup = "/condenser-shims"

// inServiceCgroup reports whether the cgroup file (/proc/self/cgroup
// format) places the process in a systemd service's cgroup.
func inServiceCgroup(r io.Reader) bool {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) == 3 && strings.HasSuffix(path.Base(parts[2]), ".service") {
			return true
		}
	}
	return false
}

// leaveServiceCgroup moves pid into ShimCgroup when this process runs in a
// systemd service's cgroup.
func leaveServiceCgroup(pid int) error {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return err
	}
	in := inServiceCgroup(f)
	f.Close()
	if !in {
		return nil
	}
	return moveToCgroup(pid, ShimCgroup)
}

// moveToCgroup puts pid in the cgroup at group (created if needed), on
// cgroup v2 or in every v1 hierarchy.
func moveToCgroup(pid int, group string) error {
	if cgroups.Mode() == cgroups.Unified {
		m, err := cgroup2.NewManager("/sys/fs/cgroup", group, &cgroup2.Resources{})
		if err != nil {
			return fmt.Errorf("cgroup %s: %w", group, err)
		}
		return m.AddProc(uint64(pid))
	}
	cg, err := cgroup1.New(cgroup1.StaticPath(group), &specs.LinuxResources{})
	if err != nil {
		return fmt.Errorf("cgroup %s: %w", group, err)
	}
	return cg.AddProc(uint64(pid))
}
