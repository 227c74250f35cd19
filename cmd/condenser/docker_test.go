package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raind/condenser/internal/testutil"
)

// The Docker Engine API driven by the real docker CLI (28.2.2 on these
// machines) against the daemon's docker.sock. The suites of the parts are
// in docker_*_test.go; this file has the harness.

// dockerCLI runs the docker CLI against one daemon's Docker API.
type dockerCLI struct {
	t      testing.TB
	host   string // DOCKER_HOST
	config string // DOCKER_CONFIG: the CLI's own, empty, directory
}

// dockerDaemon starts a daemon (busybox in its registry mirror, not pulled)
// and returns it with a docker CLI pointed at its Docker API socket.
func dockerDaemon(t *testing.T) (*daemonProc, *dockerCLI) {
	t.Helper()
	testutil.RequireBinary(t, "docker")
	reg := registryWithBusybox(t)
	d := startDaemon(t, reg.Host)
	return d, &dockerCLI{t: t, host: "unix://" + filepath.Join(d.state, "docker.sock"), config: t.TempDir()}
}

// run runs docker with args (and stdin, if not nil) and returns its
// stdout, stderr and exit code; it fails the test when docker cannot be
// run or takes more than a minute.
func (c *dockerCLI) run(stdin string, args ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+c.host, "DOCKER_CONFIG="+c.config, "DOCKER_CLI_HINTS=false")
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		c.t.Fatalf("docker %s: timed out\nstdout: %s\nstderr: %s", strings.Join(args, " "), out.String(), errb.String())
	}
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return out.String(), errb.String(), ee.ExitCode()
	}
	if err != nil {
		c.t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), 0
}

// ok runs docker with args, fails the test unless it exits 0, and returns
// its stdout with surrounding white space trimmed.
func (c *dockerCLI) ok(args ...string) string {
	c.t.Helper()
	out, errs, code := c.run("", args...)
	if code != 0 {
		c.t.Fatalf("docker %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return strings.TrimSpace(out)
}

// TestDockerVersion: the CLI negotiates API 1.50 (HEAD /_ping) and reads
// the server's version.
func TestDockerVersion(t *testing.T) {
	_, docker := dockerDaemon(t)
	if got := docker.ok("version", "--format", "{{.Server.APIVersion}}"); got != "1.50" {
		t.Fatalf("server API version %q, want 1.50", got)
	}
	if got := docker.ok("version", "--format", "{{.Client.APIVersion}}"); got != "1.50" {
		t.Fatalf("negotiated client API version %q, want 1.50", got)
	}
	if got := docker.ok("version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"); !strings.HasPrefix(got, "linux/") {
		t.Fatalf("server platform %q", got)
	}
}
