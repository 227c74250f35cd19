package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"

	"github.com/raind/condenser/internal/testutil"
	"github.com/raind/condenser/rest/api"
)

// The command line against a fake daemon: what condenserctl parses, sends
// and prints, without root or a runtime.

// fakeDaemon answers the requests a test scripts and records them.
type fakeDaemon struct {
	sock string
	mu   sync.Mutex
	reqs []string          // "METHOD /path?query"
	body map[string][]byte // by "METHOD /path"
	// answer, by "METHOD /path": a status and a body; a missing entry is a
	// success envelope without data.
	answer map[string]struct {
		status int
		body   string
	}
	// upgrade, by "METHOD /path": a WebSocket session the request is
	// accepted into (stdio_test.go).
	upgrade map[string]func(*websocket.Conn)
}

func startFake(t *testing.T) *fakeDaemon {
	t.Helper()
	dir, err := os.MkdirTemp("", "cc") // short: a unix socket path is limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &fakeDaemon{sock: filepath.Join(dir, "d.sock"), body: map[string][]byte{}, answer: map[string]struct {
		status int
		body   string
	}{}, upgrade: map[string]func(*websocket.Conn){}}
	l, err := net.Listen("unix", f.sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		key := r.Method + " " + r.URL.Path
		f.mu.Lock()
		f.reqs = append(f.reqs, key+"?"+r.URL.RawQuery)
		f.body[key] = b
		a, ok := f.answer[key]
		session := f.upgrade[key]
		f.mu.Unlock()
		if session != nil && !ok {
			conn, err := websocket.Accept(w, r, nil)
			if err != nil {
				t.Errorf("%s: accept: %v", key, err)
				return
			}
			defer conn.CloseNow()
			session(conn)
			return
		}
		if !ok {
			a.status, a.body = 200, `{"status":"success","message":"ok"}`
		}
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return f
}

func (f *fakeDaemon) respond(key string, status int, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answer[key] = struct {
		status int
		body   string
	}{status, body}
}

func (f *fakeDaemon) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.reqs...)
}

// ctl runs the command line in-process against f (nil: no daemon).
func ctl(t *testing.T, f *fakeDaemon, args ...string) result {
	t.Helper()
	return ctlIn(t, f, strings.NewReader(""), args...)
}

// ctlIn is ctl with in as the standard input.
func ctlIn(t *testing.T, f *fakeDaemon, in io.Reader, args ...string) result {
	t.Helper()
	if f != nil {
		args = append([]string{"--host", "unix://" + f.sock}, args...)
	}
	var out, errOut bytes.Buffer
	code := run(args, in, &out, &errOut)
	return result{out.String(), errOut.String(), code}
}

func TestHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		// Every command's help lists its flags …
		{[]string{"container", "run", "-h"}, []string{"--memory", "--rm", "-d, --detach", "-e, --env", "-p, --publish", "[IP:]HOST:CONTAINER[/tcp|udp]",
			"--network string", `(default "raind0")`, "--restart", "IMAGE [COMMAND [ARG...]]", "--host",
			"-i, --interactive", "-t, --tty", "--detach-keys keys", "none when the input is not a terminal) (default ctrl-p,ctrl-q)"}},
		{[]string{"container", "exec", "-h"}, []string{"CONTAINER COMMAND [ARG...]", "-i, --interactive", "-t, --tty", "-d, --detach", "-e, --env", "-u, --user", "-w, --workdir", "--detach-keys"}},
		{[]string{"container", "attach", "-h"}, []string{"--no-stdin", "--detach-keys", "ctrl-p,ctrl-q"}},
		{[]string{"container", "start", "-h"}, []string{"-a, --attach", "-i, --interactive", "--detach-keys"}},
		{[]string{"container", "create", "--help"}, []string{"--memory", "--name", "--read-only", "-p, --publish", "--network"}},
		{[]string{"network", "create", "-h"}, []string{"create [flags] NETWORK", "--subnet", "--gateway", "reach each other by name"}},
		{[]string{"network", "ls", "-h"}, []string{"--format"}},
		{[]string{"network", "rm", "-h"}, []string{"rm NETWORK...", "remove"}},
		{[]string{"network", "--help"}, []string{"ls", "create", "rm", "inspect"}},
		{[]string{"container", "logs", "--help"}, []string{"-f, --follow", "--tail", "--timestamps", "--since"}},
		{[]string{"container", "stop", "-h"}, []string{"-t, --timeout"}},
		{[]string{"image", "pull", "-h"}, []string{"--platform"}},
		// … and a group's help lists its commands.
		{[]string{"container", "--help"}, []string{"run", "logs", "stats", "wait", "inspect", "exec", "attach"}},
		{[]string{"container", "-h"}, []string{"Available Commands"}},
		{[]string{"image", "--help"}, []string{"pull", "import", "inspect"}},
		{[]string{"help", "container"}, []string{"restart", "kill"}},
		{[]string{"--help"}, []string{"container", "image", "network", "info", "version", "completion", "--tls-cert"}},
		{[]string{"help"}, []string{"container", "image", "network"}},
	} {
		r := ctl(t, nil, tc.args...)
		if r.code != 0 || r.stderr != "" {
			t.Errorf("%q: exit %d, stderr %q", tc.args, r.code, r.stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("%q does not mention %q:\n%s", tc.args, w, r.stdout)
			}
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"container", "frobnicate"}, `unknown command "frobnicate" for "condenserctl container"`},
		{[]string{"contianer"}, `unknown command "contianer" for "condenserctl" (did you mean container?)`},
		{[]string{"container"}, "Available Commands"},
		{[]string{}, "Available Commands"},
		{[]string{"container", "logs"}, "container logs: one CONTAINER required"},
		{[]string{"container", "logs", "a", "b"}, "container logs: one CONTAINER required"},
		{[]string{"container", "rm"}, "container rm: CONTAINER required"},
		{[]string{"container", "run"}, "container run: IMAGE required"},
		{[]string{"container", "exec", "web"}, "container exec: CONTAINER and COMMAND required"},
		{[]string{"container", "attach"}, "container attach: one CONTAINER required"},
		{[]string{"container", "run", "--detach-keys", "ctrl-1", "busybox"}, `container run: invalid argument "ctrl-1" for "--detach-keys" flag: "ctrl-1" is not a key: want comma-separated ctrl-<a-z@[\]^_> or single characters`},
		{[]string{"container", "exec", "--detach-keys", "ctrl-p,,x", "web", "sh"}, `"" is not a key`},
		{[]string{"container", "start", "-a", "a", "b"}, "you cannot start and attach multiple containers at once"},
		{[]string{"container", "ls", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"container", "ls", "extra"}, "container ls takes no arguments"},
		{[]string{"network"}, "Available Commands"},
		{[]string{"network", "create"}, "network create: one NETWORK required (0 given)"},
		{[]string{"network", "create", "a", "b"}, "network create: one NETWORK required (2 given)"},
		{[]string{"network", "create", "--driver", "macvlan", "a"}, "unknown flag: --driver"},
		{[]string{"network", "rm"}, "network rm: NETWORK required"},
		{[]string{"network", "inspect"}, "network inspect: NETWORK required"},
		{[]string{"network", "ls", "x"}, "network ls takes no arguments"},
		{[]string{"network", "ls", "--format", "yaml"}, `--format "yaml": want table or json`},
		{[]string{"network", "connect"}, `unknown command "connect" for "condenserctl network"`},
		{[]string{"completion", "tcsh"}, `unknown command "tcsh"`},
		{[]string{"--host", "tcp://1.2.3.4:5", "info"}, "want unix:///path/to.sock"},
	} {
		r := ctl(t, nil, tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, r.code, r.stdout, r.stderr, tc.want)
		}
	}
}

func TestFlagsAfterArguments(t *testing.T) {
	f := startFake(t)
	f.respond("GET /v1/containers/web/logs", 200, "line\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"container", "logs", "web", "--timestamps", "--tail", "5"}, "GET /v1/containers/web/logs?follow=false&tail=5&timestamps=true"},
		{[]string{"container", "logs", "-f", "web", "-n", "2"}, "GET /v1/containers/web/logs?follow=true&tail=2&timestamps=false"},
		{[]string{"container", "rm", "web", "-f"}, "DELETE /v1/containers/web/actions/delete?force=true"},
		{[]string{"container", "stop", "web", "-t", "3"}, "POST /v1/containers/web/actions/stop?timeout=3"},
		{[]string{"container", "kill", "web", "--signal", "TERM"}, "POST /v1/containers/web/actions/kill?signal=TERM"},
		{[]string{"image", "rm", "busybox", "--force"}, "DELETE /v1/images?force=true"},
	} {
		before := len(f.requests())
		if r := ctl(t, f, tc.args...); r.code != 0 {
			t.Errorf("%q: exit %d: %s", tc.args, r.code, r.stderr)
			continue
		}
		if got := f.requests()[before:]; len(got) != 1 || got[0] != tc.want {
			t.Errorf("%q sent %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestCommandFlagsAfterImage(t *testing.T) {
	f := startFake(t)
	f.respond("POST /v1/containers", 200, `{"status":"success","message":"created","data":{"id":"abc"}}`)
	r := ctl(t, f, "container", "create", "--name", "c1", "--environment", "A=1", "-e", "B=2", "-m", "64m",
		"busybox", "ls", "-l", "--name", "x", "-h")
	if r.code != 0 || r.stdout != "abc\n" {
		t.Fatalf("create: %+v", r)
	}
	var req api.CreateContainerRequest
	if err := json.Unmarshal(f.body["POST /v1/containers"], &req); err != nil {
		t.Fatal(err)
	}
	if req.Name != "c1" || req.Image != "busybox" || strings.Join(req.Command, " ") != "ls -l --name x -h" ||
		strings.Join(req.Env, " ") != "A=1 B=2" || req.Resources == nil || req.Resources.Memory != 64<<20 {
		t.Errorf("request: %+v", req)
	}
}

func TestMemoryFlag(t *testing.T) {
	for in, want := range map[string]int64{
		"": 0, "0": 0, "512": 512, "512b": 512, "64m": 64 << 20, "64M": 64 << 20, "64MiB": 64 << 20, "64mb": 64 << 20,
		"1g": 1 << 30, "1.5G": 3 << 29, "2kb": 2048, "1t": 1 << 40, "64 m": 64 << 20,
	} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	// Docker refuses these too: -1 and "unlimited" are --memory-swap's
	// forms, not --memory's, and 0 is already no limit.
	for _, in := range []string{"inf", "Inf", "NaN", "unlimited", "-1", "-1m", "x", "1q", "1e9", "m", "99999999p"} {
		if _, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q): no error", in)
		}
	}
	r := ctl(t, nil, "container", "run", "--memory", "inf", "busybox")
	if r.code != 2 || !strings.Contains(r.stderr, `"inf" is not a size`) || !strings.Contains(r.stderr, "64m, 1.5g") {
		t.Errorf("--memory inf: %+v", r)
	}
}

func TestRunExecFailure(t *testing.T) {
	for _, tc := range []struct {
		at, msg string
		code    int
	}{
		{"POST /v1/containers/abc/actions/start", `exec: "/nonexistent": stat /nonexistent: no such file or directory`, 127},
		{"POST /v1/containers/abc/actions/start", `exec: "nosuch": executable file not found in $PATH`, 127},
		{"POST /v1/containers", `runc create failed: unable to start container process: exec: "/nonexistent": stat /nonexistent: no such file or directory`, 127},
		{"POST /v1/containers/abc/actions/start", "executable file `nosuch` not found in $PATH: No such file or directory", 127},
		{"POST /v1/containers/abc/actions/start", `exec: "/etc": is a directory`, 126},
		{"POST /v1/containers/abc/actions/start", `exec: "/etc/passwd": permission denied`, 126},
		{"POST /v1/containers/abc/actions/start", `mount /nosuch: no such file or directory`, 1},
		{"POST /v1/containers", `host port 8080/tcp is already in use`, 1},
	} {
		f := startFake(t)
		f.respond("POST /v1/containers", 200, `{"status":"success","message":"created","data":{"id":"abc"}}`)
		// Attached before the start, which fails: the client hangs up.
		f.upgrade["GET /v1/containers/abc/stdio"] = func(conn *websocket.Conn) { conn.Read(context.Background()) }
		b, _ := json.Marshal(api.Envelope{Status: api.StatusFail, Message: tc.msg})
		f.respond(tc.at, 400, string(b))
		r := ctl(t, f, "container", "run", "--rm", "busybox", "/nonexistent")
		if r.code != tc.code || r.stderr != "condenserctl: "+tc.msg+"\n" {
			t.Errorf("%s answering %q: exit %d, stderr %q; want %d", tc.at, tc.msg, r.code, r.stderr, tc.code)
		}
		if tc.at != "POST /v1/containers" {
			if reqs := f.requests(); reqs[len(reqs)-1] != "DELETE /v1/containers/abc/actions/delete?force=true" {
				t.Errorf("--rm: no delete after a failed start: %q", reqs)
			}
		}
	}
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		r := ctl(t, nil, "completion", shell)
		if r.code != 0 || !strings.Contains(r.stdout, "condenserctl") || strings.Contains(r.stdout, "raind") {
			t.Errorf("%s: exit %d, stderr %q", shell, r.code, r.stderr)
		}
		if shell == "bash" {
			if b, err := exec.Command("bash", "-n", "-c", r.stdout).CombinedOutput(); err != nil {
				t.Errorf("bash -n: %v: %s", err, b)
			}
		}
	}

	// What the scripts ask: commands, flags and the daemon's names.
	f := startFake(t)
	f.respond("GET /v1/containers", 200, `{"status":"success","message":"","data":[{"containerId":"a","name":"web"},{"containerId":"b","name":"db"}]}`)
	f.respond("GET /v1/images", 200, `{"status":"success","message":"","data":[{"repository":"docker.io/library/busybox","reference":"latest"}]}`)
	f.respond("GET /v1/networks", 200, `{"status":"success","message":"","data":[{"name":"raind0","builtIn":true},{"name":"host","builtIn":true},`+
		`{"name":"none","builtIn":true},{"name":"backend"}]}`)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"__complete", "container", "r"}, []string{"restart", "rm", "run"}},
		{[]string{"__complete", "container", "a"}, []string{"attach"}},
		{[]string{"__complete", "container", "exec", ""}, []string{"web", "db"}},
		{[]string{"__complete", "container", "exec", "--d"}, []string{"--detach", "--detach-keys"}},
		{[]string{"__complete", "container", "logs", ""}, []string{"web", "db"}},
		{[]string{"__complete", "container", "rm", "web", ""}, []string{"db"}},
		{[]string{"__complete", "container", "run", ""}, []string{"busybox:latest"}},
		{[]string{"__complete", "container", "ls", "--format", ""}, []string{"table", "json"}},
		{[]string{"__complete", "container", "run", "--restart", ""}, []string{"no", "on-failure", "always", "unless-stopped"}},
		{[]string{"__complete", "container", "logs", "--t"}, []string{"--tls-ca", "--tls-cert", "--tls-key", "--tail", "--timestamps"}},
		{[]string{"__complete", "network", ""}, []string{"create", "inspect", "ls", "rm"}},
		{[]string{"__complete", "network", "inspect", ""}, []string{"raind0", "host", "none", "backend"}},
		{[]string{"__complete", "network", "inspect", "host", ""}, []string{"raind0", "none", "backend"}},
		{[]string{"__complete", "network", "rm", ""}, []string{"backend"}}, // the built-in ones cannot go
		{[]string{"__complete", "container", "run", "--network", ""}, []string{"raind0", "host", "none", "backend"}},
		{[]string{"__complete", "container", "create", "--net", ""}, []string{"raind0", "host", "none", "backend"}},
	} {
		r := ctl(t, f, tc.args...)
		got := strings.Split(strings.TrimSpace(r.stdout), "\n")
		got = got[:len(got)-1] // the directive
		for i := range got {
			got[i], _, _ = strings.Cut(got[i], "\t") // the description
		}
		if r.code != 0 || strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%q: exit %d, completions %q, want %q (stderr %q)", tc.args, r.code, got, tc.want, r.stderr)
		}
	}
}

// TestBashCompletion loads the bash script into bash and completes a line
// through the built binary, as a shell would.
func TestBashCompletion(t *testing.T) {
	bash := testutil.RequireBinary(t, "bash")
	dir := testutil.BuildBinaries(t, ".")
	// The script needs bash-completion's _get_comp_words_by_ref: the
	// package's when installed, else a minimal one.
	script := `if [ -r /usr/share/bash-completion/bash_completion ]; then
  source /usr/share/bash-completion/bash_completion
else
  _get_comp_words_by_ref() { cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}; words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD; }
fi
source <(condenserctl completion bash)
COMP_LINE="condenserctl container ru"; COMP_POINT=${#COMP_LINE}
COMP_WORDS=(condenserctl container ru); COMP_CWORD=2
__start_condenserctl condenserctl ru condenserctl
printf '%s\n' "${COMPREPLY[@]}"`
	cmd := exec.Command(bash, "-c", script)
	cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
	out, err := cmd.Output() // compopt complains outside a real completion
	if err != nil || strings.TrimSpace(string(out)) != "run" {
		t.Errorf("bash completion of %q: %v: %q", "container ru", err, out)
	}
}

func TestExecExitCode(t *testing.T) {
	for msg, want := range map[string]int{
		`exec: "/nonexistent": stat /nonexistent: no such file or directory`: 127,
		`exec: "sh2": executable file not found in $PATH`:                    127,
		`exec: "/bin": is a directory`:                                       126,
		`exec: "/etc/hosts": permission denied`:                              126,
		`exec: "/x.bin": exec format error`:                                  126,
		"open executable: Permission denied":                                 126,
		`no such container: web`:                                             0,
		`bind mount source /nosuch: no such file or directory`:               0,
	} {
		if got := execExitCode(msg); got != want {
			t.Errorf("execExitCode(%q) = %d, want %d", msg, got, want)
		}
	}
}

func TestProgressDisplay(t *testing.T) {
	var out bytes.Buffer
	c := &cli{out: &out}
	plain := c.plainProgress()
	for _, p := range []api.PullProgress{
		{Layer: "sha256:aaaaaaaaaaaaaaaa", Status: "downloading", Current: 1, Total: 4},
		{Layer: "sha256:aaaaaaaaaaaaaaaa", Status: "downloading", Current: 2, Total: 4},
		{Layer: "sha256:bbbbbbbbbbbbbbbb", Status: "exists"},
		{Layer: "sha256:aaaaaaaaaaaaaaaa", Status: "done", Current: 4, Total: 4},
	} {
		plain(p)
	}
	if want := "aaaaaaaaaaaa: downloading\nbbbbbbbbbbbb: exists\naaaaaaaaaaaa: done\n"; out.String() != want {
		t.Errorf("plain:\n%s", out.String())
	}
	out.Reset()
	bars := c.barProgress()
	bars(api.PullProgress{Layer: "sha256:aaaaaaaaaaaaaaaa", Status: "downloading", Current: 2, Total: 4})
	bars(api.PullProgress{Layer: "sha256:bbbbbbbbbbbbbbbb", Status: "exists"})
	s := out.String()
	if !strings.Contains(s, "[===============>               ] 2B/4B") || !strings.Contains(s, "\x1b[1A") || strings.Count(s, "\n") != 3 {
		t.Errorf("bars: %q", s)
	}
}

func TestHostFromEnvironment(t *testing.T) {
	f := startFake(t)
	f.respond("GET /v1/info", 200, `{"status":"success","message":"","data":{"cgroupMode":"v2"}}`)
	for _, k := range []string{"CONDENSER_HOST", "RAIND_HOST"} {
		t.Run(k, func(t *testing.T) {
			t.Setenv("CONDENSER_HOST", "")
			t.Setenv("RAIND_HOST", "")
			t.Setenv(k, "unix://"+f.sock)
			if r := ctl(t, nil, "info"); r.code != 0 || !strings.Contains(r.stdout, "Cgroup mode:    v2") {
				t.Errorf("info with %s: %+v", k, r)
			}
		})
	}
}

// -p and --network go to the daemon as the contract's port and network;
// the network defaults to raind0, as with the Raind CLI.
func TestPublishAndNetwork(t *testing.T) {
	f := startFake(t)
	f.respond("POST /v1/containers", 200, `{"status":"success","message":"created","data":{"id":"abc"}}`)
	for _, tc := range []struct {
		args    []string
		port    []string
		network string
	}{
		{[]string{"busybox"}, nil, "raind0"},
		{[]string{"-p", "18080:80", "--publish", "127.0.0.1:5353:53/udp", "-p", "8443:443:tcp", "busybox", "httpd", "-p", "9"},
			[]string{"18080:80", "127.0.0.1:5353:53/udp", "8443:443:tcp"}, "raind0"},
		{[]string{"--network", "backend", "busybox"}, nil, "backend"},
		{[]string{"--net=host", "busybox"}, nil, "host"},
		{[]string{"--network", "none", "-p", "80:80", "busybox"}, []string{"80:80"}, "none"}, // the daemon judges
	} {
		r := ctl(t, f, append([]string{"container", "create"}, tc.args...)...)
		if r.code != 0 || r.stdout != "abc\n" {
			t.Fatalf("create %q: %+v", tc.args, r)
		}
		var req api.CreateContainerRequest
		if err := json.Unmarshal(f.body["POST /v1/containers"], &req); err != nil {
			t.Fatal(err)
		}
		if strings.Join(req.Port, " ") != strings.Join(tc.port, " ") || req.Network != tc.network {
			t.Errorf("create %q sent port %q network %q; want %q %q", tc.args, req.Port, req.Network, tc.port, tc.network)
		}
	}
	// The daemon's refusal is the user's message, exit 1.
	b, _ := json.Marshal(api.Envelope{Status: api.StatusFail, Message: "publish 18080:80: host port 18080/tcp is already in use by container web"})
	f.respond("POST /v1/containers", 409, string(b))
	if r := ctl(t, f, "container", "create", "-p", "18080:80", "busybox"); r.code != 1 ||
		r.stderr != "condenserctl: publish 18080:80: host port 18080/tcp is already in use by container web\n" {
		t.Errorf("taken port: %+v", r)
	}
}

// container ls shows the published ports as docker ps does.
func TestContainerLsPorts(t *testing.T) {
	f := startFake(t)
	f.respond("GET /v1/containers", 200, `{"status":"success","message":"","data":[
		{"containerId":"`+strings.Repeat("a", 64)+`","name":"web","state":"running","imageRepository":"docker.io/library/busybox","imageReference":"latest",
		 "address":"10.166.0.1","forwards":[{"source":18080,"destination":80,"protocol":"tcp"},{"source":5353,"destination":53,"protocol":"udp","hostIp":"127.0.0.1"},
		 {"source":9090,"destination":90,"protocol":"tcp","hostIp":"::1"}]},
		{"containerId":"`+strings.Repeat("b", 64)+`","name":"db","state":"stopped","imageRepository":"docker.io/library/busybox","imageReference":"latest","forwards":[]}]}`)
	r := ctl(t, f, "container", "ls")
	if r.code != 0 {
		t.Fatalf("ls: %+v", r)
	}
	rows := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(rows) != 3 || !strings.HasPrefix(rows[0], "CONTAINER ID") || !strings.HasSuffix(rows[0], "PORTS") {
		t.Fatalf("ls:\n%s", r.stdout)
	}
	if want := "0.0.0.0:18080->80/tcp, 127.0.0.1:5353->53/udp, [::1]:9090->90/tcp"; !strings.HasPrefix(rows[1], "aaaaaaaaaaaa ") || !strings.HasSuffix(rows[1], want) {
		t.Errorf("ls row %q does not end with %q", rows[1], want)
	}
	if !strings.HasPrefix(rows[2], "bbbbbbbbbbbb ") || !strings.Contains(rows[2], "stopped") {
		t.Errorf("ls row %q", rows[2])
	}
	// PORTS begins where the header says.
	if col := strings.Index(rows[0], "PORTS"); col < 0 || !strings.HasPrefix(rows[1][col:], "0.0.0.0:18080") {
		t.Errorf("PORTS column misaligned:\n%s", r.stdout)
	}
}

func TestNetworkCommands(t *testing.T) {
	f := startFake(t)
	f.respond("GET /v1/networks", 200, `{"status":"success","message":"2 networks","data":[
		{"name":"raind0","driver":"bridge","bridge":"raind0","subnet":"10.166.0.0/24","gateway":"10.166.0.254","builtIn":true,"containers":["a","b"]},
		{"name":"host","driver":"host","bridge":"","subnet":"","gateway":"","builtIn":true,"containers":[]}]}`)
	const backend = `{"name":"backend","driver":"bridge","bridge":"rd-backend","subnet":"10.167.0.0/24","gateway":"10.167.0.1","builtIn":false,"containers":[]}`
	f.respond("POST /v1/networks", 200, `{"status":"success","message":"network backend created","data":`+backend+`}`)
	f.respond("GET /v1/networks/backend", 200, `{"status":"success","message":"network backend","data":`+backend+`}`)
	f.respond("DELETE /v1/networks/raind0", 400, `{"status":"fail","message":"network raind0 is built in: it cannot be removed"}`)
	f.respond("DELETE /v1/networks/busy", 409, `{"status":"fail","message":"network busy is in use by container web"}`)

	r := ctl(t, f, "network", "ls")
	want := "NAME     DRIVER   SUBNET          GATEWAY        CONTAINERS\n" +
		"raind0   bridge   10.166.0.0/24   10.166.0.254   2\n" +
		"host     host     -               -              0\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("network ls: exit %d, stderr %q\n%s\nwant\n%s", r.code, r.stderr, r.stdout, want)
	}
	r = ctl(t, f, "network", "list", "--format", "json")
	var list []api.NetworkSummary
	if err := json.Unmarshal([]byte(r.stdout), &list); r.code != 0 || err != nil || len(list) != 2 || list[0].Subnet != "10.166.0.0/24" {
		t.Errorf("network ls --format json: %v %+v", err, r)
	}

	r = ctl(t, f, "network", "create", "--subnet", "10.167.0.0/24", "backend", "--gateway", "10.167.0.1")
	if r.code != 0 || r.stdout != "backend\n" {
		t.Errorf("network create: %+v", r)
	}
	var req api.CreateNetworkRequest
	dec := json.NewDecoder(bytes.NewReader(f.body["POST /v1/networks"]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req != (api.CreateNetworkRequest{Name: "backend", Subnet: "10.167.0.0/24", Gateway: "10.167.0.1"}) {
		t.Errorf("network create sent %s (%v)", f.body["POST /v1/networks"], err)
	}
	if r := ctl(t, f, "network", "create", "front"); r.code != 0 || string(f.body["POST /v1/networks"]) != `{"name":"front"}` {
		t.Errorf("network create without a subnet sent %s: %+v", f.body["POST /v1/networks"], r)
	}

	r = ctl(t, f, "network", "inspect", "backend")
	var n api.NetworkSummary
	if err := json.Unmarshal([]byte(r.stdout), &n); r.code != 0 || err != nil || n.Name != "backend" || n.Gateway != "10.167.0.1" ||
		!strings.Contains(r.stdout, "\n  \"subnet\": \"10.167.0.0/24\"") {
		t.Errorf("network inspect: %v %+v", err, r)
	}

	// rm goes on past a failure, reports each and exits 1.
	before := len(f.requests())
	r = ctl(t, f, "network", "rm", "raind0", "backend", "busy")
	if r.code != 1 || r.stdout != "backend\n" ||
		r.stderr != "condenserctl: network raind0 is built in: it cannot be removed\ncondenserctl: network busy is in use by container web\n" {
		t.Errorf("network rm: %+v", r)
	}
	if got, want := f.requests()[before:], []string{"DELETE /v1/networks/raind0?", "DELETE /v1/networks/backend?", "DELETE /v1/networks/busy?"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("network rm sent %q, want %q", got, want)
	}
}
