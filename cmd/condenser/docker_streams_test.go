package main

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/raind/condenser/internal/testutil"
)

// The Docker API's streams driven by the real docker CLI: logs (follow,
// tail, timestamps), exec (exit codes, stdin, detached, a command that
// cannot run), attach (stdin and its end), and docker run's attach before
// start, with and without a terminal.

// streamsDaemon is a daemon with busybox pulled (through the Raind API:
// the Docker API's pull is another part's).
func streamsDaemon(t *testing.T) (*daemonProc, *dockerCLI) {
	t.Helper()
	d, docker := dockerDaemon(t)
	if code := d.do("POST", "/v1/images", map[string]string{"image": "busybox"}, nil); code != 200 {
		t.Fatalf("pull: %d", code)
	}
	return d, docker
}

// raindRun creates (named name) and starts a container through the Raind
// API and removes it at the end of the test.
func (d *daemonProc) raindRun(t *testing.T, name string, req map[string]any) string {
	t.Helper()
	req["name"] = name
	id := d.run(t, req)
	t.Cleanup(func() { d.do("DELETE", "/v1/containers/"+id+"/actions/delete?force=1", nil, nil) })
	return id
}

// untilLogged waits until docker logs name prints want (the shim writes
// the log as the process runs).
func untilLogged(t *testing.T, docker *dockerCLI, name, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, errs, _ := docker.run("", "logs", name)
		if strings.Contains(out+errs, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker logs %s: no %q after 20s: %q %q", name, want, out, errs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestDockerStreams(t *testing.T) {
	d, docker := streamsDaemon(t)
	d.raindRun(t, "c1", map[string]any{"command": []string{"sh", "-c", "echo one; echo two >&2; echo three; exec sleep 300"}})
	untilLogged(t, docker, "c1", "three")

	t.Run("logs", func(t *testing.T) {
		out, errs, code := docker.run("", "logs", "c1")
		if code != 0 || out != "one\nthree\n" || errs != "two\n" {
			t.Fatalf("docker logs: %d %q %q", code, out, errs)
		}
		// The order of stdout and stderr in the log is the shim's copiers':
		// the last two lines are two of the three.
		out, errs, code = docker.run("", "logs", "--tail", "2", "-t", "c1")
		stamped := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (one|two|three)$`)
		lines := strings.Split(strings.TrimSuffix(out+errs, "\n"), "\n")
		if code != 0 || len(lines) != 2 || !stamped.MatchString(lines[0]) || !stamped.MatchString(lines[1]) || !strings.HasSuffix(out, " three\n") {
			t.Fatalf("docker logs --tail 2 -t: %d %q %q", code, out, errs)
		}
		if _, errs, code := docker.run("", "logs", "nope"); code == 0 || !strings.Contains(errs, "No such container: nope") {
			t.Fatalf("docker logs nope: %d %q", code, errs)
		}
	})

	t.Run("logs follow", func(t *testing.T) {
		d.raindRun(t, "c2", map[string]any{"command": []string{"sh", "-c", "for i in 1 2 3; do echo l$i; sleep 0.2; done"}})
		// Ends by itself once the container has stopped and its log is
		// drained (run fails the test after a minute).
		out, errs, code := docker.run("", "logs", "-f", "c2")
		if code != 0 || out != "l1\nl2\nl3\n" {
			t.Fatalf("docker logs -f: %d %q %q", code, out, errs)
		}
		if out, errs, code := docker.run("", "logs", "--tail", "1", "c2"); code != 0 || out != "l3\n" {
			t.Fatalf("docker logs --tail 1: %d %q %q", code, out, errs)
		}
	})

	t.Run("exec", func(t *testing.T) {
		out, errs, code := docker.run("", "exec", "c1", "sh", "-c", "echo out; echo err >&2; exit 7")
		if code != 7 || out != "out\n" || errs != "err\n" {
			t.Fatalf("docker exec exit 7: %d %q %q", code, out, errs)
		}
		out, errs, code = docker.run("hi\n", "exec", "-i", "c1", "cat")
		if code != 0 || out != "hi\n" {
			t.Fatalf("docker exec -i cat: %d %q %q", code, out, errs)
		}
		out, errs, code = docker.run("", "exec", "-e", "A=b", "-w", "/tmp", "-u", "65534", "c1", "sh", "-c", "echo $A $(pwd) $(id -u)")
		if code != 0 || out != "b /tmp 65534\n" {
			t.Fatalf("docker exec -e -w -u: %d %q %q", code, out, errs)
		}
		if _, errs, code := docker.run("", "exec", "c1", "/no/such/cmd"); code != 127 && code != 126 {
			t.Fatalf("docker exec of a missing command: %d %q", code, errs)
		}
		if out, errs, code := docker.run("", "exec", "-d", "c1", "sh", "-c", "echo x >/tmp/detached"); code != 0 {
			t.Fatalf("docker exec -d: %d %q %q", code, out, errs)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			if _, _, code := docker.run("", "exec", "c1", "sh", "-c", "test -e /tmp/detached"); code == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("docker exec -d: the file was not made")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if _, errs, code := docker.run("", "exec", "nope", "true"); code == 0 || !strings.Contains(errs, "No such container: nope") {
			t.Fatalf("docker exec nope: %d %q", code, errs)
		}
	})

	t.Run("attach", func(t *testing.T) {
		d.raindRun(t, "c3", map[string]any{"openStdin": true, "command": []string{"sh", "-c", "read x; echo got $x; echo bye >&2; exit 4"}})
		out, errs, code := docker.run("hello\n", "attach", "c3")
		if out != "got hello\n" || errs != "bye\n" || code != 4 {
			t.Fatalf("docker attach: %d %q %q", code, out, errs)
		}
	})
}

// TestDockerRunStreams: docker run attaches before it starts; needs the
// containers part (create, start, wait).
func TestDockerRunStreams(t *testing.T) {
	_, docker := streamsDaemon(t)
	requireDockerRun(t, docker)
	out, errs, code := docker.run("", "run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
	if code != 3 || out != "out\n" || errs != "err\n" {
		t.Fatalf("docker run: %d %q %q", code, out, errs)
	}
	out, errs, code = docker.run("hi\n", "run", "-i", "--rm", "busybox", "cat")
	if code != 0 || out != "hi\n" {
		t.Fatalf("docker run -i cat: %d %q %q", code, out, errs)
	}
	docker.ok("run", "-d", "--name", "c1", "busybox", "sleep", "300")
	t.Cleanup(func() { docker.run("", "rm", "-f", "c1") })
	if _, errs, code := docker.run("", "exec", "c1", "sh", "-c", "exit 7"); code != 7 {
		t.Fatalf("docker exec exit 7: %d %q", code, errs)
	}

	t.Run("run -it", func(t *testing.T) {
		p := startDockerPTY(t, docker, 33, 101, "run", "-it", "--rm", "busybox", "sh")
		p.expect(`# `)
		p.Send("stty size\r")
		p.expect(`\r\n33 101\r\n`)
		p.Send("exit 3\r")
		if code := p.Wait(); code != 3 {
			t.Fatalf("docker run -it: exit %d\n%q", code, p.Transcript())
		}
	})
	t.Run("attach detach keys", func(t *testing.T) {
		docker.ok("run", "-dit", "--name", "t1", "busybox", "sh")
		t.Cleanup(func() { docker.run("", "rm", "-f", "t1") })
		p := startDockerPTY(t, docker, 24, 80, "attach", "t1")
		p.Send("echo hi$((6*7))\r")
		p.expect(`hi42\r\n`)
		// With a terminal the CLI reads the keys itself, says so and exits
		// (status 1, as with Docker): the container goes on.
		p.Send("\x10\x11") // ctrl-p ctrl-q
		p.expect(`read escape sequence`)
		p.Wait()
		if got := docker.ok("inspect", "-f", "{{.State.Running}}", "t1"); got != "true" {
			t.Fatalf("after the detach the container is not running: %s", got)
		}
	})
	t.Run("exec -it", func(t *testing.T) {
		p := startDockerPTY(t, docker, 27, 93, "exec", "-it", "c1", "sh")
		p.expect(`# `)
		p.Send("stty size\r")
		p.expect(`\r\n27 93\r\n`)
		p.Send("exit 5\r")
		if code := p.Wait(); code != 5 {
			t.Fatalf("docker exec -it: exit %d\n%q", code, p.Transcript())
		}
	})
}

// requireDockerRun skips until the Docker API creates containers.
func requireDockerRun(t *testing.T, docker *dockerCLI) {
	t.Helper()
	out, errs, code := docker.run("", "create", "--name", "probe", "busybox", "true")
	if code != 0 && (strings.Contains(errs, "page not found") || strings.Contains(errs, "not implemented")) {
		t.Skipf("the Docker API cannot create containers yet: %s", strings.TrimSpace(errs))
	}
	if code != 0 {
		t.Fatalf("docker create: %d %q %q", code, out, errs)
	}
	docker.ok("rm", "probe")
}

// dockerPTY is the docker CLI on a pseudo-terminal (testutil.PTY); each
// expect starts where the last match ended.
type dockerPTY struct {
	*testutil.PTY
	from int
}

func startDockerPTY(t *testing.T, docker *dockerCLI, rows, cols uint16, args ...string) *dockerPTY {
	t.Helper()
	cmd := exec.Command("docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+docker.host, "DOCKER_CONFIG="+docker.config, "DOCKER_CLI_HINTS=false")
	return &dockerPTY{PTY: testutil.StartPTY(t, cmd, rows, cols)}
}

// expect waits until the output after the last match matches re.
func (p *dockerPTY) expect(re string) {
	p.from, _ = p.Expect(re, p.from)
}
