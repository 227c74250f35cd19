package imagestore

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
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
	if _, err := s.Pull(ctx, reg.Ref("test/big:1"), PullOptions{}); !errors.Is(err, syscall.ENOSPC) || errdefs.Kind(err) != errdefs.ErrResourceExhausted {
		t.Fatalf("pull into a full disk: %v (kind %v), want ENOSPC as resource exhausted", err, errdefs.Kind(err))
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

// fullDiskStore opens a store on a tmpfs of 8 MiB, too small for bigImage.
func fullDiskStore(t *testing.T, o Options) *Store {
	t.Helper()
	root := t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "size=8m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(root, unix.MNT_DETACH) })
	o.Root = root
	return openStore(t, o)
}

// TestDiskFullPullDoesNotTryTheNextEndpoint pulls through a mirror onto a
// full disk: the pull stops at the mirror with the disk's error (a local
// fault no other endpoint can cure) instead of going on to the registry
// itself and reporting that one's unrelated failure.
func TestDiskFullPullDoesNotTryTheNextEndpoint(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testutil.StartRegistry(t)
	noise := make([]byte, 6<<20)
	rand.Read(noise)
	reg.Push(t, reg.Ref("test/big:1"), testutil.Image(t, nil, testutil.Layer(t, testutil.Entry{Name: "big", Content: noise})))

	// The registry itself is a closed port: trying it fails at once, and
	// with a network error, not the disk's.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	origin := l.Addr().String()
	l.Close()
	s := fullDiskStore(t, Options{Mirrors: map[string][]string{origin: {"http://" + reg.Host}}, Insecure: []string{origin}})
	_, err = s.Pull(context.Background(), origin+"/test/big:1", PullOptions{})
	if !errors.Is(err, syscall.ENOSPC) || errdefs.Kind(err) != errdefs.ErrResourceExhausted {
		t.Fatalf("pull through a mirror into a full disk: %v (kind %v), want ENOSPC as resource exhausted", err, errdefs.Kind(err))
	}
	if strings.Contains(err.Error(), "refused") || strings.Contains(err.Error(), "before:") {
		t.Errorf("the registry was tried after the disk filled up: %v", err)
	}
	if !strings.Contains(err.Error(), "out of disk space") {
		t.Errorf("the error does not say the disk is full: %v", err)
	}
	checkClean(t, s)
}

// TestDiskFullImport imports an archive larger than the store's disk: the
// failure is the disk's (resource exhausted), not the archive's (invalid
// argument), and nothing is left behind.
func TestDiskFullImport(t *testing.T) {
	testutil.RequireRoot(t)
	noise := make([]byte, 6<<20)
	rand.Read(noise)
	img := testutil.Image(t, nil, testutil.Layer(t, testutil.Entry{Name: "big", Content: noise}))
	tag, _ := name.NewTag("example.com/big:1")
	var buf bytes.Buffer
	if err := tarball.Write(tag, img, &buf); err != nil {
		t.Fatal(err)
	}
	s := fullDiskStore(t, Options{})
	_, err := s.Import(context.Background(), &buf, ImportOptions{})
	if !errors.Is(err, syscall.ENOSPC) || errdefs.Kind(err) != errdefs.ErrResourceExhausted {
		t.Fatalf("import into a full disk: %v (kind %v), want ENOSPC as resource exhausted", err, errdefs.Kind(err))
	}
	checkClean(t, s)
}
