package rest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/errdefs"
)

// kindError is an error of one errdefs kind whose message is exactly msg
// (fmt.Errorf("…: %w", kind) would append ": invalid argument").
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// invalidf is a 400 with the given message.
func invalidf(format string, args ...any) error {
	return &kindError{kind: errdefs.ErrInvalidArgument, msg: fmt.Sprintf(format, args...)}
}

// decodeBody decodes the JSON request body into v: exactly one JSON value,
// no unknown fields, at most maxBodyBytes (else an *http.MaxBytesError,
// which is 413). An empty body is an error unless optional.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, optional bool) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			if optional {
				return nil
			}
			return invalidf("request body is empty: a JSON object is required")
		}
		return bodyError(err)
	}
	switch _, err := dec.Token(); {
	case errors.Is(err, io.EOF):
		return nil
	case err == nil:
		return invalidf("invalid request body: more than one JSON value")
	default:
		return bodyError(err)
	}
}

// bodyError explains a decoding error.
func bodyError(err error) error {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return err
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if te.Field == "" {
			return invalidf("invalid request body: a JSON object is required, not %s", te.Value)
		}
		return invalidf("invalid request body: field %q: %s is not valid here (want %s)", te.Field, te.Value, jsonKind(te.Type.Kind().String()))
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return invalidf("invalid request body: truncated JSON")
	}
	return invalidf("invalid request body: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// jsonKind names a Go kind the way a JSON author thinks of it.
func jsonKind(k string) string {
	switch k {
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	case "bool":
		return "true or false"
	case "string":
		return "a string"
	case "float32", "float64":
		return "a number"
	}
	if strings.Contains(k, "int") {
		return "an integer"
	}
	return k
}

// noBody accepts an empty body, or an empty JSON object, where the contract
// defines none.
func noBody(w http.ResponseWriter, r *http.Request) error {
	var none struct{}
	return decodeBody(w, r, &none, true)
}

// queryBool reads a boolean query parameter: absent is def, present without
// a value (?force) is true.
func queryBool(q url.Values, key string, def bool) (bool, error) {
	vs, ok := q[key]
	if !ok || len(vs) == 0 {
		return def, nil
	}
	switch strings.ToLower(vs[0]) {
	case "", "1", "true", "t", "yes", "y", "on":
		return true, nil
	case "0", "false", "f", "no", "n", "off":
		return false, nil
	}
	return false, invalidf("query parameter %s=%q: want 1 or 0 (true or false)", key, vs[0])
}

// queryTimeout reads ?timeout=SECONDS (a non-negative integer); absent is
// def.
func queryTimeout(q url.Values, def time.Duration) (time.Duration, error) {
	v := q.Get("timeout")
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || n < 0 {
		return 0, invalidf("query parameter timeout=%q: want a number of seconds ≥ 0", v)
	}
	return time.Duration(n) * time.Second, nil
}

// queryLines reads a line count: absent is def; "all" (or a negative number)
// is every line, which is -1.
func queryLines(q url.Values, key string, def int) (int, error) {
	v := q.Get(key)
	switch {
	case v == "":
		return def, nil
	case strings.EqualFold(v, "all"):
		return -1, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, invalidf("query parameter %s=%q: want a number of lines or \"all\"", key, v)
	}
	if n < 0 {
		return -1, nil
	}
	return n, nil
}

// queryLabels reads repeated ?label=KEY=VALUE (or ?label=KEY: any value,
// which is the empty string in the map).
func queryLabels(q url.Values) (map[string]string, error) {
	vs := q["label"]
	if len(vs) == 0 {
		return nil, nil
	}
	labels := make(map[string]string, len(vs))
	for _, v := range vs {
		k, val, _ := strings.Cut(v, "=")
		if k == "" {
			return nil, invalidf("query parameter label=%q: want KEY=VALUE or KEY", v)
		}
		labels[k] = val
	}
	return labels, nil
}

// parseSince reads a log's start: RFC 3339, Unix seconds (with an optional
// fraction), or a duration back from now ("10m").
func parseSince(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if secs, frac, ok := strings.Cut(v, "."); isDigits(secs) && (!ok || isDigits(frac)) {
		s, err := strconv.ParseInt(secs, 10, 64)
		if err == nil {
			var ns int64
			if ok {
				frac = (frac + "000000000")[:9]
				ns, _ = strconv.ParseInt(frac, 10, 64)
			}
			return time.Unix(s, ns), nil
		}
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, invalidf("query parameter since=%q: want an RFC 3339 time, Unix seconds or a duration such as 10m", v)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// parseSignal reads a signal: a name with or without SIG (KILL, sigterm,
// SIGHUP) or a number. Empty is SIGKILL, as for docker kill.
func parseSignal(v string) (syscall.Signal, error) {
	if v == "" {
		return syscall.SIGKILL, nil
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 1 || n > 64 {
			return 0, invalidf("signal %d is out of range (1-64)", n)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(v)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, invalidf("unknown signal %q: want a name such as TERM or KILL, or a number", v)
}

// wantsNDJSON reports whether the client asked for an NDJSON stream.
func wantsNDJSON(r *http.Request) bool {
	for _, part := range strings.Split(strings.Join(r.Header.Values("Accept"), ","), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "application/x-ndjson" {
			return true
		}
	}
	return false
}
