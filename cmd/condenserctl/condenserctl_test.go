package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raind/condenser/internal/testutil"
	"github.com/raind/condenser/rest/api"
)

// The end-to-end tests: a daemon started from its binary, and the
// condenserctl binary pointed at it.

// env is a daemon and the client's binary.
type env struct {
	t    *testing.T
	ctl  string
	sock string
	d    *daemon
}

// daemon is the daemon's command line, its process (nil while it is down)
// and the log of all its runs.
type daemon struct {
	args []string
	cmd  *exec.Cmd
	logs bytes.Buffer
}

// in is the environment for a subtest.
func (e *env) in(t *testing.T) *env {
	return &env{t: t, ctl: e.ctl, sock: e.sock, d: e.d}
}

// result is one condenserctl invocation.
type result struct {
	stdout, stderr string
	code           int
}

func (e *env) run(args ...string) result {
	e.t.Helper()
	return e.runIn("", args...)
}

// runIn runs condenserctl with input as its standard input ("": none).
func (e *env) runIn(input string, args ...string) result {
	e.t.Helper()
	cmd := exec.Command(e.ctl, args...)
	cmd.Env = append(os.Environ(), "RAIND_HOST=unix://"+e.sock)
	if input != "" {
		cmd.Stdin = strings.NewReader(input)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := result{out.String(), errOut.String(), 0}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("condenserctl %q: %v", args, err)
	}
	return r
}

// must runs condenserctl and fails the test unless it exits 0.
func (e *env) must(args ...string) string {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("condenserctl %q: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

func startEnv(t *testing.T) *env {
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "runc")
	dir := testutil.BuildBinaries(t, "../condenser", "../condenser-shim", ".")
	reg := testutil.StartRegistry(t)
	reg.Push(t, reg.Ref("library/busybox:latest"), testutil.BusyboxImage(t))

	state, err := os.MkdirTemp("", "cc") // short: a unix socket path is limited
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctl: dir + "/condenserctl", sock: filepath.Join(state, "condenser.sock"), d: &daemon{}}
	e.d.args = append([]string{dir + "/condenser", "--root", t.TempDir(), "--state", state, "--runtime", "runc", "--cgroup-parent", testutil.CgroupParent(t),
		"--listen", "unix://" + e.sock, "--registry-mirror", "docker.io=http://" + reg.Host}, testutil.Network(t).Args()...)
	t.Cleanup(func() {
		defer func() {
			os.RemoveAll(state)
			if t.Failed() {
				t.Logf("daemon log:\n%s", &e.d.logs)
			}
		}()
		if e.d.cmd == nil { // a test that failed while it was down
			e.startDaemon()
		}
		if r := e.run("container", "ls", "--format", "json"); r.code == 0 {
			var list []api.ContainerSummary
			json.Unmarshal([]byte(r.stdout), &list)
			for _, c := range list {
				e.run("container", "rm", "-f", c.ContainerID)
			}
		}
		e.stopDaemon(syscall.SIGTERM)
	})
	e.startDaemon()
	return e
}

// startDaemon starts the daemon and waits until it answers.
func (e *env) startDaemon() {
	e.t.Helper()
	d := e.d
	d.cmd = exec.Command(d.args[0], d.args[1:]...)
	d.cmd.Stdout, d.cmd.Stderr = &d.logs, &d.logs
	d.cmd.WaitDelay = 5 * time.Second // should a child hold its output open
	if err := d.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if e.run("version").code == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("daemon not answering:\n%s", &d.logs)
		}
	}
}

// stopDaemon signals the daemon and waits for it (SIGKILL: kill -9).
func (e *env) stopDaemon(sig syscall.Signal) {
	e.d.cmd.Process.Signal(sig)
	e.d.cmd.Wait()
	e.d.cmd = nil
}

func TestCondenserctl(t *testing.T) {
	e := startEnv(t)

	// Pull, not on a terminal: plain lines, then the summary.
	out := e.must("image", "pull", "busybox")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[len(lines)-1], "Pulled ") {
		t.Fatalf("pull output:\n%s", out)
	}
	for _, l := range lines[:len(lines)-1] {
		digest, status, ok := strings.Cut(l, ": ")
		if !ok || len(digest) != 12 || !strings.Contains("downloading extracting done exists", status) {
			t.Errorf("pull progress line %q", l)
		}
	}
	if out := e.must("image", "ls"); !strings.Contains(out, "REPOSITORY") || !strings.Contains(out, "busybox") {
		t.Errorf("image ls:\n%s", out)
	}

	t.Run("run --rm", func(t *testing.T) {
		r := e.run("container", "run", "--rm", "--name", "once", "busybox", "sh", "-c", "echo hi; exit 3")
		if r.code != 3 || r.stdout != "hi\n" {
			t.Fatalf("run: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		if r := e.run("container", "inspect", "once"); r.code != 1 || !strings.Contains(r.stderr, "once") {
			t.Errorf("inspect after --rm: exit %d, %q %q", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("flags after IMAGE are the command's", func(t *testing.T) {
		// -n and --name follow the image: echo's, not run's.
		r := e.run("container", "run", "--rm", "busybox", "echo", "-n", "--name", "x")
		if r.code != 0 || r.stdout != "--name x" {
			t.Fatalf("run: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("detached ls inspect logs", func(t *testing.T) {
		id := strings.TrimSpace(e.must("container", "run", "-d", "--name", "web", "-e", "A=1", "--memory", "64m", "busybox",
			"sh", "-c", "echo one; echo two; sleep 100"))
		if len(id) != 64 {
			t.Fatalf("run -d printed %q", id)
		}
		table := e.must("container", "ls")
		rows := strings.Split(strings.TrimSpace(table), "\n")
		if len(rows) != 2 || !strings.HasPrefix(rows[0], "CONTAINER ID") || !strings.HasPrefix(rows[1], id[:12]+" ") ||
			!strings.Contains(rows[1], "web") || !strings.Contains(rows[1], "busybox:latest") || !strings.Contains(rows[1], "running") {
			t.Errorf("ls:\n%s", table)
		}
		var list []api.ContainerSummary
		if err := json.Unmarshal([]byte(e.must("container", "ls", "--format", "json")), &list); err != nil || len(list) != 1 ||
			list[0].ContainerID != id || list[0].State != "running" {
			t.Errorf("ls json: %v %+v", err, list)
		}
		var d api.ContainerDetail
		if err := json.Unmarshal([]byte(e.must("container", "inspect", "web")), &d); err != nil || d.ContainerID != id || d.Name != "web" ||
			d.Config.Resources == nil || d.Config.Resources.Memory != 64<<20 || !strings.Contains(strings.Join(d.Config.Env, " "), "A=1") {
			t.Errorf("inspect: %v %+v", err, d)
		}
		// Flags after the container's name, as docker takes them.
		var logs string
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if logs = e.must("container", "logs", "web", "--timestamps", "--tail", "1"); strings.Contains(logs, "two") {
				break
			}
		}
		if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\S+ two\n$`).MatchString(logs) {
			t.Errorf("logs web --timestamps --tail 1: %q", logs)
		}
		e.must("container", "stop", "web", "--timeout", "1")
		if out := e.must("container", "wait", "web"); strings.TrimSpace(out) != "137" {
			t.Errorf("wait: %q", out)
		}
		e.must("container", "rm", "web")
	})

	t.Run("command not found", func(t *testing.T) {
		// Docker's convention: 127 when the command does not exist, with
		// the runtime's message.
		r := e.run("container", "run", "--rm", "busybox", "/nonexistent")
		if r.code != 127 || !strings.Contains(r.stderr, "/nonexistent") || !strings.HasPrefix(r.stderr, "condenserctl: ") {
			t.Errorf("run /nonexistent: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		r = e.run("container", "run", "--rm", "busybox", "/etc/passwd")
		if r.code != 126 || !strings.Contains(r.stderr, "/etc/passwd") {
			t.Errorf("run /etc/passwd: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("errors", func(t *testing.T) {
		if r := e.run("container", "inspect", "nosuch"); r.code != 1 || !strings.HasPrefix(r.stderr, "condenserctl: ") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("unknown container: %+v", r)
		}
		// A malformed port spec is the daemon's 400: exit 1.
		if r := e.run("container", "run", "--rm", "-p", "80x:80", "busybox", "true"); r.code != 1 || !strings.Contains(r.stderr, "port") {
			t.Errorf("publish 80x:80: %+v", r)
		}
		if r := e.run("network", "inspect", "nosuch"); r.code != 1 || !strings.HasPrefix(r.stderr, "condenserctl: ") {
			t.Errorf("unknown network: %+v", r)
		}
		if r := e.run("container", "frobnicate"); r.code != 2 {
			t.Errorf("usage error: %+v", r)
		}
		if r := e.run("container", "run", "--memory", "inf", "busybox", "true"); r.code != 2 || !strings.Contains(r.stderr, "64m") {
			t.Errorf("--memory inf: %+v", r)
		}
	})
}

func TestDaemonDown(t *testing.T) {
	dir := testutil.BuildBinaries(t, ".")
	sock := filepath.Join(t.TempDir(), "nobody.sock")
	for _, args := range [][]string{
		{"--host", "unix://" + sock, "container", "ls"},
		{"container", "ls", "-H", sock}, // a global flag after the command
	} {
		cmd := exec.Command(dir+"/condenserctl", args...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("%q: exit: %v", args, err)
		}
		want := "condenserctl: cannot reach Condenser at " + sock + ": is it running? Start it with `make run` or `systemctl start condenser.socket`.\n"
		if errOut.String() != want || out.Len() != 0 {
			t.Errorf("%q: stderr %q, stdout %q", args, errOut.String(), out.String())
		}
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveBinaries()
	os.Exit(code)
}
