package docker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/shim/logging"
	"github.com/raind/condenser/supervisor"
)

// timestampFormat is Docker's RFC 3339 with nanoseconds always nine
// digits (the columns line up).
const timestampFormat = "2006-01-02T15:04:05.000000000Z07:00"

// errUntil ends the reading of a log at ?until=.
var errUntil = errors.New("until reached")

// logs is GET /containers/{id}/logs?stdout=&stderr=&follow=&tail=&since=&until=&timestamps=:
// each entry framed (8-byte header) for a container without a terminal,
// raw for one with. A followed log ends when the container has stopped
// and its log is drained, at until, or at Shutdown; each entry is flushed.
func (s *server) logs(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("id")
	o := supervisor.LogOptions{Stdout: boolQuery(r, "stdout"), Stderr: boolQuery(r, "stderr"), Follow: boolQuery(r, "follow"), Tail: -1}
	if !o.Stdout && !o.Stderr {
		return invalid("Bad parameters: you must choose at least one stream")
	}
	// Docker reads a tail that is not a number ("all") as all of it.
	if n, err := strconv.Atoi(r.URL.Query().Get("tail")); err == nil && n >= 0 {
		o.Tail = n
	}
	since, err := timeQuery(r, "since")
	if err != nil {
		return err
	}
	until, err := timeQuery(r, "until")
	if err != nil {
		return err
	}
	o.Since = since
	stamps := boolQuery(r, "timestamps")
	c, err := s.Streams.Get(r.Context(), ref)
	if err != nil {
		return noSuch("container", ref, err)
	}
	ctx, cancel := s.streamContext(r)
	defer cancel()
	if o.Follow && !until.IsZero() {
		var stop context.CancelFunc
		ctx, stop = context.WithDeadline(ctx, until)
		defer stop()
	}
	tty := c.Request.Tty
	w.Header().Set("Content-Type", streamType(r, tty))
	w.WriteHeader(http.StatusOK)
	if o.Follow {
		flush(w) // the client learns at once that its request is taken
	}
	sw := &stdWriter{w: w, tty: tty}
	var line []byte
	err = s.Streams.Logs(ctx, c.ID, o, func(e logging.Entry) error {
		if !until.IsZero() && e.Time.After(until) {
			return errUntil
		}
		p := []byte(e.Log)
		if stamps {
			line = append(e.Time.UTC().AppendFormat(line[:0], timestampFormat), ' ')
			p = append(line, e.Log...)
			line = p
		}
		if err := sw.write(logStream(e), p); err != nil {
			return err
		}
		if o.Follow {
			flush(w)
		}
		return nil
	})
	if errors.Is(err, errUntil) || ctx.Err() != nil {
		return nil
	}
	return err
}

// timeQuery reads a time parameter as Docker gives it: Unix seconds,
// with an optional fraction ("1700000000.123456789"); absent or 0 is the
// zero time. An RFC 3339 time is taken too.
func timeQuery(r *http.Request, name string) (time.Time, error) {
	v := strings.TrimSpace(r.URL.Query().Get(name))
	if v == "" {
		return time.Time{}, nil
	}
	t, err := parseLogTime(v)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid value for %s: %q: want Unix seconds[.nanoseconds]: %w", name, v, errdefs.ErrInvalidArgument)
	}
	return t, nil
}

// parseLogTime reads "SECONDS[.FRACTION]" or RFC 3339.
func parseLogTime(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	secs, frac, hasFrac := strings.Cut(v, ".")
	sec, err := strconv.ParseInt(secs, 10, 64)
	if err != nil || sec < 0 || sec > 1<<40 {
		return time.Time{}, errors.New("not a timestamp")
	}
	var nsec int64
	if hasFrac {
		if frac == "" || len(frac) > 9 || strings.TrimLeft(frac, "0123456789") != "" {
			return time.Time{}, errors.New("not a timestamp")
		}
		nsec, _ = strconv.ParseInt((frac + "000000000")[:9], 10, 64)
	}
	if sec == 0 && nsec == 0 {
		return time.Time{}, nil
	}
	return time.Unix(sec, nsec).UTC(), nil
}
