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
)

// Kind returns the first sentinel kind err wraps, or nil when it wraps none
// (an internal fault).
func Kind(err error) error {
	for _, k := range []error{ErrInvalidArgument, ErrNotFound, ErrAlreadyExists, ErrConflict,
		ErrUnavailable, ErrPermissionDenied, ErrDataLoss, ErrNotImplemented} {
		if errors.Is(err, k) {
			return k
		}
	}
	return nil
}
