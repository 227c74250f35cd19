package runtime

import (
	"errors"
	"testing"

	"github.com/raind/condenser/internal/errdefs"
)

// TestClassifyCommand: a create or start that fails because of the
// container's configuration, or an exec because of its process's (runc's
// and crun's wordings), is an invalid
// argument — never "not found" (a 404 would say the container is missing)
// nor an unclassified internal fault (whose message the REST API hides) —
// and keeps the runtime's message; the other kinds stay classify's.
func TestClassifyCommand(t *testing.T) {
	for _, tc := range []struct {
		cmd, msg string
		kind     error
	}{
		{"create", `runc create failed (exit status 1): unable to start container process: exec: "/nonexistent": stat /nonexistent: no such file or directory`, errdefs.ErrInvalidArgument},
		{"create", `runc create failed (exit status 1): unable to start container process: exec: "nope": executable file not found in $PATH`, errdefs.ErrInvalidArgument},
		{"create", "crun create failed (exit status 1): executable file `nope` not found in $PATH: No such file or directory", errdefs.ErrInvalidArgument},
		{"create", `runc create failed (exit status 1): unable to start container process: exec: "/etc": permission denied`, errdefs.ErrInvalidArgument},
		{"create", `runc create failed (exit status 1): unable to start container process: error during container init: error mounting "/tmp" to rootfs at "/proc": "/x/rootfs/proc" cannot be mounted because it is not of type proc`, errdefs.ErrInvalidArgument},
		{"create", `runc create failed (exit status 1): unable to start container process: error during container init: error mounting "/etc/hostname" to rootfs at "/bin": mount /etc/hostname:/bin (via /proc/self/fd/6), flags: 0x5000: not a directory`, errdefs.ErrInvalidArgument},
		{"start", "crun start failed (exit status 1): exec `/bin/x`: Exec format error", errdefs.ErrInvalidArgument},
		{"create", "runc create failed (exit status 1): container with id exists: x: already exists", errdefs.ErrConflict},
		{"start", "runc start failed (exit status 1): cannot start a container that has stopped", errdefs.ErrConflict},
		{"state", "runc state failed (exit status 1): container does not exist", errdefs.ErrNotFound},
		{"delete", "crun delete failed (exit status 1): error opening file `/run/x/status`: No such file or directory", errdefs.ErrNotFound},
		{"create", "crun create failed (exit status 1): cgroups in hybrid mode not supported, drop all controllers from cgroupv2", nil},
		{"exec", `runc exec failed (exit status 255): unable to start container process: exec: "nosuch": executable file not found in $PATH`, errdefs.ErrInvalidArgument},
		{"exec", "crun exec failed (exit status 1): executable file `nosuch` not found in $PATH: No such file or directory", errdefs.ErrInvalidArgument},
		{"exec", `runc exec failed (exit status 255): unable to start container process: chdir to cwd ("/nope") set in config.json failed: no such file or directory`, errdefs.ErrInvalidArgument},
		{"exec", "runc exec failed (exit status 1): cannot exec in a stopped container", errdefs.ErrConflict},
		{"exec", "runc exec failed (exit status 1): container does not exist", errdefs.ErrNotFound},
	} {
		err := classifyCommand(tc.cmd, errors.New(tc.msg))
		if k := errdefs.Kind(err); k != tc.kind {
			t.Errorf("%s: %q: kind %v, want %v", tc.cmd, tc.msg, k, tc.kind)
		}
		if tc.kind == errdefs.ErrInvalidArgument && (len(err.Error()) < len(tc.msg) || err.Error()[:len(tc.msg)] != tc.msg) {
			t.Errorf("%s: the runtime's message is lost: %q", tc.cmd, err)
		}
	}
}

// TestInitGone: both of runc's wordings for a kill of an init that has
// exited are "process already finished" (not found), never an internal
// fault (a 500 to a user's stop).
func TestInitGone(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("runc kill failed (exit status 1): container not running"), true},
		{errors.New("runc kill failed (exit status 1): unable to signal init: os: process already finished"), true},
		{errors.New("runc kill failed (exit status 1): permission denied"), false},
	} {
		if got := initGone(tc.err); got != tc.want {
			t.Errorf("initGone(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
