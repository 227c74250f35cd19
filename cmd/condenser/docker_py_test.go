package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/raind/condenser/internal/testutil"
)

// TestDockerPy runs the docker-py suite (testdata/dockerpy, modelled on
// Podman's test/python/docker/compat) against the daemon's Docker API: the
// machine's python3 with docker-py 7.1.0, as users script it.
func TestDockerPy(t *testing.T) {
	testutil.RequireBinary(t, "python3")
	if err := exec.Command("python3", "-c", "import docker").Run(); err != nil {
		msg := "docker-py is not installed in python3 (pip install docker==7.1.0): " + err.Error()
		if testutil.InCI() {
			t.Fatal(msg + " (CI=true: failing instead of skipping)")
		}
		t.Skip(msg)
	}
	d, _ := dockerDaemon(t)
	suite, err := filepath.Abs("testdata/dockerpy")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "python3", "-m", "unittest", "discover", "-v", "-s", suite, "-p", "test_*.py")
	cmd.Dir = suite
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+filepath.Join(d.state, "docker.sock"), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	t.Logf("docker-py suite:\n%s", out)
	if err != nil {
		t.Fatalf("docker-py suite failed: %v", err)
	}
}
