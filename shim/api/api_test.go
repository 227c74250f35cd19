package api

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/raind/condenser/internal/errdefs"
)

// TestErrorCodec checks that an error keeps its kind across the
// connection: ToStatus in the shim, FromStatus in the client.
func TestErrorCodec(t *testing.T) {
	tests := []struct {
		kind error
		code codes.Code
	}{
		{errdefs.ErrInvalidArgument, codes.InvalidArgument},
		{errdefs.ErrNotFound, codes.NotFound},
		{errdefs.ErrAlreadyExists, codes.AlreadyExists},
		{errdefs.ErrConflict, codes.FailedPrecondition},
		{errdefs.ErrUnavailable, codes.Unavailable},
		{errdefs.ErrPermissionDenied, codes.PermissionDenied},
		{errdefs.ErrDataLoss, codes.DataLoss},
		{errdefs.ErrNotImplemented, codes.Unimplemented},
		{errdefs.ErrResourceExhausted, codes.ResourceExhausted},
		{context.Canceled, codes.Canceled},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
	}
	for _, tc := range tests {
		err := fmt.Errorf("container c1: %w", tc.kind)
		st := ToStatus(err)
		if s, ok := status.FromError(st); !ok || s.Code() != tc.code {
			t.Errorf("ToStatus(%v) = %v, want code %v", err, st, tc.code)
		}
		back := FromStatus(st)
		if !errors.Is(back, tc.kind) {
			t.Errorf("FromStatus(ToStatus(%v)) = %v, not %v", err, back, tc.kind)
		}
		if back.Error() != err.Error() && back.Error() != "shim: "+err.Error()+": "+tc.kind.Error() {
			t.Errorf("message %q, want %q", back, err)
		}
	}
	if ToStatus(nil) != nil || FromStatus(nil) != nil {
		t.Error("nil is not nil")
	}
	plain := errors.New("boom")
	if s, _ := status.FromError(ToStatus(plain)); s.Code() != codes.Internal {
		t.Errorf("plain error: %v", s)
	}
	if err := FromStatus(errors.New("connection reset")); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("non-status error: %v, want ErrUnavailable", err)
	}
}

func TestReadExit(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadExit(dir); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("no exit.json: %v", err)
	}
	os.WriteFile(filepath.Join(dir, ExitFile), []byte(`{"pid":7,"exitCode":137,"exitedAt":"2026-01-02T03:04:05.000000006Z","oomKilled":true}`), 0o644)
	e, err := ReadExit(dir)
	want := Exit{Pid: 7, ExitCode: 137, ExitedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), OOMKilled: true}
	if err != nil || e.Pid != want.Pid || e.ExitCode != want.ExitCode || !e.ExitedAt.Equal(want.ExitedAt) || !e.OOMKilled {
		t.Errorf("ReadExit: %+v %v", e, err)
	}
	os.WriteFile(filepath.Join(dir, ExitFile), []byte(`{"pid":`), 0o644)
	if _, err := ReadExit(dir); !errors.Is(err, errdefs.ErrDataLoss) {
		t.Errorf("torn exit.json: %v, want ErrDataLoss", err)
	}
}

// TestDeleteOutput pins the format of `condenser-shim delete`'s output.
func TestDeleteOutput(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	e := &Exit{Pid: 7, ExitCode: 3, ExitedAt: at}
	if got, want := string(FormatDeleteOutput(nil)), "{\"unknown\":true}\n"; got != want {
		t.Errorf("unknown: %q, want %q", got, want)
	}
	if got, want := string(FormatDeleteOutput(e)), "{\"pid\":7,\"exitCode\":3,\"exitedAt\":\"2026-01-02T03:04:05.000000006Z\",\"oomKilled\":false}\n"; got != want {
		t.Errorf("exit: %q, want %q", got, want)
	}
	tests := []struct {
		name string
		out  string
		want *Exit
		ok   bool
	}{
		{"unknown", "{\"unknown\":true}\n", nil, true},
		{"exit", string(FormatDeleteOutput(e)), e, true},
		{"warnings first", "something\n" + string(FormatDeleteOutput(e)) + "\n\n", e, true},
		{"future field", `{"unknown":true,"reason":"shim gone"}`, nil, true},
		{"empty", "", nil, false},
		{"not json", "exit 3\n", nil, false},
		{"empty object", "{}\n", nil, false},
	}
	for _, tc := range tests {
		got, err := ParseDeleteOutput([]byte(tc.out))
		if (err == nil) != tc.ok {
			t.Errorf("%s: error %v, want ok %v", tc.name, err, tc.ok)
			continue
		}
		if !tc.ok {
			if !errors.Is(err, errdefs.ErrDataLoss) {
				t.Errorf("%s: %v, want ErrDataLoss", tc.name, err)
			}
			continue
		}
		if (got == nil) != (tc.want == nil) || (got != nil && (got.Pid != tc.want.Pid || got.ExitCode != tc.want.ExitCode || !got.ExitedAt.Equal(tc.want.ExitedAt) || got.OOMKilled != tc.want.OOMKilled)) {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
