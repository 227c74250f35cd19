package supervisor

import (
	"context"
	"errors"
	"io/fs"
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

// Logs calls fn with the container's log entries, oldest first. The last
// Tail entries are read backwards from the end of the log (bounded memory);
// a followed log continues from exactly where they end, across rotations
// (logging.Follow).
func (s *Supervisor) Logs(ctx context.Context, ref string, o LogOptions, fn func(logging.Entry) error) error {
	c, err := s.get(ref)
	if err != nil {
		return err
	}
	path := s.LogPath(c)
	opts := logging.ReadOptions{
		MaxFiles: logging.DefaultMaxFiles,
		Tail:     o.Tail,
		Since:    o.Since,
		Filter: func(e *logging.Entry) bool {
			return e.Stream == "stdout" && o.Stdout || e.Stream == "stderr" && o.Stderr
		},
	}
	if !o.Follow {
		err := logging.Read(path, opts, fn)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	// A container waiting out its restart back-off writes again soon.
	running := func() bool {
		cur, err := s.recs.get(c.ID)
		return err == nil && (cur.State == StateRunning || cur.State == StateCreated || cur.State == StateRestarting)
	}
	return logging.Follow(ctx, path, opts, running, fn)
}
