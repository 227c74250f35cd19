package testutil

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// hostFileRoots are walked, in order, by HostFilesImage.
var hostFileRoots = []string{"/usr/lib/x86_64-linux-gnu", "/usr/share", "/usr/bin", "/usr/lib"}

// fileID identifies a file on the host, to recognise hard links.
type fileID struct{ dev, ino uint64 }

// hostEntry is one planned entry of a HostFilesImage layer.
type hostEntry struct {
	hdr *tar.Header
	src string // host file to copy the content from (regular files only)
}

// HostFilesImage builds a realistic image of layers layers for benchmarks from
// real host files. It walks, in lexical order, /usr/lib/x86_64-linux-gnu,
// /usr/share, /usr/bin and /usr/lib, skipping paths already taken, hard links
// to files already taken, special files, unreadable files and files larger
// than one layer's share, while
// keeping directories and symlinks (with their host modes, owners and mtimes).
// Each layer gets roughly totalBytes/layers bytes of file content, and the
// walk stops once totalBytes is reached; the test fails if the host does not
// have that much. Each layer carries the directories leading to its entries.
// Layers are gzip-compressed into files under t.TempDir() (built in parallel),
// so large sizes do not use memory. The result is deterministic for a given
// host.
func HostFilesImage(t testing.TB, totalBytes int64, layers int) v1.Image {
	t.Helper()
	if totalBytes <= 0 || layers <= 0 {
		t.Fatalf("HostFilesImage: need positive totalBytes and layers, got %d and %d", totalBytes, layers)
	}
	plan, err := planHostLayers(totalBytes, layers)
	if err != nil {
		t.Fatalf("HostFilesImage: %v", err)
	}

	dir := t.TempDir()
	built := make([]v1.Layer, layers)
	errs := make([]error, layers)
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, entries := range plan {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			path := filepath.Join(dir, fmt.Sprintf("layer%d.tar.gz", i+1))
			if errs[i] = writeHostLayer(path, entries); errs[i] == nil {
				built[i], errs[i] = tarball.LayerFromFile(path)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("HostFilesImage: %v", err)
	}
	return Image(t, nil, built...)
}

// planHostLayers walks hostFileRoots and distributes their entries over layers.
func planHostLayers(totalBytes int64, layers int) ([][]hostEntry, error) {
	perLayer := max((totalBytes+int64(layers)-1)/int64(layers), 1)
	plan := make([][]hostEntry, layers)
	dirsIn := make([]map[string]bool, layers) // directories emitted per layer
	for i := range dirsIn {
		dirsIn[i] = map[string]bool{}
	}
	taken := map[string]bool{}      // non-directories already in some layer
	takenFiles := map[fileID]bool{} // regular files (inodes) already in some layer
	completed := map[string]bool{}  // roots walked to the end
	cur := 0                        // index of the layer being filled
	var curBytes, total int64
	// boundary is the total at which the current layer is full; cumulative
	// boundaries keep rounding errors from adding up over the layers.
	boundary := func() int64 { return totalBytes * int64(cur+1) / int64(layers) }

	// addDir emits the directory p, and those leading to it, into the current layer.
	var addDir func(p string) error
	addDir = func(p string) error {
		if p == "/" || dirsIn[cur][p] {
			return nil
		}
		if err := addDir(filepath.Dir(p)); err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		plan[cur] = append(plan[cur], hostEntry{hdr: hostHeader(p, fi, tar.TypeDir, "")})
		dirsIn[cur][p] = true
		return nil
	}

	for _, root := range hostFileRoots {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if d != nil && d.IsDir() {
					return fs.SkipDir // unreadable directory
				}
				return nil
			}
			if d.IsDir() && p != root && completed[p] {
				return fs.SkipDir
			}
			if taken[p] {
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return nil // vanished
			}
			switch {
			case fi.IsDir():
				return addDir(p)
			case fi.Mode()&fs.ModeSymlink != 0:
				target, err := os.Readlink(p)
				if err != nil {
					return nil
				}
				if err := addDir(filepath.Dir(p)); err != nil {
					return err
				}
				plan[cur] = append(plan[cur], hostEntry{hdr: hostHeader(p, fi, tar.TypeSymlink, target)})
				taken[p] = true
			case fi.Mode().IsRegular():
				size := fi.Size()
				id, ok := fileIdentity(fi)
				if size > perLayer || (ok && takenFiles[id]) {
					return nil // too large, or a hard link to a file already taken
				}
				f, err := os.Open(p)
				if err != nil {
					return nil // unreadable
				}
				f.Close()
				// Start the next layer if this file would overshoot the current
				// one by more than leaving it out undershoots it.
				if cur < layers-1 && curBytes > 0 && total+size-boundary() > boundary()-total {
					cur++
					curBytes = 0
				}
				if err := addDir(filepath.Dir(p)); err != nil {
					return err
				}
				plan[cur] = append(plan[cur], hostEntry{hdr: hostHeader(p, fi, tar.TypeReg, ""), src: p})
				taken[p] = true
				if ok {
					takenFiles[id] = true
				}
				curBytes += size
				total += size
				if total >= totalBytes {
					return fs.SkipAll
				}
				if cur < layers-1 && total >= boundary() {
					cur++
					curBytes = 0
				}
			}
			return nil // special files are skipped
		})
		if err != nil {
			return nil, err
		}
		if total >= totalBytes {
			return plan, nil
		}
		completed[root] = true
	}
	return nil, fmt.Errorf("host has only %d bytes of usable files under %s, want %d",
		total, strings.Join(hostFileRoots, ", "), totalBytes)
}

// hostHeader returns the tar header of host path p.
func hostHeader(p string, fi fs.FileInfo, typ byte, linkname string) *tar.Header {
	uid, gid := fileOwner(fi)
	mode := int64(fi.Mode().Perm())
	if fi.Mode()&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if fi.Mode()&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if fi.Mode()&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	hdr := &tar.Header{
		Typeflag: typ,
		Name:     strings.TrimPrefix(p, "/"),
		Linkname: linkname,
		Mode:     mode,
		Uid:      uid,
		Gid:      gid,
		ModTime:  fi.ModTime().Truncate(time.Second),
	}
	if typ == tar.TypeReg {
		hdr.Size = fi.Size()
	}
	return hdr
}

// writeHostLayer writes entries as a gzip-compressed tar file at path.
func writeHostLayer(path string, entries []hostEntry) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		if err := tw.WriteHeader(e.hdr); err != nil {
			return fmt.Errorf("%s: %w", e.hdr.Name, err)
		}
		if e.src != "" {
			if err := copyHostFile(tw, e.src, e.hdr.Size); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

func copyHostFile(w io.Writer, src string, size int64) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.CopyN(w, f, size); err != nil {
		return fmt.Errorf("copying %s (%d bytes): %w", src, size, err)
	}
	return nil
}
