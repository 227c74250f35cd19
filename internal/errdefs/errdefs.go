// Package errdefs is Condenser's error vocabulary: a few sentinel kinds that
// every package wraps with %w and context, and that each boundary (HTTP in
// rest/, ttrpc in shim/) translates in one place.
package errdefs

import "errors"

// The kinds. Wrap them: fmt.Errorf("pull %s: %w", ref, errdefs.ErrNotFound).
var (
	ErrInvalidArgument  = errors.New("invalid argument")
	ErrNotFound         = errors.New("not found")
	ErrAlreadyExists    = errors.New("already exists")
	ErrConflict         = errors.New("conflict")
	ErrUnavailable      = errors.New("unavailable")
	ErrPermissionDenied = errors.New("permission denied")
	ErrDataLoss         = errors.New("data corrupted")
	ErrNotImplemented   = errors.New("not implemented")
	// ErrResourceExhausted is a local resource used up: the disk under the
	// store is full (ENOSPC) or a quota is reached (EDQUOT). The user can
	// free space and retry; it is neither the request's fault nor a
	// remote's.
	ErrResourceExhausted = errors.New("resource exhausted")
)

// Kind returns the first sentinel kind err wraps, or nil when it wraps none
// (an internal fault).
func Kind(err error) error {
	// A resource exhausted comes first: a full disk is the cause, whatever
	// else the error was wrapped as on its way.
	for _, k := range []error{ErrResourceExhausted, ErrInvalidArgument, ErrNotFound, ErrAlreadyExists, ErrConflict,
		ErrUnavailable, ErrPermissionDenied, ErrDataLoss, ErrNotImplemented} {
		if errors.Is(err, k) {
			return k
		}
	}
	return nil
}
