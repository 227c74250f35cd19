package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/raind/condenser/internal/errdefs"
)

// The on-disk contract of a bundle: the files the shim keeps in the bundle
// directory, which the daemon may read (exit.json) or name (shim.sock).
const (
	// ExitFile holds the container's exit status (Exit as JSON), written
	// atomically by the shim before any Wait returns; it outlives the shim.
	ExitFile = "exit.json"
	// PidFile holds the shim server's pid (decimal), written before the
	// shim says it is ready and removed when it shuts down.
	PidFile = "shim.pid"
	// SocketFile is the unix socket the shim serves on when the daemon
	// launches it (shim/client.Launch).
	SocketFile = "shim.sock"
	// LockFile is flocked (exclusively) by `condenser-shim start` from
	// before it binds the socket until the server it starts has written
	// PidFile and serves, and by `condenser-shim delete` for all it does:
	// a delete never misses the shim of a launch that is still going on
	// (one its caller, a daemon killed meanwhile, left behind). It stays
	// in the bundle (removing a lock file races with its next user).
	LockFile = "shim.lock"
	// LogFile is the shim's own log (its stderr).
	LogFile = "shim.log"
)

// Exit is the content of ExitFile.
type Exit struct {
	Pid       int       `json:"pid"`
	ExitCode  int       `json:"exitCode"` // 128+n for signal n
	ExitedAt  time.Time `json:"exitedAt"`
	OOMKilled bool      `json:"oomKilled"`
}

// ReadExit reads a container's exit status from its bundle, also after its
// shim is gone. No exit status is errdefs.ErrNotFound; an unreadable one is
// errdefs.ErrDataLoss.
func ReadExit(bundle string) (Exit, error) {
	var e Exit
	b, err := os.ReadFile(filepath.Join(bundle, ExitFile))
	if errors.Is(err, os.ErrNotExist) {
		return e, fmt.Errorf("exit status in %s: %w", bundle, errdefs.ErrNotFound)
	}
	if err != nil {
		return e, err
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return Exit{}, fmt.Errorf("exit status in %s: %w: %w", bundle, errdefs.ErrDataLoss, err)
	}
	return e, nil
}

// The output of `condenser-shim delete`: one JSON line on stdout, either
// the exit status the shim left (ExitFile's content, an Exit)
//
//	{"pid":4242,"exitCode":137,"exitedAt":"2026-12-01T02:19:47.123Z","oomKilled":false}
//
// or, when none is known (the shim died before the container exited, or
// never created one),
//
//	{"unknown":true}

// unknownExit is the delete output when no exit status is known.
const unknownExit = `{"unknown":true}`

// FormatDeleteOutput is what `condenser-shim delete` prints for e (nil: no
// exit status known), newline included.
func FormatDeleteOutput(e *Exit) []byte {
	if e == nil {
		return []byte(unknownExit + "\n")
	}
	b, _ := json.Marshal(e) // an Exit always marshals
	return append(b, '\n')
}

// ParseDeleteOutput parses what `condenser-shim delete` printed: its last
// non-empty line. It returns nil for an unknown exit status.
func ParseDeleteOutput(out []byte) (*Exit, error) {
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	line := bytes.TrimSpace(lines[len(lines)-1])
	var v struct {
		Exit
		Unknown bool `json:"unknown"`
	}
	if err := json.Unmarshal(line, &v); err != nil {
		return nil, fmt.Errorf("delete output %q: %w: %w", line, errdefs.ErrDataLoss, err)
	}
	if v.Unknown {
		return nil, nil
	}
	if v.ExitedAt.IsZero() {
		return nil, fmt.Errorf("delete output %q: neither an exit status nor unknown: %w", line, errdefs.ErrDataLoss)
	}
	e := v.Exit
	return &e, nil
}
