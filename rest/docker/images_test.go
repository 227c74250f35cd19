package docker

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/moby/api/types/image"

	"github.com/raind/condenser/imagestore"
	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/supervisor"
)

// fakeImages is an image store in memory: records by canonical name (or
// by ID when nameless), configs by ID.
type fakeImages struct {
	mu      sync.Mutex
	recs    []imagestore.Image
	configs map[string]*v1.ConfigFile
	pullErr error // returned by Pull after its progress, when set
	early   error // returned by Pull before any progress
	loaded  []byte
}

func newFakeImages() *fakeImages { return &fakeImages{configs: map[string]*v1.ConfigFile{}} }

const busyboxID = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

// add stores an image named name (canonical form) with ID id.
func (f *fakeImages) add(name, id string, labels map[string]string) imagestore.Image {
	f.mu.Lock()
	defer f.mu.Unlock()
	img := imagestore.Image{
		Name: name, ID: id, Digest: "sha256:" + strings.Repeat("d", 64), Size: 4096,
		Created: time.Unix(1700000000, 0).UTC(),
		Layers:  []imagestore.Layer{{Digest: "sha256:" + strings.Repeat("a", 64), DiffID: "sha256:" + strings.Repeat("b", 64), Size: 2000, Unpacked: 4096}},
	}
	f.recs = append(f.recs, img)
	f.configs[id] = &v1.ConfigFile{
		Architecture: "amd64", OS: "linux", Created: v1.Time{Time: img.Created},
		Config: v1.Config{Cmd: []string{"sh"}, Env: []string{"PATH=/bin"}, Labels: labels, WorkingDir: "/w"},
		RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{{Algorithm: "sha256", Hex: strings.Repeat("b", 64)}}},
		History: []v1.History{
			{Created: v1.Time{Time: img.Created}, CreatedBy: "ADD rootfs /"},
			{Created: v1.Time{Time: img.Created}, CreatedBy: "CMD [\"sh\"]", EmptyLayer: true},
		},
	}
	return img
}

func canonical(ref string) string {
	r, err := imagestore.ParseReference(ref)
	if err != nil {
		return ""
	}
	return r.String()
}

func (f *fakeImages) Pull(ctx context.Context, ref string, o imagestore.PullOptions) (imagestore.Image, error) {
	if f.early != nil {
		return imagestore.Image{}, f.early
	}
	l := "sha256:" + strings.Repeat("a", 64)
	o.Progress(imagestore.Progress{Layer: l, Status: imagestore.StatusDownloading, Current: 10, Total: 20})
	o.Progress(imagestore.Progress{Layer: l, Status: imagestore.StatusDone, Current: 20, Total: 20})
	if f.pullErr != nil {
		return imagestore.Image{}, f.pullErr
	}
	return f.add(canonical(ref), busyboxID, nil), nil
}

func (f *fakeImages) List(ctx context.Context) ([]imagestore.Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.recs), nil
}

func (f *fakeImages) Inspect(ctx context.Context, ref string) (imagestore.Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := canonical(ref)
	for _, img := range f.recs {
		if img.Name != "" && img.Name == c {
			return img, nil
		}
	}
	hex := strings.TrimPrefix(ref, "sha256:")
	for _, img := range f.recs {
		if len(hex) >= 4 && strings.HasPrefix(strings.TrimPrefix(img.ID, "sha256:"), hex) {
			return img, nil
		}
	}
	return imagestore.Image{}, fmt.Errorf("no such image: %s: %w", ref, errdefs.ErrNotFound)
}

func (f *fakeImages) Config(ctx context.Context, img imagestore.Image) (*v1.ConfigFile, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.configs[img.ID], nil
}

func (f *fakeImages) Remove(ctx context.Context, ref string, o imagestore.RemoveOptions) ([]string, error) {
	img, err := f.Inspect(ctx, ref)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	byName := img.Name != "" && img.Name == canonical(ref)
	var removed []string
	f.recs = slices.DeleteFunc(f.recs, func(r imagestore.Image) bool {
		if r.ID != img.ID || (byName && r.Name != img.Name) {
			return false
		}
		if r.Name != "" {
			removed = append(removed, r.Name)
		}
		return true
	})
	return removed, nil
}

func (f *fakeImages) Tag(ctx context.Context, source, target string) (imagestore.Image, error) {
	img, err := f.Inspect(ctx, source)
	if err != nil {
		return imagestore.Image{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	img.Name = canonical(target)
	f.recs = append(f.recs, img)
	return img, nil
}

func (f *fakeImages) Import(ctx context.Context, r io.Reader, o imagestore.ImportOptions) ([]imagestore.Image, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if string(b) != "TARBALL" {
		return nil, fmt.Errorf("import: not a tarball: %w", errdefs.ErrInvalidArgument)
	}
	f.loaded = b
	return []imagestore.Image{f.add("docker.io/library/busybox:latest", busyboxID, nil)}, nil
}

func (f *fakeImages) Export(ctx context.Context, w io.Writer, refs []string) error {
	_, err := io.WriteString(w, "TARBALL:"+strings.Join(refs, ","))
	return err
}

// fakeNetworks is the supervisor as the network, volume, image and event
// handlers see it: networks, container records and lifecycle events.
type fakeNetworks struct {
	mu         sync.Mutex
	nets       map[string]supervisor.Network
	containers []*supervisor.Container
	events     chan supervisor.Event
}

func newFakeNetworks() *fakeNetworks {
	return &fakeNetworks{
		nets: map[string]supervisor.Network{
			"raind0": {Name: "raind0", Driver: "bridge", Bridge: "raind0", BuiltIn: true},
			"host":   {Name: "host", Driver: "host", BuiltIn: true},
			"none":   {Name: "none", Driver: "null", BuiltIn: true},
		},
		events: make(chan supervisor.Event, 16),
	}
}

func (f *fakeNetworks) users(name string) []string {
	var ids []string
	for _, c := range f.containers {
		if c.Endpoint != nil && c.Endpoint.Network == name {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

func (f *fakeNetworks) Networks(ctx context.Context) ([]supervisor.Network, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []supervisor.Network
	for _, n := range f.nets {
		n.Containers = f.users(n.Name)
		out = append(out, n)
	}
	return out, nil
}

func (f *fakeNetworks) Network(ctx context.Context, name string) (supervisor.Network, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.nets[name]
	if !ok {
		return n, fmt.Errorf("network %s: %w", name, errdefs.ErrNotFound)
	}
	n.Containers = f.users(name)
	return n, nil
}

func (f *fakeNetworks) CreateNetwork(ctx context.Context, cfg supervisor.NetworkConfig) (supervisor.Network, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.nets[cfg.Name]; ok {
		return supervisor.Network{}, fmt.Errorf("network %s: %w", cfg.Name, errdefs.ErrAlreadyExists)
	}
	n := supervisor.Network{Name: cfg.Name, Driver: "bridge", Bridge: "br-x"}
	if cfg.Subnet != "" {
		var err error
		if n.Subnet, err = netip.ParsePrefix(cfg.Subnet); err != nil {
			return n, fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
		}
	}
	f.nets[cfg.Name] = n
	return n, nil
}

func (f *fakeNetworks) RemoveNetwork(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.users(name)) > 0 {
		return fmt.Errorf("network %s in use: %w", name, errdefs.ErrConflict)
	}
	delete(f.nets, name)
	return nil
}

func (f *fakeNetworks) List(ctx context.Context) ([]*supervisor.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.containers), nil
}

func (f *fakeNetworks) Get(ctx context.Context, ref string) (*supervisor.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.containers {
		if c.ID == ref || c.Name == ref {
			return c, nil
		}
	}
	return nil, fmt.Errorf("container %s: %w", ref, errdefs.ErrNotFound)
}

func (f *fakeNetworks) Subscribe() (<-chan supervisor.Event, func()) { return f.events, func() {} }

// testServer serves a handler over the fakes.
type testServer struct {
	t      *testing.T
	url    string
	images *fakeImages
	sup    *fakeNetworks
	h      *Handler
}

func newTestServer(t *testing.T, d Deps) *testServer {
	t.Helper()
	ts := &testServer{t: t, images: newFakeImages(), sup: newFakeNetworks()}
	if d.Images == nil {
		d.Images = ts.images
	}
	if d.Networks == nil {
		d.Networks = ts.sup
	}
	if d.System.Root == "" {
		d.System.Root = t.TempDir()
	}
	ts.h = NewHandler(d, nil)
	srv := httptest.NewServer(ts.h)
	t.Cleanup(func() { ts.h.Shutdown(); srv.Close() })
	ts.url = srv.URL
	return ts
}

// do sends a request and returns the status and body.
func (ts *testServer) do(method, path string, body io.Reader) (int, string, http.Header) {
	ts.t.Helper()
	req, err := http.NewRequest(method, ts.url+path, body)
	if err != nil {
		ts.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		ts.t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// want checks a request's status and returns its body.
func (ts *testServer) want(status int, method, path string, body string) string {
	ts.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	got, b, _ := ts.do(method, path, r)
	if got != status {
		ts.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, got, status, b)
	}
	return b
}

func errMessage(t *testing.T, body string) string {
	t.Helper()
	var e struct{ Message string }
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return e.Message
}

func TestImageListInspectTagHistory(t *testing.T) {
	ts := newTestServer(t, Deps{})
	ts.images.add("docker.io/library/busybox:latest", busyboxID, map[string]string{"a": "b"})
	ts.images.add("example.com/app:1", "sha256:"+strings.Repeat("2", 64), nil)

	var list []image.Summary
	if err := json.Unmarshal([]byte(ts.want(200, "GET", "/v1.50/images/json", "")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("list %+v", list)
	}
	for _, tc := range []struct {
		filter string
		want   []string
	}{
		{`{"reference":{"busybox":true}}`, []string{busyboxID}},
		{`{"reference":{"busy*:latest":true}}`, []string{busyboxID}},
		{`{"reference":{"example.com/*":true}}`, []string{"sha256:" + strings.Repeat("2", 64)}},
		{`{"label":{"a=b":true}}`, []string{busyboxID}},
		{`{"dangling":{"true":true}}`, nil},
	} {
		var got []image.Summary
		if err := json.Unmarshal([]byte(ts.want(200, "GET", "/images/json?filters="+urlQuery(tc.filter), "")), &got); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, s := range got {
			ids = append(ids, s.ID)
		}
		if !slices.Equal(ids, tc.want) {
			t.Errorf("filter %s: %v, want %v", tc.filter, ids, tc.want)
		}
	}
	ts.want(400, "GET", "/images/json?filters="+urlQuery(`{"nope":{"x":true}}`), "")

	var ins image.InspectResponse
	if err := json.Unmarshal([]byte(ts.want(200, "GET", "/images/busybox/json", "")), &ins); err != nil {
		t.Fatal(err)
	}
	if ins.ID != busyboxID || ins.Os != "linux" || ins.Config == nil || ins.Config.WorkingDir != "/w" ||
		!slices.Equal(ins.RepoTags, []string{"busybox:latest"}) || len(ins.RootFS.Layers) != 1 || ins.RootFS.Type != "layers" {
		t.Fatalf("inspect %+v", ins)
	}
	// A name with a registry and a port: slashes and colons.
	ts.want(200, "GET", "/images/example.com/app:1/json", "")
	if msg := errMessage(t, ts.want(404, "GET", "/images/nope/json", "")); msg != "No such image: nope" {
		t.Fatalf("404 message %q", msg)
	}
	ts.want(404, "GET", "/images/busybox/nope", "")

	ts.want(201, "POST", "/images/busybox/tag?repo=mybox&tag=1", "")
	ts.want(404, "POST", "/images/nope/tag?repo=mybox&tag=1", "")
	ts.want(400, "POST", "/images/busybox/tag?repo=Bad+Name", "")
	if err := json.Unmarshal([]byte(ts.want(200, "GET", "/images/mybox:1/json", "")), &ins); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ins.RepoTags, []string{"busybox:latest", "mybox:1"}) {
		t.Fatalf("tags after tag: %v", ins.RepoTags)
	}

	var hist []image.HistoryResponseItem
	if err := json.Unmarshal([]byte(ts.want(200, "GET", "/images/busybox/history", "")), &hist); err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[0].ID != busyboxID || hist[0].Size != 0 || hist[1].ID != "<missing>" || hist[1].Size != 4096 || hist[1].CreatedBy != "ADD rootfs /" {
		t.Fatalf("history %+v", hist)
	}
	ts.want(501, "POST", "/images/busybox/push", "")
}

func urlQuery(s string) string {
	r := strings.NewReplacer("{", "%7B", "}", "%7D", `"`, "%22", ":", "%3A", ",", "%2C", "=", "%3D", "*", "%2A", "/", "%2F")
	return r.Replace(s)
}

func TestImageDelete(t *testing.T) {
	ts := newTestServer(t, Deps{})
	img := ts.images.add("docker.io/library/busybox:latest", busyboxID, nil)
	ts.images.Tag(context.Background(), "busybox", "mybox:1")
	ts.sup.containers = []*supervisor.Container{{ID: strings.Repeat("c", 64), Name: "web", ImageID: img.ID, State: supervisor.StateStopped}}

	// One of two names: untagged even while in use.
	var del []image.DeleteResponse
	if err := json.Unmarshal([]byte(ts.want(200, "DELETE", "/images/mybox:1", "")), &del); err != nil {
		t.Fatal(err)
	}
	if len(del) != 1 || del[0].Untagged != "mybox:1" {
		t.Fatalf("untag: %+v", del)
	}
	// The last name of an image in use: Docker's conflict.
	msg := errMessage(t, ts.want(409, "DELETE", "/images/busybox", ""))
	want := `conflict: unable to remove repository reference "busybox" (must force) - container cccccccccccc is using its referenced image 111111111111`
	if msg != want {
		t.Fatalf("conflict message\n%q\nwant\n%q", msg, want)
	}
	if msg := errMessage(t, ts.want(409, "DELETE", "/images/111111111111", "")); !strings.Contains(msg, "must be forced") {
		t.Fatalf("by ID: %q", msg)
	}
	if msg := errMessage(t, ts.want(404, "DELETE", "/images/nope", "")); msg != "No such image: nope" {
		t.Fatalf("404: %q", msg)
	}
	ts.sup.containers = nil
	if err := json.Unmarshal([]byte(ts.want(200, "DELETE", "/images/busybox", "")), &del); err != nil {
		t.Fatal(err)
	}
	if len(del) < 2 || del[0].Untagged != "busybox:latest" || del[len(del)-1].Deleted != busyboxID {
		t.Fatalf("delete: %+v", del)
	}
}

// readLines reads JSON lines of the progress stream.
func readLines(t *testing.T, body string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestImagePull(t *testing.T) {
	ts := newTestServer(t, Deps{})
	code, body, hdr := ts.do("POST", "/v1.50/images/create?fromImage=busybox&tag=latest", nil)
	if code != 200 || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("pull: %d %s %q", code, hdr.Get("Content-Type"), body)
	}
	lines := readLines(t, body)
	if lines[0]["status"] != "Pulling from library/busybox" || lines[0]["id"] != "latest" {
		t.Fatalf("first line %v", lines[0])
	}
	var statuses []string
	for _, l := range lines {
		statuses = append(statuses, fmt.Sprint(l["status"]))
	}
	joined := strings.Join(statuses, "|")
	for _, want := range []string{"Downloading", "Pull complete", "Digest: sha256:", "Status: Downloaded newer image for busybox:latest"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no %q in %s", want, joined)
		}
	}
	if d := lines[2]["progressDetail"].(map[string]any); d["current"] != 10.0 || d["total"] != 20.0 || lines[2]["id"] != "aaaaaaaaaaaa" {
		t.Errorf("progress line %v", lines[2])
	}
	// Again: up to date.
	_, body, _ = ts.do("POST", "/images/create?fromImage=busybox&tag=latest", nil)
	if !strings.Contains(body, "Status: Image is up to date for busybox:latest") {
		t.Errorf("second pull: %s", body)
	}

	// An error before any progress has its status; after, an error line.
	ts.images.early = fmt.Errorf("manifest unknown: %w", errdefs.ErrNotFound)
	if msg := errMessage(t, ts.want(404, "POST", "/images/create?fromImage=nope&tag=latest", "")); msg != "manifest unknown: not found" {
		t.Fatalf("early error %q", msg)
	}
	ts.images.early, ts.images.pullErr = nil, fmt.Errorf("connection reset")
	code, body, _ = ts.do("POST", "/images/create?fromImage=busybox&tag=latest", nil)
	lines = readLines(t, body)
	last := lines[len(lines)-1]
	if code != 200 || last["error"] != "connection reset" || last["errorDetail"].(map[string]any)["message"] != "connection reset" {
		t.Fatalf("late error: %d %v", code, last)
	}
	ts.want(501, "POST", "/images/create?fromSrc=-", "")
	ts.want(400, "POST", "/images/create?fromImage=Bad+Name", "")
	ts.want(400, "POST", "/images/create?fromImage=busybox&platform=a/b/c/d", "")
}

func TestImageLoadSave(t *testing.T) {
	ts := newTestServer(t, Deps{})
	code, body, _ := ts.do("POST", "/images/load", strings.NewReader("TARBALL"))
	if code != 200 || !strings.Contains(body, `{"stream":"Loaded image: busybox:latest\n"}`) {
		t.Fatalf("load: %d %s", code, body)
	}
	ts.want(400, "POST", "/images/load", "garbage")
	if got := ts.want(200, "GET", "/images/busybox/get", ""); got != "TARBALL:busybox" {
		t.Fatalf("save: %q", got)
	}
	if got := ts.want(200, "GET", "/images/get?names=busybox&names=busybox:latest", ""); got != "TARBALL:busybox,busybox:latest" {
		t.Fatalf("save many: %q", got)
	}
	ts.want(404, "GET", "/images/get?names=nope", "")
	ts.want(400, "GET", "/images/get", "")
}

func TestPullRef(t *testing.T) {
	for _, tc := range []struct{ from, tag, want string }{
		{"busybox", "latest", "busybox:latest"},
		{"busybox", "", "busybox"},
		{"busybox:1.36", "", "busybox:1.36"},
		{"busybox", "sha256:" + strings.Repeat("a", 64), "busybox@sha256:" + strings.Repeat("a", 64)},
		{"localhost:5000/a/b", "2", "localhost:5000/a/b:2"},
		{"", "x", ""},
		{"Bad", "", ""},
	} {
		got, err := pullRef(tc.from, tc.tag)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("pullRef(%q, %q) = %q, %v; want %q", tc.from, tc.tag, got, err, tc.want)
		}
	}
}

func FuzzPullRef(f *testing.F) {
	f.Add("busybox", "latest")
	f.Add("a/b:c", "sha256:00")
	f.Fuzz(func(t *testing.T, from, tag string) {
		ref, err := pullRef(from, tag)
		if err != nil {
			return
		}
		if _, err := imagestore.ParseReference(ref); err != nil {
			t.Fatalf("pullRef accepted %q that does not parse: %v", ref, err)
		}
	})
}
