package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Condenser runs the condenser daemon built in Bin (with condenser-shim
// next to it) with the runc runtime, and talks to it over its REST API.
type Condenser struct {
	Bin string
	// NetArgs are the daemon's networking flags (a bridge, subnet and
	// NAT table of the benchmark's own: it never touches the host's
	// raind0).
	NetArgs []string

	img              Images
	dir, root, state string
	sock             string
	daemon           *daemon
	http             *http.Client
	// cgroupParent is the daemon's --cgroup-parent, the engine's own;
	// cgroups are its directories, for Close to remove.
	cgroupParent string
	cgroups      []string
	// dockerBin and dockerEnv run the docker CLI against the daemon's
	// Docker API (row 10); nil env until PrepareCLI.
	dockerBin string
	dockerEnv []string
}

var (
	_ Engine        = (*Condenser)(nil)
	_ NetworkRunner = (*Condenser)(nil)
)

// NewCondenser returns an engine running the binaries in bin, with the
// daemon's networking flags netArgs.
func NewCondenser(bin string, netArgs ...string) *Condenser {
	return &Condenser{Bin: bin, NetArgs: netArgs}
}

func (c *Condenser) Name() string { return "condenser" }

func (c *Condenser) Setup(ctx context.Context, dir string, img Images) error {
	c.img, c.dir = img, dir
	c.root = filepath.Join(dir, "root")
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	c.cgroupParent = "/condenser-bench-" + hex.EncodeToString(b)
	c.cgroups = missingCgroups(c.cgroupParent)
	// The state directory holds unix sockets: it must be short.
	state, err := os.MkdirTemp("", "cb")
	if err != nil {
		return err
	}
	c.state = state
	c.sock = filepath.Join(state, "condenser.sock")
	c.http = unixClient(c.sock)
	_, err = c.start(ctx)
	return err
}

// start starts the daemon and returns the time until its API answers.
func (c *Condenser) start(ctx context.Context) (time.Duration, error) {
	t0 := time.Now()
	var err error
	args := append([]string{"--root", c.root, "--state", c.state, "--runtime", "runc", "--cgroup-parent", c.cgroupParent, "--shim", filepath.Join(c.Bin, "condenser-shim"),
		"--listen", "unix://" + c.sock, "--insecure-registry", c.img.Registry, "--log-level", "warn",
		// docker.io's busybox of row 10 from the local registry.
		"--registry-mirror", "docker.io=http://" + c.img.Registry}, c.NetArgs...)
	c.daemon, err = startDaemon(ctx, nil, filepath.Join(c.dir, "condenser.log"), filepath.Join(c.Bin, "condenser"), args...)
	if err != nil {
		return 0, err
	}
	err = poll(ctx, readyTimeout, func() error {
		resp, err := c.http.Get("http://condenser/v1/_ping")
		if err == nil {
			resp.Body.Close()
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("condenser not answering: %w\n%s", err, c.daemon.logTail())
	}
	return time.Since(t0), nil
}

func (c *Condenser) Close(ctx context.Context) error {
	var errs []error
	if c.daemon != nil {
		errs = append(errs, c.RemoveAll(ctx))
		var list []struct{ Repository, Reference string }
		if err := c.do(ctx, "GET", "/v1/images", nil, &list); err != nil {
			errs = append(errs, err)
		}
		for _, i := range list {
			errs = append(errs, c.RemoveImage(ctx, i.Repository+":"+i.Reference))
		}
		errs = append(errs, c.daemon.stop(syscall.SIGTERM))
		c.daemon = nil
	}
	errs = append(errs, cleanUp("", c.cgroups))
	c.cgroups = nil
	if c.state != "" {
		errs = append(errs, os.RemoveAll(c.state))
	}
	return errors.Join(errs...)
}

// do sends a request with a JSON body and decodes the envelope's data
// into out; a "fail" envelope or an unexpected status is an error.
func (c *Condenser) do(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://condenser"+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	var env struct {
		Status  string          `json:"status"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if err := json.Unmarshal(b, &env); err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	if out != nil {
		return json.Unmarshal(env.Data, out)
	}
	return nil
}

func (c *Condenser) Pull(ctx context.Context, ref string) error {
	return c.do(ctx, "POST", "/v1/images", map[string]string{"image": ref}, nil)
}

func (c *Condenser) RemoveImage(ctx context.Context, ref string) error {
	return c.do(ctx, "DELETE", "/v1/images", map[string]string{"image": ref}, nil)
}

// create creates a container running args, with no network, and returns
// its id.
func (c *Condenser) create(ctx context.Context, name string, args ...string) (string, error) {
	return c.createOn(ctx, "none", name, args...)
}

// createOn creates a container running args on network and returns its
// id.
func (c *Condenser) createOn(ctx context.Context, network, name string, args ...string) (string, error) {
	var out struct{ ID string }
	req := map[string]any{"image": c.img.Small, "command": args, "network": network}
	if name != "" {
		req["name"] = name
	}
	err := c.do(ctx, "POST", "/v1/containers", req, &out)
	return out.ID, err
}

func (c *Condenser) RunTrue(ctx context.Context) (time.Duration, error) {
	return c.runTrueOn(ctx, "none")
}

// RunTrueNetworked is RunTrue on the default network raind0 (the
// daemon's bridge of its own, NetArgs): a namespace, a veth on the bridge,
// an address, routes and NAT rules, all made by the daemon itself.
func (c *Condenser) RunTrueNetworked(ctx context.Context) (time.Duration, error) {
	return c.runTrueOn(ctx, "raind0")
}

// runTrueOn is RunTrue on network.
func (c *Condenser) runTrueOn(ctx context.Context, network string) (time.Duration, error) {
	t0 := time.Now()
	id, err := c.createOn(ctx, network, "", "true")
	if err != nil {
		return 0, err
	}
	if err := c.do(ctx, "POST", "/v1/containers/"+id+"/actions/start", nil, nil); err != nil {
		return 0, err
	}
	var exit struct{ ExitCode int }
	if err := c.do(ctx, "POST", "/v1/containers/"+id+"/actions/wait", nil, &exit); err != nil {
		return 0, err
	}
	d := time.Since(t0)
	if exit.ExitCode != 0 {
		return 0, fmt.Errorf("true exited with %d", exit.ExitCode)
	}
	return d, c.do(ctx, "DELETE", "/v1/containers/"+id+"/actions/delete", nil, nil)
}

func (c *Condenser) StartDetached(ctx context.Context, name string) error {
	id, err := c.create(ctx, name, "sleep", "3600")
	if err != nil {
		return err
	}
	return c.do(ctx, "POST", "/v1/containers/"+id+"/actions/start", nil, nil)
}

type condenserSummary struct {
	ID    string `json:"containerId"`
	State string `json:"state"`
}

func (c *Condenser) list(ctx context.Context) ([]condenserSummary, error) {
	var list []condenserSummary
	err := c.do(ctx, "GET", "/v1/containers?all=1", nil, &list)
	return list, err
}

func (c *Condenser) RemoveAll(ctx context.Context) error {
	list, err := c.list(ctx)
	if err != nil {
		return err
	}
	return forEach(ctx, len(list), 8, func(i int) error {
		return c.do(ctx, "DELETE", "/v1/containers/"+list[i].ID+"/actions/delete?force=1", nil, nil)
	})
}

// Monitors lists the shims of the containers; the spare shim, launched
// ahead for the next container, is among ExtraPIDs.
func (c *Condenser) Monitors(ctx context.Context) ([]int, error) {
	mon, _, err := c.shims(ctx)
	return mon, err
}

// ExtraPIDs lists the shims that serve no container (the spare).
func (c *Condenser) ExtraPIDs(ctx context.Context) ([]int, error) {
	_, extra, err := c.shims(ctx)
	return extra, err
}

func (c *Condenser) shims(ctx context.Context) (monitors, extra []int, err error) {
	list, err := c.list(ctx)
	if err != nil {
		return nil, nil, err
	}
	ids := map[string]bool{}
	for _, s := range list {
		ids[s.ID] = true
	}
	// Shim servers only: a `condenser-shim start` launching the next
	// spare is gone in a moment.
	all, err := pidsOf(filepath.Join(c.Bin, "condenser-shim"), []string{"\x00serve\x00", c.state})
	for _, pid := range all {
		if ids[shimID(pid)] {
			monitors = append(monitors, pid)
		} else {
			extra = append(extra, pid)
		}
	}
	return monitors, extra, err
}

// shimID is the --id argument of shim process pid.
func shimID(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	args := strings.Split(string(b), "\x00")
	for i, a := range args {
		if a == "--id" && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func (c *Condenser) DaemonPID() int { return c.daemon.pid() }

func (c *Condenser) Restart(ctx context.Context, running int) (answer, reconnected time.Duration, err error) {
	if err := c.daemon.stop(syscall.SIGKILL); err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	if answer, err = c.start(ctx); err != nil {
		return 0, 0, err
	}
	err = poll(ctx, readyTimeout, func() error {
		list, err := c.list(ctx)
		if err != nil {
			return err
		}
		return countRunning(len(list), running, func(i int) bool { return list[i].State == "running" })
	})
	return answer, time.Since(t0), err
}

// List lists every container as a client would, over a kept-alive
// connection, reading the whole answer and checking its status. It does
// not decode it: decoding is the client's work, not the engine's, and on a
// small machine the client's CPU is taken from the daemon under
// measurement (Podman's List does the same).
func (c *Condenser) List(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://condenser/v1/containers?all=1", nil)
	if err != nil {
		return err
	}
	return readAnswer(c.http, req)
}

// CreatedBundle creates (without starting) a container running `true` and
// returns its OCI bundle and mounted root filesystem, for bare runtime runs
// of the very bundle Condenser runs; remove deletes the container.
func (c *Condenser) CreatedBundle(ctx context.Context) (bundle, rootfs string, remove func() error, err error) {
	id, err := c.create(ctx, "", "true")
	if err != nil {
		return "", "", nil, err
	}
	var d struct{ Bundle, Rootfs string }
	if err := c.do(ctx, "GET", "/v1/containers/"+id, nil, &d); err != nil {
		return "", "", nil, err
	}
	return d.Bundle, d.Rootfs, func() error {
		return c.do(context.WithoutCancel(ctx), "DELETE", "/v1/containers/"+id+"/actions/delete?force=1", nil, nil)
	}, nil
}
