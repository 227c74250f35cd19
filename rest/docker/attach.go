package docker

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/raind/condenser/internal/detachkeys"
	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/frame"
	"github.com/raind/condenser/shim/logging"
	"github.com/raind/condenser/supervisor"
)

// attach is POST /containers/{id}/attach?stream=&stdin=&stdout=&stderr=&logs=&detachKeys=:
// the connection is hijacked and carries the init's standard streams.
// docker run attaches before it starts the container: the shim holds
// the process's output from its first byte for the attached client.
//
// With logs=1 the past log goes first; with stream=0 only it (the
// connection then closes). Detach keys are scanned, as Docker does, only
// with a terminal (without one the CLI has no raw input to type them in).
func (s *server) attach(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("id")
	keys, err := queryDetachKeys(r)
	if err != nil {
		return err
	}
	c, err := s.Streams.Get(r.Context(), ref)
	if err != nil {
		return noSuch("container", ref, err)
	}
	tty := c.Request.Tty
	rl := relay{
		tty:    tty,
		stdout: boolQuery(r, "stdout"),
		stderr: boolQuery(r, "stderr"),
		stdin:  boolQuery(r, "stdin") && (tty || c.Request.OpenStdin),
	}
	if tty && rl.stdin {
		rl.keys = keys
	}
	var pre func(io.Writer) error
	if boolQuery(r, "logs") {
		pre = func(out io.Writer) error { return s.pastLog(r, c.ID, tty, rl, out) }
	}
	live := boolQuery(r, "stream") && (c.State == supervisor.StateRunning || c.State == supervisor.StateCreated)
	if !live {
		// Nothing live to attach to (stream=0, or a stopped container:
		// Docker answers, sends the log asked for, and closes).
		conn, _, done, err := s.hijack(w, r, streamType(r, tty))
		if err != nil {
			return err
		}
		defer done()
		if pre != nil {
			return pre(conn)
		}
		return nil
	}
	st, err := s.Streams.Attach(r.Context(), c.ID, supervisor.AttachOptions{Stdin: rl.stdin})
	if err != nil {
		return noSuch("container", ref, err)
	}
	// The terminal is the shim's word (the record's could only differ in
	// a bug, and the framing must match the bytes).
	rl.tty = st.Terminal()
	open := func(_ context.Context, conn io.Writer) (supervisor.Stream, error) {
		if pre != nil {
			if err := pre(conn); err != nil {
				_ = st.Close()
				return nil, err
			}
		}
		return st, nil
	}
	return s.runSession(w, r, rl, open, func() { _ = st.Close() })
}

// pastLog writes the container's log, as the session would have sent it.
func (s *server) pastLog(r *http.Request, id string, tty bool, rl relay, out io.Writer) error {
	sw := &stdWriter{w: out, tty: tty}
	o := supervisor.LogOptions{Tail: -1, Stdout: rl.stdout, Stderr: rl.stderr}
	if !o.Stdout && !o.Stderr {
		return nil
	}
	return s.Streams.Logs(r.Context(), id, o, func(e logging.Entry) error {
		return sw.write(logStream(e), []byte(e.Log))
	})
}

// logStream is the frame type of a log entry's stream.
func logStream(e logging.Entry) byte {
	if e.Stream == "stderr" {
		return frame.Stderr
	}
	return frame.Stdout
}

// queryDetachKeys reads ?detachKeys= (absent: Docker's ctrl-p,ctrl-q).
func queryDetachKeys(r *http.Request) ([]byte, error) {
	spec := detachkeys.Default
	if vs, ok := r.URL.Query()["detachKeys"]; ok && len(vs) > 0 {
		spec = vs[0]
	}
	return parseDetachKeys(spec)
}

// parseDetachKeys reads a detach-key sequence; a malformed one is
// Docker's 400.
func parseDetachKeys(spec string) ([]byte, error) {
	keys, err := detachkeys.Parse(spec)
	if err != nil {
		// Docker's words.
		return nil, &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf("Invalid detach keys (%s) provided: %v", spec, err), err: err}
	}
	return keys, nil
}

// resizeContainer is POST /containers/{id}/resize?h=&w=: the init's
// terminal.
func (s *server) resizeContainer(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("id")
	rows, cols, err := querySize(r)
	if err != nil {
		return err
	}
	if err := s.Streams.Resize(r.Context(), ref, "", rows, cols); err != nil {
		return noSuch("container", ref, err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// querySize reads ?h=ROWS&w=COLS.
func querySize(r *http.Request) (rows, cols uint16, err error) {
	q := r.URL.Query()
	parse := func(key string) (uint16, error) {
		v := q.Get(key)
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return 0, fmt.Errorf("invalid %s=%q: want a number from 0 to 65535: %w", key, v, errdefs.ErrInvalidArgument)
		}
		return uint16(n), nil
	}
	if rows, err = parse("h"); err != nil {
		return 0, 0, err
	}
	if cols, err = parse("w"); err != nil {
		return 0, 0, err
	}
	return rows, cols, nil
}
