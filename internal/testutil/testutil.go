// Package testutil holds shared helpers for tests of the image store: a real
// registry process to push to and pull from, builders for tar streams, layers,
// images and indexes (including hostile and feature-rich ones), and guards that
// skip tests whose prerequisites are missing.
//
// Guards skip on developer machines but fail when CI=true, so that a badly
// provisioned CI machine cannot silently skip the tests that matter.
package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// InCI reports whether CI=true is set (any value strconv.ParseBool accepts as
// true, e.g. "true", "1").
func InCI() bool {
	v, err := strconv.ParseBool(os.Getenv("CI"))
	return err == nil && v
}

// skipOrFail skips the test, or fails it when running in CI.
func skipOrFail(t testing.TB, msg string) {
	t.Helper()
	if InCI() {
		t.Fatal(msg + " (CI=true: failing instead of skipping)")
	}
	t.Skip(msg)
}

// RequireRoot skips the test when the process is not running as root, unless
// CI is set, in which case the test fails.
func RequireRoot(t testing.TB) {
	t.Helper()
	if euid := os.Geteuid(); euid != 0 {
		skipOrFail(t, "test requires root (running as euid "+strconv.Itoa(euid)+")")
	}
}

// debianPackages maps binaries the tests use to the Debian package providing them.
var debianPackages = map[string]string{
	"docker-registry": "docker-registry",
	"busybox":         "busybox-static",
	"skopeo":          "skopeo",
	"umoci":           "umoci",
	"runc":            "runc",
	"crun":            "crun",
	"tar":             "tar",
	"mkfs.ext4":       "e2fsprogs",
	"mkfs.xfs":        "xfsprogs",
}

// RequireBinary returns the path of the executable name, looked up in PATH or
// taken as is when name contains a slash. When it is missing the test is
// skipped (or fails when CI=true), naming the Debian package that installs it.
func RequireBinary(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		return path
	}
	hint := "install the Debian package that provides it"
	if pkg, ok := debianPackages[filepath.Base(name)]; ok {
		hint = "install it with: apt-get install " + pkg
	}
	skipOrFail(t, "test requires "+name+" ("+err.Error()+"); "+hint)
	return ""
}
