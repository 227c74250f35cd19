package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/shim/client"
	"github.com/raind/condenser/supervisor"
)

// Containers is what the container handlers use of the supervisor
// (*supervisor.Supervisor).
type Containers interface {
	Create(ctx context.Context, req supervisor.CreateRequest) (*supervisor.Container, error)
	// Snapshot is every record, shared and read only.
	Snapshot() supervisor.Snapshot
	Get(ctx context.Context, ref string) (*supervisor.Container, error)
	Start(ctx context.Context, ref string) (*supervisor.Container, error)
	Stop(ctx context.Context, ref string, timeout time.Duration) (*supervisor.Container, error)
	Kill(ctx context.Context, ref string, sig syscall.Signal) (*supervisor.Container, error)
	Restart(ctx context.Context, ref string, timeout time.Duration) (*supervisor.Container, error)
	Delete(ctx context.Context, ref string, force bool) (*supervisor.Container, error)
	Rename(ctx context.Context, ref, newName string) (*supervisor.Container, error)
	// Await registers a wait (see supervisor.Await): its errors come
	// before the answer's headers are sent, the wait after.
	Await(ctx context.Context, ref string, cond supervisor.WaitCondition) (wait func(context.Context) (int, error), release func(), err error)
	Stats(ctx context.Context, ref string) (client.Stats, *supervisor.Container, error)
	LogPath(c *supervisor.Container) string
}

var _ Containers = (*supervisor.Supervisor)(nil)

func (s *server) containerRoutes(m *http.ServeMux) {
	m.HandleFunc("POST /containers/create", s.wrap(s.createContainer))
	m.HandleFunc("GET /containers/json", s.wrap(s.listContainers))
	m.HandleFunc("POST /containers/prune", s.wrap(s.pruneContainers))
	m.HandleFunc("GET /containers/{id}/json", s.wrap(s.inspectContainer))
	m.HandleFunc("POST /containers/{id}/start", s.wrap(s.startContainer))
	m.HandleFunc("POST /containers/{id}/stop", s.wrap(s.stopContainer))
	m.HandleFunc("POST /containers/{id}/kill", s.wrap(s.killContainer))
	m.HandleFunc("POST /containers/{id}/restart", s.wrap(s.restartContainer))
	m.HandleFunc("POST /containers/{id}/rename", s.wrap(s.renameContainer))
	m.HandleFunc("POST /containers/{id}/wait", s.wrap(s.waitContainer))
	m.HandleFunc("DELETE /containers/{id}", s.wrap(s.removeContainer))
	m.HandleFunc("GET /containers/{id}/top", s.wrap(s.topContainer))
	m.HandleFunc("GET /containers/{id}/stats", s.wrap(s.containerStats))
	// What Condenser does not do answers so, rather than "page not found".
	for route, what := range map[string]string{
		"POST /containers/{id}/pause":   "pausing a container",
		"POST /containers/{id}/unpause": "pausing a container",
		"POST /containers/{id}/update":  "updating a container's resources",
		"GET /containers/{id}/export":   "exporting a container's filesystem",
		"GET /containers/{id}/changes":  "listing a container's filesystem changes",
		"GET /containers/{id}/archive":  "copying files from or to a container (docker cp)",
		"HEAD /containers/{id}/archive": "copying files from or to a container (docker cp)",
		"PUT /containers/{id}/archive":  "copying files from or to a container (docker cp)",
		"POST /commit":                  "committing a container to an image",
	} {
		m.HandleFunc(route, s.wrap(func(w http.ResponseWriter, r *http.Request) error {
			return fmt.Errorf("%s is not supported by Condenser: %w", what, errdefs.ErrNotImplemented)
		}))
	}
}

// errNoContainers is the error of a daemon run without containers
// (tests of other parts).
var errNoContainers = fmt.Errorf("containers are not available in this daemon: %w", errdefs.ErrNotImplemented)

// container returns the record of the {id} of the request's path, or
// Docker's 404.
func (s *server) container(r *http.Request) (*supervisor.Container, error) {
	if s.Containers == nil {
		return nil, errNoContainers
	}
	ref := r.PathValue("id")
	c, err := s.Containers.Get(r.Context(), ref)
	return c, noSuch("container", ref, err)
}

// running reports whether Docker counts c as running: a container its
// restart policy is about to start again is, as in Docker.
func running(c *supervisor.Container) bool {
	return c.State == supervisor.StateRunning || c.State == supervisor.StateRestarting
}

func notModified(w http.ResponseWriter) error {
	w.WriteHeader(http.StatusNotModified)
	return nil
}

func (s *server) startContainer(w http.ResponseWriter, r *http.Request) error {
	c, err := s.container(r)
	if err != nil {
		return err
	}
	// ?detachKeys= matters to an attach, not to the start.
	if c.State == supervisor.StateRunning {
		return notModified(w)
	}
	if _, err := s.Containers.Start(r.Context(), c.ID); err != nil {
		if errdefs.Kind(err) == errdefs.ErrConflict {
			if c, gerr := s.Containers.Get(r.Context(), c.ID); gerr == nil && c.State == supervisor.StateRunning {
				return notModified(w) // started by another request meanwhile
			}
		}
		return noSuch("container", r.PathValue("id"), err)
	}
	return noContent(w)
}

// stopTimeout reads ?t= (or ?timeout=, as some clients write it): the
// grace period before SIGKILL, < 0 for the daemon's default.
func stopTimeout(r *http.Request) (time.Duration, error) {
	name := "t"
	if r.URL.Query().Get("t") == "" && r.URL.Query().Get("timeout") != "" {
		name = "timeout"
	}
	n, err := intQuery(r, name, -1)
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return -1, nil
	}
	return time.Duration(n) * time.Second, nil
}

// stopSignal refuses a ?signal= other than SIGTERM: the supervisor's stop
// sends SIGTERM, then SIGKILL.
func stopSignal(r *http.Request) error {
	v := r.URL.Query().Get("signal")
	if v == "" {
		return nil
	}
	sig, err := parseSignal(v)
	if err != nil {
		return err
	}
	if sig != syscall.SIGTERM {
		return fmt.Errorf("stop signal %s: only SIGTERM is supported (use kill to send another signal): %w", v, errdefs.ErrNotImplemented)
	}
	return nil
}

func (s *server) stopContainer(w http.ResponseWriter, r *http.Request) error {
	timeout, err := stopTimeout(r)
	if err != nil {
		return err
	}
	if err := stopSignal(r); err != nil {
		return err
	}
	c, err := s.container(r)
	if err != nil {
		return err
	}
	if !running(c) {
		return notModified(w)
	}
	if _, err := s.Containers.Stop(r.Context(), c.ID, timeout); err != nil {
		return noSuch("container", r.PathValue("id"), err)
	}
	return noContent(w)
}

func (s *server) restartContainer(w http.ResponseWriter, r *http.Request) error {
	timeout, err := stopTimeout(r)
	if err != nil {
		return err
	}
	if err := stopSignal(r); err != nil {
		return err
	}
	c, err := s.container(r)
	if err != nil {
		return err
	}
	if _, err := s.Containers.Restart(r.Context(), c.ID, timeout); err != nil {
		return noSuch("container", r.PathValue("id"), err)
	}
	return noContent(w)
}

func (s *server) killContainer(w http.ResponseWriter, r *http.Request) error {
	sig := syscall.SIGKILL
	if v := r.URL.Query().Get("signal"); v != "" {
		var err error
		if sig, err = parseSignal(v); err != nil {
			return err
		}
	}
	c, err := s.container(r)
	if err != nil {
		return err
	}
	ref := r.PathValue("id")
	notRunning := &httpError{status: http.StatusConflict, msg: fmt.Sprintf("Container %s is not running", ref), err: errdefs.ErrConflict}
	if c.State != supervisor.StateRunning {
		return notRunning
	}
	if _, err := s.Containers.Kill(r.Context(), c.ID, sig); err != nil {
		if errdefs.Kind(err) == errdefs.ErrConflict {
			return notRunning
		}
		return noSuch("container", ref, err)
	}
	return noContent(w)
}

func (s *server) renameContainer(w http.ResponseWriter, r *http.Request) error {
	name := strings.TrimPrefix(r.URL.Query().Get("name"), "/")
	if name == "" {
		return invalid("rename: the new name is missing (?name=)")
	}
	c, err := s.container(r)
	if err != nil {
		return err
	}
	if _, err := s.Containers.Rename(r.Context(), c.ID, name); err != nil {
		if errdefs.Kind(err) == errdefs.ErrConflict {
			return s.nameConflict(r.Context(), name, err)
		}
		return noSuch("container", r.PathValue("id"), err)
	}
	return noContent(w)
}

// nameConflict is Docker's answer to a name in use, which Compose and
// scripts look for ("Conflict. The container name …").
func (s *server) nameConflict(ctx context.Context, name string, err error) error {
	other, gerr := s.Containers.Get(ctx, name)
	if gerr != nil || other.Name != name {
		return err
	}
	return &httpError{status: http.StatusConflict, err: err, msg: fmt.Sprintf(
		"Conflict. The container name \"/%s\" is already in use by container \"%s\". You have to remove (or rename) that container to be able to reuse that name.", name, other.ID)}
}

// waitResponse is the body of a wait: Error is null when there was none
// (Docker writes it so).
type waitResponse struct {
	Error      *container.WaitExitError `json:"Error"`
	StatusCode int64                    `json:"StatusCode"`
}

// waitContainer answers 200 at once, flushed — the CLI sends the start
// only once it has the headers — and the body when the condition is met.
func (s *server) waitContainer(w http.ResponseWriter, r *http.Request) error {
	cond, err := supervisor.ParseWaitCondition(r.URL.Query().Get("condition"))
	if err != nil {
		return invalid("invalid condition: %q", r.URL.Query().Get("condition"))
	}
	if s.Containers == nil {
		return errNoContainers
	}
	ctx, cancel := s.streamContext(r)
	defer cancel()
	ref := r.PathValue("id")
	wait, release, err := s.Containers.Await(ctx, ref, cond)
	if err != nil {
		return noSuch("container", ref, err)
	}
	defer release()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flush(w)
	code, err := wait(ctx)
	resp := waitResponse{StatusCode: int64(code)}
	if err != nil {
		if r.Context().Err() != nil {
			return nil // the client went
		}
		resp = waitResponse{StatusCode: -1, Error: &container.WaitExitError{Message: err.Error()}}
	}
	return writeBody(w, resp)
}

func (s *server) removeContainer(w http.ResponseWriter, r *http.Request) error {
	if boolQuery(r, "link") {
		return fmt.Errorf("links are not supported: %w", errdefs.ErrNotImplemented)
	}
	force := boolQuery(r, "force")
	c, err := s.container(r)
	if err != nil {
		return err
	}
	conflict := func(err error) error {
		return &httpError{status: http.StatusConflict, err: err, msg: fmt.Sprintf(
			"cannot remove container \"/%s\": container is running: stop the container before removing or force remove", c.Name)}
	}
	if running(c) && !force {
		return conflict(errdefs.ErrConflict)
	}
	if _, err := s.Containers.Delete(r.Context(), c.ID, force); err != nil {
		if errdefs.Kind(err) == errdefs.ErrConflict && !force {
			return conflict(err)
		}
		return noSuch("container", r.PathValue("id"), err)
	}
	if boolQuery(r, "v") {
		s.removeAnonymousVolumes(r.Context(), c)
	}
	return noContent(w)
}

// removeAnonymousVolumes removes the anonymous volumes of removed
// container c (rm -v); named ones stay, as in Docker. A failure is
// logged: the container is gone.
func (s *server) removeAnonymousVolumes(ctx context.Context, c *supervisor.Container) {
	if s.Volumes == nil || len(c.Request.Mounts) == 0 {
		return
	}
	vols, err := s.Volumes.List(ctx)
	if err != nil {
		s.log.Warn("rm -v: list volumes", "id", c.ID, "err", err)
		return
	}
	sources := map[string]bool{}
	for _, m := range c.Request.Mounts {
		src, _, _ := strings.Cut(m, ":")
		sources[filepath.Clean(src)] = true
	}
	for _, v := range vols {
		if _, anon := v.Labels[anonymousVolumeLabel]; !anon || !sources[filepath.Clean(v.Mountpoint)] {
			continue
		}
		if err := s.Volumes.Remove(ctx, v.Name); err != nil && errdefs.Kind(err) != errdefs.ErrNotFound {
			s.log.Warn("rm -v: remove an anonymous volume", "id", c.ID, "volume", v.Name, "err", err)
		}
	}
}

func (s *server) pruneContainers(w http.ResponseWriter, r *http.Request) error {
	if s.Containers == nil {
		return errNoContainers
	}
	f, err := parseFilters(r)
	if err != nil {
		return err
	}
	if err := f.validate("until", "label", "label!"); err != nil {
		return err
	}
	var until time.Time
	if f.has("until") {
		vals := f.values("until")
		if len(vals) > 1 {
			return invalid("more than one until filter")
		}
		if until, err = parseTimestamp(vals[0], time.Now()); err != nil {
			return err
		}
	}
	report := container.PruneReport{ContainersDeleted: []string{}}
	for _, c := range s.Containers.Snapshot().Containers {
		if running(c) || c.State == supervisor.StateCreating || c.State == supervisor.StateRemoving {
			continue
		}
		if !f.matchLabels(c.Request.Labels) || (!until.IsZero() && !created(c).Before(until)) {
			continue
		}
		if _, err := s.Containers.Delete(r.Context(), c.ID, false); err != nil {
			if errdefs.Kind(err) == errdefs.ErrNotFound || errdefs.Kind(err) == errdefs.ErrConflict {
				continue // removed, or started, meanwhile
			}
			return err
		}
		report.ContainersDeleted = append(report.ContainersDeleted, c.ID)
	}
	return writeJSON(w, http.StatusOK, report)
}

// created is when c was created (when its creation began, for one still
// being made).
func created(c *supervisor.Container) time.Time {
	if c.CreatedAt.IsZero() {
		return c.CreatingAt
	}
	return c.CreatedAt
}

// parseTimestamp reads a filter's time as Docker does: a Go duration
// before now ("24h"), Unix seconds with optional fraction, or RFC 3339
// (with or without time and zone).
func parseTimestamp(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(-d), nil
	}
	if secs, frac, ok := strings.Cut(v, "."); ok || secs != "" {
		if n, err := strconv.ParseInt(secs, 10, 64); err == nil {
			var ns int64
			if ok {
				f, ferr := strconv.ParseFloat("0."+frac, 64)
				if ferr != nil {
					return time.Time{}, invalid("invalid timestamp %q", v)
				}
				ns = int64(f * 1e9)
			}
			return time.Unix(n, ns), nil
		}
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, invalid("invalid timestamp %q: want a duration (24h), Unix seconds or RFC 3339", v)
}

// parseSignal reads a signal as Docker's clients write it: SIGKILL, KILL,
// kill or 9.
func parseSignal(v string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(v); err == nil {
		if n <= 0 || n > 64 {
			return 0, invalid("invalid signal: %s", v)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(strings.TrimPrefix(strings.ToUpper(v), "SIG"))
	if sig, ok := signals[name]; ok {
		return sig, nil
	}
	return 0, invalid("invalid signal: %s", v)
}

var signals = map[string]syscall.Signal{
	"ABRT": syscall.SIGABRT, "ALRM": syscall.SIGALRM, "BUS": syscall.SIGBUS, "CHLD": syscall.SIGCHLD,
	"CONT": syscall.SIGCONT, "FPE": syscall.SIGFPE, "HUP": syscall.SIGHUP, "ILL": syscall.SIGILL,
	"INT": syscall.SIGINT, "IO": syscall.SIGIO, "IOT": syscall.SIGIOT, "KILL": syscall.SIGKILL,
	"PIPE": syscall.SIGPIPE, "POLL": syscall.SIGPOLL, "PROF": syscall.SIGPROF, "PWR": syscall.SIGPWR,
	"QUIT": syscall.SIGQUIT, "SEGV": syscall.SIGSEGV, "STKFLT": syscall.SIGSTKFLT, "STOP": syscall.SIGSTOP,
	"SYS": syscall.SIGSYS, "TERM": syscall.SIGTERM, "TRAP": syscall.SIGTRAP, "TSTP": syscall.SIGTSTP,
	"TTIN": syscall.SIGTTIN, "TTOU": syscall.SIGTTOU, "URG": syscall.SIGURG, "USR1": syscall.SIGUSR1,
	"USR2": syscall.SIGUSR2, "VTALRM": syscall.SIGVTALRM, "WINCH": syscall.SIGWINCH, "XCPU": syscall.SIGXCPU,
	"XFSZ": syscall.SIGXFSZ,
}

// writeBody writes v as the JSON body of a response whose headers were
// sent already.
func writeBody(w http.ResponseWriter, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
