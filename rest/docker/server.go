package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moby/moby/api/types/common"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/httpstatus"
)

// The API versions served: clients negotiate min(theirs, APIVersion). The
// docker CLI 28 speaks 1.50; 1.52 dropped fields (the legacy
// NetworkSettings ones, events' status/id/from) that clients at 1.50 read.
const (
	APIVersion    = "1.50"
	MinAPIVersion = "1.24"
)

// maxBodyBytes bounds a JSON request body; larger ones get 413.
const maxBodyBytes = 1 << 20

// Deps is what the Docker API serves: the daemon's supervisor and image
// store, each seen through the small interface its handlers use (declared
// beside them). One value may fill several fields.
type Deps struct {
	Containers Containers
	Streams    Streams
	Images     Images
	Networks   Networks
	Volumes    Volumes
	System     System
}

// server holds what the handlers share.
type server struct {
	Deps
	log *slog.Logger
	ids atomic.Uint64 // numbers the internal failures logged

	// stopping is cancelled by Shutdown: it ends the requests that last as
	// long as their client stays (events, logs -f, wait, stats streams).
	stopping context.Context
	stop     context.CancelFunc

	events *eventLog // recent events, for /events (events.go)

	hijacked sync.WaitGroup // the hijacked connections' sessions
	mu       sync.Mutex
	conns    map[net.Conn]struct{} // the hijacked connections, closed by Shutdown
	closed   bool
}

// Handler serves the Docker Engine API.
type Handler struct {
	s   *server
	mux *http.ServeMux
}

// NewHandler returns the Docker Engine API over d. log receives one debug
// line per request and the details of internal errors; nil discards.
//
// Docker's routes put static segments beside parameters
// (/containers/json beside /containers/{id}/json) and image names carry
// slashes, which httprouter cannot express: the standard library's
// ServeMux routes them.
func NewHandler(d Deps, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &server{Deps: d, log: log, conns: map[net.Conn]struct{}{}}
	s.stopping, s.stop = context.WithCancel(context.Background())
	// The event log that /events replays; its feeding goroutine ends
	// with Shutdown.
	s.startEvents()
	m := http.NewServeMux()
	s.systemRoutes(m)
	s.containerRoutes(m)
	s.streamRoutes(m)
	s.imageRoutes(m)
	s.networkRoutes(m)
	s.volumeRoutes(m)
	return &Handler{s: s, mux: m}
}

// versionPrefix is the optional /vN.NN at the start of every path.
var versionPrefix = regexp.MustCompile(`^/v([0-9]+\.[0-9]+)(/.*)$`)

type versionKey struct{}

// requestVersion is the API version a request speaks: its path's, else
// APIVersion.
func requestVersion(r *http.Request) string {
	if v, ok := r.Context().Value(versionKey{}).(string); ok {
		return v
	}
	return APIVersion
}

// versionAtLeast reports whether the request speaks API version v or later.
func versionAtLeast(r *http.Request, v string) bool {
	return compareVersions(requestVersion(r), v) >= 0
}

// compareVersions compares two MAJOR.MINOR versions.
func compareVersions(a, b string) int {
	am, an := splitVersion(a)
	bm, bn := splitVersion(b)
	if am != bm {
		return am - bm
	}
	return an - bn
}

func splitVersion(v string) (int, int) {
	maj, min, _ := strings.Cut(v, ".")
	m, _ := strconv.Atoi(maj)
	n, _ := strconv.Atoi(min)
	return m, n
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if m := versionPrefix.FindStringSubmatch(r.URL.Path); m != nil {
		v := m[1]
		if compareVersions(v, APIVersion) > 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("client version %s is too new. Maximum supported API version is %s", v, APIVersion))
			return
		}
		if compareVersions(v, MinAPIVersion) < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", v, MinAPIVersion))
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), versionKey{}, v))
		r.URL.Path, r.URL.RawPath = m[2], ""
	}
	if _, pattern := h.mux.Handler(r); pattern == "" {
		// The mux would answer a plain-text 404 or 405; Docker's
		// clients read JSON.
		writeError(w, http.StatusNotFound, "page not found")
		return
	}
	w.Header().Set("Api-Version", APIVersion)
	w.Header().Set("Ostype", "linux")
	w.Header().Set("Server", "Condenser (linux)")
	h.mux.ServeHTTP(w, r)
	h.s.log.Debug("docker request", "method", r.Method, "path", r.URL.Path, "duration", time.Since(start))
}

// Shutdown ends, at once, the requests that last as long as their client
// wants (events, followed logs, waits, stats streams) and the hijacked
// attach and exec sessions (their processes go on). Register it with
// http.Server.RegisterOnShutdown.
func (h *Handler) Shutdown() {
	h.s.stop()
	h.s.mu.Lock()
	h.s.closed = true
	for c := range h.s.conns {
		_ = c.Close()
	}
	h.s.mu.Unlock()
}

// Wait waits until the hijacked sessions have ended, or ctx is done.
func (h *Handler) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { h.s.hijacked.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// handle is the shape of the handlers: an error returned before the
// response started is written as Docker writes errors; after, the
// connection just ends (logged).
type handle func(w http.ResponseWriter, r *http.Request) error

// wrap turns a handle into an http.HandlerFunc: the one place where errors
// become status codes and messages.
func (s *server) wrap(h handle) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rw := &trackingWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				id := s.ids.Add(1)
				s.log.Error("panic in Docker API handler", "request", id, "method", r.Method, "path", r.URL.Path,
					"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if rw.started || rw.hijacked {
					panic(http.ErrAbortHandler)
				}
				writeError(w, http.StatusInternalServerError, internalMessage(id))
			}
		}()
		err := h(rw, r)
		if err == nil {
			return
		}
		if rw.started || rw.hijacked {
			if r.Context().Err() == nil {
				s.log.Warn("Docker API stream ended by an error", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			return
		}
		status := statusOf(err)
		writeError(w, status, s.message(r, status, err))
	}
}

// statusOf returns the HTTP status of err: the one place where error kinds
// (internal/errdefs) become Docker's status codes.
func statusOf(err error) int {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return http.StatusRequestEntityTooLarge
	}
	if he, ok := errors.AsType[*httpError](err); ok {
		return he.status
	}
	return httpstatus.Of(err)
}

// message is what the client reads for an error: the error itself, or for
// an internal fault a generic line (the detail goes to the log).
func (s *server) message(r *http.Request, status int, err error) string {
	if status != http.StatusInternalServerError {
		s.log.Debug("Docker API request refused", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
		if he, ok := errors.AsType[*httpError](err); ok {
			return he.msg
		}
		return err.Error()
	}
	if r.Context().Err() != nil {
		return "request cancelled"
	}
	id := s.ids.Add(1)
	s.log.Error("Docker API request failed", "request", id, "method", r.Method, "path", r.URL.Path, "err", err)
	return internalMessage(id)
}

func internalMessage(id uint64) string {
	return fmt.Sprintf("internal error (request %d): the details are in the daemon's log", id)
}

// httpError is an error whose status and message Docker fixes, e.g. 404
// "No such container: web". It wraps the error it replaces, whose kind
// still tells what happened.
type httpError struct {
	status int
	msg    string
	err    error
}

func (e *httpError) Error() string { return e.msg }
func (e *httpError) Unwrap() error { return e.err }

// noSuch rewrites a not-found error about ref into Docker's words ("No such
// container: ref"); other errors pass unchanged.
func noSuch(what, ref string, err error) error {
	if err == nil || errdefs.Kind(err) != errdefs.ErrNotFound {
		return err
	}
	return &httpError{status: http.StatusNotFound, msg: fmt.Sprintf("No such %s: %s", what, ref), err: err}
}

// invalid is a 400 with msg.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), errdefs.ErrInvalidArgument)
}

// writeError writes Docker's error body.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, common.ErrorResponse{Message: msg})
}

// writeJSON writes v as the whole response, with Content-Type exactly
// application/json (docker-py compares it).
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, err = w.Write(append(b, '\n'))
	return err
}

// noContent answers 204.
func noContent(w http.ResponseWriter) error {
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// decodeJSON decodes the request's JSON body into v; an empty body leaves v
// as it is.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body := http.MaxBytesReader(w, r.Body, maxBodyBytes)
	dec := json.NewDecoder(body)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return err
		}
		return invalid("invalid JSON body: %v", err)
	}
	return nil
}

// boolQuery reads a boolean query parameter as Docker does: "", "0",
// "no", "false", "none" are false (as is absence), anything else true.
func boolQuery(r *http.Request, name string) bool {
	v := strings.ToLower(strings.TrimSpace(r.URL.Query().Get(name)))
	switch v {
	case "", "0", "no", "false", "none":
		return false
	}
	return true
}

// intQuery reads an integer query parameter; absent is def.
func intQuery(r *http.Request, name string, def int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, invalid("invalid value for %s: %q: not an integer", name, v)
	}
	return n, nil
}

// streamContext is the context of a request that may last indefinitely:
// the request's, cancelled also by Shutdown. Call the cancel function when
// the request ends.
func (s *server) streamContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(s.stopping, cancel)
	return ctx, func() { stop(); cancel() }
}

// flush sends what is buffered of the response, headers included.
func flush(w http.ResponseWriter) {
	_ = http.NewResponseController(w).Flush()
}

// hijack takes over the connection of an attach or exec start, as Docker
// does: "101 UPGRADED" when the client asked for Upgrade: tcp, else "200
// OK", with contentType (vnd.docker.raw-stream or
// vnd.docker.multiplexed-stream), and no body framing from then on. The
// session is tracked until done is called: Shutdown closes its connection
// and Wait waits for it. in is what the client sends after its request:
// what the server had already read, then the connection itself — never the
// server's buffered reader beyond that, which cancels the request's context
// when the client half-closes (a session goes on after that: use a context
// of its own).
func (s *server) hijack(w http.ResponseWriter, r *http.Request, contentType string) (conn net.Conn, in io.Reader, done func(), err error) {
	s.mu.Lock()
	closed := s.closed
	if !closed {
		s.hijacked.Add(1)
	}
	s.mu.Unlock()
	if closed {
		return nil, nil, nil, fmt.Errorf("the daemon is shutting down: %w", errdefs.ErrUnavailable)
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.hijacked.Done()
		return nil, nil, nil, fmt.Errorf("hijack the connection: %w", err)
	}
	if tw, ok := w.(*trackingWriter); ok {
		tw.hijacked = true
	}
	head := "HTTP/1.1 200 OK\r\nContent-Type: " + contentType + "\r\n"
	if strings.EqualFold(r.Header.Get("Upgrade"), "tcp") {
		head = "HTTP/1.1 101 UPGRADED\r\nContent-Type: " + contentType + "\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
	}
	head += "Api-Version: " + APIVersion + "\r\n\r\n"
	_ = conn.SetDeadline(time.Time{}) // the server's timeouts were for the request
	if _, err := io.WriteString(conn, head); err != nil {
		_ = conn.Close()
		s.hijacked.Done()
		return nil, nil, nil, fmt.Errorf("answer the upgrade: %w", err)
	}
	s.mu.Lock()
	s.conns[conn] = struct{}{}
	s.mu.Unlock()
	var once sync.Once
	done = func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.conns, conn)
			s.mu.Unlock()
			_ = conn.Close()
			s.hijacked.Done()
		})
	}
	in = conn
	if n := rw.Reader.Buffered(); n > 0 {
		head, _ := rw.Reader.Peek(n)
		in = io.MultiReader(bytes.NewReader(bytes.Clone(head)), conn)
	}
	return conn, in, done, nil
}

// trackingWriter records whether a response has started or its connection
// was hijacked, so that wrap knows whether it may still write an error.
type trackingWriter struct {
	http.ResponseWriter
	started  bool
	hijacked bool
}

func (w *trackingWriter) WriteHeader(code int) {
	if code >= 200 {
		w.started = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *trackingWriter) Write(p []byte) (int, error) {
	w.started = true
	return w.ResponseWriter.Write(p)
}

// FlushError lets http.ResponseController flush through the wrapper.
func (w *trackingWriter) FlushError() error {
	w.started = true
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap gives http.ResponseController the original writer's other powers
// (hijacking, deadlines).
func (w *trackingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
