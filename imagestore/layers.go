package imagestore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"golang.org/x/sys/unix"

	"github.com/raind/condenser/imagestore/archive"
	"github.com/raind/condenser/internal/errdefs"
)

// layerStore holds unpacked layers: layers/sha256/<diffid>/, built in
// layers/tmp/ and renamed into place once the diffID is verified.
type layerStore struct {
	dir string
	tmp string

	mu     sync.Mutex
	flight map[string]*flight // by diffID hex: one unpack at a time
}

type flight struct {
	done     chan struct{}
	unpacked int64
	err      error
}

func newLayerStore(root string, log *slog.Logger) (*layerStore, error) {
	ls := &layerStore{
		dir:    filepath.Join(root, "layers", "sha256"),
		tmp:    filepath.Join(root, "layers", "tmp"),
		flight: map[string]*flight{},
	}
	for _, d := range []string{ls.dir, ls.tmp} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	if err := spreadDirs(ls.tmp); err != nil {
		log.Debug("layer directories keep ext4's default placement", "dir", ls.tmp, "error", err)
	}
	return ls, nil
}

// fsTopdirFL is FS_TOPDIR_FL (chattr +T), which golang.org/x/sys does not
// define.
const fsTopdirFL = 0x00020000

// spreadDirs marks dir so that ext2/3/4 place each directory made in it as
// they place top-level directories: in a block group chosen afresh (the
// Orlov allocator's pick of a group with few directories) instead of in
// dir's own group. The files of a layer then go to its directory's group.
// The flag is not inherited: inside a layer, placement is the default.
//
// Without it, every layer lands in the group of the store's root, next to
// whatever was deleted there lately: an image just removed, or, under /tmp
// or on a root filesystem shared with builds, thousands of temporary files.
// On ext4 without a journal, each inode allocation scans its group from
// the start and skips every free inode freed in the last minute or so, at
// one inode-table lookup each (recently_deleted()): measured, a third of
// the CPU of a cold pull of a 1,100-file, 122 MiB image, and half its
// time in the daemon's pull benchmark. Other filesystems ignore or refuse
// the flag, which is worth no more than a debug log.
func spreadDirs(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	fl, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil || fl&fsTopdirFL != 0 {
		return err
	}
	return unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(fl|fsTopdirFL))
}

func (ls *layerStore) path(diffID string) string {
	return filepath.Join(ls.dir, strings.TrimPrefix(diffID, "sha256:"))
}

func (ls *layerStore) has(diffID string) bool {
	_, err := os.Lstat(ls.path(diffID))
	return err == nil
}

// blobOpener opens a layer blob as distributed (compressed or not).
type blobOpener func(ctx context.Context) (io.ReadCloser, error)

// ensureLayer makes l's blob and unpacked layer present, fetching the blob
// with open only when it is missing. Concurrent calls for one layer do the
// work once. It returns the bytes of unpacked file content, or -1 when the
// layer was already there and its size is not known here.
func (s *Store) ensureLayer(ctx context.Context, l Layer, open blobOpener, rep *reporter) (int64, error) {
	ls := s.layers
	dh, err := v1.NewHash(l.DiffID)
	if err != nil {
		return 0, fmt.Errorf("layer %s: bad diffID: %w", l.Digest, errdefs.ErrInvalidArgument)
	}
	bh, err := v1.NewHash(l.Digest)
	if err != nil {
		return 0, fmt.Errorf("layer: bad digest %q: %w", l.Digest, errdefs.ErrInvalidArgument)
	}
	for {
		haveLayer, haveBlob := ls.has(l.DiffID), s.content.has(bh)
		if haveLayer && haveBlob {
			rep.send(Progress{Layer: l.Digest, Status: StatusExists, Total: l.Size})
			return -1, nil
		}
		ls.mu.Lock()
		if f := ls.flight[dh.Hex]; f != nil {
			ls.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return 0, ctx.Err()
			}
			if f.err == nil {
				rep.send(Progress{Layer: l.Digest, Status: StatusDone, Current: l.Size, Total: l.Size})
				return f.unpacked, nil
			}
			if errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded) {
				continue // the other caller gave up; this one goes on
			}
			return 0, f.err
		}
		f := &flight{done: make(chan struct{})}
		ls.flight[dh.Hex] = f
		ls.mu.Unlock()
		if haveBlob { // only the unpacking is missing: read the stored blob
			open = s.content.opener(bh)
		}

		f.unpacked, f.err = s.unpack(ctx, l, bh, dh, open, !haveBlob, !haveLayer, rep)
		ls.mu.Lock()
		delete(ls.flight, dh.Hex)
		ls.mu.Unlock()
		close(f.done)
		return f.unpacked, f.err
	}
}

// unpack streams the blob once: into the content store (when writeBlob),
// through the decompressor and into a temp layer dir (when extract), then
// verifies digest, size and diffID and renames both into place.
func (s *Store) unpack(ctx context.Context, l Layer, bh, dh v1.Hash, open blobOpener, writeBlob, extract bool, rep *reporter) (int64, error) {
	status := StatusExtracting
	if writeBlob {
		status = StatusDownloading
	}
	rc, err := open(ctx)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	var src io.Reader = &countingReader{r: rc, rep: rep, ev: Progress{Layer: l.Digest, Status: status, Total: l.Size}}
	var bw *ingestWriter
	if writeBlob {
		size := l.Size
		if size <= 0 {
			size = -1
		}
		if bw, err = s.content.writer(bh, size); err != nil {
			return 0, err
		}
		defer bw.abort()
		src = io.TeeReader(src, bw)
	}
	if !extract {
		if _, err := io.Copy(io.Discard, src); err != nil {
			return 0, fmt.Errorf("layer %s: %w", l.Digest, err)
		}
		if err := bw.commit(); err != nil {
			return 0, fmt.Errorf("layer %s: %w", l.Digest, err)
		}
		rep.send(Progress{Layer: l.Digest, Status: StatusDone, Current: l.Size, Total: l.Size})
		return -1, nil
	}

	tmp, err := os.MkdirTemp(s.layers.tmp, dh.Hex[:12]+"-")
	if err != nil {
		return 0, err
	}
	committed := false
	defer func() {
		if !committed {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return 0, err
	}
	unpacked, err := extractStream(ctx, tmp, src, dh)
	if err != nil {
		if bw != nil && ctx.Err() == nil && !errors.Is(err, archive.ErrUnsafe) {
			// A broken stream is most often a blob that is not what its
			// digest says: report that, the cause.
			if _, cerr := io.Copy(io.Discard, src); cerr == nil {
				if verr := bw.verify(); verr != nil {
					err = verr
				}
			}
		}
		return 0, fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	// The rest of the blob (after the compressed stream ends) still counts
	// for its digest.
	if _, err := io.Copy(io.Discard, src); err != nil {
		return 0, fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	if bw != nil {
		if err := bw.verify(); err != nil {
			return 0, fmt.Errorf("layer %s: %w", l.Digest, err)
		}
	}
	// Make the unpacked files durable before they become visible.
	if err := syncFS(tmp); err != nil {
		return 0, err
	}
	if bw != nil {
		if err := bw.commit(); err != nil {
			return 0, fmt.Errorf("layer %s: %w", l.Digest, err)
		}
	}
	if err := os.Rename(tmp, s.layers.path(l.DiffID)); err != nil && !errors.Is(err, os.ErrExist) && !errors.Is(err, unix.ENOTEMPTY) {
		return 0, err
	}
	committed = true
	if err := syncDir(s.layers.dir); err != nil {
		return 0, err
	}
	rep.send(Progress{Layer: l.Digest, Status: StatusDone, Current: l.Size, Total: l.Size})
	return unpacked, nil
}

// extractStream decompresses src (gzip, zstd or plain tar, told by its
// magic bytes), unpacks it into dir and checks the uncompressed stream
// against diffID.
func extractStream(ctx context.Context, dir string, src io.Reader, diffID v1.Hash) (int64, error) {
	br := bufio.NewReaderSize(src, 64<<10)
	magic, _ := br.Peek(4)
	var r io.Reader = br
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		// pgzip inflates in its own goroutine, a few blocks ahead, so
		// that download and inflate overlap with writing the files.
		zr, err := pgzip.NewReaderN(br, 1<<20, 4)
		if err != nil {
			return 0, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		r = zr
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br) // decodes ahead in goroutines too
		if err != nil {
			return 0, fmt.Errorf("zstd: %w", err)
		}
		defer zr.Close()
		r = zr
	}
	h := sha256.New()
	tr := io.TeeReader(r, h)
	st, err := archive.Extract(ctx, dir, tr)
	if err != nil {
		return 0, err
	}
	if _, err := io.Copy(io.Discard, tr); err != nil { // tar padding
		return 0, fmt.Errorf("decompress: %w", err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return 0, err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != diffID.Hex {
		return 0, fmt.Errorf("uncompressed content is sha256:%s, not the diffID %s of the image config: %w", got, diffID, errdefs.ErrDataLoss)
	}
	return st.Bytes, nil
}

// syncFS flushes the filesystem holding dir: one call for a whole layer
// instead of an fsync per file.
func syncFS(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Syncfs(fd)
}
