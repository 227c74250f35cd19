// Package httpstatus maps Condenser's error kinds (internal/errdefs) to
// HTTP status codes: the one mapping both HTTP APIs (rest/, rest/docker)
// answer with. A package of its own, so that errdefs, which the shim uses,
// does not bring net/http into it.
package httpstatus

import (
	"net/http"

	"github.com/raind/condenser/internal/errdefs"
)

// Of is the HTTP status of an error of err's kind. An error of no kind is
// an internal fault: 500.
func Of(err error) int {
	switch errdefs.Kind(err) {
	case errdefs.ErrInvalidArgument:
		return http.StatusBadRequest
	case errdefs.ErrNotFound:
		return http.StatusNotFound
	case errdefs.ErrAlreadyExists, errdefs.ErrConflict:
		return http.StatusConflict
	case errdefs.ErrUnavailable:
		return http.StatusServiceUnavailable
	case errdefs.ErrNotImplemented:
		return http.StatusNotImplemented
	case errdefs.ErrPermissionDenied:
		return http.StatusForbidden
	case errdefs.ErrResourceExhausted:
		// The storage under the daemon is full: WebDAV's 507, which
		// several storage APIs answer for the same condition.
		return http.StatusInsufficientStorage
	}
	return http.StatusInternalServerError
}
