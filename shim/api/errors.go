package api

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/raind/condenser/internal/errdefs"
)

// The error codec: every error crossing the ttrpc connection is a status
// whose code names the error's kind, so that it keeps its kind from one
// process to the other.

// kindCodes maps the errdefs kinds to status codes, one to one.
var kindCodes = []struct {
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
}

// ToStatus turns an error of the shim into a ttrpc status carrying its
// kind (an internal/errdefs kind, context.Canceled or
// context.DeadlineExceeded); other errors become codes.Internal. A status
// is returned as it is.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	for _, kc := range kindCodes {
		if errors.Is(err, kc.kind) {
			return status.Error(kc.code, err.Error())
		}
	}
	return status.Error(codes.Internal, err.Error())
}

// FromStatus turns a ttrpc status back into an error wrapping its kind, so
// that errors.Is(err, errdefs.ErrNotFound) holds on the daemon's side for
// what was ErrNotFound in the shim. An error that is no status (the
// connection failed) wraps errdefs.ErrUnavailable.
func FromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("shim: %w: %w", errdefs.ErrUnavailable, err)
	}
	switch st.Code() {
	case codes.Canceled:
		return fmt.Errorf("shim: %s: %w", st.Message(), context.Canceled)
	case codes.DeadlineExceeded:
		return fmt.Errorf("shim: %s: %w", st.Message(), context.DeadlineExceeded)
	}
	for _, kc := range kindCodes {
		if st.Code() == kc.code {
			return &kindError{msg: st.Message(), kind: kc.kind}
		}
	}
	return errors.New(st.Message())
}

// kindError is a message from the shim that already names its kind.
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }
