// Package frame is the framing of a process's standard streams, spoken
// between a client and the daemon (Condenser's WebSocket endpoints, and
// the client→daemon half of the Raind contract's) and between the daemon
// and a shim (bundle/io.sock): a stream of frames
//
//	[type u8][length u32 big-endian][payload: length bytes]
//
// Towards the process: Stdin (bytes to write), Resize (payload rows u16 BE,
// cols u16 BE) and CloseStdin (no payload: the client's input ended).
// From the process: Stdout, Stderr (its output; a terminal's is all
// Stdout) and Exit (payload: its exit status, int32 BE, 128+n for signal
// n), the last frame of a stream that ends because the process did.
package frame

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frame types towards the process.
const (
	Stdin      byte = 0
	Resize     byte = 1
	CloseStdin byte = 2
)

// Frame types from the process.
const (
	Stdout byte = 1
	Stderr byte = 2
	Exit   byte = 3
)

// HeaderSize is the size of a frame's header.
const HeaderSize = 5

// MaxPayload bounds a frame's payload; a longer one is an error (a peer
// that sends one is not speaking this protocol).
const MaxPayload = 1 << 20

// ErrTooLarge is a frame whose length is over MaxPayload.
var ErrTooLarge = errors.New("frame: payload too large")

// Append appends the frame (typ, payload) to dst.
func Append(dst []byte, typ byte, payload []byte) []byte {
	dst = append(dst, typ, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(dst[len(dst)-4:], uint32(len(payload)))
	return append(dst, payload...)
}

// Write writes one frame with a single Write call (frames written by
// concurrent callers under a lock never interleave).
func Write(w io.Writer, typ byte, payload []byte) error {
	if len(payload) > MaxPayload {
		return ErrTooLarge
	}
	_, err := w.Write(Append(make([]byte, 0, HeaderSize+len(payload)), typ, payload))
	return err
}

// Reader reads frames from a stream. Its buffer grows to the largest
// payload read (at most MaxPayload).
type Reader struct {
	r   io.Reader
	hdr [HeaderSize]byte
	buf []byte
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader) *Reader { return &Reader{r: r} }

// Next reads the next frame. The payload is valid until the next call.
// A stream that ends between frames returns io.EOF; one cut inside a
// frame, io.ErrUnexpectedEOF.
func (r *Reader) Next() (typ byte, payload []byte, err error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(r.hdr[1:])
	if n > MaxPayload {
		return 0, nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, n)
	}
	if cap(r.buf) < int(n) {
		r.buf = make([]byte, n)
	}
	p := r.buf[:n]
	if _, err := io.ReadFull(r.r, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return r.hdr[0], p, nil
}

// ResizePayload is the payload of a Resize frame.
func ResizePayload(rows, cols uint16) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, rows), cols)
}

// ParseResize reads a Resize frame's payload.
func ParseResize(p []byte) (rows, cols uint16, err error) {
	if len(p) != 4 {
		return 0, 0, fmt.Errorf("frame: resize payload of %d bytes, want 4", len(p))
	}
	return binary.BigEndian.Uint16(p), binary.BigEndian.Uint16(p[2:]), nil
}

// ExitPayload is the payload of an Exit frame.
func ExitPayload(code int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(int32(code))) }

// ParseExit reads an Exit frame's payload.
func ParseExit(p []byte) (int, error) {
	if len(p) != 4 {
		return 0, fmt.Errorf("frame: exit payload of %d bytes, want 4", len(p))
	}
	return int(int32(binary.BigEndian.Uint32(p))), nil
}
