package docker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/frame"
	"github.com/raind/condenser/shim/client"
	"github.com/raind/condenser/supervisor"
)

func TestExecStoreBounds(t *testing.T) {
	x := newExecStore(3)
	code := 0
	a := x.add(execConfig{ContainerID: "c"})
	b := x.add(execConfig{ContainerID: "c"})
	c := x.add(execConfig{ContainerID: "d"})
	if _, err := x.start(a, false); err != nil {
		t.Fatal(err)
	}
	if _, err := x.start(a, false); errdefs.Kind(err) != errdefs.ErrConflict {
		t.Fatalf("second start: %v", err)
	}
	x.update(b, func(e *execConfig) { e.Started, e.ExitCode = true, &code })
	if _, err := x.start(b, false); errdefs.Kind(err) != errdefs.ErrConflict || !strings.Contains(err.Error(), "has already run") {
		t.Fatalf("start of a finished exec: %v", err)
	}
	// Full: the finished one goes first …
	d := x.add(execConfig{ContainerID: "d"})
	if _, err := x.get(b); err == nil {
		t.Fatal("the finished exec was kept")
	}
	// … then the never started one (c), not the running one (a).
	x.add(execConfig{ContainerID: "d"})
	if _, err := x.get(c); err == nil {
		t.Fatal("the never started exec was kept")
	}
	if _, err := x.get(a); err != nil {
		t.Fatalf("the running exec went: %v", err)
	}
	// … and with only running ones, the oldest.
	x.update(d, func(e *execConfig) { e.Started = true })
	for _, id := range x.order {
		x.update(id, func(e *execConfig) { e.Started = true })
	}
	x.add(execConfig{ContainerID: "d"})
	if _, err := x.get(a); err == nil {
		t.Fatal("the oldest exec was kept")
	}
	if x.len() != 3 {
		t.Fatalf("%d execs, bound 3", x.len())
	}
	x.forgetContainer("d")
	if x.len() != 0 {
		t.Fatalf("%d execs left after their container went", x.len())
	}
	if _, err := x.get("nope"); statusOf(err) != 404 || err.Error() != "No such exec instance: nope" {
		t.Fatalf("unknown exec: %v", err)
	}
}

// execCreate creates an exec of c1 and returns its id.
func execCreate(t *testing.T, url string, req container.ExecCreateRequest) (string, int, string) {
	t.Helper()
	b, _ := json.Marshal(req)
	resp, err := http.Post(url+"/v1.50/containers/c1/exec", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var id container.ExecCreateResponse
	json.Unmarshal(body, &id)
	return id.ID, resp.StatusCode, string(body)
}

func execInspect(t *testing.T, url, id string) container.ExecInspectResponse {
	t.Helper()
	resp, err := http.Get(url + "/exec/" + id + "/json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out container.ExecInspectResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("inspect: %d %v", resp.StatusCode, err)
	}
	return out
}

// TestExecFlow: create, start (hijacked), the stream, and the exit code
// in the inspect once the stream has ended.
func TestExecFlow(t *testing.T) {
	f := newStreamsFake(false, supervisor.StateRunning)
	srv := streamsServer(t, f)
	id, status, body := execCreate(t, srv.URL, container.ExecCreateRequest{Cmd: []string{"sh", "-c", "exit 7"}, AttachStdout: true, AttachStderr: true, Env: []string{"A=1"}, User: "1"})
	if status != 201 || len(id) != 64 {
		t.Fatalf("create: %d %s", status, body)
	}
	if got := execInspect(t, srv.URL, id); got.Running || got.ExitCode != nil || got.ProcessConfig.Entrypoint != "sh" || got.ContainerID != "c1id" {
		t.Fatalf("inspect before start: %+v", got)
	}
	_, resp, br := hijacked(t, srv, "POST", "/v1.50/exec/"+id+"/start", `{"Detach":false,"Tty":false}`)
	if resp.StatusCode != 101 || resp.Header.Get("Content-Type") != "application/vnd.docker.multiplexed-stream" {
		t.Fatalf("start: %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	shim := f.nextShim(t)
	f.mu.Lock()
	f.state = client.ExecProcess{ID: "proc1", Pid: 42, Status: client.StatusRunning}
	f.mu.Unlock()
	if got := execInspect(t, srv.URL, id); !got.Running || got.Pid != 42 || got.ExitCode != nil {
		t.Fatalf("inspect while running: %+v", got)
	}
	frame.Write(shim, frame.Stderr, []byte("bye\n"))
	frame.Write(shim, frame.Exit, frame.ExitPayload(7))
	var out, errb bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &errb, br); err != nil || errb.String() != "bye\n" {
		t.Fatalf("stream: %q %q %v", out.String(), errb.String(), err)
	}
	// The shim's state still says running (it lags, or is gone): the
	// exit code the stream told is the answer.
	if got := execInspect(t, srv.URL, id); got.Running || got.ExitCode == nil || *got.ExitCode != 7 {
		t.Fatalf("inspect after the stream: %+v", got)
	}
	want := supervisor.ExecRequest{Command: []string{"sh", "-c", "exit 7"}, Env: []string{"A=1"}, User: "1"}
	if got := f.execs[0]; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("exec request %+v, want %+v", got, want)
	}
	if o := f.attached[0]; o.Exec != "proc1" || o.Stdin {
		t.Fatalf("attach %+v", o)
	}
	// A second start is refused.
	resp2, err := http.Post(srv.URL+"/exec/"+id+"/start", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != 409 {
		t.Fatalf("second start: %d", resp2.StatusCode)
	}
}

func TestExecDetachedAndErrors(t *testing.T) {
	f := newStreamsFake(true, supervisor.StateRunning)
	srv := streamsServer(t, f)
	id, _, _ := execCreate(t, srv.URL, container.ExecCreateRequest{Cmd: []string{"top"}, Tty: true, ConsoleSize: &[2]uint{24, 80}})
	resp, err := http.Post(srv.URL+"/exec/"+id+"/start", "application/json", strings.NewReader(`{"Detach":true,"ConsoleSize":[30,100]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || len(f.attached) != 0 {
		t.Fatalf("detached start: %d, %d attaches", resp.StatusCode, len(f.attached))
	}
	if got := f.execs[0]; !got.Detach || !got.Tty || *got.ConsoleSize != [2]uint16{30, 100} {
		t.Fatalf("exec request %+v", got)
	}
	f.mu.Lock()
	f.state = client.ExecProcess{ID: "proc1", Pid: 9, Status: client.StatusStopped, ExitCode: 5}
	f.mu.Unlock()
	if got := execInspect(t, srv.URL, id); got.Running || got.ExitCode == nil || *got.ExitCode != 5 {
		t.Fatalf("inspect of a detached exec that ended: %+v", got)
	}
	resp, err = http.Post(srv.URL+"/exec/"+id+"/resize?h=10&w=20", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || f.resized[0] != "proc1 10x20" {
		t.Fatalf("exec resize: %d %q", resp.StatusCode, f.resized)
	}

	for _, tc := range []struct {
		req    container.ExecCreateRequest
		status int
		msg    string
	}{
		{container.ExecCreateRequest{}, 400, "No exec command specified"},
		{container.ExecCreateRequest{Cmd: []string{"sh"}, Privileged: true}, 501, "privileged"},
		{container.ExecCreateRequest{Cmd: []string{"sh"}, DetachKeys: "ctrl-"}, 400, "Invalid detach keys"},
		{container.ExecCreateRequest{Cmd: []string{"sh"}, ConsoleSize: &[2]uint{1 << 20, 1}}, 400, "ConsoleSize"},
	} {
		if _, status, body := execCreate(t, srv.URL, tc.req); status != tc.status || !strings.Contains(body, tc.msg) {
			t.Errorf("create %+v: %d %s, want %d %q", tc.req, status, body, tc.status, tc.msg)
		}
	}
	f.mu.Lock()
	f.c.State = supervisor.StateStopped
	f.mu.Unlock()
	if _, status, body := execCreate(t, srv.URL, container.ExecCreateRequest{Cmd: []string{"sh"}}); status != 409 || !strings.Contains(body, "is not running") {
		t.Errorf("create in a stopped container: %d %s", status, body)
	}
	// The container goes: so do its execs.
	f.mu.Lock()
	f.c = nil
	f.mu.Unlock()
	resp, err = http.Get(srv.URL + "/exec/" + id + "/json")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("inspect of an exec of a removed container: %d", resp.StatusCode)
	}
}

// TestExecStartFailed: a command that cannot run is told on the stream,
// and its exit code is 127 or 126.
func TestExecStartFailed(t *testing.T) {
	f := newStreamsFake(false, supervisor.StateRunning)
	f.execErr = fmt.Errorf("exec: \"nope\": executable file not found in $PATH: %w", errdefs.ErrInvalidArgument)
	srv := streamsServer(t, f)
	id, _, _ := execCreate(t, srv.URL, container.ExecCreateRequest{Cmd: []string{"nope"}, AttachStdout: true, AttachStderr: true})
	_, resp, br := hijacked(t, srv, "POST", "/exec/"+id+"/start", `{}`)
	if resp.StatusCode != 101 {
		t.Fatalf("start: %s", resp.Status)
	}
	var out, errb bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &errb, br); err != nil || !strings.Contains(errb.String(), "executable file not found") {
		t.Fatalf("stream: %q %q %v", out.String(), errb.String(), err)
	}
	if got := execInspect(t, srv.URL, id); got.Running || got.ExitCode == nil || *got.ExitCode != 127 {
		t.Fatalf("inspect: %+v", got)
	}
}
