package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/moby/sys/mountinfo"
	"github.com/raind/condenser/internal/atomicfile"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/names"
	"github.com/raind/condenser/rootfs"
)

// Droplet drives Droplet, the Raind stack's own runtime
// (github.com/pyxgun/Droplet). Its command line is not the OCI one:
//
//	droplet create ID        reads $RAIND_ROOT_DIR/ID/config.json; prints nothing
//	droplet start ID
//	droplet state ID         prints its state.json: {"status": …, "pid": …, …}
//	droplet kill ID [NAME]   NAME is TERM (the default), KILL, INT, HUP, QUIT,
//	                         USR1, USR2, STOP or CONT; there is no --all
//	droplet delete ID        there is no --force: it refuses a running container
//
// There is no --bundle, --root, --pid-file or --log: everything lives in
// $RAIND_ROOT_DIR/ID (default /etc/raind/container/ID), the init's output
// goes to logs/init.log there, and Droplet mounts the root filesystem itself
// (on root.path) from the annotation io.raind.image.config. A failure is
// reported by Go's log.Fatal: a timestamped line on stderr and exit status 1.
type Droplet struct {
	Binary  string  // droplet, or a path
	RootDir string  // RAIND_ROOT_DIR; empty means Droplet's default
	Monitor Monitor // runs the commands without racing the reaper
}

var _ Driver = (*Droplet)(nil)

const (
	// DropletDefaultRoot is Droplet's RAIND_ROOT_DIR when none is set.
	DropletDefaultRoot = "/etc/raind/container"
	// DropletImageAnnotation carries the overlay Droplet mounts.
	DropletImageAnnotation = "io.raind.image.config"
)

// dropletImage is the value of DropletImageAnnotation; Droplet mounts
// overlay with lowerdir=ImageLayer joined by ":" (top first), so the order
// is overlayfs's.
type dropletImage struct {
	RootfsType string   `json:"rootfsType"`
	ImageLayer []string `json:"imageLayer"`
	UpperDir   string   `json:"upperDir"`
	WorkDir    string   `json:"workDir"`
}

// dropletSignals are the signal names droplet kill understands (any other
// name makes it send nothing and still record the container as stopped).
var dropletSignals = map[syscall.Signal]string{
	syscall.SIGTERM: "TERM", syscall.SIGKILL: "KILL", syscall.SIGINT: "INT",
	syscall.SIGHUP: "HUP", syscall.SIGQUIT: "QUIT", syscall.SIGUSR1: "USR1",
	syscall.SIGUSR2: "USR2", syscall.SIGSTOP: "STOP", syscall.SIGCONT: "CONT",
}

// Create writes the bundle's config.json, with opts.Mounts as the image
// annotation and root.path made absolute, to $RAIND_ROOT_DIR/ID and runs
// droplet create. Droplet writes the init's stdout and stderr both to
// logs/init.log, which is therefore made a link to opts.Stdout (or
// opts.Stderr when there is no Stdout). The pid is the one droplet state
// reports. Terminals and a stdin pipe are not supported yet.
func (d *Droplet) Create(ctx context.Context, opts CreateOptions) (Process, error) {
	pid, err := d.create(ctx, opts)
	return Process{Pid: pid}, err
}

// errDropletStreams refuses what a later step does through Droplet's
// tty.sock.
var errDropletStreams = fmt.Errorf("Droplet: terminals and exec are not supported yet: %w", errdefs.ErrNotImplemented)

func (d *Droplet) create(ctx context.Context, opts CreateOptions) (int, error) {
	switch {
	case opts.Terminal:
		return 0, errDropletStreams
	case opts.Stdin != nil:
		return 0, fmt.Errorf("Droplet: a stdin pipe is not supported yet: %w", errdefs.ErrNotImplemented)
	}
	dir, err := d.containerDir(opts.ID)
	if err != nil {
		return 0, err
	}
	image, err := dropletImageConfig(opts.Mounts)
	if err != nil {
		return 0, err
	}
	config, rootfs, err := dropletConfig(filepath.Join(opts.Bundle, "config.json"), dir, image)
	if err != nil {
		return 0, err
	}
	// Droplet overwrites the state of an existing container without asking.
	if _, err := os.Lstat(filepath.Join(dir, "state.json")); err == nil {
		return 0, fmt.Errorf("%w: droplet container %s", errdefs.ErrAlreadyExists, opts.ID)
	}
	_, err = os.Lstat(dir)
	existed := err == nil
	// undo removes what a failed create leaves: all of dir when it is new,
	// else Droplet's files that would fail a retry (exec.fifo).
	undo := func() {
		if !existed {
			d.removeDir(dir)
			return
		}
		for _, name := range []string{"state.json", "exec.fifo", "config_hash.json", "init.pid"} {
			os.Remove(filepath.Join(dir, name))
		}
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return 0, err
	}
	if err := d.prepare(dir, rootfs, config, opts); err != nil {
		undo()
		return 0, err
	}
	if _, err := d.run(ctx, "create", opts.ID); err != nil {
		undo()
		return 0, err
	}
	st, err := d.State(ctx, opts.ID)
	if err != nil {
		return 0, err
	}
	if st.Pid <= 0 {
		return 0, fmt.Errorf("droplet create: state reports pid %d (status %q)", st.Pid, st.Status)
	}
	return st.Pid, nil
}

// prepare lays out dir for droplet create.
func (d *Droplet) prepare(dir, rootfs string, config []byte, opts CreateOptions) error {
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o700); err != nil {
		return err
	}
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return err
	}
	initLog := filepath.Join(logs, "init.log")
	if err := os.Remove(initLog); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	out := opts.Stdout
	if out == nil {
		out = opts.Stderr
	}
	if out != nil {
		// Opening /proc/PID/fd/N opens the shim's pipe itself.
		if err := os.Symlink(fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), out.Fd()), initLog); err != nil {
			return err
		}
	}
	return atomicfile.WriteFile(filepath.Join(dir, "config.json"), config, 0o600, true)
}

// Exec is not supported yet (droplet exec runs nsenter in the background
// and exposes a terminal on its own socket, which a later step drives).
func (d *Droplet) Exec(context.Context, ExecOptions) (Process, error) {
	return Process{}, errDropletStreams
}

func (d *Droplet) Start(ctx context.Context, id string) error {
	if _, err := d.containerDir(id); err != nil {
		return err
	}
	_, err := d.run(ctx, "start", id)
	return err
}

func (d *Droplet) State(ctx context.Context, id string) (State, error) {
	if _, err := d.containerDir(id); err != nil {
		return State{}, err
	}
	out, err := d.run(ctx, "state", id)
	if err != nil {
		return State{}, err
	}
	var raw struct {
		Status string `json:"status"`
		Pid    int    `json:"pid"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		return State{}, fmt.Errorf("droplet state: %w", err)
	}
	return State{Status: raw.Status, Pid: raw.Pid}, nil
}

// Kill sends sig through droplet kill. Droplet cannot signal every process
// and knows only the signals of dropletSignals. It records the container as
// stopped after any signal, and follows TERM by KILL after 3s.
func (d *Droplet) Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	if _, err := d.containerDir(id); err != nil {
		return err
	}
	if all {
		return fmt.Errorf("%w: droplet kill cannot signal all processes", errdefs.ErrNotImplemented)
	}
	name, ok := dropletSignals[sig]
	if !ok {
		return fmt.Errorf("%w: droplet kill cannot send signal %d (%v)", errdefs.ErrNotImplemented, int(sig), sig)
	}
	_, err := d.run(ctx, "kill", id, name)
	return err
}

// Delete runs droplet delete (after droplet kill KILL when forced and the
// container runs) and removes $RAIND_ROOT_DIR/ID, which Droplet leaves,
// unmounting first whatever is still mounted there or on root.path.
func (d *Droplet) Delete(ctx context.Context, id, bundle string, force bool) error {
	dir, err := d.containerDir(id)
	if err != nil {
		return err
	}
	_, err = d.run(ctx, "delete", id)
	if err != nil && force && errors.Is(err, errdefs.ErrConflict) {
		_, kerr := d.run(ctx, "kill", id, "KILL")
		if kerr != nil && !errors.Is(kerr, errdefs.ErrConflict) && !errors.Is(kerr, errdefs.ErrNotFound) {
			return kerr
		}
		_, err = d.run(ctx, "delete", id)
	}
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return err
	}
	return d.removeDir(dir)
}

func (d *Droplet) root() string {
	if d.RootDir != "" {
		return d.RootDir
	}
	return DropletDefaultRoot
}

// containerDir is $RAIND_ROOT_DIR/id, for a container id (names.ValidID):
// it names one directory there and cannot pass for a flag.
func (d *Droplet) containerDir(id string) (string, error) {
	if err := names.ValidID(id); err != nil {
		return "", fmt.Errorf("droplet: %w", err)
	}
	return filepath.Join(d.root(), id), nil
}

// removeDir removes dir once nothing is mounted in it or on the rootfs its
// config.json names, so that removing it cannot reach into a mount.
func (d *Droplet) removeDir(dir string) error {
	var rootfs string
	if b, err := os.ReadFile(filepath.Join(dir, "config.json")); err == nil {
		var s specs.Spec
		if json.Unmarshal(b, &s) == nil && s.Root != nil {
			rootfs = s.Root.Path
		}
	}
	if err := unmountUnder(dir, rootfs); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// run runs one droplet command with RAIND_ROOT_DIR set and returns its
// stdout; on failure Droplet's own message is in the error.
func (d *Droplet) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.Command(d.Binary, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	for _, kv := range CleanEnv() {
		if !strings.HasPrefix(kv, "RAIND_ROOT_DIR=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "RAIND_ROOT_DIR="+d.root())
	status, err := runMonitored(ctx, d.Monitor, cmd)
	if err != nil {
		return nil, fmt.Errorf("droplet %s: %w", args[0], err)
	}
	if status != 0 {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		msg := dropletMessage(errb.String())
		if msg == "" {
			msg = strings.TrimSpace(out.String())
		}
		return nil, dropletClassify(args[0], fmt.Errorf("droplet %s failed (exit status %d): %s", args[0], status, msg))
	}
	return out.Bytes(), nil
}

// logPrefix is the timestamp log.Fatal puts before Droplet's error.
var logPrefix = regexp.MustCompile(`^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}(\.\d+)? `)

// dropletMessage is the error Droplet logged last (from its timestamped line
// on), or all of stderr when it logged none (a usage error).
func dropletMessage(stderr string) string {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if loc := logPrefix.FindStringIndex(lines[i]); loc != nil {
			lines[i] = lines[i][loc[1]:]
			return strings.TrimSpace(strings.Join(lines[i:], "\n"))
		}
	}
	return strings.TrimSpace(stderr)
}

// dropletClassify adds Droplet's own wordings to classifyCommand's.
func dropletClassify(cmd string, err error) error {
	m := err.Error()
	switch {
	case strings.Contains(m, "state.json: no such file"), strings.Contains(m, "config.json: no such file"):
		return fmt.Errorf("%w: %w", errdefs.ErrNotFound, err)
	case strings.Contains(m, "is not stopped"), strings.Contains(m, "is not created"):
		return fmt.Errorf("%w: %w", errdefs.ErrConflict, err)
	}
	return classifyCommand(cmd, err)
}

// dropletImageConfig turns the root filesystem mounts into the image
// annotation: Droplet can only mount one overlay with lower, upper and work
// dirs. No mounts gives nil (the bundle must then carry the annotation).
func dropletImageConfig(ms []Mount) (*dropletImage, error) {
	if len(ms) == 0 {
		return nil, nil
	}
	invalid := func(format string, a ...any) error {
		return fmt.Errorf("%w: droplet: "+format, append([]any{errdefs.ErrInvalidArgument}, a...)...)
	}
	if len(ms) != 1 || ms[0].Type != "overlay" {
		types := make([]string, len(ms))
		for i, m := range ms {
			types[i] = m.Type
		}
		return nil, invalid("the root filesystem must be one overlay mount, not %q", types)
	}
	img := &dropletImage{RootfsType: "overlay"}
	for _, o := range ms[0].Options {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "lowerdir":
			img.ImageLayer = strings.Split(v, ":")
		case "upperdir":
			img.UpperDir = v
		case "workdir":
			img.WorkDir = v
		case "rw":
		default:
			return nil, invalid("cannot pass overlay option %q", o)
		}
	}
	dirs := append([]string{img.UpperDir, img.WorkDir}, img.ImageLayer...)
	if len(img.ImageLayer) == 0 || slices.Contains(dirs, "") {
		return nil, invalid("overlay needs lowerdir, upperdir and workdir, got %q", ms[0].Options)
	}
	for _, p := range dirs {
		if strings.Contains(p, ",") {
			return nil, invalid("overlay directory %q has a comma", p)
		}
	}
	return img, nil
}

// dropletConfig returns the bundle's config.json (at path) for dir: with
// image as its annotation and root.path absolute (a relative one is taken
// from dir, Droplet's bundle), all else as it was, fields unknown to the
// OCI spec included. It also returns root.path.
func dropletConfig(path, dir string, image *dropletImage) ([]byte, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("droplet create: bundle: %w", err)
	}
	var spec specs.Spec
	var raw map[string]json.RawMessage
	if err = json.Unmarshal(b, &spec); err == nil {
		err = json.Unmarshal(b, &raw)
	}
	if err != nil {
		return nil, "", fmt.Errorf("%w: droplet create: %s: %w", errdefs.ErrInvalidArgument, path, err)
	}
	if spec.Root == nil || spec.Root.Path == "" {
		return nil, "", fmt.Errorf("%w: droplet create: %s has no root.path", errdefs.ErrInvalidArgument, path)
	}
	root := *spec.Root
	if !filepath.IsAbs(root.Path) {
		root.Path = filepath.Join(dir, root.Path)
	}
	ann := map[string]string{}
	for k, v := range spec.Annotations {
		ann[k] = v
	}
	if image != nil {
		var v bytes.Buffer
		enc := json.NewEncoder(&v)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(image); err != nil {
			return nil, "", err
		}
		ann[DropletImageAnnotation] = strings.TrimSuffix(v.String(), "\n")
	} else if ann[DropletImageAnnotation] == "" {
		return nil, "", fmt.Errorf("%w: droplet create: no overlay mount and no %s annotation", errdefs.ErrInvalidArgument, DropletImageAnnotation)
	}
	if raw["root"], err = json.Marshal(root); err != nil {
		return nil, "", err
	}
	if raw["annotations"], err = json.Marshal(ann); err != nil {
		return nil, "", err
	}
	out, err := json.MarshalIndent(raw, "", "\t")
	return out, root.Path, err
}

// unmountUnder unmounts, innermost first, every mount below dir and one on
// rootfs. It fails when the mount table cannot be read.
func unmountUnder(dir, root string) error {
	paths := []string{dir, root}
	for i, p := range paths {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			paths[i] = r
		}
	}
	mounts, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return !strings.HasPrefix(m.Mountpoint, paths[0]+"/") && (root == "" || m.Mountpoint != paths[1]), false
	})
	if err != nil {
		return fmt.Errorf("droplet: refusing to remove %s: %w", dir, err)
	}
	targets := make([]string, len(mounts))
	for i, m := range mounts {
		targets[i] = m.Mountpoint
	}
	sort.Slice(targets, func(i, j int) bool { return len(targets[i]) > len(targets[j]) })
	for _, t := range targets {
		if err := rootfs.UnmountAll(t); err != nil {
			return err
		}
	}
	return nil
}
