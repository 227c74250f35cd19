// Package archive unpacks image layer tarballs into a directory, converting
// OCI/Docker whiteouts into overlayfs form, and refusing every entry that
// would write, link or resolve outside that directory.
package archive

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/raind/condenser/internal/errdefs"
)

// ErrUnsafe marks a layer that tries to reach outside its directory or is
// otherwise malformed in a way that could harm the host. It wraps
// errdefs.ErrInvalidArgument.
var ErrUnsafe = fmt.Errorf("unsafe layer: %w", errdefs.ErrInvalidArgument)

// Whiteout prefixes of the OCI image spec.
const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// Stats describes what an extraction wrote.
type Stats struct {
	Entries int   // tar entries processed
	Bytes   int64 // bytes of regular file content
}

// Extract reads a tar stream from r and unpacks it into dir, which must exist
// and should be empty. It does not read r past the end-of-archive marker;
// callers that hash the stream drain the rest themselves.
//
// Ownership, permission bits (setuid, setgid and sticky included), xattrs,
// modification times, hard links, symlinks and device nodes are preserved.
// `.wh.NAME` entries become 0/0 character devices and `.wh..wh..opq` sets
// trusted.overlay.opaque=y on its directory. Absolute names, `..`
// components, links whose target leaves the layer, and entries whose parent
// is a symlink fail with ErrUnsafe; symlinks in the layer are never followed.
func Extract(ctx context.Context, dir string, r io.Reader) (Stats, error) {
	x, err := newExtractor(dir)
	if err != nil {
		return Stats{}, err
	}
	defer x.close()
	tr := tar.NewReader(r)
	var st Stats
	for {
		if st.Entries&63 == 0 {
			if err := ctx.Err(); err != nil {
				return st, err
			}
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return st, fmt.Errorf("read tar: %w", err)
		}
		st.Entries++
		n, err := x.entry(hdr, tr)
		if err != nil {
			return st, err
		}
		st.Bytes += n
	}
	return st, x.finish()
}

// cleanName validates a tar entry name and returns it relative to the layer
// root without a trailing slash ("" is the root itself).
func cleanName(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%w: absolute path %q", ErrUnsafe, name)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("%w: NUL byte in name %q", ErrUnsafe, name)
	}
	parts := strings.Split(name, "/")
	out := parts[:0]
	for _, p := range parts {
		switch p {
		case "", ".":
			continue
		case "..":
			return "", fmt.Errorf("%w: path %q leaves the layer", ErrUnsafe, name)
		}
		out = append(out, p)
	}
	return strings.Join(out, "/"), nil
}

func split(rel string) (dir, base string) {
	dir, base = path.Split(rel)
	return strings.TrimSuffix(dir, "/"), base
}

// dirMeta is applied to directories once every entry is written, since
// writing into a directory changes its mtime.
type dirMeta struct {
	rel string
	hdr *tar.Header
}
