package shim

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"

	"github.com/raind/condenser/internal/testutil"
)

func TestInServiceCgroup(t *testing.T) {
	tests := []struct {
		file string
		want bool
	}{
		{"0::/system.slice/condenser.service\n", true},
		{"12:memory:/system.slice/condenser.service\n1:name=systemd:/system.slice/condenser.service\n0::/\n", true},
		{"0::/user.slice/user-0.slice/session-1.scope\n", false},
		{"12:memory:/\n0::/\n", false},
		{"0::/system.slice/condenser.service/shims\n", false},
		{"", false},
	}
	for _, tc := range tests {
		if got := inServiceCgroup(strings.NewReader(tc.file)); got != tc.want {
			t.Errorf("inServiceCgroup(%q) = %v, want %v", tc.file, got, tc.want)
		}
	}
}

func TestMoveToCgroup(t *testing.T) {
	testutil.RequireRoot(t)
	group := "/condenser-shims-test-" + randomHex(4)
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if cgroups.Mode() == cgroups.Unified {
			if m, err := cgroup2.Load(group); err == nil {
				m.Delete()
			}
		} else if cg, err := cgroup1.Load(cgroup1.StaticPath(group)); err == nil {
			cg.Delete()
		}
	})
	if err := moveToCgroup(cmd.Process.Pid, group); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), ":"+group+"\n") {
		t.Errorf("process not in %s:\n%s", group, b)
	}
}
