package backend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/raind/condenser/imagestore"
	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/rest"
	"github.com/raind/condenser/rest/api"
	"github.com/raind/condenser/shim/client"
	"github.com/raind/condenser/shim/logging"
	"github.com/raind/condenser/supervisor"
)

// ---- fakes ----

// fakeSup is a Supervisor over a list of records; err, when set, is every
// call's answer.
type fakeSup struct {
	mu         sync.Mutex
	containers []*supervisor.Container
	err        error
	statsErr   map[string]error // per container id
	stats      client.Stats
	created    supervisor.CreateRequest
	calls      []string
	logs       []logging.Entry
	logOpts    supervisor.LogOptions
	events     chan supervisor.Event
	stopped    bool // the event subscription was ended
	exec       supervisor.ExecRequest
	execs      []client.ExecProcess
	attachOpts supervisor.AttachOptions
	stream     supervisor.Stream
	networks   []supervisor.Network
	netCreated supervisor.NetworkConfig
	gen        uint64 // Snapshot's generation
}

var _ Supervisor = (*fakeSup)(nil)

func (f *fakeSup) call(format string, a ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, a...))
	return f.err
}

func (f *fakeSup) find(ref string) (*supervisor.Container, error) {
	for _, c := range f.containers {
		if c.ID == ref || c.Name == ref {
			return c, nil
		}
	}
	return nil, fmt.Errorf("no such container: %s: %w", ref, errdefs.ErrNotFound)
}

func (f *fakeSup) Create(_ context.Context, req supervisor.CreateRequest) (*supervisor.Container, error) {
	if err := f.call("Create"); err != nil {
		return nil, err
	}
	f.created = req
	return &supervisor.Container{ID: testID, Name: req.Name}, nil
}

func (f *fakeSup) List(context.Context) ([]*supervisor.Container, error) {
	if err := f.call("List"); err != nil {
		return nil, err
	}
	return f.containers, nil
}

// Snapshot shares the records, at generation gen: a test that changes
// them bumps gen, as the supervisor does.
func (f *fakeSup) Snapshot() supervisor.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return supervisor.Snapshot{Gen: f.gen, Containers: f.containers}
}

func (f *fakeSup) Get(_ context.Context, ref string) (*supervisor.Container, error) {
	if err := f.call("Get %s", ref); err != nil {
		return nil, err
	}
	return f.find(ref)
}

func (f *fakeSup) action(name, ref string) (*supervisor.Container, error) {
	if err := f.call("%s %s", name, ref); err != nil {
		return nil, err
	}
	return f.find(ref)
}

func (f *fakeSup) Start(_ context.Context, ref string) (*supervisor.Container, error) {
	return f.action("Start", ref)
}

func (f *fakeSup) Stop(_ context.Context, ref string, timeout time.Duration) (*supervisor.Container, error) {
	return f.action("Stop "+timeout.String(), ref)
}

func (f *fakeSup) Kill(_ context.Context, ref string, sig syscall.Signal) (*supervisor.Container, error) {
	return f.action(fmt.Sprintf("Kill %d", sig), ref)
}

func (f *fakeSup) Restart(_ context.Context, ref string, timeout time.Duration) (*supervisor.Container, error) {
	return f.action("Restart "+timeout.String(), ref)
}

func (f *fakeSup) Wait(_ context.Context, ref string) (int, error) {
	if err := f.call("Wait %s", ref); err != nil {
		return 0, err
	}
	return 3, nil
}

func (f *fakeSup) Delete(_ context.Context, ref string, force bool) (*supervisor.Container, error) {
	return f.action(fmt.Sprintf("Delete %v", force), ref)
}

func (f *fakeSup) Logs(_ context.Context, ref string, o supervisor.LogOptions, fn func(logging.Entry) error) error {
	if err := f.call("Logs %s", ref); err != nil {
		return err
	}
	f.logOpts = o
	for _, e := range f.logs {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeSup) Stats(_ context.Context, ref string) (client.Stats, *supervisor.Container, error) {
	if err := f.call("Stats %s", ref); err != nil {
		return client.Stats{}, nil, err
	}
	c, err := f.find(ref)
	if err != nil {
		return client.Stats{}, nil, err
	}
	if err := f.statsErr[c.ID]; err != nil {
		return client.Stats{}, c, err
	}
	return f.stats, c, nil
}

func (f *fakeSup) Subscribe() (<-chan supervisor.Event, func()) {
	return f.events, func() {
		f.mu.Lock()
		f.stopped = true
		f.mu.Unlock()
	}
}

func (f *fakeSup) ImageUsers(context.Context, string) ([]string, error) { return nil, nil }

func (f *fakeSup) Exec(_ context.Context, ref string, r supervisor.ExecRequest) (string, error) {
	if err := f.call("Exec %s", ref); err != nil {
		return "", err
	}
	f.exec = r
	return testExecID, nil
}

func (f *fakeSup) ExecState(_ context.Context, ref, exec string) (client.ExecProcess, *supervisor.Container, error) {
	if err := f.call("ExecState %s %s", ref, exec); err != nil {
		return client.ExecProcess{}, nil, err
	}
	c, err := f.find(ref)
	if err != nil {
		return client.ExecProcess{}, nil, err
	}
	for _, e := range f.execs {
		if e.ID == exec {
			return e, c, nil
		}
	}
	return client.ExecProcess{}, c, fmt.Errorf("no exec process %s: %w", exec, errdefs.ErrNotFound)
}

func (f *fakeSup) Execs(_ context.Context, ref string) ([]client.ExecProcess, *supervisor.Container, error) {
	if err := f.call("Execs %s", ref); err != nil {
		return nil, nil, err
	}
	c, err := f.find(ref)
	if err != nil {
		return nil, nil, err
	}
	return f.execs, c, nil
}

func (f *fakeSup) Attach(_ context.Context, ref string, o supervisor.AttachOptions) (supervisor.Stream, error) {
	if err := f.call("Attach %s", ref); err != nil {
		return nil, err
	}
	if _, err := f.find(ref); err != nil {
		return nil, err
	}
	f.attachOpts = o
	return f.stream, nil
}

func (f *fakeSup) Resize(_ context.Context, ref, exec string, rows, cols uint16) error {
	return f.call("Resize %s exec=%s %dx%d", ref, exec, rows, cols)
}

func (f *fakeSup) Networks(context.Context) ([]supervisor.Network, error) {
	if err := f.call("Networks"); err != nil {
		return nil, err
	}
	return f.networks, nil
}

func (f *fakeSup) Network(_ context.Context, name string) (supervisor.Network, error) {
	if err := f.call("Network %s", name); err != nil {
		return supervisor.Network{}, err
	}
	for _, n := range f.networks {
		if n.Name == name {
			return n, nil
		}
	}
	return supervisor.Network{}, fmt.Errorf("no such network: %s: %w", name, errdefs.ErrNotFound)
}

func (f *fakeSup) CreateNetwork(_ context.Context, cfg supervisor.NetworkConfig) (supervisor.Network, error) {
	if err := f.call("CreateNetwork %s", cfg.Name); err != nil {
		return supervisor.Network{}, err
	}
	f.netCreated = cfg
	return supervisor.Network{Name: cfg.Name, Driver: "bridge", Bridge: "rd-" + cfg.Name,
		Subnet: netip.MustParsePrefix("10.167.0.0/24"), Gateway: netip.MustParseAddr("10.167.0.1")}, nil
}

func (f *fakeSup) RemoveNetwork(_ context.Context, name string) error {
	return f.call("RemoveNetwork %s", name)
}

// fakeStream is a supervisor.Stream over a buffer.
type fakeStream struct {
	bytes.Buffer
	terminal bool
	closed   bool
}

func (s *fakeStream) Close() error      { s.closed = true; return nil }
func (s *fakeStream) CloseWrite() error { return nil }
func (s *fakeStream) Terminal() bool    { return s.terminal }

// fakeImages is an Images with one image; err, when set, is every call's
// answer.
type fakeImages struct {
	img      imagestore.Image
	cfg      *v1.ConfigFile
	err      error
	pullOpts imagestore.PullOptions
	removed  imagestore.RemoveOptions
	imported string
}

var _ Images = (*fakeImages)(nil)

func (f *fakeImages) Pull(_ context.Context, _ string, o imagestore.PullOptions) (imagestore.Image, error) {
	f.pullOpts = o
	if o.Progress != nil {
		o.Progress(imagestore.Progress{Layer: "sha256:cc", Status: "downloading", Current: 1, Total: 2})
	}
	return f.img, f.err
}

func (f *fakeImages) List(context.Context) ([]imagestore.Image, error) {
	return []imagestore.Image{f.img}, f.err
}

func (f *fakeImages) Inspect(context.Context, string) (imagestore.Image, error) { return f.img, f.err }

func (f *fakeImages) Remove(_ context.Context, _ string, o imagestore.RemoveOptions) ([]string, error) {
	f.removed = o
	return nil, f.err
}

func (f *fakeImages) Config(context.Context, imagestore.Image) (*v1.ConfigFile, error) {
	if f.cfg == nil {
		return nil, errors.New("no config")
	}
	return f.cfg, nil
}

func (f *fakeImages) DiskUsage(context.Context) (imagestore.Usage, error) {
	return imagestore.Usage{Total: 4096}, f.err
}

func (f *fakeImages) Import(_ context.Context, r io.Reader, _ imagestore.ImportOptions) ([]imagestore.Image, error) {
	b, _ := io.ReadAll(r)
	f.imported = string(b)
	if f.err != nil {
		return nil, f.err
	}
	return []imagestore.Image{f.img}, nil
}

// ---- fixtures ----

const (
	testID     = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	testExecID = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

var t0 = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// request builds a stored create request by assignment, which reads the
// same whether the spec fields are CreateRequest's or an embedded struct's.
func request(set func(r *supervisor.CreateRequest)) supervisor.CreateRequest {
	var r supervisor.CreateRequest
	r.Image = "alpine:3"
	if set != nil {
		set(&r)
	}
	return r
}

func container(name string, state supervisor.State, set func(c *supervisor.Container)) *supervisor.Container {
	c := &supervisor.Container{
		ID: strings.Repeat(name[:1], 64), Name: name, Image: "docker.io/library/alpine:3", ImageID: "sha256:11", ImageDigest: "sha256:22",
		Request: request(nil), Args: []string{"sh", "-c", "sleep 1d"}, State: state, Pid: 42, ShimPid: 41,
		Bundle: "/run/condenser/shims/" + name, CreatingAt: t0, CreatedAt: t0.Add(time.Second),
	}
	if set != nil {
		set(c)
	}
	return c
}

func newTest(sup *fakeSup, images *fakeImages) *Backend {
	if images == nil {
		images = &fakeImages{}
	}
	b := New(sup, images, "1.2.3", api.SystemInfo{Runtime: "runc", CgroupMode: "v1", StorageDriver: "overlayfs", OS: "linux"})
	b.now = func() time.Time { return t0 }
	return b
}

// ---- containers ----

func TestCreateRequest(t *testing.T) {
	sup := &fakeSup{}
	b := newTest(sup, nil)
	id, err := b.CreateContainer(context.Background(), api.CreateContainerRequest{
		Image: "alpine", Command: []string{"echo", "hi"}, Env: []string{"A=1"}, Mount: []string{"/h:/c:ro"},
		Network: "none", Name: "web", Entrypoint: []string{}, Workdir: "/srv", User: "1000:1000",
		Hostname: "box", Labels: map[string]string{"app": "web"}, RestartPolicy: "on-failure:3",
		Resources: &api.Resources{Memory: 64 << 20, CPUs: 1.5, Pids: 64}, ReadOnly: true, AutoRemove: true,
		Tty: true, OpenStdin: true, Port: []string{"8080:80", "127.0.0.1:5353:53/udp"},
	})
	if err != nil || id != testID {
		t.Fatalf("CreateContainer = %q, %v", id, err)
	}
	want := request(func(r *supervisor.CreateRequest) {
		r.Image, r.Name, r.RestartPolicy, r.AutoRemove = "alpine", "web", "on-failure:3", true
		r.Entrypoint, r.Command, r.Env, r.Mounts = []string{}, []string{"echo", "hi"}, []string{"A=1"}, []string{"/h:/c:ro"}
		r.WorkingDir, r.User, r.Hostname, r.Labels, r.Network = "/srv", "1000:1000", "box", map[string]string{"app": "web"}, "none"
		r.Memory, r.CPUs, r.PidsLimit, r.ReadOnly = 64<<20, 1.5, 64, true
		r.Tty, r.OpenStdin = true, true
		r.Ports = []string{"8080:80", "127.0.0.1:5353:53/udp"}
	})
	if !reflect.DeepEqual(sup.created, want) {
		t.Errorf("supervisor got\n%+v\nwant\n%+v", sup.created, want)
	}

	// No resources: no limits; an absent entrypoint stays nil (the image's).
	if _, err := b.CreateContainer(context.Background(), api.CreateContainerRequest{Image: "alpine"}); err != nil {
		t.Fatal(err)
	}
	if want := request(func(r *supervisor.CreateRequest) { r.Image = "alpine" }); !reflect.DeepEqual(sup.created, want) {
		t.Errorf("supervisor got %+v, want %+v", sup.created, want)
	}
}

func TestDetail(t *testing.T) {
	code0, code137 := 0, 137
	tests := []struct {
		name string
		c    *supervisor.Container
		want func(d *api.ContainerDetail) // changes to the base detail
	}{
		{"running", container("web", supervisor.StateRunning, func(c *supervisor.Container) { c.StartedAt = t0.Add(2 * time.Second) }),
			func(d *api.ContainerDetail) { d.State, d.Pid, d.StartedAt = "running", 42, t0.Add(2*time.Second) }},
		{"created: no pid", container("web", supervisor.StateCreated, nil),
			func(d *api.ContainerDetail) { d.State = "created" }},
		{"exited 0", container("web", supervisor.StateStopped, func(c *supervisor.Container) { c.ExitCode = &code0 }),
			func(d *api.ContainerDetail) { d.State, d.ExitCode = "stopped", &code0 }},
		{"killed, OOM, restarted", container("web", supervisor.StateStopped, func(c *supervisor.Container) {
			c.ExitCode, c.OOMKilled, c.RestartCount, c.StoppedAt = &code137, true, 2, t0.Add(time.Hour)
		}), func(d *api.ContainerDetail) {
			d.State, d.ExitCode, d.OOMKilled, d.RestartCount, d.StoppedAt = "stopped", &code137, true, 2, t0.Add(time.Hour)
		}},
		{"exit unknown", container("web", supervisor.StateStopped, nil), func(d *api.ContainerDetail) {
			unknown := api.ExitUnknown
			d.State, d.ExitCode, d.Error = "stopped", &unknown, ExitUnknownError
		}},
		{"mounts", container("web", supervisor.StateCreated, func(c *supervisor.Container) {
			c.Request.Mounts = []string{"/h:/c:ro", "/a:/b", "/x:/y:rw", "bad"}
		}), func(d *api.ContainerDetail) {
			d.State = "created"
			d.Config.Mounts = []api.Mount{{Source: "/h", Destination: "/c", ReadOnly: true}, {Source: "/a", Destination: "/b"}, {Source: "/x", Destination: "/y"}}
		}},
		{"resources", container("web", supervisor.StateCreated, func(c *supervisor.Container) {
			c.Request.Memory, c.Request.PidsLimit = 64<<20, 10
		}), func(d *api.ContainerDetail) {
			d.State, d.Config.Resources = "created", &api.Resources{Memory: 64 << 20, Pids: 10}
		}},
		{"cpus only", container("web", supervisor.StateCreated, func(c *supervisor.Container) { c.Request.CPUs = 0.5 }),
			func(d *api.ContainerDetail) { d.State, d.Config.Resources = "created", &api.Resources{CPUs: 0.5} }},
		{"the rest of the request", container("web", supervisor.StateCreated, func(c *supervisor.Container) {
			r := &c.Request
			r.Env, r.WorkingDir, r.User, r.Hostname, r.Network = []string{"A=1"}, "/srv", "1000", "box", "host"
			r.Labels, r.RestartPolicy, r.ReadOnly, r.AutoRemove = map[string]string{"a": "b"}, "always", true, true
			r.Tty, r.OpenStdin = true, true
		}), func(d *api.ContainerDetail) {
			d.State = "created"
			cfg := &d.Config
			cfg.Env, cfg.Workdir, cfg.User, cfg.Hostname, cfg.Network = []string{"A=1"}, "/srv", "1000", "box", "host"
			cfg.Labels, cfg.RestartPolicy, cfg.ReadOnly, cfg.AutoRemove = map[string]string{"a": "b"}, "always", true, true
			cfg.Tty, cfg.OpenStdin = true, true
		}},
		{"on a network, ports published", container("web", supervisor.StateRunning, func(c *supervisor.Container) {
			c.Request.Network, c.Request.Ports = "raind0", []string{"18080:80", "127.0.0.1:5353:53/udp", "[::1]:9090:90", ":::8443:443"}
			c.Endpoint = &supervisor.Endpoint{
				Network: "raind0", IP: netip.MustParseAddr("10.166.0.1"), Prefix: netip.MustParsePrefix("10.166.0.0/24"),
				Gateway: netip.MustParseAddr("10.166.0.254"), MAC: "02:42:0a:a6:00:01",
				Ports: []supervisor.PublishedPort{
					{HostPort: 18080, ContainerPort: 80, Protocol: "tcp"}, // the zero address: all of the host's
					{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 5353, ContainerPort: 53, Protocol: "udp"},
					{HostIP: netip.MustParseAddr("::1"), HostPort: 9090, ContainerPort: 90, Protocol: "tcp"},
					{HostIP: netip.MustParseAddr("::"), HostPort: 8443, ContainerPort: 443, Protocol: "tcp"},
				},
			}
		}), func(d *api.ContainerDetail) {
			d.State, d.Pid, d.Config.Network = "running", 42, "raind0"
			d.Config.Ports = []string{"18080:80", "127.0.0.1:5353:53/udp", "[::1]:9090:90", ":::8443:443"}
			d.Address = "10.166.0.1"
			d.Forwards = []api.Forward{
				{Source: 18080, Destination: 80, Protocol: "tcp"},
				{Source: 5353, Destination: 53, Protocol: "udp", HostIP: "127.0.0.1"},
				{Source: 9090, Destination: 90, Protocol: "tcp", HostIP: "::1"},
				{Source: 8443, Destination: 443, Protocol: "tcp"},
			}
			d.NetworkSettings = &api.NetworkSettings{
				Network: "raind0", Address: "10.166.0.1", PrefixLen: 24, Gateway: "10.166.0.254", MAC: "02:42:0a:a6:00:01",
				Ports: []api.PortBinding{
					{HostIP: "0.0.0.0", HostPort: 18080, ContainerPort: 80, Protocol: "tcp"},
					{HostIP: "127.0.0.1", HostPort: 5353, ContainerPort: 53, Protocol: "udp"},
					{HostIP: "::1", HostPort: 9090, ContainerPort: 90, Protocol: "tcp"},
					{HostIP: "::", HostPort: 8443, ContainerPort: 443, Protocol: "tcp"},
				},
			}
		}},
		{"on a network, nothing published", container("web", supervisor.StateCreated, func(c *supervisor.Container) {
			c.Request.Network = "backend"
			c.Endpoint = &supervisor.Endpoint{Network: "backend", IP: netip.MustParseAddr("10.167.0.2"),
				Prefix: netip.MustParsePrefix("10.167.0.0/24"), Gateway: netip.MustParseAddr("10.167.0.1")}
		}), func(d *api.ContainerDetail) {
			d.State, d.Config.Network, d.Address = "created", "backend", "10.167.0.2"
			d.NetworkSettings = &api.NetworkSettings{Network: "backend", Address: "10.167.0.2", PrefixLen: 24,
				Gateway: "10.167.0.1", Ports: []api.PortBinding{}}
		}},
		{"stopped: ports asked, no endpoint", container("web", supervisor.StateStopped, func(c *supervisor.Container) {
			code := 0
			c.ExitCode, c.Request.Ports = &code, []string{"18080:80"}
		}), func(d *api.ContainerDetail) {
			code := 0
			d.State, d.ExitCode, d.Config.Ports = "stopped", &code, []string{"18080:80"}
		}},
		{"image by digest elsewhere", container("web", supervisor.StateCreated, func(c *supervisor.Container) {
			c.Image = "registry.lan:5000/team/app@sha256:" + strings.Repeat("a", 64)
		}), func(d *api.ContainerDetail) {
			d.State, d.ImageRepository, d.ImageReference = "created", "registry.lan:5000/team/app", "sha256:"+strings.Repeat("a", 64)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sup := &fakeSup{containers: []*supervisor.Container{tc.c}}
			got, err := newTest(sup, nil).InspectContainer(context.Background(), "web")
			if err != nil {
				t.Fatal(err)
			}
			want := &api.ContainerDetail{
				ContainerSummary: api.ContainerSummary{
					ContainerID: strings.Repeat("w", 64), Name: "web", ImageRepository: "library/alpine", ImageReference: "3",
					Command: []string{"sh", "-c", "sleep 1d"}, Forwards: []api.Forward{}, CreatingAt: t0, CreatedAt: t0.Add(time.Second),
				},
				ShimPid: 41, Bundle: "/run/condenser/shims/web", Rootfs: "/proc/41/root/run/condenser/shims/web/rootfs", ImageDigest: "sha256:22",
				Config: api.ContainerConfig{Args: []string{"sh", "-c", "sleep 1d"}, Mounts: []api.Mount{}},
			}
			tc.want(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("detail\n got %+v\nwant %+v", *got, *want)
			}
			// The summary is the detail's first part.
			list, err := newTest(sup, nil).ListContainers(context.Background(), true, nil)
			if err != nil || len(list) != 1 || !reflect.DeepEqual(list[0], want.ContainerSummary) {
				t.Errorf("summary %+v, %v; want %+v", list, err, want.ContainerSummary)
			}
		})
	}
}

func TestListContainers(t *testing.T) {
	labeled := func(l map[string]string) func(c *supervisor.Container) {
		return func(c *supervisor.Container) { c.Request.Labels = l }
	}
	sup := &fakeSup{containers: []*supervisor.Container{
		container("api", supervisor.StateRunning, labeled(map[string]string{"app": "web", "tier": "front"})),
		container("batch", supervisor.StateStopped, labeled(map[string]string{"app": "jobs"})),
		container("cache", supervisor.StateCreated, labeled(map[string]string{"app": "web", "tier": ""})),
		container("db", supervisor.StateRunning, nil),
	}}
	b := newTest(sup, nil)
	for _, tc := range []struct {
		all    bool
		labels map[string]string
		want   string
	}{
		{true, nil, "api batch cache db"},
		{false, nil, "api db"},
		{true, map[string]string{"app": "web"}, "api cache"},
		{false, map[string]string{"app": "web"}, "api"},
		{true, map[string]string{"tier": ""}, "api cache"}, // KEY alone: any value, the empty one too
		{true, map[string]string{"tier": "front"}, "api"},
		{true, map[string]string{"app": "web", "tier": "front"}, "api"},
		{true, map[string]string{"app": "jobs", "tier": "front"}, ""},
		{true, map[string]string{"nope": ""}, ""},
	} {
		list, err := b.ListContainers(context.Background(), tc.all, tc.labels)
		if err != nil {
			t.Fatal(err)
		}
		if list == nil {
			t.Errorf("all=%v labels=%v: nil, want a list", tc.all, tc.labels)
		}
		var names []string
		for _, s := range list {
			names = append(names, s.Name)
		}
		if got := strings.Join(names, " "); got != tc.want {
			t.Errorf("all=%v labels=%v: %q, want %q", tc.all, tc.labels, got, tc.want)
		}
	}
}

func TestActions(t *testing.T) {
	sup := &fakeSup{containers: []*supervisor.Container{container("web", supervisor.StateRunning, nil)}}
	b := newTest(sup, nil)
	ctx := context.Background()
	id := strings.Repeat("w", 64)
	for name, do := range map[string]func() (string, error){
		"start":   func() (string, error) { return b.StartContainer(ctx, "web") },
		"stop":    func() (string, error) { return b.StopContainer(ctx, "web", 3*time.Second) },
		"kill":    func() (string, error) { return b.KillContainer(ctx, "web", syscall.SIGTERM) },
		"restart": func() (string, error) { return b.RestartContainer(ctx, "web", time.Second) },
		"delete":  func() (string, error) { return b.DeleteContainer(ctx, "web", true) },
	} {
		if got, err := do(); err != nil || got != id {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
	if code, err := b.WaitContainer(ctx, "web"); code != 3 || err != nil {
		t.Errorf("wait: %d, %v", code, err)
	}
	want := []string{"Start web", "Stop 3s web", "Kill 15 web", "Restart 1s web", "Delete true web", "Wait web"}
	for _, w := range want {
		if !strings.Contains(strings.Join(sup.calls, "|"), w) {
			t.Errorf("calls %q lack %q", sup.calls, w)
		}
	}
}

func TestLogs(t *testing.T) {
	sup := &fakeSup{logs: []logging.Entry{{Log: "a\n", Stream: "stdout", Time: t0}, {Log: "b\n", Stream: "stderr", Time: t0.Add(time.Second)}}}
	b := newTest(sup, nil)
	var got []api.LogEntry
	opts := rest.LogOptions{Follow: true, Since: t0, Tail: 5, Stdout: true}
	err := b.ContainerLogs(context.Background(), "web", opts, func(e api.LogEntry) error {
		got = append(got, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []api.LogEntry{{Log: "a\n", Stream: "stdout", Time: t0}, {Log: "b\n", Stream: "stderr", Time: t0.Add(time.Second)}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("entries %+v", got)
	}
	if wantOpts := (supervisor.LogOptions{Follow: true, Since: t0, Tail: 5, Stdout: true}); sup.logOpts != wantOpts {
		t.Errorf("options %+v", sup.logOpts)
	}
	// fn's error ends the call and comes back.
	stop := errors.New("client gone")
	if err := b.ContainerLogs(context.Background(), "web", opts, func(api.LogEntry) error { return stop }); err != stop {
		t.Errorf("fn's error: %v", err)
	}
}

// ---- stats ----

func TestStats(t *testing.T) {
	sup := &fakeSup{
		containers: []*supervisor.Container{
			container("api", supervisor.StateRunning, nil),
			container("batch", supervisor.StateStopped, nil),
			container("cache", supervisor.StateRunning, nil), // stops before it is sampled
			container("db", supervisor.StateRunning, nil),
		},
		statsErr: map[string]error{strings.Repeat("c", 64): fmt.Errorf("container cache is not running: %w", errdefs.ErrConflict)},
		stats: client.Stats{
			CPUUsageNanos: 1, MemoryUsage: 2, MemoryCache: 3, MemoryLimit: 4, MemoryMaxUsage: 5,
			PidsCurrent: 6, PidsLimit: 7, BlkioReadBytes: 8, BlkioWriteBytes: 9, OOMKills: 10,
		},
	}
	b := newTest(sup, nil)
	got, err := b.ContainerStats(context.Background(), "api")
	if err != nil {
		t.Fatal(err)
	}
	want := &api.ContainerStats{
		ContainerID: strings.Repeat("a", 64), Name: "api", Time: t0,
		CPU:    api.CPUStats{UsageNanos: 1},
		Memory: api.MemoryStats{Usage: 2, Cache: 3, Limit: 4, MaxUsage: 5, OOMKills: 10},
		Pids:   api.PidsStats{Current: 6, Limit: 7},
		IO:     api.IOStats{ReadBytes: 8, WriteBytes: 9},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stats\n got %+v\nwant %+v", got, want)
	}
	if _, err := b.ContainerStats(context.Background(), "cache"); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("stats of a stopped container: %v", err)
	}

	all, err := b.AllContainerStats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range all {
		names = append(names, s.Name)
	}
	if strings.Join(names, " ") != "api db" {
		t.Errorf("all stats of %q, want api and db", names)
	}

	if all, err := newTest(&fakeSup{}, nil).AllContainerStats(context.Background()); err != nil || all == nil || len(all) != 0 {
		t.Errorf("no containers: %#v, %v; want an empty list", all, err)
	}
}

// ---- events ----

func TestEvents(t *testing.T) {
	code0, code3 := 0, 3
	in := []supervisor.Event{
		{Time: t0, Type: "container", Action: "create", ID: testID, Name: "web"},
		{Time: t0, Type: "container", Action: "start", ID: testID, Name: "web"},
		{Time: t0, Type: "container", Action: "die", ID: testID, Name: "web", ExitCode: &code3},
		{Time: t0, Type: "container", Action: "die", ID: testID, Name: "web", ExitCode: &code0},
		{Time: t0, Type: "container", Action: "die", ID: testID, Name: "web"}, // the status was lost
		{Time: t0, Type: "image", Action: "pull", ID: "sha256:11", Name: "docker.io/library/alpine:3"},
	}
	want := []api.Event{
		{Time: t0, Type: "container", Action: "create", ID: testID, Name: "web"},
		{Time: t0, Type: "container", Action: "start", ID: testID, Name: "web"},
		{Time: t0, Type: "container", Action: "die", ID: testID, Name: "web", Attributes: map[string]string{"exitCode": "3"}},
		{Time: t0, Type: "container", Action: "die", ID: testID, Name: "web", Attributes: map[string]string{"exitCode": "0"}},
		{Time: t0, Type: "container", Action: "die", ID: testID, Name: "web", Attributes: map[string]string{"exitCode": "-1"}},
		{Time: t0, Type: "image", Action: "pull", ID: "sha256:11", Name: "docker.io/library/alpine:3"},
	}
	sup := &fakeSup{events: make(chan supervisor.Event, len(in))}
	for _, e := range in {
		sup.events <- e
	}
	b := newTest(sup, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got []api.Event
	err := b.Events(ctx, func(e api.Event) error {
		got = append(got, e)
		if len(got) == len(want) {
			cancel()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Events ended by its context: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events\n got %+v\nwant %+v", got, want)
	}
	if !sup.stopped {
		t.Error("the subscription was not ended")
	}

	// fn's error ends it and comes back; so does a closed channel, quietly.
	sup = &fakeSup{events: make(chan supervisor.Event, 1)}
	sup.events <- in[0]
	stop := errors.New("client gone")
	if err := newTest(sup, nil).Events(context.Background(), func(api.Event) error { return stop }); err != stop {
		t.Errorf("fn's error: %v", err)
	}
	close(sup.events)
	if err := newTest(sup, nil).Events(context.Background(), func(api.Event) error { return nil }); err != nil {
		t.Errorf("closed channel: %v", err)
	}
}

// ---- images ----

func TestImages(t *testing.T) {
	img := imagestore.Image{
		Name: "docker.io/library/alpine:3", ID: "sha256:11", Digest: "sha256:22", Size: 1234, Created: t0,
		Platform: imagestore.Platform{OS: "linux", Architecture: "arm64"},
	}
	cfg := &v1.ConfigFile{Config: v1.Config{User: "nobody"}}
	images := &fakeImages{img: img, cfg: cfg}
	sup := &fakeSup{}
	b := newTest(sup, images)
	ctx := context.Background()

	var progress []api.PullProgress
	res, err := b.PullImage(ctx, "alpine:3", "", "arm64", func(p api.PullProgress) { progress = append(progress, p) })
	if err != nil {
		t.Fatal(err)
	}
	if want := (&api.PullResult{Image: img.Name, OS: "linux", Arch: "arm64", ID: "sha256:11", Digest: "sha256:22"}); !reflect.DeepEqual(res, want) {
		t.Errorf("pull result %+v", res)
	}
	if p := images.pullOpts.Platform; p == nil || p.Architecture != "arm64" || p.OS != imagestore.HostPlatform().OS || p.Variant != "" {
		t.Errorf("pull platform %+v", p)
	}
	if want := []api.PullProgress{{Layer: "sha256:cc", Status: "downloading", Current: 1, Total: 2}}; !reflect.DeepEqual(progress, want) {
		t.Errorf("progress %+v", progress)
	}
	if _, err := b.PullImage(ctx, "alpine", "", "", nil); err != nil || images.pullOpts.Platform != nil || images.pullOpts.Progress != nil {
		t.Errorf("pull for the host: %v, %+v", err, images.pullOpts)
	}

	summary := api.ImageSummary{Repository: "docker.io/library/alpine", Reference: "3", CreatedAt: t0, ID: "sha256:11", Digest: "sha256:22", Size: 1234}
	if list, err := b.ListImages(ctx); err != nil || !reflect.DeepEqual(list, []api.ImageSummary{summary}) {
		t.Errorf("images %+v, %v", list, err)
	}
	if list, err := b.ImportImage(ctx, strings.NewReader("tarball"), nil); err != nil || !reflect.DeepEqual(list, []api.ImageSummary{summary}) || images.imported != "tarball" {
		t.Errorf("import %+v, %v (read %q)", list, err, images.imported)
	}

	st, err := b.ImageStatus(ctx, "alpine:3")
	if err != nil {
		t.Fatal(err)
	}
	wantSt := &api.ImageStatus{
		Repository: "docker.io/library/alpine", Reference: "3", ID: "sha256:11", RepoTags: []string{img.Name},
		RepoDigests: []string{"docker.io/library/alpine@sha256:22"}, SizeBytes: 1234, CreatedAt: t0, User: "nobody",
	}
	if !reflect.DeepEqual(st, wantSt) {
		t.Errorf("status\n got %+v\nwant %+v", st, wantSt)
	}
	// A nameless image (removed while in use): no tags, empty lists.
	images.img.Name, images.cfg = "", nil
	st, err = b.ImageStatus(ctx, "sha256:11")
	if err != nil || st.RepoTags == nil || len(st.RepoTags) != 0 || st.RepoDigests == nil || st.Repository != "" || st.User != "" {
		t.Errorf("nameless status %+v, %v", st, err)
	}

	if err := b.RemoveImage(ctx, "alpine:3", true); err != nil || !images.removed.Force || images.removed.Users != Supervisor(sup) {
		t.Errorf("remove: %v, %+v (the supervisor must be asked who uses the image)", err, images.removed)
	}
	if used, err := b.ImagesFS(ctx); used != 4096 || err != nil {
		t.Errorf("fs: %d, %v", used, err)
	}
}

// ---- system ----

func TestVersionAndInfo(t *testing.T) {
	sup := &fakeSup{containers: []*supervisor.Container{
		container("api", supervisor.StateRunning, nil),
		container("batch", supervisor.StateStopped, nil),
		container("cache", supervisor.StateCreated, nil),
	}}
	b := newTest(sup, &fakeImages{})
	if v := b.Version(context.Background()); v.Version != "1.2.3" || v.GoVersion == "" || v.OS == "" || v.Arch == "" {
		t.Errorf("version %+v", v)
	}
	info, err := b.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.Runtime != "runc" || info.CgroupMode != "v1" || info.StorageDriver != "overlayfs" || info.OS != "linux" ||
		info.Containers != 3 || info.ContainersRunning != 1 || info.ContainersStopped != 1 || info.Images != 1 ||
		info.NCPU < 1 || info.MemTotal <= 0 {
		t.Errorf("info %+v", info)
	}
	// Info does not change what New was given.
	if b.info.Containers != 0 {
		t.Errorf("Info wrote into the backend: %+v", b.info)
	}
}

// ---- errors ----

// Errors of the supervisor and the image store come back unchanged, their
// kinds included, for rest/ to map to status codes.
func TestErrorsPassThrough(t *testing.T) {
	for _, kind := range []error{errdefs.ErrNotFound, errdefs.ErrInvalidArgument, errdefs.ErrConflict, errdefs.ErrAlreadyExists, errdefs.ErrUnavailable, errors.New("disk on fire")} {
		cause := fmt.Errorf("the cause: %w", kind)
		b := newTest(&fakeSup{err: cause, events: make(chan supervisor.Event)}, &fakeImages{err: cause})
		ctx := context.Background()
		calls := map[string]func() error{
			"create": func() error {
				_, err := b.CreateContainer(ctx, api.CreateContainerRequest{Image: "alpine"})
				return err
			},
			"list":    func() error { _, err := b.ListContainers(ctx, true, nil); return err },
			"inspect": func() error { _, err := b.InspectContainer(ctx, "web"); return err },
			"start":   func() error { _, err := b.StartContainer(ctx, "web"); return err },
			"stop":    func() error { _, err := b.StopContainer(ctx, "web", time.Second); return err },
			"kill":    func() error { _, err := b.KillContainer(ctx, "web", syscall.SIGKILL); return err },
			"restart": func() error { _, err := b.RestartContainer(ctx, "web", time.Second); return err },
			"wait":    func() error { _, err := b.WaitContainer(ctx, "web"); return err },
			"delete":  func() error { _, err := b.DeleteContainer(ctx, "web", false); return err },
			"logs": func() error {
				return b.ContainerLogs(ctx, "web", rest.LogOptions{}, func(api.LogEntry) error { return nil })
			},
			"stats":     func() error { _, err := b.ContainerStats(ctx, "web"); return err },
			"all stats": func() error { _, err := b.AllContainerStats(ctx); return err },
			"info":      func() error { _, err := b.Info(ctx); return err },
			"pull":      func() error { _, err := b.PullImage(ctx, "alpine", "", "", nil); return err },
			"images":    func() error { _, err := b.ListImages(ctx); return err },
			"rmi":       func() error { return b.RemoveImage(ctx, "alpine", false) },
			"status":    func() error { _, err := b.ImageStatus(ctx, "alpine"); return err },
			"fs":        func() error { _, err := b.ImagesFS(ctx); return err },
			"import":    func() error { _, err := b.ImportImage(ctx, strings.NewReader(""), nil); return err },
			"exec": func() error {
				_, err := b.ExecContainer(ctx, "web", api.ExecRequest{Command: []string{"sh"}})
				return err
			},
			"execs":        func() error { _, err := b.ListExecs(ctx, "web"); return err },
			"inspect exec": func() error { _, err := b.InspectExec(ctx, "web", testExecID); return err },
			"attach":       func() error { _, err := b.Attach(ctx, "web", rest.AttachOptions{}); return err },
			"resize":       func() error { _, err := b.ResizeTerminal(ctx, "web", "", 24, 80); return err },
			"networks":     func() error { _, err := b.ListNetworks(ctx); return err },
			"network":      func() error { _, err := b.InspectNetwork(ctx, "backend"); return err },
			"create network": func() error {
				_, err := b.CreateNetwork(ctx, api.CreateNetworkRequest{Name: "backend"})
				return err
			},
			"remove network": func() error { return b.RemoveNetwork(ctx, "backend") },
		}
		for name, call := range calls {
			if err := call(); err != cause {
				t.Errorf("%s with %v: %v, want the cause itself", name, kind, err)
			}
		}
	}
}

// ---- exec, attach, terminals ----

func TestExec(t *testing.T) {
	sup := &fakeSup{containers: []*supervisor.Container{container("web", supervisor.StateRunning, nil)}}
	b := newTest(sup, nil)
	ctx := context.Background()
	yes, no := true, false
	for _, tc := range []struct {
		req  api.ExecRequest
		want supervisor.ExecRequest
	}{
		{api.ExecRequest{Command: []string{"sh"}, Tty: true, Detach: &no}, supervisor.ExecRequest{Command: []string{"sh"}, Tty: true}},
		{api.ExecRequest{Command: []string{"sh"}, Tty: true, ConsoleSize: &[2]uint16{24, 80}}, supervisor.ExecRequest{Command: []string{"sh"}, Tty: true, ConsoleSize: &[2]uint16{24, 80}}},
		{api.ExecRequest{Command: []string{"ls", "-l"}, Detach: &yes}, supervisor.ExecRequest{Command: []string{"ls", "-l"}, Detach: true}},
		{api.ExecRequest{Command: []string{"env"}, Stdin: true, Env: []string{"A=1"}, User: "1000:1000", Workdir: "/tmp"},
			supervisor.ExecRequest{Command: []string{"env"}, Stdin: true, Env: []string{"A=1"}, User: "1000:1000", WorkingDir: "/tmp"}},
	} {
		id, err := b.ExecContainer(ctx, "web", tc.req)
		if err != nil || id != testExecID {
			t.Fatalf("ExecContainer = %q, %v", id, err)
		}
		if !reflect.DeepEqual(sup.exec, tc.want) {
			t.Errorf("supervisor got %+v, want %+v", sup.exec, tc.want)
		}
	}
}

func TestExecInfo(t *testing.T) {
	exited := t0.Add(time.Minute)
	sup := &fakeSup{
		containers: []*supervisor.Container{container("web", supervisor.StateRunning, nil), container("idle", supervisor.StateStopped, nil)},
		execs: []client.ExecProcess{
			{ID: "e1", Pid: 7, Terminal: true, Status: client.StatusRunning},
			{ID: "e2", Pid: 8, Status: client.StatusStopped, ExitCode: 3, ExitedAt: exited},
			{ID: "e3", Pid: 9, Status: client.StatusUnknown},
		},
	}
	b := newTest(sup, nil)
	ctx := context.Background()
	webID := strings.Repeat("w", 64)
	three := 3
	want := []api.ExecInfo{
		{ID: "e1", ContainerID: webID, Pid: 7, Tty: true, Running: true},
		{ID: "e2", ContainerID: webID, Pid: 8, ExitCode: &three, ExitedAt: exited},
		{ID: "e3", ContainerID: webID, Pid: 9},
	}
	list, err := b.ListExecs(ctx, "web")
	if err != nil || !reflect.DeepEqual(list, want) {
		t.Errorf("ListExecs = %+v, %v; want %+v", list, err, want)
	}
	info, err := b.InspectExec(ctx, "web", "e2")
	if err != nil || !reflect.DeepEqual(info, &want[1]) {
		t.Errorf("InspectExec = %+v, %v", info, err)
	}
	if _, err := b.InspectExec(ctx, "web", "nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("unknown exec: %v", err)
	}
	// None: an empty list, not nil.
	sup.execs = nil
	if list, err := b.ListExecs(ctx, "idle"); err != nil || list == nil || len(list) != 0 {
		t.Errorf("no exec processes: %#v, %v", list, err)
	}
}

// The shim's stream is the attachment, as it is.
func TestAttach(t *testing.T) {
	st := &fakeStream{terminal: true}
	sup := &fakeSup{containers: []*supervisor.Container{container("web", supervisor.StateRunning, nil)}, stream: st}
	b := newTest(sup, nil)
	att, err := b.Attach(context.Background(), "web", rest.AttachOptions{Exec: testExecID, Stdin: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := (supervisor.AttachOptions{Exec: testExecID, Stdin: true}); sup.attachOpts != want {
		t.Errorf("supervisor got %+v", sup.attachOpts)
	}
	if !att.Terminal() {
		t.Error("the terminal is lost")
	}
	if _, err := att.Write([]byte("frames")); err != nil || st.String() != "frames" {
		t.Errorf("write: %v, %q", err, st.String())
	}
	if err := att.Close(); err != nil || !st.closed {
		t.Errorf("close: %v, closed %v", err, st.closed)
	}
	if _, err := b.Attach(context.Background(), "nope", rest.AttachOptions{}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("unknown container: %v", err)
	}
}

// ResizeTerminal resolves the reference once and answers the container's
// id, or the exec process's.
func TestResizeTerminal(t *testing.T) {
	sup := &fakeSup{containers: []*supervisor.Container{container("web", supervisor.StateRunning, nil)}}
	b := newTest(sup, nil)
	ctx := context.Background()
	webID := strings.Repeat("w", 64)
	if id, err := b.ResizeTerminal(ctx, "web", "", 24, 80); err != nil || id != webID {
		t.Errorf("init: %q, %v", id, err)
	}
	if id, err := b.ResizeTerminal(ctx, "web", testExecID, 50, 132); err != nil || id != testExecID {
		t.Errorf("exec: %q, %v", id, err)
	}
	want := []string{"Get web", "Resize " + webID + " exec= 24x80", "Get web", "Resize " + webID + " exec=" + testExecID + " 50x132"}
	if !reflect.DeepEqual(sup.calls, want) {
		t.Errorf("calls %q, want %q", sup.calls, want)
	}
	if _, err := b.ResizeTerminal(ctx, "nope", "", 1, 1); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("unknown container: %v", err)
	}
}

// ---- networks ----

func TestNetworks(t *testing.T) {
	webID := strings.Repeat("w", 64)
	sup := &fakeSup{networks: []supervisor.Network{
		{Name: "raind0", Driver: "bridge", Bridge: "raind0", Subnet: netip.MustParsePrefix("10.166.0.0/24"),
			Gateway: netip.MustParseAddr("10.166.0.254"), BuiltIn: true, Containers: []string{webID}},
		{Name: "host", Driver: "host", BuiltIn: true},
		{Name: "none", Driver: "null", BuiltIn: true},
		{Name: "backend", Driver: "bridge", Bridge: "rd-backend", Subnet: netip.MustParsePrefix("10.167.0.0/24"),
			Gateway: netip.MustParseAddr("10.167.0.1")},
	}}
	b := newTest(sup, nil)
	ctx := context.Background()
	want := []api.NetworkSummary{
		{Name: "raind0", Driver: "bridge", Bridge: "raind0", Subnet: "10.166.0.0/24", Gateway: "10.166.0.254", BuiltIn: true, Containers: []string{webID}},
		{Name: "host", Driver: "host", BuiltIn: true, Containers: []string{}},
		{Name: "none", Driver: "null", BuiltIn: true, Containers: []string{}},
		{Name: "backend", Driver: "bridge", Bridge: "rd-backend", Subnet: "10.167.0.0/24", Gateway: "10.167.0.1", Containers: []string{}},
	}
	list, err := b.ListNetworks(ctx)
	if err != nil || !reflect.DeepEqual(list, want) {
		t.Errorf("ListNetworks = %+v, %v\nwant %+v", list, err, want)
	}
	if n, err := b.InspectNetwork(ctx, "host"); err != nil || !reflect.DeepEqual(n, &want[1]) {
		t.Errorf("InspectNetwork = %+v, %v", n, err)
	}
	if _, err := b.InspectNetwork(ctx, "nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("unknown network: %v", err)
	}

	n, err := b.CreateNetwork(ctx, api.CreateNetworkRequest{Name: "front", Subnet: "10.167.0.0/24", Gateway: "10.167.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if want := (supervisor.NetworkConfig{Name: "front", Subnet: "10.167.0.0/24", Gateway: "10.167.0.1"}); sup.netCreated != want {
		t.Errorf("supervisor got %+v", sup.netCreated)
	}
	if want := (&api.NetworkSummary{Name: "front", Driver: "bridge", Bridge: "rd-front", Subnet: "10.167.0.0/24",
		Gateway: "10.167.0.1", Containers: []string{}}); !reflect.DeepEqual(n, want) {
		t.Errorf("created %+v, want %+v", n, want)
	}
	if err := b.RemoveNetwork(ctx, "front"); err != nil {
		t.Fatal(err)
	}
	if last := sup.calls[len(sup.calls)-1]; last != "RemoveNetwork front" {
		t.Errorf("last call %q", last)
	}

	// None: an empty list, not nil.
	if list, err := newTest(&fakeSup{}, nil).ListNetworks(ctx); err != nil || list == nil || len(list) != 0 {
		t.Errorf("no networks: %#v, %v", list, err)
	}
}
