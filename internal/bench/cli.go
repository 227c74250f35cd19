package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// CLIRunner is an Engine with a user-facing CLI that runs a container the
// way a user types it (row 10): `docker run --rm busybox true` against
// Condenser's Docker API, `podman run --rm busybox true`. The image is the
// Small one, under the short name busybox.
type CLIRunner interface {
	// PrepareCLI makes the Small image present under the short name
	// busybox. It returns ErrNotApplicable (wrapped, with the reason) when
	// the CLI is not installed.
	PrepareCLI(ctx context.Context) error
	// RunTrueCLI runs `run --rm busybox true` with the CLI and returns the
	// time the whole invocation took, until the CLI exited.
	RunTrueCLI(ctx context.Context) (time.Duration, error)
}

var (
	_ CLIRunner = (*Condenser)(nil)
	_ CLIRunner = (*Podman)(nil)
)

// cliRunFlags are the flags of every row-10 run besides --rm: no network,
// as on rows 1 (Podman's runs name their network; its default bridge would
// edit the host's firewall), so that the row compares the CLIs and the
// engines, not bridge set-ups.
var cliRunFlags = []string{"--rm", "--network", "none"}

// PrepareCLI pulls busybox through the Raind API — docker.io's images come
// from the local registry (the daemon's --registry-mirror) — and gives the
// docker CLI an environment of its own: DOCKER_HOST the daemon's Docker API
// socket, DOCKER_CONFIG an empty directory (no host configuration,
// contexts or credential helpers).
func (c *Condenser) PrepareCLI(ctx context.Context) error {
	bin, err := lookExe("docker")
	if err != nil {
		return fmt.Errorf("%w: docker CLI: %v", ErrNotApplicable, err)
	}
	config := filepath.Join(c.dir, "docker-config")
	if err := os.MkdirAll(config, 0o700); err != nil {
		return err
	}
	if err := c.Pull(ctx, "busybox"); err != nil {
		return err
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "DOCKER_") })
	c.dockerBin = bin
	c.dockerEnv = append(env, "DOCKER_HOST=unix://"+filepath.Join(c.state, "docker.sock"), "DOCKER_CONFIG="+config)
	return nil
}

// RunTrueCLI runs `docker run --rm --network none busybox true`.
func (c *Condenser) RunTrueCLI(ctx context.Context) (time.Duration, error) {
	if c.dockerEnv == nil {
		return 0, errors.New("docker: PrepareCLI not run")
	}
	args := append(append([]string{"run"}, cliRunFlags...), "busybox", "true")
	t0 := time.Now()
	_, err := run(ctx, c.dockerEnv, c.dockerBin, args...)
	return time.Since(t0), err
}

// PrepareCLI tags the Small image localhost/busybox, which the short name
// busybox resolves to in local storage (the engine's registries.conf has
// no search registries).
func (p *Podman) PrepareCLI(ctx context.Context) error {
	_, err := p.podman(ctx, "tag", p.img.Small, "busybox")
	return err
}

// RunTrueCLI runs `podman run --rm --network none busybox true` with the
// flags of every podman run here (podmanRunFlags).
func (p *Podman) RunTrueCLI(ctx context.Context) (time.Duration, error) {
	args := append(append(append([]string{"run"}, cliRunFlags...), podmanRunFlags...), "busybox", "true")
	t0 := time.Now()
	_, err := p.podman(ctx, args...)
	return time.Since(t0), err
}

// runTrueCLI measures row 10: runs runs after 3 warm-ups. An engine
// without the CLI gets a note instead.
func runTrueCLI(ctx context.Context, e Engine, r *results, runs int) error {
	cli, ok := e.(CLIRunner)
	if !ok {
		return nil
	}
	if err := cli.PrepareCLI(ctx); errors.Is(err, ErrNotApplicable) {
		r.notes = append(r.notes, fmt.Sprintf("row 10 skipped: %v", err))
		return nil
	} else if err != nil {
		return fmt.Errorf("row 10: %w", err)
	}
	const warmup = 3
	for i := range runs + warmup {
		d, err := cli.RunTrueCLI(ctx)
		if err != nil {
			return fmt.Errorf("row 10: %w", err)
		}
		if i >= warmup {
			r.cliTrue = append(r.cliTrue, d)
		}
	}
	return nil
}
