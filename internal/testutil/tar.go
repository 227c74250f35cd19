package testutil

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// DefaultModTime is the modification time of entries that do not set one,
// and the creation time of images built by this package.
var DefaultModTime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// ZeroMode requests permission bits 0000 in Entry.Mode (a zero Mode selects
// the default for the entry type).
const ZeroMode int64 = -1

// Entry describes one tar entry.
type Entry struct {
	Name string
	// Type is a tar type flag: tar.TypeReg (the default when zero), TypeDir,
	// TypeSymlink, TypeLink, TypeChar, TypeBlock or TypeFifo.
	Type byte
	// Mode holds the permission bits including setuid (04000), setgid (02000)
	// and sticky (01000). Zero selects the default: 0755 for directories,
	// 0777 for symlinks, 0644 for everything else. Use ZeroMode for 0000.
	Mode     int64
	UID, GID int
	// Content is the body of a regular file; other types must leave it empty.
	Content []byte
	// Linkname is the target of a symlink or hard link.
	Linkname           string
	Devmajor, Devminor int64
	// Xattrs are written as PAX records "SCHILY.xattr.<name>".
	Xattrs map[string]string
	// ModTime defaults to DefaultModTime.
	ModTime time.Time
}

// header converts e to a tar header, applying the defaults.
func (e Entry) header() *tar.Header {
	typ := e.Type
	if typ == 0 {
		typ = tar.TypeReg
	}
	mode := e.Mode
	switch {
	case mode == ZeroMode:
		mode = 0
	case mode != 0:
	case typ == tar.TypeDir:
		mode = 0o755
	case typ == tar.TypeSymlink:
		mode = 0o777
	default:
		mode = 0o644
	}
	mtime := e.ModTime
	if mtime.IsZero() {
		mtime = DefaultModTime
	}
	hdr := &tar.Header{
		Typeflag: typ,
		Name:     e.Name,
		Linkname: e.Linkname,
		Mode:     mode,
		Uid:      e.UID,
		Gid:      e.GID,
		Size:     int64(len(e.Content)),
		ModTime:  mtime,
		Devmajor: e.Devmajor,
		Devminor: e.Devminor,
	}
	if len(e.Xattrs) > 0 {
		hdr.Format = tar.FormatPAX
		hdr.PAXRecords = make(map[string]string, len(e.Xattrs))
		for k, v := range e.Xattrs {
			hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
	}
	return hdr
}

// Tar returns an uncompressed tar stream holding entries, in order and exactly
// as given: names are not cleaned, so hostile names ("../x", "/abs", "a/../../b")
// can be expressed. The PAX format is used for entries with xattrs (and,
// automatically, wherever USTAR cannot represent an entry, e.g. long names).
func Tar(t testing.TB, entries ...Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	writeTar(t, &buf, entries)
	return buf.Bytes()
}

func writeTar(t testing.TB, w io.Writer, entries []Entry) {
	t.Helper()
	tw := tar.NewWriter(w)
	for _, e := range entries {
		hdr := e.header()
		if len(e.Content) > 0 && hdr.Typeflag != tar.TypeReg {
			t.Fatalf("tar entry %q: type %q cannot have content", e.Name, hdr.Typeflag)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("tar entry %q: %v", e.Name, err)
		}
		if _, err := tw.Write(e.Content); err != nil {
			t.Fatalf("tar entry %q: %v", e.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatalf("closing tar: %v", err)
	}
}

// Layer returns a gzip-compressed layer (Docker media type) of Tar(t, entries...).
// The stream is compressed here rather than by tarball, whose sniffing could
// mistake a tar starting with a hostile name for compressed data.
func Layer(t testing.TB, entries ...Entry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	writeTar(t, zw, entries)
	if err := zw.Close(); err != nil {
		t.Fatalf("compressing layer: %v", err)
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
	if err != nil {
		t.Fatalf("creating layer: %v", err)
	}
	return layer
}
