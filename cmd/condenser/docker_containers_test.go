package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The container lifecycle of the Docker API driven by the real docker CLI:
// create, start, ps, inspect, top, stats, rename, kill, restart, stop,
// wait, rm, prune, and a published port served by busybox httpd.

// dockerHTTP is a client of the daemon's Docker API socket, for what the
// CLI does not show (the order of a wait's headers and the start).
func dockerHTTP(d *daemonProc) *http.Client {
	sock := filepath.Join(d.state, "docker.sock")
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", sock)
	}}}
}

// pullBusybox pulls busybox through the Raind API (the Docker API's image
// create is another part's).
func pullBusybox(t *testing.T, d *daemonProc) {
	t.Helper()
	if code := d.do("POST", "/v1/images", map[string]string{"image": "busybox"}, nil); code >= 300 {
		t.Fatalf("pull busybox: HTTP %d", code)
	}
}

func TestDockerContainerLifecycle(t *testing.T) {
	d, docker := dockerDaemon(t)
	pullBusybox(t, d)

	id := docker.ok("create", "--name", "c1", "--label", "suite=lifecycle", "busybox", "sleep", "300")
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(id) {
		t.Fatalf("create printed %q, want an id", id)
	}
	// The same container through the Raind API.
	var list struct{ Data []map[string]any }
	d.do("GET", "/v1/containers?all=1", nil, &list)
	if len(list.Data) != 1 || list.Data[0]["containerId"] != id {
		t.Fatalf("Raind API list: %v", list.Data)
	}
	if got := docker.ok("ps", "-a", "--filter", "name=c1", "--format", "{{.Names}} {{.Status}}"); got != "c1 Created" {
		t.Fatalf("ps -a of a created container: %q", got)
	}
	if got := docker.ok("ps", "-q"); got != "" {
		t.Fatalf("ps lists a created container: %q", got)
	}
	docker.ok("start", "c1")
	docker.ok("start", "c1") // 304: already running
	if got := docker.ok("ps", "--filter", "label=suite=lifecycle", "--format", "{{.ID}} {{.Names}} {{.Image}} {{.Command}}"); got != id[:12]+" c1 busybox \"sleep 300\"" {
		t.Fatalf("ps: %q", got)
	}
	if !strings.HasPrefix(docker.ok("ps", "--format", "{{.Status}}"), "Up ") {
		t.Fatalf("status of a running container: %q", docker.ok("ps", "--format", "{{.Status}}"))
	}
	got := docker.ok("inspect", "--format", "{{.State.Status}} {{.State.Running}} {{.NetworkSettings.IPAddress}} {{.Config.Image}} {{.Name}} {{.State.Pid}}", "c1")
	f := strings.Fields(got)
	if len(f) != 6 || f[0] != "running" || f[1] != "true" || net.ParseIP(f[2]) == nil || f[3] != "busybox" || f[4] != "/c1" || f[5] == "0" {
		t.Fatalf("inspect: %q", got)
	}
	if got := docker.ok("inspect", "--format", "{{.NetworkSettings.Networks.bridge.IPAddress}}", "c1"); got != f[2] {
		t.Fatalf("inspect bridge IP %q, want %q", got, f[2])
	}
	var insp []map[string]any
	if err := json.Unmarshal([]byte(docker.ok("inspect", "c1")), &insp); err != nil || len(insp) != 1 || insp[0]["Id"] != id ||
		!strings.HasPrefix(fmt.Sprint(insp[0]["Image"]), "sha256:") || insp[0]["Path"] != "sleep" {
		t.Fatalf("inspect JSON: %v %v", insp, err)
	}

	top := docker.ok("top", "c1")
	if !strings.Contains(top, "PID") || !strings.Contains(top, "sleep 300") || strings.Count(top, "\n") != 1 {
		t.Fatalf("top: %q", top)
	}
	if top := docker.ok("top", "c1", "-o", "pid,args"); !strings.Contains(top, "sleep 300") {
		t.Fatalf("top -o pid,args: %q", top)
	}
	stats := docker.ok("stats", "--no-stream", "--format", "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.PIDs}}", "c1")
	t.Logf("docker stats --no-stream: %s", stats)
	t.Logf("docker top:\n%s", top)
	sf := strings.Split(stats, "|")
	if len(sf) != 4 || sf[0] != "c1" || !strings.HasSuffix(sf[1], "%") || sf[3] != "1" || !strings.Contains(sf[2], " / ") || strings.HasPrefix(sf[2], "0B /") {
		t.Fatalf("stats --no-stream: %q", stats)
	}

	// A stream: a sample a second, the second with the first's CPU time.
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	sreq, _ := http.NewRequestWithContext(sctx, "GET", "http://docker/containers/c1/stats", nil)
	sresp, err := dockerHTTP(d).Do(sreq)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(sresp.Body)
	var samples [2]struct {
		Read        time.Time `json:"read"`
		PreCPUStats struct {
			CPUUsage struct {
				TotalUsage uint64 `json:"total_usage"`
			} `json:"cpu_usage"`
			SystemUsage uint64 `json:"system_cpu_usage"`
		} `json:"precpu_stats"`
	}
	for i := range samples {
		if err := dec.Decode(&samples[i]); err != nil {
			t.Fatalf("stats stream, sample %d: %v", i, err)
		}
	}
	sresp.Body.Close()
	if samples[0].PreCPUStats.SystemUsage != 0 || samples[1].PreCPUStats.SystemUsage == 0 || !samples[1].Read.After(samples[0].Read) {
		t.Fatalf("stats stream: %+v", samples)
	}

	docker.ok("rename", "c1", "c2")
	if got := docker.ok("inspect", "--format", "{{.Name}}", "c2"); got != "/c2" {
		t.Fatalf("renamed: %q", got)
	}
	if _, _, code := docker.run("", "inspect", "c1"); code == 0 {
		t.Fatal("the old name still answers")
	}
	docker.ok("create", "--name", "other", "busybox", "true")
	if _, errs, code := docker.run("", "rename", "other", "c2"); code == 0 || !strings.Contains(errs, `Conflict. The container name "/c2" is already in use`) {
		t.Fatalf("rename onto a used name: exit %d: %s", code, errs)
	}

	if _, errs, code := docker.run("", "rm", "c2"); code == 0 || !strings.Contains(errs, "container is running: stop the container before removing or force remove") {
		t.Fatalf("rm of a running container: exit %d: %s", code, errs)
	}
	docker.ok("kill", "c2")
	if got := docker.ok("wait", "c2"); got != "137" {
		t.Fatalf("wait after kill: %q", got)
	}
	if _, errs, code := docker.run("", "kill", "c2"); code == 0 || !strings.Contains(errs, "is not running") {
		t.Fatalf("kill of a stopped container: exit %d: %s", code, errs)
	}
	if got := docker.ok("ps", "-a", "--filter", "status=exited", "--format", "{{.Names}} {{.Status}}"); !regexp.MustCompile(`^c2 Exited \(137\) (Less than a second|\d+ seconds?) ago$`).MatchString(got) {
		t.Fatalf("ps --filter status=exited: %q", got)
	}
	if got := docker.ok("ps", "--filter", "exited=137", "--format", "{{.Names}}"); got != "c2" {
		t.Fatalf("ps --filter exited=137: %q", got)
	}

	docker.ok("restart", "-t", "1", "c2")
	if got := docker.ok("inspect", "--format", "{{.State.Status}} {{.RestartCount}}", "c2"); got != "running 0" {
		t.Fatalf("after restart: %q", got)
	}
	docker.ok("stop", "-t", "1", "c2")
	docker.ok("stop", "c2") // 304: not running
	if got := docker.ok("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", "c2"); got != "exited 137" && got != "exited 143" {
		t.Fatalf("after stop: %q", got)
	}

	pruned := docker.ok("container", "prune", "-f")
	if !strings.Contains(pruned, id) {
		t.Fatalf("prune did not remove c2 (%s): %q", id, pruned)
	}
	if got := docker.ok("ps", "-aq"); got != "" {
		t.Fatalf("after prune: %q", got)
	}

	docker.ok("run", "-d", "--name", "gone", "busybox", "sleep", "300")
	docker.ok("rm", "-f", "gone")
	if _, errs, code := docker.run("", "inspect", "gone"); code == 0 || !strings.Contains(strings.ToLower(errs), "no such") {
		t.Fatalf("inspect after rm -f: exit %d: %s", code, errs)
	}
}

// A wait answers its headers at once (the CLI sends the start only then),
// and next-exit on a created container waits for its start and its exit.
func TestDockerContainerWait(t *testing.T) {
	d, docker := dockerDaemon(t)
	pullBusybox(t, d)
	cl := dockerHTTP(d)

	docker.ok("run", "-d", "--name", "w3", "busybox", "sh", "-c", "sleep 1; exit 3")
	if got := docker.ok("wait", "w3"); got != "3" {
		t.Fatalf("docker wait: %q, want 3", got)
	}

	docker.ok("create", "--name", "nx", "busybox", "sh", "-c", "exit 5")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://docker/v1.50/containers/nx/wait?condition=next-exit", nil)
	resp, err := cl.Do(req) // returns with the headers: the container is not started yet
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("wait: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if got := docker.ok("inspect", "--format", "{{.State.Status}}", "nx"); got != "created" {
		t.Fatalf("before start: %q", got)
	}
	docker.ok("start", "nx")
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(body)) != `{"Error":null,"StatusCode":5}` {
		t.Fatalf("wait body: %s", body)
	}

	// removed: ends when an auto-remove container is gone.
	docker.ok("create", "--rm", "--name", "rm1", "busybox", "sh", "-c", "exit 2")
	req, _ = http.NewRequestWithContext(ctx, "POST", "http://docker/containers/rm1/wait?condition=removed", nil)
	resp2, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	docker.ok("start", "rm1")
	var wr struct{ StatusCode int }
	if err := json.NewDecoder(resp2.Body).Decode(&wr); err != nil || wr.StatusCode != 2 {
		t.Fatalf("wait removed: %+v %v", wr, err)
	}
	if _, _, code := docker.run("", "inspect", "rm1"); code == 0 {
		t.Fatal("auto-removed container still there")
	}
	if got := docker.ok("ps", "-a", "--filter", "name=rm1", "-q"); got != "" {
		t.Fatalf("auto-removed container listed: %q", got)
	}
}

// Errors clients act on: a missing image (the CLI pulls on it), unknown
// containers, unsupported options, volumes.
func TestDockerContainerErrors(t *testing.T) {
	d, docker := dockerDaemon(t)
	pullBusybox(t, d)
	cl := dockerHTTP(d)

	resp, err := cl.Post("http://docker/v1.50/containers/create", "application/json", strings.NewReader(`{"Image":"nosuchimage"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || strings.TrimSpace(string(b)) != `{"message":"No such image: nosuchimage:latest"}` {
		t.Fatalf("create from a missing image: %d %s", resp.StatusCode, b)
	}
	if _, errs, code := docker.run("", "start", "nosuch"); code == 0 || !strings.Contains(errs, "No such container: nosuch") {
		t.Fatalf("start nosuch: exit %d: %s", code, errs)
	}
	for _, args := range [][]string{
		{"--privileged"}, {"--cap-add", "NET_ADMIN"}, {"--shm-size", "128m"}, {"--dns", "1.1.1.1"}, {"-P"}, {"-p", "80"},
		{"--tmpfs", "/run"}, {"--log-driver", "syslog"},
	} {
		out, errs, code := docker.run("", append(append([]string{"create"}, args...), "busybox")...)
		if code == 0 || !strings.Contains(errs, "not supported") {
			t.Errorf("create %v: exit %d: %s %s", args, code, out, errs)
		}
	}
	if got := docker.ok("ps", "-aq"); got != "" {
		t.Fatalf("refused creates left containers: %q", got)
	}

	// Named volumes: usable when the daemon has them, else refused, never
	// ignored.
	out, errs, code := docker.run("", "run", "-d", "--name", "v", "-v", "dockervol1:/data", "busybox", "sleep", "300")
	switch {
	case code != 0 && strings.Contains(errs, "named volumes are not available"):
	case code == 0:
		if got := docker.ok("inspect", "--format", "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}}{{end}}", "v"); got != "volume dockervol1 /data" {
			t.Fatalf("mounts of a named volume: %q", got)
		}
	default:
		t.Fatalf("run -v NAME:/data: exit %d: %s %s", code, out, errs)
	}
}

// docker run -d -p HOST:80 busybox httpd, then curl.
func TestDockerContainerPublish(t *testing.T) {
	d, docker := dockerDaemon(t)
	pullBusybox(t, d)
	www := t.TempDir()
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte("hello from condenser\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t, "tcp")
	docker.ok("run", "-d", "--name", "web", "-p", fmt.Sprintf("127.0.0.1:%d:80", port), "-v", www+":/www:ro",
		"busybox", "busybox", "httpd", "-f", "-p", "80", "-h", "/www")
	if got := docker.ok("ps", "--format", "{{.Ports}}"); got != fmt.Sprintf("127.0.0.1:%d->80/tcp", port) {
		t.Fatalf("ps ports: %q", got)
	}
	if got := docker.ok("inspect", "--format", `{{(index (index .NetworkSettings.Ports "80/tcp") 0).HostPort}} {{range .Mounts}}{{.Source}}:{{.Destination}}:{{.RW}}{{end}}`, "web"); got != fmt.Sprintf("%d %s:/www:false", port, www) {
		t.Fatalf("inspect ports and mounts: %q", got)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != "hello from condenser\n" {
				t.Fatalf("GET %s: %d %q", url, resp.StatusCode, b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond) // httpd is starting
	}
	docker.ok("rm", "-f", "web")
}

// docker run without -d: create (a 404 on the missing image makes the CLI
// pull and retry), attach, wait, start; --rm waits for the removal.
func TestDockerContainerRun(t *testing.T) {
	_, docker := dockerDaemon(t)
	out, errs, code := docker.run("", "run", "--rm", "busybox", "echo", "hi")
	if code != 0 || out != "hi\n" || !strings.Contains(errs, "Unable to find image 'busybox:latest' locally") {
		t.Fatalf("run --rm of an image not pulled yet: exit %d: %q %q", code, out, errs)
	}
	if _, _, code := docker.run("", "run", "--rm", "busybox", "sh", "-c", "exit 3"); code != 3 {
		t.Fatalf("run --rm exit code: %d, want 3", code)
	}
	if got := docker.ok("ps", "-aq"); got != "" {
		t.Fatalf("--rm left containers: %q", got)
	}
	// A named volume keeps its data from one container to the next.
	docker.ok("run", "--rm", "-v", "keep:/data", "busybox", "sh", "-c", "echo kept > /data/f")
	if got := docker.ok("run", "--rm", "-v", "keep:/data:ro", "busybox", "cat", "/data/f"); got != "kept" {
		t.Fatalf("named volume content: %q", got)
	}
	if _, errs, code := docker.run("", "run", "--rm", "-v", "keep:/data:ro", "busybox", "sh", "-c", "echo x > /data/g"); code == 0 || !strings.Contains(errs, "Read-only file system") {
		t.Fatalf("write to a read-only volume: exit %d: %s", code, errs)
	}
	docker.ok("run", "--rm", "--mount", "type=volume,source=keep2,target=/d", "busybox", "true")
	// An anonymous volume (-v /dir) is a new volume.
	docker.ok("run", "-d", "--name", "anon", "-v", "/anon", "busybox", "sleep", "300")
	if got := docker.ok("inspect", "--format", "{{range .Mounts}}{{.Type}} {{len .Name}} {{.Destination}} {{.RW}}{{end}}", "anon"); got != "volume 64 /anon true" {
		t.Fatalf("anonymous volume: %q", got)
	}
	anon := docker.ok("inspect", "--format", "{{range .Mounts}}{{.Name}}{{end}}", "anon")
	docker.ok("rm", "-fv", "anon") // removes the anonymous volume, not the named ones
	if vols := docker.ok("volume", "ls", "-q"); strings.Contains(vols, anon) || !strings.Contains(vols, "keep2") {
		t.Fatalf("volumes after rm -v: %q (anonymous %s)", vols, anon)
	}
	docker.ok("volume", "inspect", "keep2")
}
