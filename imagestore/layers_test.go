package imagestore

import (
	"errors"
	"log/slog"
	"testing"

	"golang.org/x/sys/unix"
)

// TestLayerTmpSpreadsDirs checks that layers/tmp carries FS_TOPDIR_FL on
// ext2/3/4 (where it decides where each layer's inodes go), that opening
// the store again keeps it, and that a filesystem without the flag is no
// error.
func TestLayerTmpSpreadsDirs(t *testing.T) {
	root := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	for range 2 {
		ls, err := newLayerStore(root, log)
		if err != nil {
			t.Fatal(err)
		}
		var sfs unix.Statfs_t
		if err := unix.Statfs(ls.tmp, &sfs); err != nil {
			t.Fatal(err)
		}
		if sfs.Type != unix.EXT4_SUPER_MAGIC { // ext2 and ext3 share it
			t.Skipf("%s is not on ext2/3/4 (magic %#x): nothing to check", ls.tmp, sfs.Type)
		}
		fd, err := unix.Open(ls.tmp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		fl, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
		unix.Close(fd)
		if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP) {
			t.Skipf("no inode flags here: %v", err)
		}
		if err != nil {
			t.Fatal(err)
		}
		if fl&fsTopdirFL == 0 {
			t.Fatalf("%s: flags %#x lack FS_TOPDIR_FL", ls.tmp, fl)
		}
	}
}
