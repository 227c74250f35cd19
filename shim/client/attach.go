package client

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/shim/api"
)

// Stream is a client attached to a process's standard streams through its
// shim's io.sock: reads and writes carry internal/frame frames (see
// api.IOFile). Close detaches; the process goes on.
type Stream struct {
	conn     *net.UnixConn
	br       *bufio.Reader
	terminal bool
}

// attachHandshake bounds the exchange of the request and response lines.
const attachHandshake = 10 * time.Second

// Attach attaches to a process of the container whose bundle is bundle
// (req.Exec "" for its init). A shim that is gone wraps
// errdefs.ErrUnavailable; a refusal wraps the kind the shim gave it.
func Attach(ctx context.Context, bundle string, req api.AttachRequest) (*Stream, error) {
	path := filepath.Join(bundle, api.IOFile)
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("attach to the shim at %s: %w: %w", path, errdefs.ErrUnavailable, err)
	}
	conn := c.(*net.UnixConn)
	deadline := time.Now().Add(attachHandshake)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	s := &Stream{conn: conn, br: bufio.NewReader(conn)}
	var resp api.AttachResponse
	err = api.WriteLine(conn, req)
	if err == nil {
		err = api.ReadLine(s.br, &resp)
	}
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err == nil {
		err = resp.Err()
	} else {
		err = fmt.Errorf("attach to the shim at %s: %w: %w", path, errdefs.ErrUnavailable, err)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	s.terminal = resp.Terminal
	return s, nil
}

// Terminal tells whether the process has a terminal (its output is all
// Stdout frames).
func (s *Stream) Terminal() bool { return s.terminal }

// Read reads the frames the shim sends.
func (s *Stream) Read(p []byte) (int, error) { return s.br.Read(p) }

// Write writes frames to the shim.
func (s *Stream) Write(p []byte) (int, error) { return s.conn.Write(p) }

// CloseWrite tells the shim that no more frames come (it is not a
// CloseStdin frame: the process's stdin stays open).
func (s *Stream) CloseWrite() error { return s.conn.CloseWrite() }

// Close detaches.
func (s *Stream) Close() error { return s.conn.Close() }
