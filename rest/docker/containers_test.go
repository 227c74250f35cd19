package docker

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/moby/api/types/container"

	"github.com/raind/condenser/imagestore"
	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/shim/client"
	"github.com/raind/condenser/supervisor"
	"github.com/raind/condenser/supervisor/oci"
)

// ctFake is the supervisor as the container handlers see it: records in
// memory, and the calls they made.
type ctFake struct {
	mu      sync.Mutex
	recs    map[string]*supervisor.Container
	created []supervisor.CreateRequest
	calls   []string
	kills   []syscall.Signal
	// waits: the exit code a wait returns once released is closed.
	released chan struct{}
	waitCode int
	stats    client.Stats
}

func newCtFake(cs ...*supervisor.Container) *ctFake {
	f := &ctFake{recs: map[string]*supervisor.Container{}, released: make(chan struct{})}
	for _, c := range cs {
		f.recs[c.ID] = c
	}
	return f
}

func ctContainer(name string, st supervisor.State) *supervisor.Container {
	id := fmt.Sprintf("%x", sha256.Sum256([]byte(name)))
	now := time.Now().UTC()
	c := &supervisor.Container{ID: id, Name: name, Image: "docker.io/library/busybox:latest", ImageID: "sha256:" + strings.Repeat("ab", 32),
		Request: supervisor.CreateRequest{Image: "busybox"}, Args: []string{"sleep", "300"}, State: st,
		CreatingAt: now.Add(-time.Minute), CreatedAt: now.Add(-time.Minute)}
	switch st {
	case supervisor.StateRunning:
		c.Pid, c.StartedAt = 4242, now.Add(-3*time.Second)
	case supervisor.StateStopped:
		code := 3
		c.ExitCode, c.StartedAt, c.StoppedAt = &code, now.Add(-10*time.Second), now.Add(-2*time.Second)
	}
	return c
}

func (f *ctFake) find(ref string) (*supervisor.Container, error) {
	for _, c := range f.recs {
		if c.ID == ref || c.Name == ref || (len(ref) >= 4 && strings.HasPrefix(c.ID, ref)) {
			return c, nil
		}
	}
	return nil, fmt.Errorf("no such container: %s: %w", ref, errdefs.ErrNotFound)
}

func (f *ctFake) call(format string, args ...any) {
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *ctFake) Create(ctx context.Context, req supervisor.CreateRequest) (*supervisor.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if req.Name != "" {
		if _, err := f.find(req.Name); err == nil {
			return nil, fmt.Errorf("container name %q is already in use: %w", req.Name, errdefs.ErrConflict)
		}
	}
	f.created = append(f.created, req)
	c := ctContainer(req.Name+"x", supervisor.StateCreated)
	c.Name, c.Request = req.Name, req
	f.recs[c.ID] = c
	return c, nil
}

func (f *ctFake) Snapshot() supervisor.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	var s supervisor.Snapshot
	for _, c := range f.recs {
		s.Containers = append(s.Containers, c)
	}
	return s
}

func (f *ctFake) Get(ctx context.Context, ref string) (*supervisor.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.find(ref)
}

func (f *ctFake) op(name, ref string, fn func(c *supervisor.Container) error) (*supervisor.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.find(ref)
	if err != nil {
		return nil, err
	}
	f.call("%s %s", name, c.Name)
	if fn != nil {
		err = fn(c)
	}
	return c, err
}

func (f *ctFake) Start(ctx context.Context, ref string) (*supervisor.Container, error) {
	return f.op("start", ref, func(c *supervisor.Container) error { c.State = supervisor.StateRunning; return nil })
}

func (f *ctFake) Stop(ctx context.Context, ref string, timeout time.Duration) (*supervisor.Container, error) {
	return f.op("stop", ref, func(c *supervisor.Container) error {
		f.call("timeout %v", timeout)
		c.State = supervisor.StateStopped
		return nil
	})
}

func (f *ctFake) Kill(ctx context.Context, ref string, sig syscall.Signal) (*supervisor.Container, error) {
	return f.op("kill", ref, func(c *supervisor.Container) error { f.kills = append(f.kills, sig); return nil })
}

func (f *ctFake) Restart(ctx context.Context, ref string, timeout time.Duration) (*supervisor.Container, error) {
	return f.op("restart", ref, nil)
}

func (f *ctFake) Delete(ctx context.Context, ref string, force bool) (*supervisor.Container, error) {
	return f.op("delete", ref, func(c *supervisor.Container) error {
		if c.State == supervisor.StateRunning && !force {
			return fmt.Errorf("running: %w", errdefs.ErrConflict)
		}
		delete(f.recs, c.ID)
		return nil
	})
}

func (f *ctFake) Rename(ctx context.Context, ref, newName string) (*supervisor.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.find(newName); err == nil {
		return nil, fmt.Errorf("name in use: %w", errdefs.ErrConflict)
	}
	c, err := f.find(ref)
	if err != nil {
		return nil, err
	}
	c.Name = newName
	return c, nil
}

func (f *ctFake) Await(ctx context.Context, ref string, cond supervisor.WaitCondition) (func(context.Context) (int, error), func(), error) {
	if _, err := f.Get(ctx, ref); err != nil {
		return nil, nil, err
	}
	f.mu.Lock()
	f.call("await %s %s", ref, cond)
	f.mu.Unlock()
	return func(ctx context.Context) (int, error) {
		select {
		case <-f.released:
			return f.waitCode, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}, func() {}, nil
}

func (f *ctFake) Stats(ctx context.Context, ref string) (client.Stats, *supervisor.Container, error) {
	c, err := f.Get(ctx, ref)
	if err != nil {
		return client.Stats{}, nil, err
	}
	if c.State != supervisor.StateRunning {
		return client.Stats{}, c, fmt.Errorf("not running: %w", errdefs.ErrConflict)
	}
	return f.stats, c, nil
}

func (f *ctFake) LogPath(c *supervisor.Container) string { return "/logs/" + c.ID + ".log" }

// ctImages is the image store create asks whether an image is there
// (only Inspect is called).
type ctImages struct{ Images }

// Config is every image's configuration: an entrypoint, a command, env,
// labels and an exposed port.
func (ctImages) Config(ctx context.Context, img imagestore.Image) (*v1.ConfigFile, error) {
	return &v1.ConfigFile{Config: v1.Config{Entrypoint: []string{"/entry"}, Cmd: []string{"run"}, Env: []string{"PATH=/bin", "A=image"},
		Labels: map[string]string{"from": "image", "app": "image"}, ExposedPorts: map[string]struct{}{"9000/tcp": {}}, WorkingDir: "/srv", User: "daemon"}}, nil
}

func (ctImages) Inspect(ctx context.Context, ref string) (imagestore.Image, error) {
	if strings.HasPrefix(ref, "missing") {
		return imagestore.Image{}, fmt.Errorf("image %s: %w", ref, errdefs.ErrNotFound)
	}
	return imagestore.Image{Name: ref, ID: "sha256:" + strings.Repeat("ab", 32)}, nil
}

// ctVolumes is a volume store in memory.
type ctVolumes struct {
	mu   sync.Mutex
	vols map[string]Volume
}

func (v *ctVolumes) Create(ctx context.Context, name string, labels map[string]string) (Volume, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.vols == nil {
		v.vols = map[string]Volume{}
	}
	if _, ok := v.vols[name]; !ok {
		v.vols[name] = Volume{Name: name, Mountpoint: "/vols/" + name + "/_data", Labels: labels}
	}
	return v.vols[name], nil
}

func (v *ctVolumes) Get(ctx context.Context, name string) (Volume, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if vol, ok := v.vols[name]; ok {
		return vol, nil
	}
	return Volume{}, errdefs.ErrNotFound
}

func (v *ctVolumes) List(ctx context.Context) ([]Volume, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []Volume
	for _, vol := range v.vols {
		out = append(out, vol)
	}
	return out, nil
}

func (v *ctVolumes) Remove(ctx context.Context, name string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.vols[name]; !ok {
		return errdefs.ErrNotFound
	}
	delete(v.vols, name)
	return nil
}

// ctServe serves the Docker API over f (and vols, when not nil).
func ctServe(t *testing.T, f *ctFake, vols Volumes) string {
	t.Helper()
	d := Deps{Containers: f, Images: ctImages{}}
	if vols != nil {
		d.Volumes = vols
	}
	h := NewHandler(d, nil)
	srv := httptest.NewServer(h)
	t.Cleanup(func() { h.Shutdown(); srv.Close() })
	return srv.URL
}

// ctDo sends a request and returns the status and body.
func ctDo(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestContainerLifecycleStatuses(t *testing.T) {
	tests := []struct {
		name        string
		state       supervisor.State
		method, url string
		status      int
		msg         string // in the body
		call        string // the supervisor call made, "" none
	}{
		{"start created", supervisor.StateCreated, "POST", "/containers/c/start", 204, "", "start c"},
		{"start running", supervisor.StateRunning, "POST", "/v1.50/containers/c/start", 304, "", ""},
		{"start unknown", supervisor.StateCreated, "POST", "/containers/nosuch/start", 404, `"No such container: nosuch"`, ""},
		{"stop running", supervisor.StateRunning, "POST", "/containers/c/stop?t=3", 204, "", "stop c"},
		{"stop timeout", supervisor.StateRunning, "POST", "/containers/c/stop?timeout=3", 204, "", "stop c"},
		{"stop stopped", supervisor.StateStopped, "POST", "/containers/c/stop", 304, "", ""},
		{"stop signal", supervisor.StateRunning, "POST", "/containers/c/stop?signal=SIGINT", 501, "only SIGTERM", ""},
		{"stop bad t", supervisor.StateRunning, "POST", "/containers/c/stop?t=x", 400, "not an integer", ""},
		{"kill running", supervisor.StateRunning, "POST", "/containers/c/kill?signal=HUP", 204, "", "kill c"},
		{"kill stopped", supervisor.StateStopped, "POST", "/containers/c/kill", 409, `"Container c is not running"`, ""},
		{"kill bad signal", supervisor.StateRunning, "POST", "/containers/c/kill?signal=NOPE", 400, "invalid signal", ""},
		{"restart", supervisor.StateStopped, "POST", "/containers/c/restart?t=1", 204, "", "restart c"},
		{"rm running", supervisor.StateRunning, "DELETE", "/containers/c", 409,
			`"cannot remove container \"/c\": container is running: stop the container before removing or force remove"`, ""},
		{"rm -f running", supervisor.StateRunning, "DELETE", "/containers/c?force=1&v=1", 204, "", "delete c"},
		{"rm stopped", supervisor.StateStopped, "DELETE", "/containers/c", 204, "", "delete c"},
		{"rm link", supervisor.StateStopped, "DELETE", "/containers/c?link=1", 501, "links", ""},
		{"rename", supervisor.StateStopped, "POST", "/containers/c/rename?name=d", 204, "", ""},
		{"rename no name", supervisor.StateStopped, "POST", "/containers/c/rename", 400, "new name", ""},
		{"rename taken", supervisor.StateStopped, "POST", "/containers/c/rename?name=other", 409, `Conflict. The container name \"/other\" is already in use by container`, ""},
		{"wait bad condition", supervisor.StateStopped, "POST", "/containers/c/wait?condition=soon", 400, "invalid condition", ""},
		{"wait unknown", supervisor.StateStopped, "POST", "/containers/nosuch/wait", 404, "No such container: nosuch", ""},
		{"top stopped", supervisor.StateStopped, "GET", "/containers/c/top", 409, "is not running", ""},
		{"pause", supervisor.StateRunning, "POST", "/containers/c/pause", 501, "pausing a container is not supported", ""},
		{"unknown route", supervisor.StateStopped, "POST", "/containers/c/pause-everything", 404, "page not found", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newCtFake(ctContainer("c", tt.state), ctContainer("other", supervisor.StateStopped))
			url := ctServe(t, f, nil)
			status, body := ctDo(t, tt.method, url+tt.url, "")
			if status != tt.status || !strings.Contains(body, tt.msg) {
				t.Fatalf("%s %s: %d %s; want %d with %s", tt.method, tt.url, status, body, tt.status, tt.msg)
			}
			if tt.call != "" && (len(f.calls) == 0 || f.calls[0] != tt.call) {
				t.Fatalf("calls %q, want %q first", f.calls, tt.call)
			}
			if tt.call == "" && len(f.calls) > 0 && !strings.HasPrefix(f.calls[0], "await") {
				t.Fatalf("unexpected calls %q", f.calls)
			}
		})
	}
}

// The wait's headers arrive before the condition is met.
func TestContainerWaitFlushesHeaders(t *testing.T) {
	f := newCtFake(ctContainer("c", supervisor.StateCreated))
	f.waitCode = 7
	url := ctServe(t, f, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", url+"/containers/c/wait?condition=next-exit", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("headers: %d %v", resp.StatusCode, resp.Header)
	}
	close(f.released) // the container exits only now
	b, _ := io.ReadAll(resp.Body)
	if strings.TrimSpace(string(b)) != `{"Error":null,"StatusCode":7}` {
		t.Fatalf("body %s", b)
	}
	if f.calls[0] != "await c next-exit" {
		t.Fatalf("calls %q", f.calls)
	}
}

func TestContainerCreate(t *testing.T) {
	tests := []struct {
		name   string
		query  string
		body   string
		status int
		msg    string
		want   func(r *supervisor.CreateRequest) // the request the supervisor got
	}{
		{"cli defaults", "?name=web", `{"Hostname":"","User":"","AttachStdout":true,"ExposedPorts":{"80/tcp":{}},"Env":["A=1"],"Cmd":["echo","hi"],"Image":"busybox","Volumes":{},"Entrypoint":null,"Labels":{"a":"b"},
			"HostConfig":{"Binds":null,"LogConfig":{"Type":"","Config":{}},"NetworkMode":"default","PortBindings":{"80/tcp":[{"HostIp":"","HostPort":"8080"}],"53/udp":[{"HostIp":"127.0.0.1","HostPort":"5353"}]},
			"RestartPolicy":{"Name":"no","MaximumRetryCount":0},"ConsoleSize":[0,0],"CapAdd":null,"CgroupnsMode":"","Dns":[],"DnsOptions":[],"DnsSearch":[],"ShmSize":0,"Devices":[],"MemorySwappiness":-1,"OomKillDisable":false,"PidsLimit":0,"Ulimits":[]},
			"NetworkingConfig":{"EndpointsConfig":{"default":{"IPAMConfig":null,"Aliases":null,"MacAddress":"","Gateway":"","IPAddress":""}}}}`, 201, `"Warnings":[]`,
			func(r *supervisor.CreateRequest) {
				*r = supervisor.CreateRequest{Image: "busybox", Name: "web", Ports: []string{"127.0.0.1:5353:53/udp", "8080:80/tcp"},
					Config: oci.Config{Command: []string{"echo", "hi"}, Env: []string{"A=1"}, Labels: map[string]string{"a": "b"}}}
			}},
		{"resources and policy", "", `{"Image":"busybox","Entrypoint":[""],"Tty":true,"OpenStdin":true,"WorkingDir":"/w","User":"1:2",
			"HostConfig":{"NetworkMode":"host","RestartPolicy":{"Name":"on-failure","MaximumRetryCount":3},"ReadonlyRootfs":true,"Memory":1048576,"CpuQuota":50000,"CpuPeriod":100000,"PidsLimit":20,"CpuShares":512}}`, 201, "",
			func(r *supervisor.CreateRequest) {
				*r = supervisor.CreateRequest{Image: "busybox", RestartPolicy: "on-failure:3", OpenStdin: true,
					Config: oci.Config{Entrypoint: []string{""}, WorkingDir: "/w", User: "1:2", Network: "host", ReadOnly: true, Tty: true,
						Memory: 1 << 20, CPUs: 0.5, PidsLimit: 20, CPUShares: 512}}
			}},
		{"nano cpus, auto-remove, user network", "", `{"Image":"busybox","HostConfig":{"NanoCpus":1500000000,"AutoRemove":true,"NetworkMode":"mynet"}}`, 201, "",
			func(r *supervisor.CreateRequest) {
				*r = supervisor.CreateRequest{Image: "busybox", AutoRemove: true, Config: oci.Config{CPUs: 1.5, Network: "mynet"}}
			}},
		{"binds and volumes", "", `{"Image":"busybox","Volumes":{"/anon":{},"/b":{}},"HostConfig":{"Binds":["/tmp:/b:ro,z","vol1:/v"],
			"Mounts":[{"Type":"volume","Source":"vol2","Target":"/v2","ReadOnly":true},{"Type":"bind","Source":"/tmp","Target":"/m"}]}}`, 201, "",
			func(r *supervisor.CreateRequest) {
				if len(r.Mounts) != 5 || r.Mounts[0] != "/tmp:/b:ro" || r.Mounts[1] != "/vols/vol1/_data:/v" || r.Mounts[2] != "/vols/vol2/_data:/v2:ro" ||
					r.Mounts[3] != "/tmp:/m" || !strings.HasSuffix(r.Mounts[4], "/_data:/anon") {
					panic(fmt.Sprintf("mounts %q", r.Mounts))
				}
				*r = supervisor.CreateRequest{Image: "busybox", Config: oci.Config{Mounts: r.Mounts}}
			}},
		{"missing image", "", `{"Image":"missing"}`, 404, `{"message":"No such image: missing:latest"}`, nil},
		{"missing tagged image", "", `{"Image":"missing/x:1"}`, 404, `"No such image: missing/x:1"`, nil},
		{"no config", "", ``, 400, "config cannot be empty", nil},
		{"no image", "", `{"Cmd":["x"]}`, 400, "no image", nil},
		{"bad name", "?name=-x", `{"Image":"busybox"}`, 400, "Invalid container name", nil},
		{"name taken", "?name=taken", `{"Image":"busybox"}`, 409, `Conflict. The container name \"/taken\" is already in use by container`, nil},
		{"bad platform", "?platform=windows/amd64", `{"Image":"busybox"}`, 501, "platform", nil},
		{"privileged", "", `{"Image":"busybox","HostConfig":{"Privileged":true,"CapAdd":["ALL"]}}`, 501, "not supported by Condenser: Privileged (--privileged), CapAdd (--cap-add)", nil},
		{"shm", "", `{"Image":"busybox","HostConfig":{"ShmSize":1}}`, 501, "ShmSize", nil},
		{"log driver", "", `{"Image":"busybox","HostConfig":{"LogConfig":{"Type":"syslog"}}}`, 501, "LogConfig syslog", nil},
		{"stop signal", "", `{"Image":"busybox","StopSignal":"SIGUSR1"}`, 501, "StopSignal", nil},
		{"stop signal term", "", `{"Image":"busybox","StopSignal":"SIGTERM"}`, 201, "", nil},
		{"random port", "", `{"Image":"busybox","HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":""}]}}}`, 501, "random host ports", nil},
		{"port range", "", `{"Image":"busybox","HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":"8000-8001"}]}}}`, 501, "ranges", nil},
		{"container network", "", `{"Image":"busybox","HostConfig":{"NetworkMode":"container:x"}}`, 501, "another container", nil},
		{"fixed ip", "", `{"Image":"busybox","NetworkingConfig":{"EndpointsConfig":{"n":{"IPAMConfig":{"IPv4Address":"10.0.0.2"}}}}}`, 501, "--ip", nil},
		{"cpu conflict", "", `{"Image":"busybox","HostConfig":{"NanoCpus":1,"CpuQuota":1}}`, 400, "conflicting options", nil},
		{"restart and rm", "", `{"Image":"busybox","HostConfig":{"AutoRemove":true,"RestartPolicy":{"Name":"always"}}}`, 400, "--restart and --rm", nil},
		{"bad bind option", "", `{"Image":"busybox","HostConfig":{"Binds":["/tmp:/x:rshared"]}}`, 501, "rshared", nil},
		{"relative bind target", "", `{"Image":"busybox","HostConfig":{"Binds":["/tmp:x"]}}`, 400, "not an absolute path", nil},
		{"tmpfs mount", "", `{"Image":"busybox","HostConfig":{"Mounts":[{"Type":"tmpfs","Target":"/t"}]}}`, 501, "tmpfs", nil},
		{"duplicate target", "", `{"Image":"busybox","HostConfig":{"Binds":["/tmp:/x","/tmp:/x"]}}`, 400, "duplicate mount point", nil},
		{"bad json", "", `{`, 400, "invalid JSON", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newCtFake(ctContainer("taken", supervisor.StateStopped))
			url := ctServe(t, f, &ctVolumes{})
			status, body := ctDo(t, "POST", url+"/containers/create"+tt.query, tt.body)
			if status != tt.status || !strings.Contains(body, tt.msg) {
				t.Fatalf("create: %d %s; want %d with %s", status, body, tt.status, tt.msg)
			}
			if status != 201 {
				if len(f.created) != 0 {
					t.Fatalf("refused, yet created %+v", f.created)
				}
				return
			}
			var resp container.CreateResponse
			if err := json.Unmarshal([]byte(body), &resp); err != nil || len(resp.ID) != 64 {
				t.Fatalf("body %s: %v", body, err)
			}
			if tt.want != nil {
				got := f.created[0]
				want := got
				tt.want(&want)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("request\n got %+v\nwant %+v", got, want)
				}
			}
		})
	}
}

// Without a volume store, a named volume is refused, never ignored.
func TestContainerCreateWithoutVolumes(t *testing.T) {
	for _, body := range []string{
		`{"Image":"busybox","HostConfig":{"Binds":["vol:/data"]}}`,
		`{"Image":"busybox","Volumes":{"/data":{}}}`,
		`{"Image":"busybox","HostConfig":{"Mounts":[{"Type":"volume","Source":"v","Target":"/d"}]}}`,
	} {
		f := newCtFake()
		url := ctServe(t, f, nil)
		status, resp := ctDo(t, "POST", url+"/containers/create", body)
		if status != 501 || !strings.Contains(resp, "named volumes are not available") || len(f.created) != 0 {
			t.Fatalf("%s: %d %s", body, status, resp)
		}
	}
}

func TestContainerListAndInspect(t *testing.T) {
	web := ctContainer("web", supervisor.StateRunning)
	web.Request.Labels = map[string]string{"app": "web"}
	web.Request.Ports = []string{"8080:80/tcp"}
	web.Request.Mounts = []string{"/vols/data/_data:/data", "/host:/h:ro"}
	web.Request.Command = []string{"sleep", "300"}
	web.Endpoint = &supervisor.Endpoint{Network: "raind0", IP: netip.MustParseAddr("10.88.0.5"), Prefix: netip.MustParsePrefix("10.88.0.0/16"),
		Gateway: netip.MustParseAddr("10.88.0.1"), MAC: "02:42:0a:58:00:05", Bridge: "raind0",
		Ports: []supervisor.PublishedPort{{HostIP: netip.IPv4Unspecified(), HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}}
	old := ctContainer("old", supervisor.StateStopped)
	old.CreatedAt = old.CreatedAt.Add(-time.Hour)
	fresh := ctContainer("fresh", supervisor.StateCreated)
	fresh.Request.Network = "mynet"
	fresh.CreatedAt = fresh.CreatedAt.Add(time.Second)
	f := newCtFake(web, old, fresh)
	vols := &ctVolumes{}
	vols.Create(context.Background(), "data", nil)
	url := ctServe(t, f, vols)

	list := func(query string) []string {
		t.Helper()
		status, body := ctDo(t, "GET", url+"/containers/json"+query, "")
		if status != 200 {
			t.Fatalf("list %s: %d %s", query, status, body)
		}
		var sums []container.Summary
		if err := json.Unmarshal([]byte(body), &sums); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range sums {
			names = append(names, strings.Join(s.Names, ",")+" "+s.Status)
		}
		return names
	}
	for _, tt := range []struct {
		query string
		want  []string
	}{
		{"", []string{"/web Up 3 seconds"}},
		{"?all=1", []string{"/fresh Created", "/web Up 3 seconds", "/old Exited (3) 2 seconds ago"}},
		{"?all=1&limit=1", []string{"/fresh Created"}},
		{`?filters={"status":["exited"]}`, []string{"/old Exited (3) 2 seconds ago"}},
		{`?filters={"exited":["3"]}`, []string{"/old Exited (3) 2 seconds ago"}},
		{`?all=1&filters={"label":{"app=web":true}}`, []string{"/web Up 3 seconds"}},
		{`?all=1&filters={"name":["^fr"]}`, []string{"/fresh Created"}},
		{`?all=1&filters={"id":["` + old.ID[:6] + `"]}`, []string{"/old Exited (3) 2 seconds ago"}},
		{`?all=1&filters={"network":["mynet"]}`, []string{"/fresh Created"}},
		{`?all=1&filters={"network":["bridge"]}`, []string{"/web Up 3 seconds", "/old Exited (3) 2 seconds ago"}},
		{`?all=1&filters={"ancestor":["busybox:latest"]}`, []string{"/fresh Created", "/web Up 3 seconds", "/old Exited (3) 2 seconds ago"}},
		{`?all=1&filters={"ancestor":["alpine"]}`, nil},
		{`?all=1&filters={"before":["fresh"]}`, []string{"/web Up 3 seconds", "/old Exited (3) 2 seconds ago"}},
		{`?all=1&filters={"since":["web"]}`, []string{"/fresh Created"}},
		{`?all=1&filters={"volume":["data"]}`, []string{"/web Up 3 seconds"}},
		{`?all=1&filters={"volume":["/h"]}`, []string{"/web Up 3 seconds"}},
		{`?all=1&filters={"volume":["other"]}`, nil},
		{`?all=1&filters={"publish":["8080"]}`, []string{"/web Up 3 seconds"}},
		{`?all=1&filters={"publish":["8080/udp"]}`, nil},
		{`?all=1&filters={"expose":["80/tcp"]}`, []string{"/web Up 3 seconds"}},
	} {
		if got := list(tt.query); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("list %s: %q, want %q", tt.query, got, tt.want)
		}
	}
	if status, body := ctDo(t, "GET", url+`/containers/json?filters={"health":["healthy"]}`, ""); status != 400 || !strings.Contains(body, "invalid filter 'health'") {
		t.Fatalf("unknown filter: %d %s", status, body)
	}
	if status, body := ctDo(t, "GET", url+`/containers/json?filters={"status":["sleepy"]}`, ""); status != 400 {
		t.Fatalf("bad status filter: %d %s", status, body)
	}

	status, body := ctDo(t, "GET", url+"/containers/json", "")
	var sums []container.Summary
	if err := json.Unmarshal([]byte(body), &sums); err != nil || status != 200 {
		t.Fatal(err)
	}
	s := sums[0]
	if s.ID != web.ID || s.Image != "busybox" || s.ImageID != web.ImageID || s.Command != "sleep 300" || s.State != "running" ||
		s.HostConfig.NetworkMode != "bridge" || s.NetworkSettings.Networks["bridge"].IPAddress.String() != "10.88.0.5" ||
		len(s.Ports) != 1 || s.Ports[0].PublicPort != 8080 || s.Ports[0].IP.String() != "0.0.0.0" || s.Labels["app"] != "web" ||
		len(s.Mounts) != 2 || s.Mounts[0].Type != "volume" || s.Mounts[0].Name != "data" || s.Mounts[1].RW {
		t.Fatalf("summary %+v", s)
	}

	status, body = ctDo(t, "GET", url+"/v1.50/containers/web/json", "")
	if status != 200 {
		t.Fatalf("inspect: %d %s", status, body)
	}
	var raw map[string]any
	json.Unmarshal([]byte(body), &raw)
	ns := raw["NetworkSettings"].(map[string]any)
	if ns["IPAddress"] != "10.88.0.5" || ns["Gateway"] != "10.88.0.1" || ns["IPPrefixLen"] != 16.0 || ns["MacAddress"] != "02:42:0a:58:00:05" {
		t.Fatalf("legacy network settings: %v", ns)
	}
	var insp container.InspectResponse
	if err := json.Unmarshal([]byte(body), &insp); err != nil {
		t.Fatal(err)
	}
	if insp.Name != "/web" || insp.State.Status != "running" || !insp.State.Running || insp.State.Pid != 4242 || insp.Path != "sleep" ||
		!reflect.DeepEqual(insp.Args, []string{"300"}) || insp.Config.Image != "busybox" || insp.Image != web.ImageID || insp.Driver != "overlay2" ||
		insp.LogPath != "/logs/"+web.ID+".log" || insp.HostConfig.NetworkMode != "bridge" || insp.HostConfig.RestartPolicy.Name != "no" ||
		!reflect.DeepEqual(insp.HostConfig.Binds, []string{"data:/data", "/host:/h:ro"}) || insp.HostConfig.LogConfig.Type != "json-file" ||
		len(insp.HostConfig.PortBindings) != 1 || insp.Config.Hostname != web.ID[:12] {
		t.Fatalf("inspect %+v\n%+v\n%+v", insp, insp.State, insp.HostConfig)
	}
	if _, err := time.Parse(time.RFC3339Nano, insp.Created); err != nil {
		t.Fatalf("Created %q: %v", insp.Created, err)
	}
	status, body = ctDo(t, "GET", url+"/containers/old/json", "")
	json.Unmarshal([]byte(body), &insp)
	if status != 200 || insp.State.Status != "exited" || insp.State.ExitCode != 3 || insp.State.Running || insp.State.FinishedAt == "0001-01-01T00:00:00Z" {
		t.Fatalf("inspect stopped: %+v", insp.State)
	}
	if status, body := ctDo(t, "GET", url+"/containers/nosuch/json", ""); status != 404 || !strings.Contains(body, "No such container: nosuch") {
		t.Fatalf("inspect unknown: %d %s", status, body)
	}
}

func TestContainerPrune(t *testing.T) {
	keep := ctContainer("keep", supervisor.StateStopped)
	keep.Request.Labels = map[string]string{"keep": "1"}
	f := newCtFake(ctContainer("run", supervisor.StateRunning), ctContainer("made", supervisor.StateCreated), ctContainer("done", supervisor.StateStopped), keep)
	url := ctServe(t, f, nil)
	status, body := ctDo(t, "POST", url+`/containers/prune?filters={"label!":["keep"]}`, "")
	var rep container.PruneReport
	if err := json.Unmarshal([]byte(body), &rep); status != 200 || err != nil || len(rep.ContainersDeleted) != 2 {
		t.Fatalf("prune: %d %s", status, body)
	}
	for _, name := range []string{"run", "keep"} {
		if _, err := f.Get(context.Background(), name); err != nil {
			t.Fatalf("%s was pruned", name)
		}
	}
	status, body = ctDo(t, "POST", url+`/containers/prune?filters={"until":["1h"]}`, "")
	if status != 200 || !strings.Contains(body, `"ContainersDeleted":[]`) {
		t.Fatalf("prune until 1h: %d %s", status, body)
	}
	if status, _ = ctDo(t, "POST", url+`/containers/prune?filters={"status":["exited"]}`, ""); status != 400 {
		t.Fatalf("prune with an unknown filter: %d", status)
	}
}

func TestContainerStats(t *testing.T) {
	c := ctContainer("c", supervisor.StateRunning)
	c.Pid = 0 // no /proc/PID/net/dev
	f := newCtFake(c, ctContainer("s", supervisor.StateStopped))
	f.stats = client.Stats{CPUUsageNanos: 5e9, MemoryUsage: 1 << 20, MemoryLimit: 1 << 30, MemoryCache: 4096, PidsCurrent: 2, PidsLimit: 10, BlkioReadBytes: 7, BlkioWriteBytes: 9}
	url := ctServe(t, f, nil)
	status, body := ctDo(t, "GET", url+"/containers/c/stats?stream=false&one-shot=true", "")
	var st container.StatsResponse
	if err := json.Unmarshal([]byte(body), &st); status != 200 || err != nil {
		t.Fatalf("stats: %d %s", status, body)
	}
	if st.Name != "/c" || st.CPUStats.CPUUsage.TotalUsage != 5e9 || st.CPUStats.SystemUsage == 0 || st.CPUStats.OnlineCPUs == 0 ||
		st.MemoryStats.Usage != 1<<20 || st.MemoryStats.Limit == 0 || st.MemoryStats.Limit > 1<<30 || st.PidsStats.Current != 2 ||
		len(st.BlkioStats.IoServiceBytesRecursive) != 2 || st.BlkioStats.IoServiceBytesRecursive[1].Value != 9 || st.Read.IsZero() || !st.PreRead.IsZero() {
		t.Fatalf("one-shot sample %+v", st)
	}
	// A stopped container: one empty sample, even streamed.
	status, body = ctDo(t, "GET", url+"/containers/s/stats", "")
	if status != 200 || strings.Count(strings.TrimSpace(body), "\n") != 0 || !strings.Contains(body, `"name":"/s"`) {
		t.Fatalf("stats of a stopped container: %d %s", status, body)
	}
	if status, _ = ctDo(t, "GET", url+"/containers/c/stats?stream=true&one-shot=true", ""); status != 400 {
		t.Fatalf("stream and one-shot: %d", status)
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{"9": syscall.SIGKILL, "KILL": syscall.SIGKILL, "SIGKILL": syscall.SIGKILL,
		"sigterm": syscall.SIGTERM, "hup": syscall.SIGHUP, "SIGUSR1": syscall.SIGUSR1} {
		if got, err := parseSignal(in); err != nil || got != want {
			t.Errorf("parseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "65", "-1", "SIGNOPE", "SIG"} {
		if _, err := parseSignal(in); err == nil {
			t.Errorf("parseSignal(%q) accepted", in)
		}
	}
}

func TestParseTimestamp(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"1h":                   now.Add(-time.Hour),
		"1700000000":           time.Unix(1700000000, 0),
		"1700000000.5":         time.Unix(1700000000, 5e8),
		"2025-01-02T03:04:05Z": time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		"2025-01-02":           time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC),
	} {
		if got, err := parseTimestamp(in, now); err != nil || !got.Equal(want) {
			t.Errorf("parseTimestamp(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "yesterday", "1.x"} {
		if _, err := parseTimestamp(in, now); err == nil {
			t.Errorf("parseTimestamp(%q) accepted", in)
		}
	}
}

func TestHumanDurationAndStatus(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "Less than a second", time.Second: "1 second", 59 * time.Second: "59 seconds", 90 * time.Second: "About a minute",
		5 * time.Minute: "5 minutes", time.Hour: "About an hour", 5 * time.Hour: "5 hours", 72 * time.Hour: "3 days",
		21 * 24 * time.Hour: "3 weeks", 90 * 24 * time.Hour: "3 months", 3 * 365 * 24 * time.Hour: "3 years",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
	now := time.Now()
	c := ctContainer("x", supervisor.StateRestarting)
	c.StoppedAt = now.Add(-5 * time.Second)
	if got := status(c, now); got != "Restarting (0) 5 seconds ago" {
		t.Errorf("restarting: %q", got)
	}
	c.State, c.ExitCode = supervisor.StateStopped, nil
	if got := status(c, now); got != "Exited (-1) 5 seconds ago" {
		t.Errorf("exited, code unknown: %q", got)
	}
}

func TestParseBind(t *testing.T) {
	tests := []struct {
		in       string
		src, dst string
		ro       bool
		kind     error
	}{
		{"/a:/b", "/a", "/b", false, nil},
		{"/a:/b:ro", "/a", "/b", true, nil},
		{"vol:/b:rw,z", "vol", "/b", false, nil},
		{"/anon", "/anon", "", false, nil},
		{"anon", "", "", false, errdefs.ErrInvalidArgument},
		{"/a:/b:rshared", "", "", false, errdefs.ErrNotImplemented},
		{"/a:/b:ro:x", "", "", false, errdefs.ErrInvalidArgument},
		{":/b", "", "", false, errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		src, dst, ro, err := parseBind(tt.in)
		if tt.kind != nil {
			if errdefs.Kind(err) != tt.kind {
				t.Errorf("parseBind(%q): %v, want %v", tt.in, err, tt.kind)
			}
			continue
		}
		if err != nil || src != tt.src || dst != tt.dst || ro != tt.ro {
			t.Errorf("parseBind(%q) = %q %q %v %v", tt.in, src, dst, ro, err)
		}
	}
}

func FuzzParseBind(f *testing.F) {
	for _, s := range []string{"/a:/b", "/a:/b:ro", "v:/d:rw,z", "/x", "::", "a:b:c:d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		src, dst, _, err := parseBind(s)
		if err == nil && (src == "" || strings.Contains(src, ":") || strings.Contains(dst, ":")) {
			t.Fatalf("parseBind(%q) = %q, %q", s, src, dst)
		}
	})
}

func FuzzParseSignal(f *testing.F) {
	for _, s := range []string{"9", "KILL", "SIGTERM", "sigusr1", "-3", "SIG"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if sig, err := parseSignal(s); err == nil && (sig <= 0 || sig > 64) {
			t.Fatalf("parseSignal(%q) = %d", s, sig)
		}
	})
}

func FuzzParseTimestamp(f *testing.F) {
	for _, s := range []string{"1h", "10m30s", "1700000000.123", "2025-01-02T03:04:05Z", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = parseTimestamp(s, time.Now()) // must not panic
	})
}

// Inspect's Config is the request over the image's configuration.
func TestContainerConfig(t *testing.T) {
	img := &v1.Config{Entrypoint: []string{"/entry"}, Cmd: []string{"run"}, Env: []string{"PATH=/bin", "A=image"},
		Labels: map[string]string{"from": "image", "app": "image"}, WorkingDir: "/srv", User: "daemon"}
	tests := []struct {
		name    string
		req     supervisor.CreateRequest
		img     *v1.Config
		ep, cmd []string
		env     []string
	}{
		{"image's", supervisor.CreateRequest{}, img, []string{"/entry"}, []string{"run"}, []string{"PATH=/bin", "A=image"}},
		{"cmd", supervisor.CreateRequest{Config: oci.Config{Command: []string{"x"}, Env: []string{"A=req", "B=1"}}}, img,
			[]string{"/entry"}, []string{"x"}, []string{"PATH=/bin", "A=req", "B=1"}},
		{"entrypoint drops cmd", supervisor.CreateRequest{Config: oci.Config{Entrypoint: []string{"sh"}}}, img, []string{"sh"}, nil, []string{"PATH=/bin", "A=image"}},
		{"entrypoint cleared", supervisor.CreateRequest{Config: oci.Config{Entrypoint: []string{""}, Command: []string{"ls"}}}, img, nil, []string{"ls"}, []string{"PATH=/bin", "A=image"}},
		{"entrypoint emptied keeps cmd", supervisor.CreateRequest{Config: oci.Config{Entrypoint: []string{}}}, img, nil, []string{"run"}, []string{"PATH=/bin", "A=image"}},
		{"no image", supervisor.CreateRequest{Config: oci.Config{Command: []string{"x"}}}, nil, nil, []string{"x"}, nil},
	}
	for _, tt := range tests {
		c := ctContainer("c", supervisor.StateCreated)
		c.Request = tt.req
		c.Request.Labels = map[string]string{"app": "req"}
		cfg := containerConfig(c, tt.img)
		if !reflect.DeepEqual(cfg.Entrypoint, tt.ep) || !reflect.DeepEqual(cfg.Cmd, tt.cmd) || !reflect.DeepEqual(cfg.Env, tt.env) {
			t.Errorf("%s: entrypoint %q cmd %q env %q", tt.name, cfg.Entrypoint, cfg.Cmd, cfg.Env)
		}
		if cfg.Labels["app"] != "req" || (tt.img != nil && (cfg.Labels["from"] != "image" || cfg.WorkingDir != "/srv" || cfg.User != "daemon")) {
			t.Errorf("%s: %+v", tt.name, cfg)
		}
	}
}

// rm -v removes the container's anonymous volumes, not its named ones.
func TestContainerRemoveVolumes(t *testing.T) {
	f := newCtFake()
	vols := &ctVolumes{}
	url := ctServe(t, f, vols)
	status, body := ctDo(t, "POST", url+"/containers/create?name=v", `{"Image":"busybox","Volumes":{"/anon":{}},"HostConfig":{"Binds":["named:/n"]}}`)
	if status != 201 {
		t.Fatalf("create: %d %s", status, body)
	}
	all, _ := vols.List(context.Background())
	if len(all) != 2 {
		t.Fatalf("volumes %+v", all)
	}
	if status, body = ctDo(t, "DELETE", url+"/containers/v?v=1", ""); status != 204 {
		t.Fatalf("rm -v: %d %s", status, body)
	}
	all, _ = vols.List(context.Background())
	if len(all) != 1 || all[0].Name != "named" {
		t.Fatalf("after rm -v: %+v", all)
	}
}

// FuzzCreateRequest: no create body makes the mapping panic, and what it
// accepts passes the supervisor's own validation or fails it cleanly.
func FuzzCreateRequest(f *testing.F) {
	for _, s := range []string{
		`{"Image":"busybox","Cmd":["echo"],"HostConfig":{"PortBindings":{"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"8080"}]},"NetworkMode":"default"}}`,
		`{"Image":"b","Entrypoint":[""],"HostConfig":{"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":-1},"NanoCpus":-5}}`,
		`{"Image":"b","HostConfig":{"CpuQuota":1,"CpuPeriod":0,"PidsLimit":-1,"Binds":["a:b:c"]}}`,
		`{"HostConfig":null}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var b container.CreateRequest
		if json.Unmarshal([]byte(body), &b) != nil || b.Config == nil {
			return
		}
		req, err := createRequest(b)
		if err != nil {
			return
		}
		if req.CPUs < 0 || req.PidsLimit < 0 {
			t.Fatalf("negative limits accepted: %+v", req)
		}
		_ = req.Validate() // must not panic
	})
}
