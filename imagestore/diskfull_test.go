package imagestore

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/testutil"
)

// TestDiskFullPullFailsCleanly pulls an image larger than the store's
// filesystem (a small tmpfs): the pull fails with ENOSPC, leaves no partial
// file, and the store still works for an image that fits.
func TestDiskFullPullFailsCleanly(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testutil.StartRegistry(t)
	noise := make([]byte, 6<<20)
	rand.Read(noise)
	big := testutil.Image(t, nil, testutil.Layer(t, testutil.Entry{Name: "big", Content: noise}))
	reg.Push(t, reg.Ref("test/big:1"), big)
	reg.Push(t, reg.Ref("test/small:1"), testutil.BusyboxImage(t))

	root := t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "size=8m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(root, unix.MNT_DETACH) })
	s := openStore(t, Options{Root: root})
	ctx := context.Background()
	if _, err := s.Pull(ctx, reg.Ref("test/big:1"), PullOptions{}); !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("pull into a full disk: %v, want ENOSPC as unavailable", err)
	}
	checkClean(t, s)
	if imgs, _ := s.List(ctx); len(imgs) != 0 {
		t.Errorf("records after a failed pull: %+v", imgs)
	}
	img, err := s.Pull(ctx, reg.Ref("test/small:1"), PullOptions{})
	if err != nil {
		t.Fatalf("the store is not usable after a disk-full pull: %v", err)
	}
	if _, err := os.Stat(s.LayerDirs(img)[0] + "/bin/busybox"); err != nil {
		t.Error(err)
	}
}
