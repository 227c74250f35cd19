package errdefs

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
)

func TestHTTPStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("bad: %w", ErrInvalidArgument), http.StatusBadRequest},
		{fmt.Errorf("x: %w", ErrNotFound), http.StatusNotFound},
		{ErrAlreadyExists, http.StatusConflict},
		{ErrConflict, http.StatusConflict},
		{ErrUnavailable, http.StatusServiceUnavailable},
		{ErrNotImplemented, http.StatusNotImplemented},
		{ErrPermissionDenied, http.StatusForbidden},
		{fmt.Errorf("write: %w: %w", ErrNotFound, ErrResourceExhausted), http.StatusInsufficientStorage},
		{ErrDataLoss, http.StatusInternalServerError},
		{errors.New("plain"), http.StatusInternalServerError},
		{nil, http.StatusInternalServerError},
	} {
		if got := HTTPStatus(tc.err); got != tc.want {
			t.Errorf("HTTPStatus(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
