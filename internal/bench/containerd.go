package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// ctrNamespace is the containerd namespace the engine works in; `ctr run`
// puts a container in the cgroup /<namespace>/<id> of every hierarchy.
const ctrNamespace = "bench"

// Containerd runs a containerd daemon of its own, with its root, state,
// socket and opt directory under the directory given to Setup and the CRI
// plugin disabled, and drives it with ctr. containerd has only a gRPC API
// and we do not link its client, so every request is a ctr process, List
// included. The shims still use /run/containerd (fifo/, s/ for their
// sockets, runc/<namespace>/ for runc's state), and ctr run puts containers
// in the cgroup /bench of every hierarchy; Close removes those that did not
// exist before Setup.
type Containerd struct {
	dir, sock string
	img       Images
	bin       string // containerd
	ctrBin    string
	shimBin   string // containerd-shim-runc-v2
	daemon    *daemon
	created   []string // host paths outside dir that are ours to remove
	seq       atomic.Int64
}

var _ Engine = (*Containerd)(nil)

// NewContainerd returns the containerd engine; Setup starts it.
func NewContainerd() *Containerd { return &Containerd{} }

func (c *Containerd) Name() string { return "containerd" }

func (c *Containerd) Setup(ctx context.Context, dir string, img Images) (err error) {
	if dir == "" {
		return errors.New("no directory")
	}
	if c.dir, err = filepath.Abs(dir); err != nil {
		return err
	}
	c.img = img
	// containerd also listens on sock+".ttrpc"; unix socket paths are
	// limited to 108 bytes.
	c.sock = filepath.Join(c.dir, "containerd.sock")
	if len(c.sock+".ttrpc") >= 108 {
		return fmt.Errorf("containerd socket path %s is too long for a unix socket", c.sock)
	}
	for _, b := range []struct {
		path *string
		name string
	}{{&c.bin, "containerd"}, {&c.ctrBin, "ctr"}, {&c.shimBin, "containerd-shim-runc-v2"}} {
		if *b.path, err = lookExe(b.name); err != nil {
			return err
		}
	}
	c.created = append(missingPaths("/run/containerd", "/run/containerd/runc/"+ctrNamespace),
		missingCgroups(ctrNamespace)...)

	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return err
	}
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, c.path("root"), c.path("state"), c.sock, c.path("opt"))
	if err := os.WriteFile(c.path("config.toml"), []byte(config), 0o644); err != nil {
		return err
	}
	_, err = c.start(ctx)
	return err
}

// path returns name under the engine's directory.
func (c *Containerd) path(name string) string { return filepath.Join(c.dir, name) }

// start starts containerd and returns the time until `ctr version` answers.
func (c *Containerd) start(ctx context.Context) (time.Duration, error) {
	t0 := time.Now()
	d, err := startDaemon(ctx, nil, c.path("containerd.log"), c.bin, "--config", c.path("config.toml"))
	if err != nil {
		return 0, err
	}
	c.daemon = d
	err = poll(ctx, readyTimeout, func() error {
		if d.exited() {
			return nil // reported below
		}
		_, err := c.ctr(ctx, "version")
		return err
	})
	answer := time.Since(t0)
	if err == nil && d.exited() {
		err = errors.New("exited")
	}
	if err != nil {
		return 0, fmt.Errorf("containerd not answering: %w\n%s", err, d.logTail())
	}
	return answer, nil
}

// ctr runs ctr against this engine's containerd, in its namespace; it
// refuses to run before Setup chose the socket, so as never to act on the
// host's containerd.
func (c *Containerd) ctr(ctx context.Context, args ...string) (string, error) {
	if c.sock == "" {
		return "", errors.New("containerd: not set up")
	}
	return run(ctx, nil, c.ctrBin, append([]string{"--address", c.sock, "--namespace", ctrNamespace}, args...)...)
}

func (c *Containerd) Close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	var errs []error
	if c.daemon != nil && !c.daemon.exited() {
		errs = append(errs, c.RemoveAll(ctx))
		out, err := c.ctr(ctx, "images", "ls", "-q")
		if refs := strings.Fields(out); err == nil && len(refs) > 0 {
			_, err = c.ctr(ctx, append([]string{"images", "rm", "--sync"}, refs...)...)
		}
		errs = append(errs, err)
	}
	errs = append(errs, c.daemon.stop(syscall.SIGTERM))
	if c.sock != "" {
		errs = append(errs, waitGone(ctx, c.shimBin, c.sock))
	}
	errs = append(errs, cleanUp(c.dir, c.created))
	c.created = nil
	return errors.Join(errs...)
}

// Pull runs `ctr images pull`, which also unpacks into the overlayfs
// snapshotter.
func (c *Containerd) Pull(ctx context.Context, ref string) error {
	_, err := c.ctr(ctx, "images", "pull", "--plain-http", ref)
	return err
}

// RemoveImage runs `ctr images rm --sync` (which waits for the garbage
// collection of the image's content and snapshots) and checks that none of
// the image's blobs stayed in the content store, so that the next pull is
// cold.
func (c *Containerd) RemoveImage(ctx context.Context, ref string) error {
	blobs, err := c.imageBlobs(ctx, ref)
	if err != nil {
		return err
	}
	if _, err := c.ctr(ctx, "images", "rm", "--sync", ref); err != nil {
		return err
	}
	for _, b := range blobs {
		if _, err := os.Stat(c.blobPath(b)); err == nil {
			return fmt.Errorf("ctr images rm --sync %s left blob %s in the content store: the next pull would not be cold", ref, b)
		}
	}
	return nil
}

// imageBlobs returns the digests of the blobs of ref in the content store:
// its index or manifest, and the manifests, configs and layers below.
func (c *Containerd) imageBlobs(ctx context.Context, ref string) ([]string, error) {
	out, err := c.ctr(ctx, "images", "ls")
	if err != nil {
		return nil, err
	}
	var target string
	for _, line := range strings.Split(out, "\n") {
		// REF TYPE DIGEST SIZE PLATFORMS LABELS
		if f := strings.Fields(line); len(f) >= 3 && f[0] == ref {
			target = f[2]
		}
	}
	if target == "" {
		return nil, fmt.Errorf("containerd has no image %s", ref)
	}
	var blobs []string
	var walk func(digest string) error
	walk = func(digest string) error {
		b, err := os.ReadFile(c.blobPath(digest))
		if errors.Is(err, fs.ErrNotExist) {
			return nil // a manifest of another platform, not pulled
		}
		if err != nil {
			return err
		}
		blobs = append(blobs, digest)
		var m struct {
			Manifests, Layers []struct{ Digest string }
			Config            struct{ Digest string }
		}
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("manifest %s of %s: %w", digest, ref, err)
		}
		for _, d := range m.Manifests {
			if err := walk(d.Digest); err != nil {
				return err
			}
		}
		if m.Config.Digest != "" {
			blobs = append(blobs, m.Config.Digest)
		}
		for _, l := range m.Layers {
			blobs = append(blobs, l.Digest)
		}
		return nil
	}
	return blobs, walk(target)
}

// blobPath is where containerd's content store keeps the blob digest.
func (c *Containerd) blobPath(digest string) string {
	alg, hex, _ := strings.Cut(digest, ":")
	return c.path(filepath.Join("root/io.containerd.content.v1.content/blobs", alg, hex))
}

// RunTrue runs `ctr run IMAGE ID true` (which deletes the task when it has
// exited) and removes the container and its snapshot afterwards with
// `ctr containers rm`, outside the measurement (`ctr run --rm` would
// include the removal).
func (c *Containerd) RunTrue(ctx context.Context) (time.Duration, error) {
	id := fmt.Sprint("bench-true-", c.seq.Add(1))
	t0 := time.Now()
	_, err := c.ctr(ctx, "run", c.img.Small, id, "true")
	d := time.Since(t0)
	_, rmErr := c.ctr(ctx, "containers", "rm", id)
	return d, errors.Join(err, rmErr)
}

// StartDetached runs `ctr run -d`, which returns once the task runs. With
// --null-io: without it ctr would leave the container's stdio fifos behind
// in /run/containerd/fifo, without a reader.
func (c *Containerd) StartDetached(ctx context.Context, name string) error {
	_, err := c.ctr(ctx, "run", "-d", "--null-io", c.img.Small, name, "sleep", "3600")
	return err
}

// RemoveAll deletes every task, killing it with SIGKILL first if it runs,
// then every container with its snapshot.
func (c *Containerd) RemoveAll(ctx context.Context) error {
	for _, kind := range []string{"tasks", "containers"} {
		out, err := c.ctr(ctx, kind, "ls", "-q")
		if err != nil {
			return err
		}
		ids := strings.Fields(out)
		if len(ids) == 0 {
			continue
		}
		args := []string{kind, "rm"}
		if kind == "tasks" {
			args = append(args, "-f") // SIGKILL a running task and wait for it
		}
		if _, err := c.ctr(ctx, append(args, ids...)...); err != nil {
			return err
		}
	}
	return nil
}

// Monitors lists the shims of this engine's containerd.
func (c *Containerd) Monitors(ctx context.Context) ([]int, error) {
	return pidsOf(c.shimBin, []string{c.sock})
}

func (c *Containerd) DaemonPID() int { return c.daemon.pid() }

// Restart kills containerd with SIGKILL and starts it again. answer is the
// time until `ctr version` answers, reconnected until `ctr tasks ls`
// reports running tasks running again (the shims survive the daemon), both
// from the start of the new containerd process.
func (c *Containerd) Restart(ctx context.Context, running int) (answer, reconnected time.Duration, err error) {
	if err := c.daemon.stop(syscall.SIGKILL); err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	if answer, err = c.start(ctx); err != nil {
		return 0, 0, err
	}
	err = poll(ctx, readyTimeout, func() error {
		out, err := c.ctr(ctx, "tasks", "ls")
		if err != nil {
			return err
		}
		n := 0
		for _, line := range strings.Split(out, "\n") {
			// TASK PID STATUS
			if f := strings.Fields(line); len(f) == 3 && f[2] == "RUNNING" {
				n++
			}
		}
		if n != running {
			return fmt.Errorf("%d of %d tasks running", n, running)
		}
		return nil
	})
	return answer, time.Since(t0), err
}

// List runs `ctr containers ls`: one ctr process per request, as containerd
// has only a gRPC API.
func (c *Containerd) List(ctx context.Context) error {
	_, err := c.ctr(ctx, "containers", "ls")
	return err
}
