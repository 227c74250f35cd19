package rest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/httpstatus"
	"github.com/raind/condenser/rest/api"
)

// maxBodyBytes bounds a JSON request body; larger ones get 413.
const maxBodyBytes = 1 << 20

// server holds what the handlers share.
type server struct {
	b   Backend
	log *slog.Logger
	ids atomic.Uint64 // numbers the failures logged, so a client's message can be found in the log

	// stopping is cancelled by Handler.Shutdown: it ends the requests that
	// would otherwise last as long as their client stays (see
	// streamContext).
	stopping context.Context
	stop     context.CancelFunc

	sessions *sessionSet // the WebSocket sessions (see Handler.Wait)
}

// NewHandler returns the HTTP handler of the Raind v1 API, serving b. log
// receives one debug line per request, the details of internal errors and
// panics; nil discards.
func NewHandler(b Backend, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &server{b: b, log: log, sessions: newSessionSet()}
	s.stopping, s.stop = context.WithCancel(context.Background())

	r := httprouter.New()
	r.RedirectTrailingSlash = true // /v1/containers/ → /v1/containers
	r.RedirectFixedPath = false    // ids and names are case-sensitive: never "fix" them
	r.HandleMethodNotAllowed = true
	r.HandleOPTIONS = true
	r.GlobalOPTIONS = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent) // the router has set Allow
	})
	r.NotFound = http.HandlerFunc(s.notFound)
	r.MethodNotAllowed = http.HandlerFunc(s.methodNotAllowed)
	r.PanicHandler = s.panicked
	s.routes(r)
	return &Handler{s: s, router: r}
}

// Shutdown ends, cleanly and at once, the requests that last as long as
// their client wants — the events stream, followed logs (each ends as if
// its subject had, with the stream's proper end), waits (503: the daemon
// is going away) and WebSocket sessions (close 1001 "daemon shutting
// down"; their processes go on) — so that http.Server.Shutdown, which
// waits for the requests in flight but does not cancel them, can finish.
// Other requests (a pull, a create) are left to finish; no new session
// starts (503). Register it with http.Server.RegisterOnShutdown.
func (h *Handler) Shutdown() {
	h.s.sessions.close()
	h.s.stop()
}

// Wait waits until the WebSocket sessions have ended, or ctx is done.
// http.Server.Shutdown does not wait for them (their connections are
// hijacked): call Wait after it, so that the sessions Shutdown ended have
// sent their close before the process exits.
func (h *Handler) Wait(ctx context.Context) error { return h.s.sessions.wait(ctx) }

// streamContext is the context of a request that may last indefinitely:
// the request's, cancelled also by Shutdown. Call the cancel function when
// the request ends.
func (s *server) streamContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(s.stopping, cancel)
	return ctx, func() { stop(); cancel() }
}

// endedByShutdown reports whether a request's stream context ended because
// of Shutdown (and not because its client went away).
func (s *server) endedByShutdown(r *http.Request) bool {
	return s.stopping.Err() != nil && r.Context().Err() == nil
}

// errShuttingDown answers a wait cut short by Shutdown.
var errShuttingDown = &kindError{kind: errdefs.ErrUnavailable, msg: "the daemon is shutting down: ask again when it is back"}

// routes registers every route. httprouter v1.3 panics when a static
// segment and a :param share a position, so GET /v1/containers/stats (all
// containers' stats) cannot be a route of its own beside
// GET /v1/containers/:id: it is served by the :id route, which dispatches
// id == "stats" (see getContainer).
func (s *server) routes(r *httprouter.Router) {
	r.GET("/v1/_ping", s.ping)
	r.HEAD("/v1/_ping", s.ping)
	r.GET("/v1/version", s.wrap(s.version))
	r.GET("/v1/info", s.wrap(s.info))
	r.GET("/v1/events", s.wrap(s.events))

	r.POST("/v1/containers", s.wrap(s.createContainer))
	r.GET("/v1/containers", s.wrap(s.listContainers))
	r.GET("/v1/containers/:id", s.wrap(s.getContainer)) // and /v1/containers/stats
	r.GET("/v1/containers/:id/stats", s.wrap(s.containerStats))
	r.GET("/v1/containers/:id/log", s.wrap(s.containerLog))
	r.GET("/v1/containers/:id/logs", s.wrap(s.containerLogs))
	r.GET("/v1/containers/:id/attach", s.wrap(s.attachContainer))      // WebSocket, Raind's
	r.GET("/v1/containers/:id/exec/attach", s.wrap(s.attachExec))      // WebSocket, Raind's
	r.GET("/v1/containers/:id/stdio", s.wrap(s.containerStdio))        // WebSocket
	r.GET("/v1/containers/:id/execs/:exec/stdio", s.wrap(s.execStdio)) // WebSocket
	r.POST("/v1/containers/:id/execs", s.wrap(s.createExec))
	r.GET("/v1/containers/:id/execs", s.wrap(s.listExecs))
	r.GET("/v1/containers/:id/execs/:exec", s.wrap(s.inspectExec))
	r.POST("/v1/containers/:id/execs/:exec/resize", s.wrap(s.resizeExec))
	r.POST("/v1/containers/:id/actions/start", s.wrap(s.startContainer))
	r.POST("/v1/containers/:id/actions/stop", s.wrap(s.stopContainer))
	r.POST("/v1/containers/:id/actions/kill", s.wrap(s.killContainer))
	r.POST("/v1/containers/:id/actions/restart", s.wrap(s.restartContainer))
	r.POST("/v1/containers/:id/actions/wait", s.wrap(s.waitContainer))
	r.POST("/v1/containers/:id/actions/exec", s.wrap(s.execContainer))
	r.POST("/v1/containers/:id/actions/resize", s.wrap(s.resizeContainer))
	r.DELETE("/v1/containers/:id/actions/delete", s.wrap(s.deleteContainer))

	r.POST("/v1/images", s.wrap(s.pullImage))
	r.GET("/v1/images", s.wrap(s.listImages))
	r.DELETE("/v1/images", s.wrap(s.removeImage))
	r.GET("/v1/images/status", s.wrap(s.imageStatus))
	r.GET("/v1/images/fs", s.wrap(s.imagesFS))
	r.POST("/v1/images/import", s.wrap(s.importImage))

	r.GET("/v1/networks", s.wrap(s.listNetworks))
	r.POST("/v1/networks", s.wrap(s.createNetwork))
	r.GET("/v1/networks/:name", s.wrap(s.getNetwork))
	r.DELETE("/v1/networks/:name", s.wrap(s.removeNetwork))

	s.policyRoutes(r)
}

// reply is a handler's successful answer: the envelope's message and data.
type reply struct {
	message string
	data    any
}

// handle is the shape of every API handler. It returns either a reply, which
// the wrapper sends as a success envelope, or an error, which the wrapper
// maps to a status code and a fail envelope; or neither, when it has written
// its response itself (the plain-text logs) or upgraded the connection (a
// WebSocket session).
type handle func(w http.ResponseWriter, r *http.Request, p httprouter.Params) (*reply, error)

// wrap turns a handle into an httprouter.Handle: the one place where
// envelopes and status codes are written.
func (s *server) wrap(h handle) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, p httprouter.Params) {
		rep, err := h(w, r, p)
		if err == nil && rep == nil {
			return
		}
		// Once a stream has started, the status line is gone. An NDJSON
		// stream that promised one ends with the envelope as its last line;
		// any other just ends (the client sees it cut short).
		rw := tracked(w)
		started := rw != nil && rw.status != 0
		if started && !rw.envelopeLast {
			if err != nil {
				s.streamEnded(r, err)
			}
			return
		}

		env, status := api.Envelope{Status: api.StatusSuccess}, http.StatusOK
		if err != nil {
			status = statusOf(err)
			env.Status, env.Message = api.StatusFail, s.message(r, status, err)
		} else {
			env.Message, env.Data = rep.message, rep.data
		}
		if started {
			writeLine(w, env)
			return
		}
		writeJSON(w, status, env)
	}
}

// statusOf returns the HTTP status of err. It is the one place where error
// kinds (internal/errdefs) become status codes (httpstatus.Of, shared
// with the Docker API).
func statusOf(err error) int {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return http.StatusRequestEntityTooLarge
	}
	return httpstatus.Of(err)
}

// message is what the client reads for an error of the given status: the
// error itself for the kinds it can act on, a generic line (and the detail in
// the log) for internal faults.
func (s *server) message(r *http.Request, status int, err error) string {
	switch status {
	case http.StatusRequestEntityTooLarge:
		limit := int64(maxBodyBytes)
		if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
			limit = mbe.Limit
		}
		return fmt.Sprintf("request body too large: the limit is %d bytes", limit)
	case http.StatusInternalServerError:
		if r.Context().Err() != nil {
			// The client has gone: nobody reads this, and it is no fault.
			s.log.Debug("request abandoned by the client", "method", r.Method, "path", r.URL.Path, "err", err)
			return "request cancelled"
		}
		id := s.ids.Add(1)
		s.log.Error("request failed", "request", id, "method", r.Method, "path", r.URL.Path, "err", err)
		return internalMessage(id)
	}
	s.log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	return err.Error()
}

func internalMessage(id uint64) string {
	return fmt.Sprintf("internal error (request %d): the details are in the daemon's log", id)
}

// streamEnded logs an error that ended a stream after its status line went
// out.
func (s *server) streamEnded(r *http.Request, err error) {
	if r.Context().Err() != nil {
		s.log.Debug("stream ended: client gone", "method", r.Method, "path", r.URL.Path, "err", err)
		return
	}
	s.log.Warn("stream ended by an error", "method", r.Method, "path", r.URL.Path, "err", err)
}

func (s *server) notFound(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusNotFound, api.Envelope{
		Status:  api.StatusFail,
		Message: fmt.Sprintf("no such route: %s %s (the API is under /%s)", r.Method, r.URL.Path, api.Version),
	})
}

func (s *server) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusMethodNotAllowed, api.Envelope{
		Status:  api.StatusFail,
		Message: fmt.Sprintf("method %s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, w.Header().Get("Allow")),
	})
}

// panicked is the router's PanicHandler: the stack goes to the log, the
// client gets a generic 500 — or, when its response has already started, a
// connection cut short.
func (s *server) panicked(w http.ResponseWriter, r *http.Request, v any) {
	if v == http.ErrAbortHandler {
		panic(v)
	}
	id := s.ids.Add(1)
	s.log.Error("panic in handler", "request", id, "method", r.Method, "path", r.URL.Path,
		"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	if rw := tracked(w); rw != nil && rw.status != 0 {
		panic(http.ErrAbortHandler) // net/http closes the connection without logging
	}
	writeJSON(w, http.StatusInternalServerError, api.Envelope{Status: api.StatusFail, Message: internalMessage(id)})
}

// writeJSON writes v as the whole response.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(api.Envelope{Status: api.StatusFail, Message: "internal error: cannot encode the response"})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// writeEncoded writes a success envelope whose data is data, JSON already
// encoded, as the whole response: byte for byte what writeJSON writes for
// api.Envelope{Status: StatusSuccess, Message: message, Data: data}, but
// without encoding (or, as json.Marshal does with a json.RawMessage,
// scanning) the data again.
func writeEncoded(w http.ResponseWriter, message string, data []byte) {
	head, err := json.Marshal(api.Envelope{Status: api.StatusSuccess, Message: message})
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, api.Envelope{Status: api.StatusFail, Message: "internal error: cannot encode the response"})
		return
	}
	head = append(head[:len(head)-1], `,"data":`...) // in place of the closing brace
	const tail = "}\n"
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	// The length, known, spares the client a chunked body, and lets the
	// data go out in one write rather than through the chunk buffer.
	h.Set("Content-Length", strconv.Itoa(len(head)+len(data)+len(tail)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(head)
	_, _ = w.Write(data)
	_, _ = io.WriteString(w, tail)
}

// writeLine writes v as one NDJSON line of a started stream.
func writeLine(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(api.Envelope{Status: api.StatusFail, Message: "internal error: cannot encode the response"})
	}
	_, _ = w.Write(append(b, '\n'))
	_ = http.NewResponseController(w).Flush()
}

// Handler is the HTTP handler of the Raind v1 API. It wraps every response
// in a responseWriter, so that the wrapper and the panic handler know
// whether a response has started, and logs each request.
type Handler struct {
	s      *server
	router *httprouter.Router
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rw := &responseWriter{ResponseWriter: w}
	// The request line is logged only when debug logging is on: its
	// attributes (boxed into interfaces) and the clock reading would
	// otherwise cost every request for nothing.
	if !h.s.log.Enabled(r.Context(), slog.LevelDebug) {
		h.router.ServeHTTP(rw, r)
		return
	}
	start := time.Now()
	defer func() {
		h.s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", rw.status,
			"bytes", rw.bytes, "duration", time.Since(start))
	}()
	h.router.ServeHTTP(rw, r)
}

// responseWriter records whether (and with which status) a response has
// started. It has no Hijack of its own: websocket.Accept finds the
// original writer's through Unwrap, as http.ResponseController does.
type responseWriter struct {
	http.ResponseWriter
	status       int   // 0 until the status line is written (101 too: the upgrade is the response)
	bytes        int64 // body bytes written
	envelopeLast bool  // an NDJSON stream that ends with the envelope as its last line
}

func tracked(w http.ResponseWriter) *responseWriter {
	rw, _ := w.(*responseWriter)
	return rw
}

func (w *responseWriter) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// FlushError lets http.ResponseController flush through the wrapper.
func (w *responseWriter) FlushError() error {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap gives http.ResponseController (and websocket.Accept) the other
// powers of the original writer (deadlines, full duplex, hijacking).
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
