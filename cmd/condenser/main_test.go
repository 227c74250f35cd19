package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/raind/condenser/internal/testutil"
)

// TestImageCommands runs the commands a newcomer types, against a real
// registry configured as Docker Hub's mirror.
func TestImageCommands(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testutil.StartRegistry(t)
	reg.Push(t, reg.Ref("library/busybox:latest"), testutil.BusyboxImage(t))
	root := t.TempDir()
	flags := []string{"--root", root, "--registry-mirror", "docker.io=http://" + reg.Host}
	tests := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"pull", "busybox"}, 0, "busybox:latest: "},
		{[]string{"images"}, 0, "busybox"},
		{[]string{"inspect", "busybox"}, 0, `"name": "docker.io/library/busybox:latest"`},
		{[]string{"df"}, 0, "images 1"},
		{[]string{"pull", "Not A Ref"}, 2, ""},
		{[]string{"pull", "--platform", "linux/s390x", "busybox"}, 1, ""},
		{[]string{"rmi", "busybox"}, 0, "untagged docker.io/library/busybox:latest"},
		{[]string{"inspect", "busybox"}, 1, ""},
		{[]string{"bogus"}, 2, ""},
	}
	for _, tc := range tests {
		var out, errb bytes.Buffer
		code := run(append(flags, tc.args...), &out, &errb)
		if code != tc.code || !strings.Contains(out.String(), tc.out) {
			t.Errorf("condenser %v: exit %d, out %q, err %q; want exit %d with %q", tc.args, code, out.String(), errb.String(), tc.code, tc.out)
		}
	}
}

// TestCgroupParentFlag: an invalid --cgroup-parent is refused at once
// (exit 2), before anything is opened.
func TestCgroupParentFlag(t *testing.T) {
	for _, p := range []string{"", "relative", "/", "/a/../b", "system.slice:condenser:x"} {
		var out, errb bytes.Buffer
		if code := run([]string{"--root", t.TempDir(), "--cgroup-parent", p}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "--cgroup-parent") {
			t.Errorf("--cgroup-parent %q: exit %d, stderr %q; want exit 2 naming the flag", p, code, errb.String())
		}
	}
}
