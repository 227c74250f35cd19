package imagestore

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/raind/condenser/internal/errdefs"
)

// content is the blob store: content/blobs/sha256/<hex>, written through
// content/ingest and renamed into place only once size and digest match.
type content struct {
	blobs  string // content/blobs/sha256
	ingest string // content/ingest
}

func newContent(root string) (*content, error) {
	c := &content{
		blobs:  filepath.Join(root, "content", "blobs", "sha256"),
		ingest: filepath.Join(root, "content", "ingest"),
	}
	for _, d := range []string{c.blobs, c.ingest} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *content) path(h v1.Hash) string { return filepath.Join(c.blobs, h.Hex) }

// has reports whether the blob is present.
func (c *content) has(h v1.Hash) bool {
	_, err := os.Lstat(c.path(h))
	return err == nil
}

// read returns a small blob (manifest, index, config) whole.
func (c *content) read(h v1.Hash) ([]byte, error) {
	b, err := os.ReadFile(c.path(h))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", h, errdefs.ErrNotFound)
	}
	return b, err
}

// opener opens a stored blob.
func (c *content) opener(h v1.Hash) blobOpener {
	return func(context.Context) (io.ReadCloser, error) {
		f, err := os.Open(c.path(h))
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("blob %s: %w", h, errdefs.ErrNotFound)
		}
		return f, err
	}
}

// put stores a small blob held in memory after checking its digest.
func (c *content) put(want v1.Hash, data []byte) error {
	if c.has(want) {
		return nil
	}
	w, err := c.writer(want, int64(len(data)))
	if err != nil {
		return err
	}
	defer w.abort()
	if _, err := w.Write(data); err != nil {
		return err
	}
	return w.commit()
}

// ingestWriter streams one blob into a temp file while hashing it.
type ingestWriter struct {
	c    *content
	want v1.Hash
	size int64 // expected size, or -1 when unknown
	f    *os.File
	// buf turns the network's small reads (16 KiB on average) into large
	// writes: one write(2) per read cost more CPU than the copying.
	buf  *bufio.Writer
	h    hash.Hash
	n    int64
	done bool
}

// ingestBuffer is the write size of an ingestWriter.
const ingestBuffer = 256 << 10

func (c *content) writer(want v1.Hash, size int64) (*ingestWriter, error) {
	if want.Algorithm != "sha256" {
		return nil, fmt.Errorf("blob %s: unsupported digest algorithm: %w", want, errdefs.ErrInvalidArgument)
	}
	f, err := os.CreateTemp(c.ingest, want.Hex[:12]+"-")
	if err != nil {
		return nil, err
	}
	return &ingestWriter{c: c, want: want, size: size, f: f, buf: bufio.NewWriterSize(f, ingestBuffer), h: sha256.New()}, nil
}

func (w *ingestWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	if w.size >= 0 && w.n > w.size {
		return 0, fmt.Errorf("blob %s: more than the expected %d bytes: %w", w.want, w.size, errdefs.ErrDataLoss)
	}
	w.h.Write(p)
	return w.buf.Write(p)
}

// verify checks size and digest of what was written, and writes out what
// is buffered: the caller has given it all.
func (w *ingestWriter) verify() error {
	if err := w.buf.Flush(); err != nil {
		return err
	}
	if w.size >= 0 && w.n != w.size {
		return fmt.Errorf("blob %s: got %d bytes, want %d: %w", w.want, w.n, w.size, errdefs.ErrDataLoss)
	}
	if got := hex.EncodeToString(w.h.Sum(nil)); got != w.want.Hex {
		return fmt.Errorf("blob %s: digest mismatch, content is sha256:%s: %w", w.want, got, errdefs.ErrDataLoss)
	}
	return nil
}

// commit verifies, syncs and renames the blob into place. A blob that a
// concurrent writer committed first is simply kept.
func (w *ingestWriter) commit() error {
	if err := w.verify(); err != nil {
		return err
	}
	if err := w.f.Sync(); err != nil {
		return err
	}
	if err := w.f.Close(); err != nil {
		return err
	}
	if err := os.Rename(w.f.Name(), w.c.path(w.want)); err != nil {
		return err
	}
	w.done = true
	return syncDir(w.c.blobs)
}

// abort removes the temp file unless the blob was committed. Safe to defer.
func (w *ingestWriter) abort() {
	if w.done {
		return
	}
	w.done = true
	w.f.Close()
	os.Remove(w.f.Name())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// digestOf returns the sha256 digest of data.
func digestOf(data []byte) v1.Hash {
	sum := sha256.Sum256(data)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

var _ io.Writer = (*ingestWriter)(nil)
