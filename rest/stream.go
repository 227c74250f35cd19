package rest

import (
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"
)

// errStreamClosed is returned to a backend that calls back after its call
// has returned.
var errStreamClosed = errors.New("stream closed")

// stream is a streamed response (plain-text logs, NDJSON). The status line
// and headers go out with the first write — or at once, with begin — so
// that an error before any output still gets its status code and envelope.
// Every write is flushed. It is safe for concurrent use, and writes after
// close fail: a backend calling back late cannot touch a finished response.
type stream struct {
	w           http.ResponseWriter
	rc          *http.ResponseController
	contentType string

	mu      sync.Mutex
	started bool
	closed  bool
	err     error // the first write error: the client has gone
}

func newStream(w http.ResponseWriter, contentType string) *stream {
	return &stream{w: w, rc: http.NewResponseController(w), contentType: contentType}
}

// envelopeLast makes the stream end with the response envelope as its last
// line once it has started (NDJSON progress of a pull or an import).
func (s *stream) envelopeLast() *stream {
	if rw := tracked(s.w); rw != nil {
		rw.envelopeLast = true
	}
	return s
}

// begin sends the status line and headers now, for streams that may stay
// silent for long (follow, events): the client learns at once that the
// request was accepted.
func (s *stream) begin() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errStreamClosed
	}
	s.start()
	if err := s.rc.Flush(); err != nil && s.err == nil {
		s.err = err
	}
	return s.err
}

// start writes the headers; s.mu is held.
func (s *stream) start() {
	if s.started {
		return
	}
	s.started = true
	h := s.w.Header()
	h.Set("Content-Type", s.contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	// A stream lasts as long as it lasts: lift the server's write timeout.
	_ = s.rc.SetWriteDeadline(time.Time{})
	s.w.WriteHeader(http.StatusOK)
}

// write sends p and flushes it.
func (s *stream) write(p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errStreamClosed
	}
	if s.err != nil {
		return s.err
	}
	s.start()
	if _, err := s.w.Write(p); err != nil {
		s.err = err
		return err
	}
	if err := s.rc.Flush(); err != nil {
		s.err = err
	}
	return s.err
}

// writeJSON sends v as one NDJSON line.
func (s *stream) writeJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.write(append(b, '\n'))
}

// close ends the writes and reports whether the stream had started.
func (s *stream) close() (started bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return s.started
}

// finish closes the stream, and when nothing was written sends an empty
// 200 with the stream's content type (an empty log is still a log).
func (s *stream) finish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.start()
}
