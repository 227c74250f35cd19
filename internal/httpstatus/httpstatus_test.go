package httpstatus

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/raind/condenser/internal/errdefs"
)

func TestOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("bad: %w", errdefs.ErrInvalidArgument), http.StatusBadRequest},
		{fmt.Errorf("x: %w", errdefs.ErrNotFound), http.StatusNotFound},
		{errdefs.ErrAlreadyExists, http.StatusConflict},
		{errdefs.ErrConflict, http.StatusConflict},
		{errdefs.ErrUnavailable, http.StatusServiceUnavailable},
		{errdefs.ErrNotImplemented, http.StatusNotImplemented},
		{errdefs.ErrPermissionDenied, http.StatusForbidden},
		{fmt.Errorf("write: %w: %w", errdefs.ErrNotFound, errdefs.ErrResourceExhausted), http.StatusInsufficientStorage},
		{errdefs.ErrDataLoss, http.StatusInternalServerError},
		{errors.New("plain"), http.StatusInternalServerError},
		{nil, http.StatusInternalServerError},
	} {
		if got := Of(tc.err); got != tc.want {
			t.Errorf("Of(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
