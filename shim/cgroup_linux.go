package shim

import (
	"bufio"
	"io"
	"os"
	"path"
	"strings"

	"github.com/raind/condenser/shim/stats"
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
	return stats.Join(group, pid)
}
