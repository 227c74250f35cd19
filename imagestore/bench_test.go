package imagestore

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/testutil"
)

// BenchmarkColdPull pulls and unpacks a 3-layer image of about 122 MB of
// real Debian files (as large as debian:bookworm) from the local registry
// into an empty store, next to `skopeo copy` of the same image (download
// only, no unpacking) in the same run. MB/s counts unpacked file content.
func BenchmarkColdPull(b *testing.B) {
	testutil.RequireRoot(b)
	reg := testutil.StartRegistry(b)
	ref := reg.Ref("bench/debian:1")
	reg.Push(b, ref, testutil.HostFilesImage(b, 122<<20, 3))
	work := b.TempDir()
	ctx := context.Background()

	var size int64
	b.Run("condenser", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			root := filepath.Join(work, "store")
			os.RemoveAll(root)
			unix.Sync() // start each pull with no writeback of the last one pending
			b.StartTimer()
			s, err := Open(ctx, Options{Root: root})
			if err != nil {
				b.Fatal(err)
			}
			img, err := s.Pull(ctx, ref, PullOptions{})
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			s.Close()
			size = img.Size
			b.SetBytes(size)
			b.StartTimer()
		}
	})
	b.Run("skopeo-copy-download-only", func(b *testing.B) {
		skopeo := testutil.RequireBinary(b, "skopeo")
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			dst := filepath.Join(work, "skopeo")
			os.RemoveAll(dst)
			unix.Sync()
			b.StartTimer()
			out, err := exec.Command(skopeo, "copy", "--quiet", "--src-tls-verify=false", "docker://"+ref, "dir:"+dst).CombinedOutput()
			if err != nil {
				b.Fatalf("skopeo: %v: %s", err, out)
			}
		}
		b.SetBytes(size)
	})
}
