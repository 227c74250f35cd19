package testutil

import (
	"crypto/rand"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// CgroupParent returns a cgroup parent of the test's own,
// /condenser-test-<16 hex>, for the daemon, supervisor or spec under test
// (--cgroup-parent, supervisor.Config.CgroupParent,
// oci.Request.CgroupParent). The test packages run in parallel: with one
// parent shared by all, one test's removing it races another's runtime
// creating a container's cgroup below it.
//
// Its cleanup removes the parent in every hierarchy, with what is left
// below it (rmdir, deepest first: a cgroup still holding processes stays).
// It is registered now, so it runs after the cleanups registered later (the
// daemon's, which delete the containers): call it before starting the
// daemon. It never touches another parent, /condenser included.
func CgroupParent(t testing.TB) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	parent := "/condenser-test-" + hex.EncodeToString(b)
	t.Cleanup(func() { RemoveCgroup(parent) })
	return parent
}

// CgroupDirs returns the directories of the cgroup path (a cgroupfs path
// such as a container's cgroupsPath) that exist: one per v1 hierarchy, the
// cgroup2 one mounted among them (hybrid) or at /sys/fs/cgroup (unified).
func CgroupDirs(path string) []string {
	v1, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", path))
	v2, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", path))
	var dirs []string
	for _, d := range append(v2, v1...) {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() && !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// RemoveCgroup removes the cgroup path and the cgroups below it in every
// hierarchy, deepest first; those still in use stay.
func RemoveCgroup(path string) {
	if filepath.Clean(path) == "/" {
		return
	}
	for _, root := range CgroupDirs(path) {
		var all []string
		filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				all = append(all, p)
			}
			return nil
		})
		slices.Reverse(all)
		for _, d := range all {
			os.Remove(d) // rmdir
		}
	}
}
