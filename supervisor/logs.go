package supervisor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/raind/condenser/shim/logging"
)

// LogOptions select a container's log entries.
type LogOptions struct {
	Follow         bool      // keep going until ctx is done or the container stopped and its log is drained
	Since          time.Time // zero: from the beginning
	Tail           int       // the last Tail selected entries; < 0: all
	Stdout, Stderr bool
}

// followInterval is how often a followed log is checked for new lines.
const followInterval = 100 * time.Millisecond

// Logs calls fn with the container's log entries, oldest first.
func (s *Supervisor) Logs(ctx context.Context, ref string, o LogOptions, fn func(logging.Entry) error) error {
	c, err := s.get(ref)
	if err != nil {
		return err
	}
	path := s.LogPath(c)
	var offset int64
	if fi, err := os.Stat(path); err == nil {
		offset = fi.Size()
	}
	entries, err := logging.ReadLast(path, logging.DefaultMaxFiles, 0)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	keep := func(e logging.Entry) bool {
		return (e.Stream == "stdout" && o.Stdout || e.Stream == "stderr" && o.Stderr) && !e.Time.Before(o.Since)
	}
	var sel []logging.Entry
	for _, e := range entries {
		if keep(e) {
			sel = append(sel, e)
		}
	}
	if o.Tail >= 0 && len(sel) > o.Tail {
		sel = sel[len(sel)-o.Tail:]
	}
	for _, e := range sel {
		if err := fn(e); err != nil {
			return err
		}
	}
	if !o.Follow {
		return nil
	}
	t := time.NewTicker(followInterval)
	defer t.Stop()
	for {
		running := false
		if cur, err := s.get(c.ID); err == nil {
			running = cur.State == StateRunning || cur.State == StateCreated
		}
		next, err := readFrom(path, offset, func(e logging.Entry) error {
			if keep(e) {
				return fn(e)
			}
			return nil
		})
		if err != nil {
			return err
		}
		grew := next != offset
		offset = next
		if !running && !grew {
			return nil // stopped, and everything it wrote was sent
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// readFrom sends the complete lines of path after offset and returns the
// offset after the last one. A file shorter than offset was rotated: it is
// read from its start.
func readFrom(path string, offset int64, fn func(logging.Entry) error) (int64, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return offset, nil
	}
	if err != nil {
		return offset, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() < offset {
		offset = 0
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return offset, err
	}
	r := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil { // a partial line waits for its end
			return offset, nil
		}
		offset += int64(len(line))
		var e logging.Entry
		if json.Unmarshal(line, &e) != nil {
			continue
		}
		if err := fn(e); err != nil {
			return offset, err
		}
	}
}
