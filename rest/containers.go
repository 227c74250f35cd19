package rest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/raind/condenser/rest/api"
)

// defaultStopTimeout is the grace period between SIGTERM and SIGKILL when
// ?timeout= is absent.
const defaultStopTimeout = 10 * time.Second

// defaultTailLines is the number of lines GET …/log returns without
// ?tail_lines=.
const defaultTailLines = 100

// statsID is the :id that GET /v1/containers/:id treats as
// GET /v1/containers/stats (see routes).
const statsID = "stats"

func (s *server) createContainer(w http.ResponseWriter, r *http.Request, _ httprouter.Params) (*reply, error) {
	var req api.CreateContainerRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return nil, err
	}
	if err := validateCreate(&req); err != nil {
		return nil, err
	}
	id, err := s.b.CreateContainer(r.Context(), req)
	if err != nil {
		return nil, err
	}
	return &reply{"container created", api.IDResponse{ID: id}}, nil
}

// validateCreate checks what the HTTP contract itself fixes: an image, and
// not the name "stats", which GET /v1/containers/stats takes.
// Everything else — restart policy, network, published ports, resources,
// labels, mounts, env, name syntax, the image reference — is the backend's
// to judge (an ErrInvalidArgument from it is a 400 all the same, a host
// port already taken a 409).
func validateCreate(req *api.CreateContainerRequest) error {
	if strings.TrimSpace(req.Image) == "" {
		return invalidf("image is required")
	}
	if req.Name == statsID {
		return invalidf("the name %q is reserved: GET /v1/containers/stats is the stats of every container", statsID)
	}
	return nil
}

// listContainers is GET /v1/containers. Without ?all= it lists every
// container, as the Raind CLI expects; ?all=0 lists the running ones.
func (s *server) listContainers(w http.ResponseWriter, r *http.Request, _ httprouter.Params) (*reply, error) {
	q := r.URL.Query()
	all, err := queryBool(q, "all", true)
	if err != nil {
		return nil, err
	}
	labels, err := queryLabels(q)
	if err != nil {
		return nil, err
	}
	if el, ok := s.b.(EncodedLister); ok {
		list, n, err := el.ListContainersJSON(r.Context(), all, labels)
		if err != nil {
			return nil, err
		}
		writeEncoded(w, fmt.Sprintf("%d containers", n), list)
		return nil, nil
	}
	list, err := s.b.ListContainers(r.Context(), all, labels)
	if err != nil {
		return nil, err
	}
	if list == nil {
		list = []api.ContainerSummary{}
	}
	for i := range list {
		normalizeSummary(&list[i])
	}
	return &reply{fmt.Sprintf("%d containers", len(list)), list}, nil
}

// EncodedLister is a Backend that keeps GET /v1/containers encoded: the
// answer to the request clients repeat most is then written, not encoded,
// each time (see internal/backend).
type EncodedLister interface {
	// ListContainersJSON is ListContainers as the JSON array the handler
	// would send (empty lists as [], see normalizeSummary), and its length.
	// The bytes may be shared: the caller does not modify them.
	ListContainersJSON(ctx context.Context, all bool, labels map[string]string) (list []byte, n int, err error)
}

// normalizeSummary sends empty lists as [] rather than null.
func normalizeSummary(c *api.ContainerSummary) {
	if c.Command == nil {
		c.Command = []string{}
	}
	if c.Forwards == nil {
		c.Forwards = []api.Forward{}
	}
}

// getContainer is GET /v1/containers/:id, and GET /v1/containers/stats (see
// routes): a container named "stats" is inspected by its id.
func (s *server) getContainer(w http.ResponseWriter, r *http.Request, p httprouter.Params) (*reply, error) {
	if p.ByName("id") == statsID {
		return s.allContainerStats(w, r, p)
	}
	c, err := s.b.InspectContainer(r.Context(), p.ByName("id"))
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, errors.New("backend: InspectContainer returned neither a container nor an error")
	}
	normalizeSummary(&c.ContainerSummary)
	if c.Config.Args == nil {
		c.Config.Args = []string{}
	}
	if c.Config.Env == nil {
		c.Config.Env = []string{}
	}
	if c.Config.Mounts == nil {
		c.Config.Mounts = []api.Mount{}
	}
	if ns := c.NetworkSettings; ns != nil && ns.Ports == nil {
		ns.Ports = []api.PortBinding{}
	}
	return &reply{"container " + c.Name, c}, nil
}

func (s *server) allContainerStats(_ http.ResponseWriter, r *http.Request, _ httprouter.Params) (*reply, error) {
	stats, err := s.b.AllContainerStats(r.Context())
	if err != nil {
		return nil, err
	}
	if stats == nil {
		stats = []api.ContainerStats{}
	}
	return &reply{fmt.Sprintf("stats of %d containers", len(stats)), stats}, nil
}

func (s *server) containerStats(_ http.ResponseWriter, r *http.Request, p httprouter.Params) (*reply, error) {
	st, err := s.b.ContainerStats(r.Context(), p.ByName("id"))
	if err != nil {
		return nil, err
	}
	return &reply{"stats of " + p.ByName("id"), st}, nil
}

func (s *server) startContainer(w http.ResponseWriter, r *http.Request, p httprouter.Params) (*reply, error) {
	// Optional; the Raind CLI sends {"tty":true} with -t, else
	// {"tty":false}. Either is accepted and has no effect: the terminal is
	// chosen at create.
	var req api.StartContainerRequest
	if err := decodeBody(w, r, &req, true); err != nil {
		return nil, err
	}
	id, err := s.b.StartContainer(r.Context(), p.ByName("id"))
	if err != nil {
		return nil, err
	}
	return &reply{"container started", api.IDResponse{ID: id}}, nil
}

func (s *server) stopContainer(w http.ResponseWriter, r *http.Request, p httprouter.Params) (*reply, error) {
	if err := noBody(w, r); err != nil {
		return nil, err
	}
	timeout, err := queryTimeout(r.URL.Query(), defaultStopTimeout)
	if err != nil {
		return nil, err
	}
	id, err := s.b.StopContainer(r.Context(), p.ByName("id"), timeout)
	if err != nil {
		return nil, err
	}
	return &reply{"container stopped", api.IDResponse{ID: id}}, nil
}

func (s *server) killContainer(w http.ResponseWriter, r *http.Request, p httprouter.Params) (*reply, error) {
	if err := noBody(w, r); err != nil {
		return nil, err
	}
	sig, err := parseSignal(r.URL.Query().Get("signal"))
	if err != nil {
		return nil, err
	}
	id, err := s.b.KillContainer(r.Context(), p.ByName("id"), sig)
	if err != nil {
		return nil, err
	}
	return &reply{"container killed", api.IDResponse{ID: id}}, nil
}

func (s *server) restartContainer(w http.ResponseWriter, r *http.Request, p httprouter.Params) (*reply, error) {
	if err := noBody(w, r); err != nil {
		return nil, err
	}
	timeout, err := queryTimeout(r.URL.Query(), defaultStopTimeout)
	if err != nil {
		return nil, err
	}
	id, err := s.b.RestartContainer(r.Context(), p.ByName("id"), timeout)
	if err != nil {
		return nil, err
	}
	return &reply{"container restarted", api.IDResponse{ID: id}}, nil
}

// waitContainer blocks until the container exits (or the client goes away).
func (s *server) waitContainer(w http.ResponseWriter, r *http.Request, p httprouter.Params) (*reply, error) {
	if err := noBody(w, r); err != nil {
		return nil, err
	}
	ctx, cancel := s.streamContext(r)
	defer cancel()
	code, err := s.b.WaitContainer(ctx, p.ByName("id"))
	if err != nil {
		if s.endedByShutdown(r) {
			return nil, errShuttingDown
		}
		return nil, err
	}
	return &reply{"container exited", api.WaitResponse{ExitCode: code}}, nil
}

func (s *server) deleteContainer(w http.ResponseWriter, r *http.Request, p httprouter.Params) (*reply, error) {
	if err := noBody(w, r); err != nil {
		return nil, err
	}
	force, err := queryBool(r.URL.Query(), "force", false)
	if err != nil {
		return nil, err
	}
	id, err := s.b.DeleteContainer(r.Context(), p.ByName("id"), force)
	if err != nil {
		return nil, err
	}
	return &reply{"container deleted", api.IDResponse{ID: id}}, nil
}

// containerLog is GET …/log?tail_lines=N: the last N lines (default 100)
// of both streams, as plain text.
func (s *server) containerLog(w http.ResponseWriter, r *http.Request, p httprouter.Params) (*reply, error) {
	tail, err := queryLines(r.URL.Query(), "tail_lines", defaultTailLines)
	if err != nil {
		return nil, err
	}
	opts := LogOptions{Tail: tail, Stdout: true, Stderr: true}
	return nil, s.writeLogs(w, r, p.ByName("id"), opts, false)
}

// containerLogs is GET …/logs?follow=1&since=&timestamps=1&stdout=&stderr=
// (and the extension &tail=N): plain text, flushed line by line. Without
// stdout= and stderr= both streams are shown.
func (s *server) containerLogs(w http.ResponseWriter, r *http.Request, p httprouter.Params) (*reply, error) {
	q := r.URL.Query()
	var opts LogOptions
	var err error
	if opts.Follow, err = queryBool(q, "follow", false); err != nil {
		return nil, err
	}
	if opts.Since, err = parseSince(q.Get("since"), time.Now()); err != nil {
		return nil, err
	}
	if opts.Tail, err = queryLines(q, "tail", -1); err != nil {
		return nil, err
	}
	timestamps, err := queryBool(q, "timestamps", false)
	if err != nil {
		return nil, err
	}
	_, hasOut := q["stdout"]
	_, hasErr := q["stderr"]
	both := !hasOut && !hasErr
	if opts.Stdout, err = queryBool(q, "stdout", both); err != nil {
		return nil, err
	}
	if opts.Stderr, err = queryBool(q, "stderr", both); err != nil {
		return nil, err
	}
	if !opts.Stdout && !opts.Stderr {
		return nil, invalidf("stdout=0 and stderr=0 select nothing: ask for at least one stream")
	}
	return nil, s.writeLogs(w, r, p.ByName("id"), opts, timestamps)
}

// writeLogs streams a container's log as plain text, one flush per entry.
// When following, the container is resolved first — so that "no such
// container" is still a 404 — and the headers go out at once, since the
// first line may be long in coming.
func (s *server) writeLogs(w http.ResponseWriter, r *http.Request, ref string, opts LogOptions, timestamps bool) error {
	ctx := r.Context()
	st := newStream(w, "text/plain; charset=utf-8")
	if opts.Follow {
		var cancel context.CancelFunc
		ctx, cancel = s.streamContext(r)
		defer cancel()
		c, err := s.b.InspectContainer(ctx, ref)
		if err != nil {
			return err
		}
		if c != nil && c.ContainerID != "" {
			ref = c.ContainerID // the same container throughout, even if its name is reused
		}
		if err := st.begin(); err != nil {
			st.close()
			return err
		}
	}
	err := s.b.ContainerLogs(ctx, ref, opts, func(e api.LogEntry) error {
		line := make([]byte, 0, len(logTimeFormat)+1+len(e.Log))
		if timestamps {
			line = e.Time.UTC().AppendFormat(line, logTimeFormat)
			line = append(line, ' ')
		}
		return st.write(append(line, e.Log...))
	})
	if err != nil && !(opts.Follow && s.endedByShutdown(r)) {
		st.close()
		return err
	}
	st.finish()
	return nil
}

// logTimeFormat is RFC 3339 with a fixed-width fraction, so that lines align.
const logTimeFormat = "2006-01-02T15:04:05.000000000Z07:00"
