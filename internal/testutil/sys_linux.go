package testutil

import (
	"io/fs"
	"syscall"
)

// setParentDeathSignal makes the kernel kill the child if the test binary dies
// without running its cleanups (e.g. on a test timeout panic). The kernel
// sends the signal when the thread that forked the child exits; Go only ends
// threads when a goroutine exits while locked to its thread, so do not start
// a registry from such a goroutine.
func setParentDeathSignal(attr *syscall.SysProcAttr) {
	attr.Pdeathsig = syscall.SIGKILL
}

// fileOwner returns the numeric owner of fi.
func fileOwner(fi fs.FileInfo) (uid, gid int) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return 0, 0
}

// fileIdentity returns the device and inode of fi.
func fileIdentity(fi fs.FileInfo) (fileID, bool) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fileID{dev: uint64(st.Dev), ino: st.Ino}, true
	}
	return fileID{}, false
}
