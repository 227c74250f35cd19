//go:build !linux

package testutil

import (
	"io/fs"
	"syscall"
)

func setParentDeathSignal(*syscall.SysProcAttr) {}

func fileOwner(fs.FileInfo) (uid, gid int) { return 0, 0 }

func fileIdentity(fs.FileInfo) (fileID, bool) { return fileID{}, false }
