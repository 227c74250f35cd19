package errdefs

import "net/http"

// HTTPStatus is the HTTP status of an error of err's kind: the one mapping
// both HTTP APIs (rest/, rest/docker) answer with. An error of no kind is
// an internal fault: 500.
func HTTPStatus(err error) int {
	switch Kind(err) {
	case ErrInvalidArgument:
		return http.StatusBadRequest
	case ErrNotFound:
		return http.StatusNotFound
	case ErrAlreadyExists, ErrConflict:
		return http.StatusConflict
	case ErrUnavailable:
		return http.StatusServiceUnavailable
	case ErrNotImplemented:
		return http.StatusNotImplemented
	case ErrPermissionDenied:
		return http.StatusForbidden
	case ErrResourceExhausted:
		// The storage under the daemon is full: WebDAV's 507, which
		// several storage APIs answer for the same condition.
		return http.StatusInsufficientStorage
	}
	return http.StatusInternalServerError
}
