package cgwarm

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestProcsFile(t *testing.T) {
	root := t.TempDir()
	mk := func(dirs ...string) {
		for _, d := range dirs {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, d, "cgroup.procs"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	mk("v1/cpu,cpuacct/svc", "v1/memory/svc", "v1/systemd/svc", "unified/svc", "v2/system.slice/c.service")
	line := func(id int, point, fstype, super string) string {
		return strconv.Itoa(id) + " 1 0:" + strconv.Itoa(id) + " / " + filepath.Join(root, point) + " rw,nosuid - " + fstype + " " + fstype + " " + super
	}
	hybrid := strings.Join([]string{
		"20 1 254:0 / / rw,relatime - ext4 /dev/vda rw",
		line(30, "v1/cpu,cpuacct", "cgroup", "rw,cpu,cpuacct"),
		line(31, "v1/memory", "cgroup", "rw,memory"),
		line(32, "v1/systemd", "cgroup", "rw,xattr,name=systemd"),
		line(33, "unified", "cgroup2", "rw,nsdelegate"),
	}, "\n")
	tests := []struct {
		name, self, mountinfo, want string
	}{
		{"v1 first listed, combined controllers", "4:cpu,cpuacct:/svc\n3:memory:/svc\n0::/svc\n", hybrid, "v1/cpu,cpuacct/svc/cgroup.procs"},
		{"named hierarchy", "1:name=systemd:/svc\n", hybrid, "v1/systemd/svc/cgroup.procs"},
		{"v2 line on a hybrid host", "0::/svc\n", hybrid, "unified/svc/cgroup.procs"},
		{"v2 only", "0::/system.slice/c.service\n", line(40, "v2", "cgroup2", "rw"), "v2/system.slice/c.service/cgroup.procs"},
		{"a cgroup that is gone is skipped", "3:memory:/gone\n4:cpu,cpuacct:/svc\n", hybrid, "v1/cpu,cpuacct/svc/cgroup.procs"},
		{"a hierarchy mounted below its root does not count", "0::/svc\n", "41 1 0:41 /svc " + filepath.Join(root, "unified") + " rw - cgroup2 cgroup2 rw", ""},
		{"no cgroups", "", hybrid, ""},
		{"garbage", "x\n::\n9:memory\n", "nonsense\n- - -\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := procsFile([]byte(tc.self), []byte(tc.mountinfo))
			if tc.want == "" {
				if err == nil {
					t.Fatalf("got %q, want an error", got)
				}
				return
			}
			if err != nil || got != filepath.Join(root, tc.want) {
				t.Fatalf("got %q %v, want %s", got, err, tc.want)
			}
		})
	}
}

// Warm writes the process's pid into its own cgroup.procs, in the
// background, one write at a time; nil and zero Warmers do nothing.
func TestWarm(t *testing.T) {
	var nilW *Warmer
	nilW.Warm()
	(&Warmer{}).Warm()

	procs := filepath.Join(t.TempDir(), "cgroup.procs")
	if err := os.WriteFile(procs, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	w := &Warmer{procs: procs, pid: []byte("4242")}
	w.Warm()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(procs)
		if string(b) == "4242" && !w.busy.Load() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cgroup.procs holds %q, busy %v", b, w.busy.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

// On this machine the daemon's own cgroup is found, and moving into it
// is allowed (as root) and changes nothing.
func TestNewOnThisHost(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile("/proc/self/cgroup")
	f, err := os.OpenFile(w.procs, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(w.pid); err != nil {
		t.Fatalf("move into %s: %v", w.procs, err)
	}
	f.Close()
	if after, _ := os.ReadFile("/proc/self/cgroup"); string(after) != string(before) {
		t.Errorf("the move changed the process's cgroups:\n%s\n→\n%s", before, after)
	}
}
