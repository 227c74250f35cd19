package rest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/rest/api"
)

// ---- the fake backend ----

const (
	testID     = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	testExecID = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

var t0 = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// fake is a Backend that records its calls ("Name arg arg") and answers
// with canned data, err (when set), a panic (when panicValue is set) or the
// hook functions of the streaming calls.
type fake struct {
	mu         sync.Mutex
	calls      []string
	err        error
	panicValue any

	logs   func(ctx context.Context, ref string, opts LogOptions, fn func(api.LogEntry) error) error
	pull   func(ctx context.Context, progress func(api.PullProgress)) (*api.PullResult, error)
	events func(ctx context.Context, fn func(api.Event) error) error
	attach func(ctx context.Context, ref string, o AttachOptions) (Attachment, error)
	execs  []api.ExecInfo // ListExecs' answer (nil: testExec alone)

	create   api.CreateContainerRequest // the last create request
	exec     api.ExecRequest            // the last exec request
	imported string                     // the body ImportImage read

	settings   *api.NetworkSettings     // InspectContainer's networkSettings
	netCreate  api.CreateNetworkRequest // the last create-network request
	noNetworks bool                     // ListNetworks answers nil and the network has nil containers
}

var _ Backend = (*fake)(nil)

func (f *fake) enter(format string, args ...any) error {
	f.mu.Lock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	f.mu.Unlock()
	if f.panicValue != nil {
		panic(f.panicValue)
	}
	return f.err
}

func (f *fake) called() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

var (
	testSummary = api.ContainerSummary{
		ContainerID: testID, Name: "web", State: "running", Pid: 42,
		ImageRepository: "docker.io/library/alpine", ImageReference: "latest",
		Command: []string{"sh", "-c", "sleep 1d"}, Address: "10.0.0.2",
		Forwards:   []api.Forward{{Source: 8080, Destination: 80, Protocol: "tcp"}},
		CreatingAt: t0, CreatedAt: t0, StartedAt: t0,
	}
	testStats = api.ContainerStats{
		ContainerID: testID, Name: "web", Time: t0,
		CPU:    api.CPUStats{UsageNanos: 1000},
		Memory: api.MemoryStats{Usage: 4096, Limit: 8192},
		Pids:   api.PidsStats{Current: 2},
		IO:     api.IOStats{ReadBytes: 1, WriteBytes: 2},
	}
	testImage = api.ImageSummary{
		Repository: "docker.io/library/alpine", Reference: "latest", CreatedAt: t0,
		ID: "sha256:aaaa", Digest: "sha256:bbbb", Size: 1234,
	}
	testExec    = api.ExecInfo{ID: testExecID, ContainerID: testID, Pid: 43, Tty: true, Running: true}
	testNetwork = api.NetworkSummary{Name: "raind0", Driver: "bridge", Bridge: "raind0", Subnet: "10.166.0.0/24",
		Gateway: "10.166.0.254", BuiltIn: true, Containers: []string{testID}}
	testLog = []api.LogEntry{
		{Log: "one\n", Stream: "stdout", Time: t0},
		{Log: "two\n", Stream: "stderr", Time: t0.Add(time.Second)},
		{Log: "three\n", Stream: "stdout", Time: t0.Add(2 * time.Second)},
	}
)

func (f *fake) CreateContainer(_ context.Context, req api.CreateContainerRequest) (string, error) {
	if err := f.enter("CreateContainer %s", req.Image); err != nil {
		return "", err
	}
	f.mu.Lock()
	f.create = req
	f.mu.Unlock()
	return testID, nil
}

func (f *fake) ListContainers(_ context.Context, all bool, labels map[string]string) ([]api.ContainerSummary, error) {
	if err := f.enter("ListContainers all=%v labels=%v", all, labels); err != nil {
		return nil, err
	}
	return []api.ContainerSummary{testSummary, {ContainerID: testID, Name: "idle", State: "created"}}, nil
}

func (f *fake) InspectContainer(_ context.Context, ref string) (*api.ContainerDetail, error) {
	if err := f.enter("InspectContainer %s", ref); err != nil {
		return nil, err
	}
	code := 0
	return &api.ContainerDetail{
		ContainerSummary: testSummary, ExitCode: &code, RestartCount: 1, ShimPid: 41,
		Bundle: "/run/condenser/shims/" + testID, Rootfs: "/run/condenser/shims/" + testID + "/rootfs",
		Config: api.ContainerConfig{
			Args: []string{"sh"}, Env: []string{"PATH=/bin"}, Workdir: "/", User: "0:0",
			Resources: &api.Resources{Memory: 1 << 20},
		},
		ImageDigest: "sha256:bbbb", NetworkSettings: f.settings,
	}, nil
}

func (f *fake) StartContainer(_ context.Context, ref string) (string, error) {
	return testID, f.enter("StartContainer %s", ref)
}

func (f *fake) StopContainer(_ context.Context, ref string, timeout time.Duration) (string, error) {
	return testID, f.enter("StopContainer %s %v", ref, timeout)
}

func (f *fake) KillContainer(_ context.Context, ref string, sig syscall.Signal) (string, error) {
	return testID, f.enter("KillContainer %s %d", ref, int(sig))
}

func (f *fake) RestartContainer(_ context.Context, ref string, timeout time.Duration) (string, error) {
	return testID, f.enter("RestartContainer %s %v", ref, timeout)
}

func (f *fake) WaitContainer(_ context.Context, ref string) (int, error) {
	return 3, f.enter("WaitContainer %s", ref)
}

func (f *fake) DeleteContainer(_ context.Context, ref string, force bool) (string, error) {
	return testID, f.enter("DeleteContainer %s force=%v", ref, force)
}

func (f *fake) ContainerLogs(ctx context.Context, ref string, opts LogOptions, fn func(api.LogEntry) error) error {
	since := "-"
	if !opts.Since.IsZero() {
		since = opts.Since.UTC().Format(time.RFC3339)
	}
	if err := f.enter("ContainerLogs %s follow=%v tail=%d stdout=%v stderr=%v since=%s",
		ref, opts.Follow, opts.Tail, opts.Stdout, opts.Stderr, since); err != nil {
		return err
	}
	if f.logs != nil {
		return f.logs(ctx, ref, opts, fn)
	}
	var sel []api.LogEntry
	for _, e := range testLog {
		if (e.Stream == "stdout" && opts.Stdout) || (e.Stream == "stderr" && opts.Stderr) {
			sel = append(sel, e)
		}
	}
	if opts.Tail >= 0 && opts.Tail < len(sel) {
		sel = sel[len(sel)-opts.Tail:]
	}
	for _, e := range sel {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

func (f *fake) ContainerStats(_ context.Context, ref string) (*api.ContainerStats, error) {
	if err := f.enter("ContainerStats %s", ref); err != nil {
		return nil, err
	}
	st := testStats
	return &st, nil
}

func (f *fake) AllContainerStats(context.Context) ([]api.ContainerStats, error) {
	if err := f.enter("AllContainerStats"); err != nil {
		return nil, err
	}
	return []api.ContainerStats{testStats}, nil
}

func (f *fake) ExecContainer(_ context.Context, ref string, req api.ExecRequest) (string, error) {
	detach := "nil"
	if req.Detach != nil {
		detach = fmt.Sprint(*req.Detach)
	}
	if err := f.enter("ExecContainer %s %q tty=%v detach=%s", ref, req.Command, req.Tty, detach); err != nil {
		return "", err
	}
	f.mu.Lock()
	f.exec = req
	f.mu.Unlock()
	return testExecID, nil
}

func (f *fake) ListExecs(_ context.Context, ref string) ([]api.ExecInfo, error) {
	if err := f.enter("ListExecs %s", ref); err != nil {
		return nil, err
	}
	if f.execs != nil {
		return f.execs, nil
	}
	return []api.ExecInfo{testExec}, nil
}

func (f *fake) InspectExec(_ context.Context, ref, exec string) (*api.ExecInfo, error) {
	if err := f.enter("InspectExec %s %s", ref, exec); err != nil {
		return nil, err
	}
	e := testExec
	return &e, nil
}

func (f *fake) Attach(ctx context.Context, ref string, o AttachOptions) (Attachment, error) {
	if err := f.enter("Attach %s exec=%s stdin=%v", ref, o.Exec, o.Stdin); err != nil {
		return nil, err
	}
	if f.attach != nil {
		return f.attach(ctx, ref, o)
	}
	return newPipeAttachment(true), nil
}

func (f *fake) ResizeTerminal(_ context.Context, ref, exec string, rows, cols uint16) (string, error) {
	if err := f.enter("ResizeTerminal %s exec=%s %dx%d", ref, exec, rows, cols); err != nil {
		return "", err
	}
	if exec != "" {
		return exec, nil
	}
	return testID, nil
}

func (f *fake) PullImage(ctx context.Context, image, os, arch string, progress func(api.PullProgress)) (*api.PullResult, error) {
	if err := f.enter("PullImage %s %s %s", image, os, arch); err != nil {
		return nil, err
	}
	if f.pull != nil {
		return f.pull(ctx, progress)
	}
	if os == "" {
		os = "linux"
	}
	if arch == "" {
		arch = "amd64"
	}
	return &api.PullResult{Image: "docker.io/library/" + image, OS: os, Arch: arch}, nil
}

func (f *fake) ListImages(context.Context) ([]api.ImageSummary, error) {
	if err := f.enter("ListImages"); err != nil {
		return nil, err
	}
	return []api.ImageSummary{testImage}, nil
}

func (f *fake) RemoveImage(_ context.Context, image string, force bool) error {
	return f.enter("RemoveImage %s force=%v", image, force)
}

func (f *fake) ImageStatus(_ context.Context, image string) (*api.ImageStatus, error) {
	if err := f.enter("ImageStatus %s", image); err != nil {
		return nil, err
	}
	return &api.ImageStatus{
		Repository: "docker.io/library/alpine", Reference: "latest", ID: "sha256:aaaa",
		RepoTags: []string{"docker.io/library/alpine:latest"}, SizeBytes: 1234, CreatedAt: t0, User: "root",
	}, nil
}

func (f *fake) ImagesFS(context.Context) (int64, error) {
	return 4096, f.enter("ImagesFS")
}

func (f *fake) ImportImage(_ context.Context, r io.Reader, progress func(api.PullProgress)) ([]api.ImageSummary, error) {
	if err := f.enter("ImportImage"); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.imported = string(b)
	f.mu.Unlock()
	progress(api.PullProgress{Layer: "sha256:cccc", Status: "done", Current: int64(len(b)), Total: int64(len(b))})
	return []api.ImageSummary{testImage}, nil
}

func (f *fake) Version(context.Context) api.VersionInfo {
	_ = f.enter("Version")
	return api.VersionInfo{Version: "1.2.3"}
}

func (f *fake) Info(context.Context) (*api.SystemInfo, error) {
	if err := f.enter("Info"); err != nil {
		return nil, err
	}
	return &api.SystemInfo{Runtime: "runc", CgroupMode: "v1", StorageDriver: "overlay", Containers: 2, ContainersRunning: 1, Images: 1}, nil
}

func (f *fake) Events(ctx context.Context, fn func(api.Event) error) error {
	if err := f.enter("Events"); err != nil {
		return err
	}
	if f.events != nil {
		return f.events(ctx, fn)
	}
	<-ctx.Done()
	return ctx.Err()
}

func (f *fake) ListNetworks(context.Context) ([]api.NetworkSummary, error) {
	if err := f.enter("ListNetworks"); err != nil {
		return nil, err
	}
	if f.noNetworks {
		return nil, nil
	}
	return []api.NetworkSummary{testNetwork, {Name: "none", Driver: "null", BuiltIn: true}}, nil
}

func (f *fake) InspectNetwork(_ context.Context, name string) (*api.NetworkSummary, error) {
	if err := f.enter("InspectNetwork %s", name); err != nil {
		return nil, err
	}
	n := testNetwork
	n.Name = name
	if f.noNetworks {
		n.Containers = nil
	}
	return &n, nil
}

func (f *fake) CreateNetwork(_ context.Context, req api.CreateNetworkRequest) (*api.NetworkSummary, error) {
	if err := f.enter("CreateNetwork %s subnet=%s gateway=%s", req.Name, req.Subnet, req.Gateway); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.netCreate = req
	f.mu.Unlock()
	return &api.NetworkSummary{Name: req.Name, Driver: "bridge", Bridge: "rd-" + req.Name, Subnet: "10.167.0.0/24", Gateway: "10.167.0.1"}, nil
}

func (f *fake) RemoveNetwork(_ context.Context, name string) error {
	return f.enter("RemoveNetwork %s", name)
}

// ---- helpers ----

// syncBuffer is a log destination safe for the handler's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newTestHandler(f Backend) (http.Handler, *syncBuffer) {
	logs := &syncBuffer{}
	return NewHandler(f, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))), logs
}

type envelope struct {
	Status  string          `json:"status"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

// decodeEnvelope checks that body is exactly one envelope (no other keys).
func decodeEnvelope(t *testing.T, body []byte) envelope {
	t.Helper()
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(body, &keys); err != nil {
		t.Fatalf("response is not a JSON object: %v: %q", err, body)
	}
	for k := range keys {
		if k != "status" && k != "message" && k != "data" {
			t.Errorf("envelope has an unexpected key %q: %s", k, body)
		}
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatal(err)
	}
	if env.Status != api.StatusSuccess && env.Status != api.StatusFail {
		t.Errorf("envelope status %q", env.Status)
	}
	if env.Message == "" {
		t.Errorf("envelope without a message: %s", body)
	}
	return env
}

func do(h http.Handler, method, path, body string, header ...string) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func jsonEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("data %q: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want %q: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("data:\n got %s\nwant %s", got, want)
	}
}

func keysOf(t *testing.T, raw json.RawMessage) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return slices.Sorted(maps.Keys(m))
}

// ---- every route: status, call and data ----

func TestRoutes(t *testing.T) {
	const ts = `"2024-01-02T03:04:05Z"`
	const imageJSON = `{"repository":"docker.io/library/alpine","reference":"latest","createdAt":` + ts +
		`,"id":"sha256:aaaa","digest":"sha256:bbbb","size":1234}`
	const statsJSON = `{"containerId":"` + testID + `","name":"web","time":` + ts +
		`,"cpu":{"usageNanos":1000},"memory":{"usage":4096,"limit":8192,"cache":0,"maxUsage":0,"oomKills":0},` +
		`"pids":{"current":2,"limit":0},"io":{"readBytes":1,"writeBytes":2}}`
	const idJSON = `{"id":"` + testID + `"}`
	const execIDJSON = `{"id":"` + testExecID + `"}`
	const networkJSON = `{"name":"raind0","driver":"bridge","bridge":"raind0","subnet":"10.166.0.0/24","gateway":"10.166.0.254","builtIn":true,"containers":["` + testID + `"]}`
	const execJSON = `{"id":"` + testExecID + `","containerId":"` + testID + `","pid":43,"tty":true,"running":true,"exitCode":null,"exitedAt":"0001-01-01T00:00:00Z"}`

	tests := []struct {
		name     string
		method   string
		path     string
		body     string
		header   []string
		status   int
		call     string // the backend call expected ("" none)
		data     string // the envelope's data as JSON ("" not checked)
		bodyText string // for responses that are not enveloped
	}{
		{name: "ping", method: "GET", path: "/v1/_ping", status: 200, bodyText: "OK"},
		{name: "ping head", method: "HEAD", path: "/v1/_ping", status: 200, bodyText: ""},
		{name: "version", method: "GET", path: "/v1/version", status: 200, call: "Version",
			data: `{"version":"1.2.3","apiVersion":"v1","goVersion":"` + runtime.Version() + `","os":"` + runtime.GOOS + `","arch":"` + runtime.GOARCH + `"}`},
		{name: "info", method: "GET", path: "/v1/info", status: 200, call: "Info",
			data: `{"runtime":"runc","cgroupMode":"v1","storageDriver":"overlay","root":"","state":"","containers":2,"containersRunning":1,"containersStopped":0,"images":1,"os":"","arch":"","ncpu":0,"memTotal":0}`},

		{name: "create", method: "POST", path: "/v1/containers", body: `{"image":"alpine:latest","command":["sh"],"env":["K=V"],"mount":["/a:/b:ro"],"port":[],"network":"raind0","tty":false,"name":"web"}`,
			status: 200, call: "CreateContainer alpine:latest", data: idJSON},
		{name: "create network host", method: "POST", path: "/v1/containers", body: `{"image":"alpine","network":"host"}`,
			status: 200, call: "CreateContainer alpine", data: idJSON},
		{name: "create network none", method: "POST", path: "/v1/containers", body: `{"image":"alpine","network":"none"}`,
			status: 200, call: "CreateContainer alpine", data: idJSON},
		{name: "list", method: "GET", path: "/v1/containers", status: 200, call: "ListContainers all=true labels=map[]"},
		{name: "list running with labels", method: "GET", path: "/v1/containers?all=0&label=app=web&label=tier", status: 200,
			call: "ListContainers all=false labels=map[app:web tier:]"},
		{name: "list bad all", method: "GET", path: "/v1/containers?all=maybe", status: 400},
		{name: "inspect by name", method: "GET", path: "/v1/containers/web", status: 200, call: "InspectContainer web"},
		{name: "inspect by prefix", method: "GET", path: "/v1/containers/0123", status: 200, call: "InspectContainer 0123"},
		{name: "stats of all (the :id route dispatches)", method: "GET", path: "/v1/containers/stats", status: 200,
			call: "AllContainerStats", data: `[` + statsJSON + `]`},
		{name: "stats of one", method: "GET", path: "/v1/containers/web/stats", status: 200,
			call: "ContainerStats web", data: statsJSON},
		{name: "stats of a container named stats", method: "GET", path: "/v1/containers/stats/stats", status: 200,
			call: "ContainerStats stats", data: statsJSON},
		{name: "start without body", method: "POST", path: "/v1/containers/web/actions/start", status: 200,
			call: "StartContainer web", data: idJSON},
		{name: "start with the Raind CLI body", method: "POST", path: "/v1/containers/web/actions/start", body: `{"tty":false}`,
			status: 200, call: "StartContainer web", data: idJSON},
		{name: "stop default timeout", method: "POST", path: "/v1/containers/web/actions/stop", status: 200,
			call: "StopContainer web 10s", data: idJSON},
		{name: "stop timeout", method: "POST", path: "/v1/containers/web/actions/stop?timeout=3", body: "{}", status: 200,
			call: "StopContainer web 3s", data: idJSON},
		{name: "stop bad timeout", method: "POST", path: "/v1/containers/web/actions/stop?timeout=-1", status: 400},
		{name: "stop with a body", method: "POST", path: "/v1/containers/web/actions/stop", body: `{"timeout":3}`, status: 400},
		{name: "kill default", method: "POST", path: "/v1/containers/web/actions/kill", status: 200,
			call: "KillContainer web 9", data: idJSON},
		{name: "kill by name", method: "POST", path: "/v1/containers/web/actions/kill?signal=term", status: 200,
			call: "KillContainer web 15", data: idJSON},
		{name: "kill SIGHUP", method: "POST", path: "/v1/containers/web/actions/kill?signal=SIGHUP", status: 200,
			call: "KillContainer web 1", data: idJSON},
		{name: "kill by number", method: "POST", path: "/v1/containers/web/actions/kill?signal=10", status: 200,
			call: "KillContainer web 10", data: idJSON},
		{name: "kill bad signal", method: "POST", path: "/v1/containers/web/actions/kill?signal=NOPE", status: 400},
		{name: "kill signal 0", method: "POST", path: "/v1/containers/web/actions/kill?signal=0", status: 400},
		{name: "restart", method: "POST", path: "/v1/containers/web/actions/restart?timeout=0", status: 200,
			call: "RestartContainer web 0s", data: idJSON},
		{name: "wait", method: "POST", path: "/v1/containers/web/actions/wait", status: 200,
			call: "WaitContainer web", data: `{"exitCode":3}`},
		{name: "exec (Raind): detached without a terminal", method: "POST", path: "/v1/containers/web/actions/exec", body: `{"command":["ls","-l"],"tty":false}`,
			status: 200, call: `ExecContainer web ["ls" "-l"] tty=false detach=true`, data: execIDJSON},
		{name: "exec (Raind): held for attach with a terminal", method: "POST", path: "/v1/containers/web/actions/exec", body: `{"command":["sh"],"tty":true}`,
			status: 200, call: `ExecContainer web ["sh"] tty=true detach=false`, data: execIDJSON},
		{name: "exec (Raind): detach said", method: "POST", path: "/v1/containers/web/actions/exec", body: `{"command":["sh"],"tty":true,"detach":true}`,
			status: 200, call: `ExecContainer web ["sh"] tty=true detach=true`, data: execIDJSON},
		{name: "exec: empty command", method: "POST", path: "/v1/containers/web/actions/exec", body: `{"command":[],"tty":true}`, status: 400},
		{name: "exec: no command", method: "POST", path: "/v1/containers/web/actions/exec", body: `{"tty":true}`, status: 400},
		{name: "exec: no body", method: "POST", path: "/v1/containers/web/actions/exec", status: 400},
		{name: "exec: unknown field", method: "POST", path: "/v1/containers/web/actions/exec", body: `{"command":["ls"],"interactive":true}`, status: 400},
		{name: "execs: held by default", method: "POST", path: "/v1/containers/web/execs", body: `{"command":["ls"]}`,
			status: 200, call: `ExecContainer web ["ls"] tty=false detach=false`, data: execIDJSON},
		{name: "execs: detached", method: "POST", path: "/v1/containers/web/execs", body: `{"command":["ls"],"detach":true,"stdin":true,"env":["A=1"],"user":"1000","workdir":"/tmp"}`,
			status: 200, call: `ExecContainer web ["ls"] tty=false detach=true`, data: execIDJSON},
		{name: "execs: empty command", method: "POST", path: "/v1/containers/web/execs", body: `{"command":[]}`, status: 400},
		{name: "list execs", method: "GET", path: "/v1/containers/web/execs", status: 200, call: "ListExecs web", data: `[` + execJSON + `]`},
		{name: "inspect exec", method: "GET", path: "/v1/containers/web/execs/" + testExecID, status: 200,
			call: "InspectExec web " + testExecID, data: execJSON},
		{name: "resize", method: "POST", path: "/v1/containers/web/actions/resize?h=24&w=80", status: 200,
			call: "ResizeTerminal web exec= 24x80", data: idJSON},
		{name: "resize exec", method: "POST", path: "/v1/containers/web/execs/" + testExecID + "/resize?h=50&w=132", status: 200,
			call: "ResizeTerminal web exec=" + testExecID + " 50x132", data: execIDJSON},
		{name: "resize without size", method: "POST", path: "/v1/containers/web/actions/resize", status: 400},
		{name: "resize without width", method: "POST", path: "/v1/containers/web/actions/resize?h=24", status: 400},
		{name: "resize negative", method: "POST", path: "/v1/containers/web/actions/resize?h=-1&w=80", status: 400},
		{name: "resize too large", method: "POST", path: "/v1/containers/web/actions/resize?h=24&w=65536", status: 400},
		{name: "resize not a number", method: "POST", path: "/v1/containers/web/execs/x/resize?h=24&w=wide", status: 400},
		{name: "attach without a WebSocket", method: "GET", path: "/v1/containers/web/attach", status: 400},
		{name: "exec attach without a WebSocket", method: "GET", path: "/v1/containers/web/exec/attach", status: 400},
		{name: "stdio without a WebSocket", method: "GET", path: "/v1/containers/web/stdio", status: 400},
		{name: "exec stdio without a WebSocket", method: "GET", path: "/v1/containers/web/execs/x/stdio", status: 400},
		{name: "delete", method: "DELETE", path: "/v1/containers/web/actions/delete", status: 200,
			call: "DeleteContainer web force=false", data: idJSON},
		{name: "delete force", method: "DELETE", path: "/v1/containers/web/actions/delete?force=1", status: 200,
			call: "DeleteContainer web force=true", data: idJSON},

		{name: "pull", method: "POST", path: "/v1/images", body: `{"image":"alpine:latest"}`, status: 200,
			call: "PullImage alpine:latest  ", data: `{"image":"docker.io/library/alpine:latest","os":"linux","arch":"amd64"}`},
		{name: "pull platform", method: "POST", path: "/v1/images", body: `{"image":"alpine","os":"linux","arch":"arm64"}`, status: 200,
			call: "PullImage alpine linux arm64", data: `{"image":"docker.io/library/alpine","os":"linux","arch":"arm64"}`},
		{name: "pull without image", method: "POST", path: "/v1/images", body: `{"os":"linux"}`, status: 400},
		{name: "list images", method: "GET", path: "/v1/images", status: 200, call: "ListImages", data: `[` + imageJSON + `]`},
		{name: "remove image", method: "DELETE", path: "/v1/images", body: `{"image":"alpine:latest"}`, status: 200,
			call: "RemoveImage alpine:latest force=false", data: `{"image":"alpine:latest"}`},
		{name: "remove image force", method: "DELETE", path: "/v1/images?force=1", body: `{"image":"alpine"}`, status: 200,
			call: "RemoveImage alpine force=true", data: `{"image":"alpine"}`},
		{name: "remove image by query", method: "DELETE", path: "/v1/images?image=alpine", status: 200,
			call: "RemoveImage alpine force=false", data: `{"image":"alpine"}`},
		{name: "remove image without image", method: "DELETE", path: "/v1/images", status: 400},
		{name: "image status", method: "GET", path: "/v1/images/status?image=alpine", status: 200, call: "ImageStatus alpine",
			data: `{"repository":"docker.io/library/alpine","reference":"latest","id":"sha256:aaaa","repoTags":["docker.io/library/alpine:latest"],"repoDigests":[],"sizeBytes":1234,"createdAt":` + ts + `,"user":"root"}`},
		{name: "image status without image", method: "GET", path: "/v1/images/status", status: 400},
		{name: "images fs", method: "GET", path: "/v1/images/fs", status: 200, call: "ImagesFS", data: `{"usedBytes":4096}`},
		{name: "import", method: "POST", path: "/v1/images/import", body: "tarball bytes", status: 200, call: "ImportImage",
			data: `[` + imageJSON + `]`},

		{name: "create with ports", method: "POST", path: "/v1/containers", body: `{"image":"alpine","port":["8080:80","53:53:udp","127.0.0.1:8443:443/tcp"]}`,
			status: 200, call: "CreateContainer alpine", data: idJSON},
		{name: "list networks", method: "GET", path: "/v1/networks", status: 200, call: "ListNetworks",
			data: `[` + networkJSON + `,{"name":"none","driver":"null","bridge":"","subnet":"","gateway":"","builtIn":true,"containers":[]}]`},
		{name: "inspect network", method: "GET", path: "/v1/networks/raind0", status: 200, call: "InspectNetwork raind0", data: networkJSON},
		{name: "create network", method: "POST", path: "/v1/networks", body: `{"name":"backend","subnet":"10.167.0.0/24","gateway":"10.167.0.1"}`,
			status: 200, call: "CreateNetwork backend subnet=10.167.0.0/24 gateway=10.167.0.1",
			data: `{"name":"backend","driver":"bridge","bridge":"rd-backend","subnet":"10.167.0.0/24","gateway":"10.167.0.1","builtIn":false,"containers":[]}`},
		{name: "create network, the daemon's subnet", method: "POST", path: "/v1/networks", body: `{"name":"backend"}`,
			status: 200, call: "CreateNetwork backend subnet= gateway="},
		{name: "create network without a name", method: "POST", path: "/v1/networks", body: `{"subnet":"10.167.0.0/24"}`, status: 400},
		{name: "create network, bad name", method: "POST", path: "/v1/networks", body: `{"name":"-x"}`, status: 400},
		{name: "create network without a body", method: "POST", path: "/v1/networks", status: 400},
		{name: "remove network", method: "DELETE", path: "/v1/networks/backend", status: 200, call: "RemoveNetwork backend", data: `{"name":"backend"}`},
		{name: "remove network with a body", method: "DELETE", path: "/v1/networks/backend", body: `{"force":true}`, status: 400},
		{name: "networks: wrong method", method: "PUT", path: "/v1/networks/backend", status: 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fake{}
			h, _ := newTestHandler(f)
			rec := do(h, tc.method, tc.path, tc.body, tc.header...)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			calls := f.called()
			switch {
			case tc.call != "" && !slices.Equal(calls, []string{tc.call}):
				t.Errorf("backend calls %q, want [%q]", calls, tc.call)
			case tc.call == "" && tc.status >= 400 && len(calls) > 0:
				t.Errorf("a refused request reached the backend: %q", calls)
			}
			if tc.path == "/v1/_ping" {
				if got := rec.Body.String(); got != tc.bodyText {
					t.Errorf("body %q, want %q", got, tc.bodyText)
				}
				if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
					t.Errorf("Content-Type %q", ct)
				}
				return
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			env := decodeEnvelope(t, rec.Body.Bytes())
			wantStatus := api.StatusSuccess
			if tc.status >= 400 {
				wantStatus = api.StatusFail
			}
			if env.Status != wantStatus {
				t.Errorf("envelope status %q, want %q", env.Status, wantStatus)
			}
			if tc.data != "" {
				jsonEqual(t, env.Data, tc.data)
			}
			if tc.status >= 400 && len(env.Data) > 0 {
				t.Errorf("a failure carries data: %s", env.Data)
			}
		})
	}
}

// The container views carry the keys the Raind CLI reads, spelled its way.
func TestContainerKeys(t *testing.T) {
	summaryKeys := []string{"address", "command", "containerId", "createdAt", "creatingAt", "forwards",
		"imageReference", "imageRepository", "name", "pid", "state", "statedAt", "stoppedAt"}
	h, _ := newTestHandler(&fake{})

	env := decodeEnvelope(t, do(h, "GET", "/v1/containers", "").Body.Bytes())
	var list []json.RawMessage
	if err := json.Unmarshal(env.Data, &list); err != nil || len(list) != 2 {
		t.Fatalf("list data %s: %v", env.Data, err)
	}
	for _, c := range list {
		if got := keysOf(t, c); !slices.Equal(got, summaryKeys) {
			t.Errorf("summary keys\n got %q\nwant %q", got, summaryKeys)
		}
	}
	// Empty lists are [] and unset times the zero time, as the CLI decodes them.
	jsonEqual(t, list[1], `{"containerId":"`+testID+`","name":"idle","state":"created","pid":0,"imageRepository":"","imageReference":"",
		"command":[],"address":"","forwards":[],"creatingAt":"0001-01-01T00:00:00Z","createdAt":"0001-01-01T00:00:00Z",
		"statedAt":"0001-01-01T00:00:00Z","stoppedAt":"0001-01-01T00:00:00Z"}`)
	var first map[string]json.RawMessage
	_ = json.Unmarshal(list[0], &first)
	jsonEqual(t, first["forwards"], `[{"source":8080,"destination":80,"protocol":"tcp"}]`)
	jsonEqual(t, first["statedAt"], `"2024-01-02T03:04:05Z"`)

	env = decodeEnvelope(t, do(h, "GET", "/v1/containers/web", "").Body.Bytes())
	detailKeys := append(slices.Clone(summaryKeys), "bundle", "config", "exitCode", "imageDigest", "oomKilled", "restartCount", "rootfs", "shimPid")
	slices.Sort(detailKeys)
	if got := keysOf(t, env.Data); !slices.Equal(got, detailKeys) {
		t.Errorf("detail keys\n got %q\nwant %q", got, detailKeys)
	}
	var detail map[string]json.RawMessage
	_ = json.Unmarshal(env.Data, &detail)
	jsonEqual(t, detail["config"], `{"args":["sh"],"env":["PATH=/bin"],"workdir":"/","user":"0:0","mounts":[],"resources":{"memory":1048576}}`)
	jsonEqual(t, detail["exitCode"], `0`)
}

// The detail's networkSettings: absent without an endpoint (the keys of
// TestContainerKeys), its keys and an empty list of ports as [] with one.
func TestNetworkSettings(t *testing.T) {
	f := &fake{settings: &api.NetworkSettings{Network: "raind0", Address: "10.166.0.1", PrefixLen: 24, Gateway: "10.166.0.254", MAC: "02:42:0a:a6:00:01"}}
	h, _ := newTestHandler(f)
	env := decodeEnvelope(t, do(h, "GET", "/v1/containers/web", "").Body.Bytes())
	var detail map[string]json.RawMessage
	if err := json.Unmarshal(env.Data, &detail); err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, detail["networkSettings"], `{"network":"raind0","address":"10.166.0.1","prefixLen":24,"gateway":"10.166.0.254","mac":"02:42:0a:a6:00:01","ports":[]}`)

	f.settings.Ports = []api.PortBinding{{HostIP: "0.0.0.0", HostPort: 18080, ContainerPort: 80, Protocol: "tcp"}}
	env = decodeEnvelope(t, do(h, "GET", "/v1/containers/web", "").Body.Bytes())
	_ = json.Unmarshal(env.Data, &detail)
	jsonEqual(t, detail["networkSettings"], `{"network":"raind0","address":"10.166.0.1","prefixLen":24,"gateway":"10.166.0.254","mac":"02:42:0a:a6:00:01",
		"ports":[{"hostIp":"0.0.0.0","hostPort":18080,"containerPort":80,"protocol":"tcp"}]}`)
}

// Networks' empty lists are [], not null.
func TestNetworksEmptyLists(t *testing.T) {
	h, _ := newTestHandler(&fake{noNetworks: true})
	env := decodeEnvelope(t, do(h, "GET", "/v1/networks", "").Body.Bytes())
	jsonEqual(t, env.Data, `[]`)
	env = decodeEnvelope(t, do(h, "GET", "/v1/networks/backend", "").Body.Bytes())
	var n map[string]json.RawMessage
	if err := json.Unmarshal(env.Data, &n); err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, n["containers"], `[]`)
}

// The create request (published ports, a terminal and the extensions
// included) reaches the backend as sent.
func TestCreateExtensions(t *testing.T) {
	f := &fake{}
	h, _ := newTestHandler(f)
	body := `{"image":"alpine","command":["echo","hi"],"env":["A=1"],"mount":["/h:/c:ro"],"port":["8080:80","53:53:udp"],"network":"backend","tty":true,"name":"web",
		"entrypoint":[],"workdir":"/srv","user":"1000:1000","hostname":"box","labels":{"app":"web"},
		"restartPolicy":"on-failure:3","resources":{"memory":67108864,"cpus":1.5,"pids":64},"readOnly":true,"autoRemove":true,
		"openStdin":true}`
	rec := do(h, "POST", "/v1/containers", body)
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	want := api.CreateContainerRequest{
		Image: "alpine", Command: []string{"echo", "hi"}, Env: []string{"A=1"}, Mount: []string{"/h:/c:ro"},
		Port: []string{"8080:80", "53:53:udp"}, Network: "backend", Tty: true, Name: "web", Entrypoint: []string{}, Workdir: "/srv", User: "1000:1000",
		Hostname: "box", Labels: map[string]string{"app": "web"}, RestartPolicy: "on-failure:3",
		Resources: &api.Resources{Memory: 64 << 20, CPUs: 1.5, Pids: 64}, ReadOnly: true, AutoRemove: true,
		OpenStdin: true,
	}
	f.mu.Lock()
	got := f.create
	f.mu.Unlock()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("backend got\n%+v\nwant\n%+v", got, want)
	}

	// An absent entrypoint (keep the image's) differs from an empty one (clear it).
	do(h, "POST", "/v1/containers", `{"image":"alpine"}`)
	f.mu.Lock()
	got = f.create
	f.mu.Unlock()
	if got.Entrypoint != nil || got.Resources != nil {
		t.Errorf("unset entrypoint/resources arrive as %#v / %#v", got.Entrypoint, got.Resources)
	}
}

// ---- error kinds ----

func TestErrorKinds(t *testing.T) {
	tests := []struct {
		err     error
		status  int
		message string // "" means the generic internal message
	}{
		{fmt.Errorf("bad mount %q: %w", "x", errdefs.ErrInvalidArgument), 400, `bad mount "x": invalid argument`},
		{fmt.Errorf("no such container: web: %w", errdefs.ErrNotFound), 404, "no such container: web: not found"},
		{fmt.Errorf("name web is taken: %w", errdefs.ErrAlreadyExists), 409, "name web is taken: already exists"},
		{fmt.Errorf("container web is running: %w", errdefs.ErrConflict), 409, "container web is running: conflict"},
		{fmt.Errorf("registry unreachable: %w", errdefs.ErrUnavailable), 503, "registry unreachable: unavailable"},
		{fmt.Errorf("checkpoint: %w", errdefs.ErrNotImplemented), 501, "checkpoint: not implemented"},
		{fmt.Errorf("rootless: %w", errdefs.ErrPermissionDenied), 403, "rootless: permission denied"},
		{fmt.Errorf("wrapped twice: %w", fmt.Errorf("inner: %w", errdefs.ErrNotFound)), 404, "wrapped twice: inner: not found"},
		{fmt.Errorf("blob corrupt: %w", errdefs.ErrDataLoss), 500, ""},
		{fmt.Errorf("pull: the image store's disk is full: %w", errdefs.ErrResourceExhausted), 507, "pull: the image store's disk is full: resource exhausted"},
		{errors.New("open /secret/path: disk on fire"), 500, ""},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.status, " ", tc.err), func(t *testing.T) {
			f := &fake{err: tc.err}
			h, logs := newTestHandler(f)
			for _, route := range [][2]string{
				{"GET", "/v1/containers/web"},
				{"POST", "/v1/containers/web/actions/stop"},
				{"DELETE", "/v1/images?image=alpine"},
				{"DELETE", "/v1/networks/backend"},
				{"GET", "/v1/networks/backend"},
			} {
				rec := do(h, route[0], route[1], "")
				if rec.Code != tc.status {
					t.Errorf("%s %s: status %d, want %d", route[0], route[1], rec.Code, tc.status)
				}
				env := decodeEnvelope(t, rec.Body.Bytes())
				if env.Status != api.StatusFail {
					t.Errorf("envelope status %q", env.Status)
				}
				if tc.message != "" {
					if env.Message != tc.message {
						t.Errorf("message %q, want %q", env.Message, tc.message)
					}
					continue
				}
				if !strings.HasPrefix(env.Message, "internal error") || strings.Contains(env.Message, tc.err.Error()) {
					t.Errorf("internal fault leaks or is not generic: %q", env.Message)
				}
				if !strings.Contains(logs.String(), tc.err.Error()) {
					t.Errorf("the detail is not logged: %s", logs)
				}
			}
		})
	}
}

// ---- bad requests ----

func TestBadRequests(t *testing.T) {
	big := `{"image":"` + strings.Repeat("a", maxBodyBytes) + `"}`
	tests := []struct {
		name, method, path, body string
		status                   int
		message                  string // a part of the message
	}{
		{"malformed JSON", "POST", "/v1/containers", `{"image":`, 400, "truncated JSON"},
		{"syntax error", "POST", "/v1/containers", `{"image" "alpine"}`, 400, "invalid request body"},
		{"unknown field", "POST", "/v1/containers", `{"image":"alpine","volume":["/a:/b"]}`, 400, `unknown field "volume"`},
		{"wrong type", "POST", "/v1/containers", `{"image":"alpine","command":"sh"}`, 400, `field "command"`},
		{"not an object", "POST", "/v1/containers", `["alpine"]`, 400, "a JSON object is required"},
		{"two values", "POST", "/v1/containers", `{"image":"alpine"}{"image":"busybox"}`, 400, "more than one JSON value"},
		{"empty body", "POST", "/v1/containers", ``, 400, "request body is empty"},
		{"no image", "POST", "/v1/containers", `{"name":"web"}`, 400, "image is required"},
		{"oversized body", "POST", "/v1/containers", big, 413, "request body too large"},
		{"oversized pull", "POST", "/v1/images", big, 413, "request body too large"},
		{"oversized start", "POST", "/v1/containers/web/actions/start", big, 413, "request body too large"},
		{"port not a list", "POST", "/v1/containers", `{"image":"alpine","port":"8080:80"}`, 400, `field "port"`},
		{"network without a name", "POST", "/v1/networks", `{}`, 400, "name is required"},
		{"network name", "POST", "/v1/networks", `{"name":"back end"}`, 400, `network name "back end": want letters, digits`},
		{"network name like an id", "POST", "/v1/networks", `{"name":"` + testID + `"}`, 400, "a name cannot look like a container id"},
		{"network unknown field", "POST", "/v1/networks", `{"name":"backend","driver":"macvlan"}`, 400, `unknown field "driver"`},
		{"network subnet not a string", "POST", "/v1/networks", `{"name":"backend","subnet":24}`, 400, `field "subnet"`},
		{"oversized network", "POST", "/v1/networks", `{"name":"` + strings.Repeat("a", maxBodyBytes) + `"}`, 413, "request body too large"},
		{"reserved name", "POST", "/v1/containers", `{"image":"alpine","name":"stats"}`, 400, "reserved"},
		{"exec empty command", "POST", "/v1/containers/web/actions/exec", `{"command":[]}`, 400, "command is required"},
		{"execs empty command", "POST", "/v1/containers/web/execs", `{"tty":true}`, 400, "command is required"},
		{"resize without rows", "POST", "/v1/containers/web/actions/resize?w=80", ``, 400, "h="},
		{"resize with a body", "POST", "/v1/containers/web/actions/resize?h=1&w=1", `{"h":1}`, 400, "unknown field"},
		{"attach without a WebSocket", "GET", "/v1/containers/web/attach", ``, 400, "WebSocket endpoint"},
		{"start unknown field", "POST", "/v1/containers/web/actions/start", `{"tty":false,"detach":true}`, 400, `unknown field "detach"`},
		{"bad since", "GET", "/v1/containers/web/logs?since=yesterday", ``, 400, "since"},
		{"bad tail", "GET", "/v1/containers/web/log?tail_lines=ten", ``, 400, "tail_lines"},
		{"no stream", "GET", "/v1/containers/web/logs?stdout=0&stderr=0", ``, 400, "at least one stream"},
		{"bad label", "GET", "/v1/containers?label==x", ``, 400, "label"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fake{}
			h, _ := newTestHandler(f)
			rec := do(h, tc.method, tc.path, tc.body)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			env := decodeEnvelope(t, rec.Body.Bytes())
			if env.Status != api.StatusFail || !strings.Contains(env.Message, tc.message) {
				t.Errorf("envelope %+v, want fail with %q", env, tc.message)
			}
			if calls := f.called(); len(calls) > 0 {
				t.Errorf("a refused request reached the backend: %q", calls)
			}
		})
	}
}

// The container's configuration — restart policy, network, resources,
// labels — is the backend's to check, not the HTTP layer's: such requests
// reach it as sent, and its invalid-argument error is the client's 400.
func TestCreateLeavesTheConfigToTheBackend(t *testing.T) {
	for _, body := range []string{
		`{"image":"alpine","network":"bridge"}`,
		`{"image":"alpine","restartPolicy":"sometimes"}`,
		`{"image":"alpine","restartPolicy":"on-failure:x"}`,
		`{"image":"alpine","restartPolicy":"always:3"}`,
		`{"image":"alpine","resources":{"memory":-1,"cpus":-0.5,"pids":-2}}`,
		`{"image":"alpine","labels":{"":"x"}}`,
		`{"image":"alpine","name":"-web"}`,
		`{"image":"alpine","port":["80x:80"]}`,
		`{"image":"alpine","port":["8080:80:sctp","8080:80/tcp","1.2.3.4:1:1"]}`,
		`{"image":"alpine","network":"nosuch"}`,
	} {
		t.Run(body, func(t *testing.T) {
			f := &fake{}
			h, _ := newTestHandler(f)
			if rec := do(h, "POST", "/v1/containers", body); rec.Code != 200 {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			var want api.CreateContainerRequest
			if err := json.Unmarshal([]byte(body), &want); err != nil {
				t.Fatal(err)
			}
			f.mu.Lock()
			got := f.create
			f.mu.Unlock()
			if !reflect.DeepEqual(got, want) {
				t.Errorf("backend got %+v, want %+v", got, want)
			}

			f = &fake{err: fmt.Errorf("the backend says no: %w", errdefs.ErrInvalidArgument)}
			h, _ = newTestHandler(f)
			rec := do(h, "POST", "/v1/containers", body)
			env := decodeEnvelope(t, rec.Body.Bytes())
			if rec.Code != 400 || env.Message != "the backend says no: invalid argument" {
				t.Errorf("backend's refusal: status %d, %+v", rec.Code, env)
			}
		})
	}
}

// start's {"tty":…}, which the Raind CLI always sends, is accepted either
// way: the terminal is chosen at create.
func TestStartAcceptsTty(t *testing.T) {
	for _, body := range []string{``, `{}`, `{"tty":false}`, `{"tty":true}`} {
		f := &fake{}
		h, _ := newTestHandler(f)
		if rec := do(h, "POST", "/v1/containers/web/actions/start", body); rec.Code != 200 {
			t.Errorf("%q: status %d: %s", body, rec.Code, rec.Body)
		}
		if calls := f.called(); !slices.Equal(calls, []string{"StartContainer web"}) {
			t.Errorf("%q: calls %q", body, calls)
		}
	}
}

// ---- router fallbacks ----

func TestUnknownRoute(t *testing.T) {
	h, _ := newTestHandler(&fake{})
	for _, path := range []string{"/", "/v2/containers", "/v1/containers/web/actions/explode", "/v1/nope"} {
		rec := do(h, "GET", path, "")
		if rec.Code != 404 {
			t.Errorf("%s: status %d, want 404", path, rec.Code)
			continue
		}
		if env := decodeEnvelope(t, rec.Body.Bytes()); env.Status != api.StatusFail || !strings.Contains(env.Message, path) {
			t.Errorf("%s: %+v", path, env)
		}
	}
}

func TestWrongMethod(t *testing.T) {
	h, _ := newTestHandler(&fake{})
	tests := []struct{ method, path, allow string }{
		{"PUT", "/v1/containers", "GET, OPTIONS, POST"},
		{"DELETE", "/v1/_ping", "GET, HEAD, OPTIONS"},
		{"GET", "/v1/containers/web/actions/start", "OPTIONS, POST"},
		{"POST", "/v1/containers/stats", "GET, OPTIONS"},
		{"GET", "/v1/containers/web/actions/delete", "DELETE, OPTIONS"},
	}
	for _, tc := range tests {
		rec := do(h, tc.method, tc.path, "")
		if rec.Code != 405 {
			t.Errorf("%s %s: status %d, want 405", tc.method, tc.path, rec.Code)
			continue
		}
		if got := rec.Header().Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
		if env := decodeEnvelope(t, rec.Body.Bytes()); env.Status != api.StatusFail || !strings.Contains(env.Message, tc.method) {
			t.Errorf("%s %s: %+v", tc.method, tc.path, env)
		}
	}
	rec := do(h, "OPTIONS", "/v1/containers", "")
	if rec.Code != http.StatusNoContent || rec.Header().Get("Allow") != "GET, OPTIONS, POST" {
		t.Errorf("OPTIONS: %d, Allow %q", rec.Code, rec.Header().Get("Allow"))
	}
}

func TestPanic(t *testing.T) {
	f := &fake{panicValue: "boom: secret detail"}
	h, logs := newTestHandler(f)
	rec := do(h, "GET", "/v1/containers/web", "")
	if rec.Code != 500 {
		t.Fatalf("status %d, want 500", rec.Code)
	}
	env := decodeEnvelope(t, rec.Body.Bytes())
	if env.Status != api.StatusFail || !strings.HasPrefix(env.Message, "internal error") {
		t.Errorf("envelope %+v", env)
	}
	for _, leak := range []string{"boom", "secret", "goroutine", ".go:", "panic"} {
		if strings.Contains(rec.Body.String(), leak) {
			t.Errorf("the response leaks %q: %s", leak, rec.Body)
		}
	}
	if l := logs.String(); !strings.Contains(l, "secret detail") || !strings.Contains(l, "rest_test.go") {
		t.Errorf("the panic and its stack are not logged: %s", l)
	}
	// The server keeps serving.
	f.panicValue = nil
	if rec := do(h, "GET", "/v1/containers/web", ""); rec.Code != 200 {
		t.Errorf("after a panic: status %d", rec.Code)
	}
}

// A panic after a stream has started cannot change the status: the
// connection is cut, so the client sees a broken stream, not a clean end.
func TestPanicMidStream(t *testing.T) {
	f := &fake{events: func(ctx context.Context, fn func(api.Event) error) error {
		_ = fn(api.Event{Type: "container", Action: "start", ID: testID, Time: t0})
		panic("boom")
	}}
	h, _ := newTestHandler(f)
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Errorf("the stream ended cleanly after a panic: %q", body)
	}
	if !strings.Contains(string(body), `"action":"start"`) {
		t.Errorf("the event before the panic is missing: %q", body)
	}
}

// ---- logs ----

func TestLogPlainText(t *testing.T) {
	tests := []struct {
		name, path, call, body string
	}{
		{"default tail", "/v1/containers/web/log", "ContainerLogs web follow=false tail=100 stdout=true stderr=true since=-", "one\ntwo\nthree\n"},
		{"tail 2", "/v1/containers/web/log?tail_lines=2", "ContainerLogs web follow=false tail=2 stdout=true stderr=true since=-", "two\nthree\n"},
		{"tail all", "/v1/containers/web/log?tail_lines=all", "ContainerLogs web follow=false tail=-1 stdout=true stderr=true since=-", "one\ntwo\nthree\n"},
		{"tail 0", "/v1/containers/web/log?tail_lines=0", "ContainerLogs web follow=false tail=0 stdout=true stderr=true since=-", ""},
		{"logs", "/v1/containers/web/logs", "ContainerLogs web follow=false tail=-1 stdout=true stderr=true since=-", "one\ntwo\nthree\n"},
		{"logs stdout", "/v1/containers/web/logs?stdout=1", "ContainerLogs web follow=false tail=-1 stdout=true stderr=false since=-", "one\nthree\n"},
		{"logs stderr", "/v1/containers/web/logs?stderr=true&stdout=0", "ContainerLogs web follow=false tail=-1 stdout=false stderr=true since=-", "two\n"},
		{"logs tail", "/v1/containers/web/logs?tail=1", "ContainerLogs web follow=false tail=1 stdout=true stderr=true since=-", "three\n"},
		{"logs since", "/v1/containers/web/logs?since=2024-01-02T03:04:05Z", "ContainerLogs web follow=false tail=-1 stdout=true stderr=true since=2024-01-02T03:04:05Z", "one\ntwo\nthree\n"},
		{"logs since unix", "/v1/containers/web/logs?since=1704164645", "ContainerLogs web follow=false tail=-1 stdout=true stderr=true since=2024-01-02T03:04:05Z", "one\ntwo\nthree\n"},
		{"logs timestamps", "/v1/containers/web/logs?timestamps=1&tail=2", "ContainerLogs web follow=false tail=2 stdout=true stderr=true since=-",
			"2024-01-02T03:04:06.000000000Z two\n2024-01-02T03:04:07.000000000Z three\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fake{}
			h, _ := newTestHandler(f)
			rec := do(h, "GET", tc.path, "")
			if rec.Code != 200 {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			if got := rec.Body.String(); got != tc.body {
				t.Errorf("body %q, want %q", got, tc.body)
			}
			if calls := f.called(); !slices.Equal(calls, []string{tc.call}) {
				t.Errorf("calls %q, want %q", calls, tc.call)
			}
		})
	}

	// A relative since is resolved against now.
	f := &fake{}
	h, _ := newTestHandler(f)
	before := time.Now()
	do(h, "GET", "/v1/containers/web/logs?since=1h", "")
	if c := f.called(); len(c) != 1 || !strings.Contains(c[0], "since="+before.Add(-time.Hour).UTC().Format("2006-01-02T15")) {
		t.Errorf("since=1h: %q", c)
	}

	// Errors before any output keep their status and envelope.
	f = &fake{err: fmt.Errorf("no such container: nope: %w", errdefs.ErrNotFound)}
	h, _ = newTestHandler(f)
	for _, path := range []string{"/v1/containers/nope/log", "/v1/containers/nope/logs", "/v1/containers/nope/logs?follow=1"} {
		rec := do(h, "GET", path, "")
		if rec.Code != 404 {
			t.Errorf("%s: status %d, want 404", path, rec.Code)
		}
		if env := decodeEnvelope(t, rec.Body.Bytes()); env.Message != "no such container: nope: not found" {
			t.Errorf("%s: %+v", path, env)
		}
	}
}

// waitGoroutines waits (bounded) until at most n goroutines are left.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, want ≤ %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLogsFollowStreamsAndEndsWithTheClient(t *testing.T) {
	baseline := runtime.NumGoroutine()

	lines := make(chan string)
	returned := make(chan error, 1)
	var backendCtx context.Context
	f := &fake{logs: func(ctx context.Context, ref string, opts LogOptions, fn func(api.LogEntry) error) error {
		backendCtx = ctx
		err := func() error {
			for {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case l := <-lines:
					if err := fn(api.LogEntry{Log: l, Stream: "stdout", Time: t0}); err != nil {
						return err
					}
				}
			}
		}()
		returned <- err
		return err
	}}
	h, _ := newTestHandler(f)
	srv := httptest.NewServer(h)
	client := srv.Client()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/containers/web/logs?follow=1&timestamps=0", nil)
	// The headers arrive before any line: Do returns while the log is silent.
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// Each line arrives on its own, before the next is produced.
	rd := bufio.NewReader(resp.Body)
	for _, want := range []string{"first\n", "second\n", "third\n"} {
		lines <- want
		got, err := rd.ReadString('\n')
		if err != nil || got != want {
			t.Fatalf("read %q, %v; want %q", got, err, want)
		}
	}
	// The container was resolved first, and followed by its id.
	if c := f.called(); len(c) != 2 || c[0] != "InspectContainer web" || !strings.HasPrefix(c[1], "ContainerLogs "+testID+" follow=true") {
		t.Errorf("calls %q", c)
	}

	// The client goes away: the backend's context is cancelled and it returns.
	cancel()
	resp.Body.Close()
	select {
	case err := <-returned:
		if !errors.Is(err, context.Canceled) && err == nil {
			t.Errorf("backend returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the backend call did not end when the client went away")
	}
	if backendCtx.Err() == nil {
		t.Error("the backend's context was not cancelled")
	}
	srv.Close()
	client.CloseIdleConnections()
	waitGoroutines(t, baseline)
}

// ---- pull and import progress ----

func readLines(t *testing.T, r io.Reader) []string {
	t.Helper()
	var lines []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

func TestPullNDJSON(t *testing.T) {
	step := make(chan struct{})
	f := &fake{pull: func(ctx context.Context, progress func(api.PullProgress)) (*api.PullResult, error) {
		progress(api.PullProgress{Layer: "sha256:11", Status: "downloading", Current: 10, Total: 100})
		<-step // the test has read the first line: progress is flushed as it comes
		progress(api.PullProgress{Layer: "sha256:11", Status: "done", Current: 100, Total: 100})
		progress(api.PullProgress{Layer: "sha256:22", Status: "exists"})
		return &api.PullResult{Image: "docker.io/library/alpine:latest", OS: "linux", Arch: "amd64"}, nil
	}}
	h, _ := newTestHandler(f)
	srv := httptest.NewServer(h)
	defer srv.Close()
	release := sync.OnceFunc(func() { close(step) })
	defer release()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/images", strings.NewReader(`{"image":"alpine:latest"}`))
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	rd := bufio.NewReader(resp.Body)
	first, err := rd.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, []byte(first), `{"layer":"sha256:11","status":"downloading","current":10,"total":100}`)
	release()
	lines := readLines(t, rd)
	if len(lines) != 3 {
		t.Fatalf("lines after the first: %q", lines)
	}
	jsonEqual(t, []byte(lines[0]), `{"layer":"sha256:11","status":"done","current":100,"total":100}`)
	jsonEqual(t, []byte(lines[1]), `{"layer":"sha256:22","status":"exists","current":0,"total":0}`)
	env := decodeEnvelope(t, []byte(lines[2]))
	if env.Status != api.StatusSuccess {
		t.Errorf("final envelope %+v", env)
	}
	jsonEqual(t, env.Data, `{"image":"docker.io/library/alpine:latest","os":"linux","arch":"amd64"}`)
}

func TestPullNDJSONFailures(t *testing.T) {
	notFound := fmt.Errorf("image \"alpine:3\" not found in docker.io: %w", errdefs.ErrNotFound)

	// Failing after progress: the status line has gone out; the last line says.
	f := &fake{pull: func(ctx context.Context, progress func(api.PullProgress)) (*api.PullResult, error) {
		progress(api.PullProgress{Layer: "sha256:11", Status: "downloading", Current: 1, Total: 2})
		return nil, fmt.Errorf("registry went away: %w", errdefs.ErrUnavailable)
	}}
	h, _ := newTestHandler(f)
	rec := do(h, "POST", "/v1/images", `{"image":"alpine:3"}`, "Accept", "application/json, application/x-ndjson")
	lines := readLines(t, rec.Body)
	if rec.Code != 200 || len(lines) != 2 {
		t.Fatalf("status %d, lines %q", rec.Code, lines)
	}
	if env := decodeEnvelope(t, []byte(lines[1])); env.Status != api.StatusFail || env.Message != "registry went away: unavailable" {
		t.Errorf("final line %+v", env)
	}

	// Failing before any progress: an ordinary response with its status.
	f = &fake{pull: func(context.Context, func(api.PullProgress)) (*api.PullResult, error) { return nil, notFound }}
	h, _ = newTestHandler(f)
	rec = do(h, "POST", "/v1/images", `{"image":"alpine:3"}`, "Accept", "application/x-ndjson")
	if rec.Code != 404 {
		t.Fatalf("status %d, want 404", rec.Code)
	}
	if env := decodeEnvelope(t, rec.Body.Bytes()); env.Message != notFound.Error() {
		t.Errorf("envelope %+v", env)
	}

	// Without the Accept header: no progress lines, one envelope.
	f = &fake{pull: func(ctx context.Context, progress func(api.PullProgress)) (*api.PullResult, error) {
		progress(api.PullProgress{Layer: "sha256:11", Status: "done"})
		return &api.PullResult{Image: "docker.io/library/alpine:3", OS: "linux", Arch: "amd64"}, nil
	}}
	h, _ = newTestHandler(f)
	rec = do(h, "POST", "/v1/images", `{"image":"alpine:3"}`)
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, Content-Type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if env := decodeEnvelope(t, rec.Body.Bytes()); env.Status != api.StatusSuccess {
		t.Errorf("envelope %+v", env)
	}

	// A backend calling back after it returned cannot write.
	var late func(api.PullProgress)
	f = &fake{pull: func(ctx context.Context, progress func(api.PullProgress)) (*api.PullResult, error) {
		late = progress
		return &api.PullResult{Image: "x"}, nil
	}}
	h, _ = newTestHandler(f)
	rec = do(h, "POST", "/v1/images", `{"image":"x"}`, "Accept", "application/x-ndjson")
	before := rec.Body.String()
	late(api.PullProgress{Layer: "late"})
	if rec.Body.String() != before {
		t.Errorf("a late progress call wrote %q", rec.Body.String()[len(before):])
	}
}

func TestImportStreamsTheBody(t *testing.T) {
	f := &fake{}
	h, _ := newTestHandler(f)
	srv := httptest.NewServer(h)
	defer srv.Close()
	// Larger than the JSON limit: import has none.
	payload := strings.Repeat("x", 3*maxBodyBytes)
	req, _ := http.NewRequest("POST", srv.URL+"/v1/images/import", strings.NewReader(payload))
	req.Header.Set("Content-Type", "application/x-tar")
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := readLines(t, resp.Body)
	if resp.StatusCode != 200 || len(lines) != 2 {
		t.Fatalf("status %d, lines %q", resp.StatusCode, lines)
	}
	jsonEqual(t, []byte(lines[0]), fmt.Sprintf(`{"layer":"sha256:cccc","status":"done","current":%d,"total":%d}`, len(payload), len(payload)))
	if env := decodeEnvelope(t, []byte(lines[1])); env.Status != api.StatusSuccess || env.Message != "imported 1 images" {
		t.Errorf("final line %+v", env)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.imported != payload {
		t.Errorf("the backend read %d bytes, want %d", len(f.imported), len(payload))
	}
}

// ---- events ----

func TestEventsStream(t *testing.T) {
	baseline := runtime.NumGoroutine()
	send := make(chan api.Event)
	returned := make(chan error, 1)
	f := &fake{events: func(ctx context.Context, fn func(api.Event) error) error {
		err := func() error {
			for {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case e := <-send:
					if err := fn(e); err != nil {
						return err
					}
				}
			}
		}()
		returned <- err
		return err
	}}
	h, _ := newTestHandler(f)
	srv := httptest.NewServer(h)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/events", nil)
	resp, err := srv.Client().Do(req) // returns at once: the headers are not held back
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	rd := bufio.NewReader(resp.Body)
	events := []api.Event{
		{Type: "container", Action: "start", ID: testID, Name: "web", Time: t0},
		{Type: "container", Action: "die", ID: testID, Name: "web", Attributes: map[string]string{"exitCode": "0"}, Time: t0},
	}
	wantLines := []string{
		`{"type":"container","action":"start","id":"` + testID + `","name":"web","time":"2024-01-02T03:04:05Z"}`,
		`{"type":"container","action":"die","id":"` + testID + `","name":"web","attributes":{"exitCode":"0"},"time":"2024-01-02T03:04:05Z"}`,
	}
	for i, e := range events {
		send <- e
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		jsonEqual(t, []byte(line), wantLines[i])
	}
	cancel()
	resp.Body.Close()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("Events did not return when the client went away")
	}
	srv.Close()
	srv.Client().CloseIdleConnections()
	waitGoroutines(t, baseline)
}

// ---- wait ends with the client too ----

func TestWaitEndsWithTheClient(t *testing.T) {
	f := &fake{}
	released := make(chan struct{})
	h, _ := newTestHandler(&blockingWait{fake: f, released: released})
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/containers/web/actions/wait", nil)
	if _, err := srv.Client().Do(req); err == nil {
		t.Fatal("wait returned before the container exited")
	}
	select {
	case <-released:
	case <-time.After(5 * time.Second):
		t.Fatal("WaitContainer did not return when the client went away")
	}
}

type blockingWait struct {
	*fake
	released chan struct{}
}

func (b *blockingWait) WaitContainer(ctx context.Context, ref string) (int, error) {
	<-ctx.Done()
	close(b.released)
	return 0, ctx.Err()
}
