package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Podman drives podman 4 as root the way a user would, with its CLI, and
// lists containers through its REST API (`podman system service`). Its
// storage, run and temporary directories and its configuration are under
// the directory given to Setup (the run root elsewhere in /tmp when that
// path would be too long). Podman also uses fixed host paths: its lock
// segment /dev/shm/libpod_lock, netavark's run directory
// /run/containers/networks and the cgroup libpod_parent of every hierarchy;
// Close removes those that did not exist before Setup. runc keeps a
// container's state in /run/runc/<id> until the container is removed
// (Close removes /run/runc if it made it and it is empty), and
// pulls update the host's blob info cache in /var/lib/containers/cache
// (podman 4.3 has no setting for either; Close removes /var/lib/containers
// if it did not exist before Setup). With a subnet, it also has a CNI
// bridge network of its own for row 8 (podmanNet).
type Podman struct {
	runtime   string // runc, or crun (through a wrapper on hybrid cgroup hosts)
	dir, sock string
	img       Images
	podmanBin string
	conmonBin string
	env       []string // nil until podman's configuration is written
	service   *daemon
	api       *http.Client
	created   []string   // host paths outside dir that are ours to remove
	emptied   []string   // shared directories that did not exist: removed if empty
	net       *podmanNet // nil without a subnet
	subnet    netip.Prefix
	seq       atomic.Int64
}

var (
	_ Engine        = (*Podman)(nil)
	_ NetworkRunner = (*Podman)(nil)
)

// NewPodman returns the podman engine running containers with runtime,
// runc or crun; Setup starts it. With a valid subnet (a /24 that nothing
// else on the host uses while the engine runs), Setup also makes a bridge
// network on it for RunTrueNetworked; the caller holds
// net.ipv4.ip_forward, which the bridge plugin turns on
// (testutil.HoldIPForward).
func NewPodman(runtime string, subnet netip.Prefix) *Podman {
	return &Podman{runtime: runtime, subnet: subnet}
}

func (p *Podman) Name() string { return "podman-" + p.runtime }

// podmanRunFlags are needed on every `podman run` here: runc cannot raise
// the hard RLIMIT_NOFILE (20000) without CAP_SYS_RESOURCE. Every run also
// names its network: `none`, or the engine's own (podman's default bridge
// network would edit the host's firewall and sysctls and leave them so).
var podmanRunFlags = []string{"--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"}

func (p *Podman) Setup(ctx context.Context, dir string, img Images) (err error) {
	if dir == "" {
		return errors.New("no directory")
	}
	if p.dir, err = filepath.Abs(dir); err != nil {
		return err
	}
	p.img = img
	p.sock = filepath.Join(p.dir, "podman.sock")
	if p.podmanBin, err = lookExe("podman"); err != nil {
		return err
	}
	if p.conmonBin, err = lookExe("conmon"); err != nil {
		return err
	}
	p.created = append(missingPaths("/run/containers", "/run/containers/networks", "/dev/shm/libpod_lock", "/var/lib/containers"),
		missingCgroups("libpod_parent")...)
	// runc's default root, where other runc users may keep state.
	p.emptied = missingPaths("/run/runc")
	// The exit command conmon runs when a container exits (`podman
	// container cleanup`) fails on a runroot longer than 50 characters; a
	// container's exit would then go unnoticed for 20 s.
	runroot := p.path("run")
	if len(runroot) > 50 {
		if runroot, err = os.MkdirTemp("", "podman-run-"); err != nil {
			return err
		}
		p.created = append(p.created, runroot)
	}

	if err := os.MkdirAll(filepath.Join(p.dir, "imagetmp"), 0o700); err != nil {
		return err
	}
	runtimePath, err := p.runtimeBinary()
	if err != nil {
		return err
	}
	confs := map[string]string{
		"containers.conf": fmt.Sprintf(`[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = %q
runtime = "bench"
tmp_dir = %q
static_dir = %q
volume_path = %q
image_copy_tmp_dir = %q

[engine.runtimes]
bench = [%q]

[network]
network_config_dir = %q
`, p.path("events.log"), p.path("tmp"), p.path("storage/libpod"), p.path("storage/volumes"),
			p.path("imagetmp"), runtimePath, p.path("networks")),
		"storage.conf": fmt.Sprintf(`[storage]
driver = "overlay"
runroot = %q
graphroot = %q
`, runroot, p.path("storage")),
		"registries.conf": fmt.Sprintf(`[[registry]]
location = %q
insecure = true
`, img.Registry),
	}
	for name, conf := range confs {
		if err := os.WriteFile(p.path(name), []byte(conf), 0o644); err != nil {
			return err
		}
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "CONTAINERS_") || strings.HasPrefix(kv, "CONTAINER_HOST=") ||
			strings.HasPrefix(kv, "CONTAINER_CONNECTION=")
	})
	p.env = append(env, "CONTAINERS_CONF="+p.path("containers.conf"),
		"CONTAINERS_STORAGE_CONF="+p.path("storage.conf"),
		"CONTAINERS_REGISTRIES_CONF="+p.path("registries.conf"))

	p.service, err = startDaemon(ctx, p.env, p.path("service.log"),
		p.podmanBin, "system", "service", "--time=0", "unix://"+p.sock)
	if err != nil {
		return err
	}
	p.api = unixClient(p.sock)
	err = poll(ctx, readyTimeout, func() error {
		if p.service.exited() {
			return nil // reported below
		}
		return p.get(ctx, "/_ping", nil)
	})
	if err == nil && p.service.exited() {
		err = errors.New("exited")
	}
	if err != nil {
		return fmt.Errorf("podman system service not answering: %w\n%s", err, p.service.logTail())
	}
	if p.subnet.IsValid() {
		if p.net, err = newPodmanNet(p.subnet); err != nil {
			return err
		}
		if err := p.net.setup(ctx, p.path("networks"), p.dir); err != nil {
			return err
		}
		return p.net.check(ctx, p)
	}
	return nil
}

// runtimeBinary returns the runtime podman runs. crun 1.8 refuses hybrid
// cgroup hosts (a cgroup2 mount holding a controller beside the v1
// hierarchies): there it runs through a wrapper that hides the cgroup2
// mount in a private mount namespace (peers-on-this-machine.md).
func (p *Podman) runtimeBinary() (string, error) {
	bin, err := lookExe(p.runtime)
	if err != nil || p.runtime != "crun" {
		return bin, err
	}
	if fi, err := os.Stat("/sys/fs/cgroup/unified"); err != nil || !fi.IsDir() {
		return bin, nil
	}
	wrapper := p.path("crun")
	script := fmt.Sprintf("#!/bin/sh\nexec unshare -m --propagation private sh -c 'mount -t tmpfs -o size=1m hide /sys/fs/cgroup/unified && exec %s \"$@\"' crun \"$@\"\n", bin)
	return wrapper, os.WriteFile(wrapper, []byte(script), 0o755)
}

// path returns name under the engine's directory.
func (p *Podman) path(name string) string { return filepath.Join(p.dir, name) }

// podman runs the podman CLI with the engine's configuration; it refuses
// to run before that exists, so as never to act on the host's podman.
func (p *Podman) podman(ctx context.Context, args ...string) (string, error) {
	if p.env == nil {
		return "", errors.New("podman: not set up")
	}
	return run(ctx, p.env, p.podmanBin, args...)
}

// get sends GET path to the REST API and decodes a JSON answer into out
// (unless out is nil).
func (p *Podman) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://podman"+path, nil)
	if err != nil {
		return err
	}
	resp, err := p.api.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

func (p *Podman) Close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	var errs []error
	if p.env != nil {
		errs = append(errs, p.RemoveAll(ctx))
		_, err := p.podman(ctx, "rmi", "-af")
		errs = append(errs, err)
		if p.net != nil {
			_, err := p.podman(ctx, "network", "rm", "-f", p.net.name)
			errs = append(errs, err)
		}
		// Without its configuration files podman would fall back to the
		// host's storage: no podman command may run after this Close.
		p.env = nil
	}
	errs = append(errs, p.service.stop(syscall.SIGTERM))
	if p.api != nil {
		p.api.CloseIdleConnections()
	}
	// conmon, and the `podman container cleanup` it runs when a container
	// exits, may still be finishing. (`podman system reset` is not needed:
	// removing dir removes all podman state, without the risk of reset
	// acting on the host's storage.)
	if p.dir != "" {
		errs = append(errs, waitGone(ctx, p.conmonBin, p.dir), waitGone(ctx, p.podmanBin, p.dir))
	}
	if p.net != nil {
		errs = append(errs, p.net.close(ctx))
		p.net = nil
	}
	errs = append(errs, cleanUp(p.dir, p.created))
	p.created = nil
	for _, d := range p.emptied {
		errs = append(errs, removeIfEmpty(d))
	}
	p.emptied = nil
	return errors.Join(errs...)
}

func (p *Podman) Pull(ctx context.Context, ref string) error {
	_, err := p.podman(ctx, "pull", "--tls-verify=false", ref)
	return err
}

// RemoveImage removes ref with `podman rmi -f` and checks that none of its
// layers stayed in the layer store, so that the next pull is cold.
func (p *Podman) RemoveImage(ctx context.Context, ref string) error {
	out, err := p.podman(ctx, "image", "inspect", "--format", "{{range .RootFS.Layers}}{{println .}}{{end}}", ref)
	if err != nil {
		return err
	}
	if _, err := p.podman(ctx, "rmi", "-f", ref); err != nil {
		return err
	}
	stored, err := p.storedLayers()
	if err != nil {
		return err
	}
	for _, diffID := range strings.Fields(out) {
		if stored[diffID] {
			return fmt.Errorf("podman rmi -f %s left layer %s in the store: the next pull would not be cold", ref, diffID)
		}
	}
	return nil
}

// storedLayers returns the diff IDs of the layers in podman's overlay
// layer store (containers/storage lists them in overlay-layers/layers.json).
func (p *Podman) storedLayers() (map[string]bool, error) {
	b, err := os.ReadFile(p.path("storage/overlay-layers/layers.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var layers []struct {
		DiffDigest string `json:"diff-digest"`
	}
	if err := json.Unmarshal(b, &layers); err != nil {
		return nil, fmt.Errorf("podman layer store: %w", err)
	}
	stored := map[string]bool{}
	for _, l := range layers {
		stored[l.DiffDigest] = true
	}
	return stored, nil
}

// RunTrue runs `podman run --network none IMAGE true` and removes the
// container afterwards with `podman rm`, outside the measurement (`podman
// run --rm` would include the removal).
func (p *Podman) RunTrue(ctx context.Context) (time.Duration, error) {
	return p.runTrueOn(ctx, "none")
}

// RunTrueNetworked is RunTrue on the engine's bridge network: the CNI
// plugins' ADD (a veth, an address from host-local, the bridge plugin's
// NAT chain, the firewall plugin's rules) is on the start path, their DEL
// on the removal's (conmon's `podman container cleanup`, or the rm).
func (p *Podman) RunTrueNetworked(ctx context.Context) (time.Duration, error) {
	if p.net == nil {
		return 0, ErrNotApplicable
	}
	return p.runTrueOn(ctx, p.net.name)
}

func (p *Podman) runTrueOn(ctx context.Context, network string) (time.Duration, error) {
	name := fmt.Sprint("bench-true-", p.seq.Add(1))
	args := append(append([]string{"run", "--name", name, "--network", network}, podmanRunFlags...), p.img.Small, "true")
	t0 := time.Now()
	_, err := p.podman(ctx, args...)
	d := time.Since(t0)
	_, rmErr := p.podman(ctx, "rm", "-f", name)
	return d, errors.Join(err, rmErr)
}

// StartDetached runs `podman run -d`, which returns once the container runs.
func (p *Podman) StartDetached(ctx context.Context, name string) error {
	args := append(append([]string{"run", "-d", "--name", name, "--network", "none"}, podmanRunFlags...), p.img.Small, "sleep", "3600")
	_, err := p.podman(ctx, args...)
	return err
}

func (p *Podman) RemoveAll(ctx context.Context) error {
	_, err := p.podman(ctx, "rm", "-af", "-t", "0")
	return err
}

// Monitors lists the conmon processes of this engine's containers.
func (p *Podman) Monitors(ctx context.Context) ([]int, error) {
	return pidsOf(p.conmonBin, []string{p.dir})
}

// DaemonPID is 0: podman has no daemon (the API service only serves List).
func (p *Podman) DaemonPID() int { return 0 }

func (p *Podman) Restart(ctx context.Context, running int) (answer, reconnected time.Duration, err error) {
	return 0, 0, ErrNotApplicable
}

// List lists all containers through the REST API.
// (read whole, not decoded: see Condenser.List).
func (p *Podman) List(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://podman/v4.0.0/libpod/containers/json?all=true", nil)
	if err != nil {
		return err
	}
	return readAnswer(p.api, req)
}
