package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// IOFile is the unix socket in the bundle on which the shim serves the
// standard streams of the container's processes (the init and the exec
// processes), as conmon's attach socket: it outlives the daemon, so a
// client can attach again after the daemon restarted.
//
// A client connects and sends an AttachRequest as one JSON line; the shim
// answers with an AttachResponse as one JSON line. Then both sides speak
// internal/frame: the client sends Stdin, Resize and CloseStdin frames, the
// shim sends Stdout and Stderr frames with the process's output from that
// moment on (what an exec process or a terminal wrote before its first
// client attached is held for that client), and, when the process has
// exited and its output is all sent, an Exit frame; then it closes the
// connection. A client detaches by closing the connection: the process
// goes on. Several clients may attach at once: each gets all the output,
// and the input of all of them is merged.
const IOFile = "io.sock"

// AttachRequest is the first line a client sends on IOFile.
type AttachRequest struct {
	// Exec is the exec process to attach to; "" is the container's init.
	Exec string `json:"exec,omitempty"`
	// Stdin: the client's Stdin frames go to the process (its terminal,
	// or its stdin pipe when it has one); without it they are refused.
	Stdin bool `json:"stdin,omitempty"`
}

// AttachResponse is the shim's answer to an AttachRequest.
type AttachResponse struct {
	// Terminal: the process has a terminal (its output is all Stdout).
	Terminal bool `json:"terminal,omitempty"`
	// Code and Error: the attach is refused (Code a ttrpc status code,
	// as ToStatus gives it); the shim closes the connection.
	Code  uint32 `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
}

// AttachRefused is the AttachResponse refusing an attach because of err.
func AttachRefused(err error) AttachResponse {
	st, _ := status.FromError(ToStatus(err))
	return AttachResponse{Code: uint32(st.Code()), Error: st.Message()}
}

// Err is the refusal's error, wrapping its errdefs kind (nil when the
// attach is accepted).
func (r AttachResponse) Err() error {
	if r.Code == 0 && r.Error == "" {
		return nil
	}
	code := codes.Code(r.Code)
	if code == codes.OK {
		code = codes.Unknown
	}
	return FromStatus(status.Error(code, r.Error))
}

// maxAttachLine bounds an AttachRequest or AttachResponse line.
const maxAttachLine = 4096

// WriteLine writes v as one JSON line (an AttachRequest or AttachResponse).
func WriteLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// ReadLine reads one JSON line (at most 4 KiB) into v from br, strictly:
// unknown fields are an error. The frames that follow must be read through
// the same br (it may hold some of them).
func ReadLine(br *bufio.Reader, v any) error {
	var line []byte
	for {
		chunk, more, err := br.ReadLine()
		if err != nil {
			if errors.Is(err, io.EOF) && len(line) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		line = append(line, chunk...)
		if len(line) > maxAttachLine {
			return fmt.Errorf("attach: line longer than %d bytes", maxAttachLine)
		}
		if !more {
			break
		}
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	return nil
}
