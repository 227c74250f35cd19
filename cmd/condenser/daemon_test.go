package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/raind/condenser/internal/testutil"
)

// daemonProc is the real condenser binary, started as a user would.
type daemonProc struct {
	t           testing.TB
	args        []string
	root, state string
	sock        string
	cmd         *exec.Cmd
	logs        *syncBuffer
	http        *http.Client
	// cgroupParent is the daemon's --cgroup-parent, its own; the cleanup
	// of testutil.CgroupParent removes it.
	cgroupParent string
	// net is its networking: bridge, subnet and NAT table of its own.
	net testutil.Net
}

func startDaemon(t *testing.T, registry string) *daemonProc { return startDaemonTB(t, registry) }

func startDaemonTB(t testing.TB, registry string) *daemonProc {
	t.Helper()
	return startDaemonListening(t, registry, func(d *daemonProc) []string { return []string{"--listen", "unix://" + d.sock} })
}

// startDaemonListening starts a daemon whose listener flags are listen's
// (the unix socket at d.sock must be among what they make: the tests talk
// to it there).
func startDaemonListening(t testing.TB, registry string, listen func(d *daemonProc) []string) *daemonProc {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "runc")
	dir := testutil.BuildBinaries(t, "../condenser", "../condenser-shim")
	state, err := os.MkdirTemp("", "cd")
	if err != nil {
		t.Fatal(err)
	}
	d := &daemonProc{t: t, root: t.TempDir(), state: state, sock: filepath.Join(state, "condenser.sock"), cgroupParent: testutil.CgroupParent(t), net: testutil.Network(t)}
	d.args = append([]string{dir + "/condenser", "--root", d.root, "--state", d.state, "--runtime", "runc", "--cgroup-parent", d.cgroupParent,
		"--registry-mirror", "docker.io=http://" + registry}, d.net.Args()...)
	d.args = append(d.args, listen(d)...)
	d.http = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", d.sock)
	}}}
	d.start()
	t.Cleanup(func() {
		// Delete every container, then stop the daemon and remove its state.
		var list struct{ Data []map[string]any }
		d.do("GET", "/v1/containers?all=1", nil, &list)
		for _, c := range list.Data {
			d.do("DELETE", fmt.Sprintf("/v1/containers/%v/actions/delete?force=1", c["containerId"]), nil, nil)
		}
		d.stop(syscall.SIGTERM)
		os.RemoveAll(state)
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.logs)
		}
	})
	return d
}

func (d *daemonProc) start() {
	d.t.Helper()
	d.logs = &syncBuffer{}
	d.cmd = exec.Command(d.args[0], d.args[1:]...)
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := d.http.Get("http://condenser/v1/_ping")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("daemon not answering: %v\n%s", err, d.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (d *daemonProc) stop(sig syscall.Signal) {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	d.cmd.Process.Signal(sig)
	d.cmd.Wait()
	d.cmd = nil
	d.checkLog()
}

// do sends a JSON request and decodes the envelope into out; it returns
// the status code.
func (d *daemonProc) do(method, path string, body any, out any) int {
	d.t.Helper()
	var r io.Reader
	if body != nil {
		switch b := body.(type) {
		case string:
			r = strings.NewReader(b)
		default:
			j, _ := json.Marshal(b)
			r = bytes.NewReader(j)
		}
	}
	req, _ := http.NewRequest(method, "http://condenser"+path, r)
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.http.Do(req)
	if err != nil {
		d.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			d.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

type envelope struct {
	Status  string          `json:"status"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

func registryWithBusybox(t *testing.T) *testutil.Registry {
	reg := testutil.StartRegistry(t)
	reg.Push(t, reg.Ref("library/busybox:latest"), testutil.BusyboxImage(t))
	return reg
}

func TestDaemonEndToEnd(t *testing.T) {
	reg := registryWithBusybox(t)
	d := startDaemon(t, reg.Host)

	// Pull with the progress stream.
	req, _ := http.NewRequest("POST", "http://condenser/v1/images", strings.NewReader(`{"image":"busybox"}`))
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := d.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	resp.Body.Close()
	if len(lines) < 2 || !strings.Contains(lines[0], `"layer":"sha256:`) || !strings.Contains(lines[len(lines)-1], `"status":"success"`) {
		t.Fatalf("pull stream: %q", lines)
	}

	var env envelope
	if code := d.do("POST", "/v1/containers", map[string]any{"image": "busybox", "name": "web", "command": []string{"sh", "-c", "echo hi; sleep 100"}}, &env); code != 200 {
		t.Fatalf("create: %d %+v", code, env)
	}
	var created struct{ ID string }
	json.Unmarshal(env.Data, &created)
	if len(created.ID) != 64 {
		t.Fatalf("id %q", created.ID)
	}
	if code := d.do("POST", "/v1/containers/web/actions/start", nil, &env); code != 200 {
		t.Fatalf("start: %d %+v", code, env)
	}
	// The log, as plain text.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := d.http.Get("http://condenser/v1/containers/web/log?tail_lines=10")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) == "hi\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %q", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := d.do("GET", "/v1/containers/"+created.ID[:8]+"/stats", nil, &env); code != 200 || !strings.Contains(string(env.Data), `"memory"`) {
		t.Errorf("stats: %d %s", code, env.Data)
	}
	var list struct{ Data []map[string]any }
	d.do("GET", "/v1/containers", nil, &list)
	if len(list.Data) != 1 || list.Data[0]["state"] != "running" || list.Data[0]["name"] != "web" {
		t.Errorf("list: %+v", list.Data)
	}
	// The image is in use.
	if code := d.do("DELETE", "/v1/images", map[string]string{"image": "busybox"}, &env); code != 409 {
		t.Errorf("image rm while used: %d %+v", code, env)
	}
	// Stop with a timeout: sleep ignores SIGTERM as pid 1, so SIGKILL follows.
	if code := d.do("POST", "/v1/containers/web/actions/stop?timeout=1", nil, &env); code != 200 {
		t.Fatalf("stop: %d %+v", code, env)
	}
	var waited struct{ Data struct{ ExitCode int } }
	if d.do("POST", "/v1/containers/web/actions/wait", nil, &waited); waited.Data.ExitCode != 137 {
		t.Errorf("wait: %+v", waited)
	}
	if code := d.do("DELETE", "/v1/containers/web/actions/delete", nil, &env); code != 200 {
		t.Fatalf("delete: %d %+v", code, env)
	}

	// Kill with a signal, then a restart policy that brings a failing
	// container back once.
	d.do("POST", "/v1/containers", map[string]any{"image": "busybox", "name": "k", "command": []string{"sleep", "100"}}, nil)
	d.do("POST", "/v1/containers/k/actions/start", nil, nil)
	if code := d.do("POST", "/v1/containers/k/actions/kill?signal=KILL", nil, &env); code != 200 {
		t.Errorf("kill: %d %+v", code, env)
	}
	if d.do("POST", "/v1/containers/k/actions/wait", nil, &waited); waited.Data.ExitCode != 137 {
		t.Errorf("wait after kill: %+v", waited)
	}
	d.do("POST", "/v1/containers", map[string]any{"image": "busybox", "name": "flaky", "command": []string{"false"}, "restartPolicy": "on-failure:1"}, nil)
	d.do("POST", "/v1/containers/flaky/actions/start", nil, nil)
	deadline = time.Now().Add(20 * time.Second)
	for {
		var detail struct {
			Data struct {
				State        string
				RestartCount int
			}
		}
		d.do("GET", "/v1/containers/flaky", nil, &detail)
		if detail.Data.RestartCount == 1 && detail.Data.State == "stopped" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restart policy: %+v", detail.Data)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Bad input → 4xx envelopes.
	for _, tc := range []struct {
		method, path string
		body         any
		code         int
	}{
		{"POST", "/v1/containers", `{"image":`, 400},
		{"POST", "/v1/containers", `{"image":"busybox","bogus":1}`, 400},
		{"POST", "/v1/containers", `{"image":"Not A Ref"}`, 400},
		{"POST", "/v1/containers", `{"image":"busybox","mount":["relative:/x"]}`, 400},
		{"POST", "/v1/containers", `{"image":"busybox","port":["80x:80"]}`, 400},
		{"POST", "/v1/containers", `{"image":"busybox","network":"nosuch"}`, 404},
		{"POST", "/v1/containers", `{"image":"busybox","network":"host","port":["8080:80"]}`, 400},
		{"POST", "/v1/containers/nope/actions/start", nil, 404},
		{"POST", "/v1/containers", `{"image":"busybox","command":["x"],"data":"` + strings.Repeat("x", 2<<20) + `"}`, 413},
	} {
		var e envelope
		if code := d.do(tc.method, tc.path, tc.body, &e); code != tc.code || e.Status != "fail" || e.Message == "" {
			t.Errorf("%s %s: %d %+v, want %d fail", tc.method, tc.path, code, e, tc.code)
		}
	}
	d.do("POST", "/v1/containers", map[string]any{"image": "busybox", "name": "dup"}, nil)
	if code := d.do("POST", "/v1/containers", map[string]any{"image": "busybox", "name": "dup"}, &env); code != 409 {
		t.Errorf("name conflict: %d", code)
	}
}

func TestDaemonKilledContainersSurvive(t *testing.T) {
	reg := registryWithBusybox(t)
	d := startDaemon(t, reg.Host)
	for i := range 10 {
		var env envelope
		if code := d.do("POST", "/v1/containers", map[string]any{"image": "busybox", "name": fmt.Sprint("c", i), "command": []string{"sleep", "100"}}, &env); code != 200 {
			t.Fatalf("create: %d %+v", code, env)
		}
		var c struct{ ID string }
		json.Unmarshal(env.Data, &c)
		d.do("POST", "/v1/containers/"+c.ID+"/actions/start", nil, nil)
	}
	var detail struct{ Data struct{ Pid int } }
	d.do("GET", "/v1/containers/c9", nil, &detail)
	d.stop(syscall.SIGKILL)
	// While the daemon is down, one container dies.
	syscall.Kill(detail.Data.Pid, syscall.SIGKILL)
	d.start()
	var list struct{ Data []map[string]any }
	d.do("GET", "/v1/containers?all=1", nil, &list)
	states := map[string]any{}
	for _, c := range list.Data {
		states[c["name"].(string)] = c["state"]
	}
	for _, n := range []string{"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8"} {
		if states[n] != "running" {
			t.Errorf("%s after the daemon's restart: %v", n, states[n])
		}
	}
	var waited struct{ Data struct{ ExitCode int } }
	if d.do("POST", "/v1/containers/c9/actions/wait", nil, &waited); waited.Data.ExitCode != 137 {
		t.Errorf("container that died meanwhile: %+v", waited)
	}
}

func TestSocketActivation(t *testing.T) {
	testutil.RequireRoot(t)
	sa := testutil.RequireBinary(t, "systemd-socket-activate")
	reg := registryWithBusybox(t)
	dir := testutil.BuildBinaries(t, "../condenser", "../condenser-shim")
	state, _ := os.MkdirTemp("", "cd")
	// Removed after the daemon has stopped (cleanups run last first): it
	// keeps a spare shim there until then.
	t.Cleanup(func() { os.RemoveAll(state) })
	sock := filepath.Join(state, "activated.sock")
	args := append([]string{"-l", sock, dir + "/condenser", "--root", t.TempDir(), "--state", state, "--runtime", "runc", "--cgroup-parent", testutil.CgroupParent(t),
		"--listen", "unix://" + filepath.Join(state, "not-used.sock"), "--registry-mirror", "docker.io=http://" + reg.Host}, testutil.Network(t).Args()...)
	cmd := exec.Command(sa, args...)
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", sock)
	}}}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := client.Get("http://condenser/v1/_ping")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "OK" {
				t.Errorf("ping: %q", b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("activated daemon not answering: %v\n%s", err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(state, "not-used.sock")); err == nil {
		t.Error("the configured socket was created although systemd passed one")
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveBinaries()
	os.Exit(code)
}

// BenchmarkDaemonRestart kills the daemon (-9) with restartContainers
// running containers and measures, from starting it again, the time until
// its API answers. Reconnection happens before it listens, so by then every
// container is reconnected; the benchmark checks they are all listed as
// running.
func BenchmarkDaemonRestart(b *testing.B) {
	const restartContainers = 100
	reg := testutil.StartRegistry(b)
	reg.Push(b, reg.Ref("library/busybox:latest"), testutil.BusyboxImage(b))
	d := startDaemonTB(b, reg.Host)
	for i := range restartContainers {
		var env envelope
		if code := d.do("POST", "/v1/containers", map[string]any{"image": "busybox", "name": fmt.Sprint("r", i), "command": []string{"sleep", "3600"}}, &env); code != 200 {
			b.Fatalf("create: %d %+v", code, env)
		}
		if code := d.do("POST", fmt.Sprintf("/v1/containers/r%d/actions/start", i), nil, &env); code != 200 {
			b.Fatalf("start: %d %+v", code, env)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		d.stop(syscall.SIGKILL)
		b.StartTimer()
		d.start()
		b.StopTimer()
		var list struct{ Data []map[string]any }
		d.do("GET", "/v1/containers", nil, &list)
		running := 0
		for _, c := range list.Data {
			if c["state"] == "running" {
				running++
			}
		}
		if running != restartContainers {
			b.Fatalf("%d of %d containers running after the restart", running, restartContainers)
		}
		b.StartTimer()
	}
}

// syncBuffer is a bytes.Buffer a running daemon writes its log into while
// the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}
