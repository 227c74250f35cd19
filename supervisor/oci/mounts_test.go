package oci

import (
	"errors"
	"strings"
	"testing"

	"github.com/raind/condenser/internal/errdefs"
)

// TestValidateRefusesProcMounts: the bind mount destinations the runtime
// refuses at create (/proc and what is inside it, but the files lxcfs
// emulates) are refused by Validate, as invalid arguments saying why.
func TestValidateRefusesProcMounts(t *testing.T) {
	for _, tc := range []struct {
		mount string
		ok    bool
	}{
		{"/tmp:/proc", false},
		{"/tmp:/proc/", false},
		{"/tmp:/proc/sys", false},
		{"/tmp:/proc/sys/kernel:ro", false},
		{"/tmp:/proc/self", false},
		{"/tmp:/proc/1/root", false},
		{"/etc/hostname:/proc/cpuinfo:ro", true},
		{"/etc/hostname:/proc/meminfo", true},
		{"/tmp:/sys", true},
		{"/tmp:/sys/fs/cgroup", true},
		{"/dev:/dev", true},
		{"/tmp:/dev/pts", true},
		{"/tmp:/procfs", true},
		{"/tmp:/data/proc", true},
	} {
		c := Config{Mounts: []string{tc.mount}}
		err := c.Validate()
		switch {
		case tc.ok && err != nil:
			t.Errorf("mount %q refused: %v", tc.mount, err)
		case !tc.ok && !errors.Is(err, errdefs.ErrInvalidArgument):
			t.Errorf("mount %q: %v, want an invalid argument", tc.mount, err)
		case !tc.ok && !strings.Contains(err.Error(), "/proc"):
			t.Errorf("mount %q: the error does not say why: %v", tc.mount, err)
		}
	}
}
