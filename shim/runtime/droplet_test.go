package runtime

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/names"
	"github.com/raind/condenser/internal/testutil"
	"github.com/raind/condenser/shim/reaper"
)

func init() { startWait = 300 * time.Millisecond }

// execMonitor is a Monitor for tests: plain exec.Cmd Start and Wait.
type execMonitor struct{}

func (execMonitor) Start(cmd *exec.Cmd) (<-chan reaper.Exit, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return make(chan reaper.Exit), nil
}

func (execMonitor) Wait(cmd *exec.Cmd, _ <-chan reaper.Exit) (int, error) {
	err := cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return -1, err
	}
	return 0, nil
}

// testdata/fake-droplet.sh behaves like droplet's
// create/start/state/kill/delete on $RAIND_ROOT_DIR/ID/state.json, logs
// "RAIND_ROOT_DIR=… ARGS" to @DIR@/calls, and fails like log.Fatal with the
// text of @DIR@/fail-CMD when that file exists. The shim's tests use it too.
const fakeDropletScript = "testdata/fake-droplet.sh"

type fakeDroplet struct {
	dir    string // the script, its calls and failures
	root   string // RAIND_ROOT_DIR
	bundle string // the supervisor's bundle
	fixed  string // where Droplet's fixed paths are: log/, cgroup/, etc/
	pid    int    // a real process the tests make a container's init
	d      *Droplet
}

func newFakeDroplet(t *testing.T) *fakeDroplet {
	t.Helper()
	testutil.RequireBinary(t, "jq") // the fake droplet needs it
	// A short root: a socket's path there (ROOT/ID/exec_tty.sock) must
	// fit in sun_path, for Droplet too.
	root, err := os.MkdirTemp("", "drt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	f := &fakeDroplet{dir: t.TempDir(), root: root, bundle: t.TempDir(), fixed: t.TempDir()}
	bin := filepath.Join(f.dir, "droplet")
	script, err := os.ReadFile(fakeDropletScript)
	if err != nil {
		t.Fatal(err)
	}
	helper, err := os.Executable() // TestMain: the tty shims
	if err != nil {
		t.Fatal(err)
	}
	r := strings.NewReplacer("@DIR@", f.dir, "@HELPER@", helper, "@AUDIT@", filepath.Join(f.fixed, "log"),
		"@CGROUP@", filepath.Join(f.fixed, "cgroup"), "@ETC@", filepath.Join(f.fixed, "etc"))
	if err := os.WriteFile(bin, []byte(r.Replace(string(script))), 0o755); err != nil {
		t.Fatal(err)
	}
	f.d = &Droplet{Binary: bin, RootDir: f.root, Monitor: execMonitor{},
		auditDir: filepath.Join(f.fixed, "log"), cgroupDir: filepath.Join(f.fixed, "cgroup"), etcRoot: filepath.Join(f.fixed, "etc"), v1: -1}
	sleep := exec.Command("sleep", "1000")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	f.pid = sleep.Process.Pid
	go sleep.Wait()
	os.WriteFile(filepath.Join(f.dir, "inits"), []byte(strconv.Itoa(f.pid)+"\n"), 0o644)
	t.Cleanup(func() {
		// Every init the fake started, and the test's process.
		b, _ := os.ReadFile(filepath.Join(f.dir, "inits"))
		for _, p := range strings.Fields(string(b)) {
			if pid, _ := strconv.Atoi(p); pid > 0 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	return f
}

// calls returns the commands run since the last call, without the
// RAIND_ROOT_DIR prefix, which must be root's.
func (f *fakeDroplet) calls(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.dir, "calls"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(f.dir, "calls"))
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		rest, ok := strings.CutPrefix(l, "RAIND_ROOT_DIR="+f.root+" ")
		if !ok {
			t.Errorf("call %q: want RAIND_ROOT_DIR=%s", l, f.root)
		}
		out = append(out, rest)
	}
	return out
}

func (f *fakeDroplet) fail(t *testing.T, cmd, msg string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(f.dir, "fail-"+cmd), []byte(msg), 0o644); err != nil {
		t.Fatal(err)
	}
}

// setState makes id a Droplet container in status with pid (its
// config.json, and its fifo when created).
func (f *fakeDroplet) setState(t *testing.T, id, status string, pid int) {
	t.Helper()
	dir := filepath.Join(f.root, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"root":{"path":"`+dir+`/rootfs"}}`), 0o600)
	if status == "created" {
		// The fifo, with a reader standing for the init's (which the
		// test's process is not).
		fifo := filepath.Join(dir, "exec.fifo")
		unix.Mkfifo(fifo, 0o600)
		if fd, err := unix.Open(fifo, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err == nil {
			t.Cleanup(func() { unix.Close(fd) })
		}
	}
	st := map[string]any{"ociVersion": "1.2.0", "id": id, "status": status, "pid": pid, "shimPid": 0,
		"rootfs": dir + "/rootfs", "bundle": dir, "annotations": map[string]string{}}
	b, _ := json.MarshalIndent(st, "", "    ")
	if err := os.WriteFile(filepath.Join(dir, "state.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeBundle writes config.json into the bundle.
func (f *fakeDroplet) writeBundle(t *testing.T, config string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(f.bundle, "config.json"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
}

const testBundle = `{
	"ociVersion": "1.2.0",
	"process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["/bin/sh", "-c", "echo hi"],
		"env": ["PATH=/usr/bin:/bin"], "cwd": "/"},
	"root": {"path": "rootfs", "readonly": false},
	"hostname": "c1",
	"mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
	"hooks": {"createRuntime": [{"path": "/bin/true"}], "stopContainer": [{"path": "/bin/true"}]},
	"linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}], "seccomp": {"defaultAction": "SCMP_ACT_ALLOW"}},
	"annotations": {"org.example.keep": "yes", "io.raind.net.config": "{\"hostInterface\":\"eth0\",\"bridgeInterface\":\"raind0\",\"interface\":{\"name\":\"rd_test0\"}}"},
	"x-unknown": {"kept": [1, 2, 3]}
}`

func overlay(opts ...string) []Mount {
	return []Mount{{Type: "overlay", Source: "overlay", Options: opts}}
}

// testID is the container the tests drive: an id as the daemon makes them.
var testID = names.NewID()

var testOverlay = overlay("lowerdir=/layers/top:/layers/mid:/layers/base", "upperdir=/snap/c1/upper", "workdir=/snap/c1/work")

func TestDropletCommandLines(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		status  string // of testID beforehand; "" for none
		do      func(d *Droplet, bundle string) error
		want    []string
		wantErr error
		gone    bool // no $RAIND_ROOT_DIR/testID afterwards
	}{
		{name: "create", do: func(d *Droplet, b string) error {
			p, err := d.Create(ctx, CreateOptions{ID: testID, Bundle: b, Mounts: testOverlay})
			if err == nil && p.Pid <= 0 {
				return errors.New("no pid")
			}
			return err
		}, want: []string{"create " + testID, "state " + testID}},
		{name: "start", status: "created", do: func(d *Droplet, _ string) error { return d.Start(ctx, testID) },
			want: []string{"start " + testID}},
		{name: "start running", status: "running", do: func(d *Droplet, _ string) error { return d.Start(ctx, testID) },
			wantErr: errdefs.ErrConflict}, // Droplet would panic: not run
		{name: "state", status: "running", do: func(d *Droplet, _ string) error {
			st, err := d.State(ctx, testID)
			if err == nil && (st.Status != "running" || st.Pid <= 0) {
				return errors.New("wrong state")
			}
			return err
		}, want: []string{"state " + testID}},
		{name: "state missing", do: func(d *Droplet, _ string) error { _, err := d.State(ctx, testID); return err },
			want: []string{"state " + testID}, wantErr: errdefs.ErrNotFound, gone: true},
		{name: "kill TERM", status: "running", do: func(d *Droplet, _ string) error { return d.Kill(ctx, testID, syscall.SIGTERM, false) },
			want: []string{"kill " + testID + " TERM"}},
		{name: "kill KILL", status: "running", do: func(d *Droplet, _ string) error { return d.Kill(ctx, testID, syscall.SIGKILL, false) },
			want: []string{"kill " + testID + " KILL"}},
		{name: "kill USR1", status: "running", do: func(d *Droplet, _ string) error { return d.Kill(ctx, testID, syscall.SIGUSR1, false) },
			want: []string{"kill " + testID + " USR1"}},
		{name: "kill all", status: "running", do: func(d *Droplet, _ string) error { return d.Kill(ctx, testID, syscall.SIGKILL, true) },
			wantErr: errdefs.ErrNotImplemented},
		{name: "kill unnamed signal", status: "running", do: func(d *Droplet, _ string) error { return d.Kill(ctx, testID, syscall.SIGWINCH, false) },
			wantErr: errdefs.ErrNotImplemented},
		{name: "kill created", status: "created", do: func(d *Droplet, _ string) error { return d.Kill(ctx, testID, syscall.SIGTERM, false) },
			want: []string{"kill " + testID + " TERM"}, wantErr: errdefs.ErrConflict},
		{name: "delete stopped", status: "stopped", do: func(d *Droplet, b string) error { return d.Delete(ctx, testID, b, false) },
			want: []string{"delete " + testID}, gone: true},
		{name: "delete created", status: "created", do: func(d *Droplet, b string) error { return d.Delete(ctx, testID, b, true) },
			want: []string{"delete " + testID}, gone: true},
		{name: "delete running", status: "running", do: func(d *Droplet, b string) error { return d.Delete(ctx, testID, b, false) },
			want: []string{"delete " + testID}, wantErr: errdefs.ErrConflict},
		{name: "delete running forced", status: "running", do: func(d *Droplet, b string) error { return d.Delete(ctx, testID, b, true) },
			want: []string{"delete " + testID, "kill " + testID + " KILL", "delete " + testID}, gone: true},
		{name: "delete missing", do: func(d *Droplet, b string) error { return d.Delete(ctx, testID, b, true) },
			gone: true}, // no directory: nothing to ask Droplet
		{name: "bad id", do: func(d *Droplet, b string) error { return d.Delete(ctx, "../c1", b, true) },
			wantErr: errdefs.ErrInvalidArgument, gone: true},
		{name: "flag-like id", do: func(d *Droplet, _ string) error { return d.Start(ctx, "-t") },
			wantErr: errdefs.ErrInvalidArgument, gone: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeDroplet(t)
			f.writeBundle(t, testBundle)
			if tt.status != "" {
				f.setState(t, testID, tt.status, f.pid)
			}
			err := tt.do(f.d, f.bundle)
			if tt.wantErr == nil && err != nil {
				t.Fatalf("error: %v", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if got := f.calls(t); !slices.Equal(got, tt.want) {
				t.Errorf("commands %q, want %q", got, tt.want)
			}
			_, serr := os.Stat(filepath.Join(f.root, testID))
			if gone := errors.Is(serr, os.ErrNotExist); gone != tt.gone {
				t.Errorf("container dir removed: %v, want %v", gone, tt.gone)
			}
		})
	}
}

func TestDropletRootDirEnv(t *testing.T) {
	t.Setenv("RAIND_ROOT_DIR", "/inherited")
	f := newFakeDroplet(t)
	f.d.RootDir = ""
	f.root = DropletDefaultRoot
	id := names.NewID() // no such container
	f.d.State(context.Background(), id)
	if got, want := f.calls(t), []string{"state " + id}; !slices.Equal(got, want) {
		t.Errorf("commands %q, want %q", got, want)
	}
}

func TestDropletCreateBundle(t *testing.T) {
	for _, tt := range []struct {
		name, rootPath string
		want           func(f *fakeDroplet) string
	}{
		{"relative root", "rootfs", func(f *fakeDroplet) string { return filepath.Join(f.root, testID, "rootfs") }},
		{"absolute root", "@ABS@", func(f *fakeDroplet) string { return filepath.Join(f.bundle, "merged") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeDroplet(t)
			want := tt.want(f)
			f.writeBundle(t, strings.Replace(testBundle, `"path": "rootfs"`, `"path": "`+strings.ReplaceAll(tt.rootPath, "@ABS@", want)+`"`, 1))
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			p, err := f.d.Create(context.Background(), CreateOptions{ID: testID, Bundle: f.bundle, Mounts: testOverlay, Stdout: w, Stderr: w})
			w.Close()
			if err != nil {
				t.Fatal(err)
			}
			defer f.d.Delete(context.Background(), testID, f.bundle, true)
			if p.Pid <= 0 {
				t.Errorf("pid %d", p.Pid)
			}
			// The init's output (logs/init.log) reaches opts.Stdout.
			if out, _ := bufio.NewReader(r).ReadString('\n'); out != "hello from init\n" {
				t.Errorf("container output %q", out)
			}

			path := filepath.Join(f.root, testID, "config.json")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
				t.Errorf("config.json mode %v", fi.Mode())
			}
			var got, orig map[string]any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			ob, _ := os.ReadFile(filepath.Join(f.bundle, "config.json"))
			json.Unmarshal(ob, &orig)

			ann := got["annotations"].(map[string]any)
			const wantImage = `{"rootfsType":"overlay","imageLayer":["/layers/top","/layers/mid","/layers/base"],"upperDir":"/snap/c1/upper","workDir":"/snap/c1/work"}`
			if ann[DropletImageAnnotation] != wantImage {
				t.Errorf("image annotation\n got %v\nwant %s", ann[DropletImageAnnotation], wantImage)
			}
			delete(ann, DropletImageAnnotation)
			if !reflect.DeepEqual(ann, orig["annotations"]) {
				t.Errorf("other annotations %v, want %v", ann, orig["annotations"])
			}
			if root := got["root"].(map[string]any); root["path"] != want || root["readonly"] != nil && root["readonly"] != false {
				t.Errorf("root %v, want path %s", root, want)
			}
			if fi, err := os.Stat(want); err != nil || !fi.IsDir() {
				t.Errorf("rootfs mount point: %v", err)
			}
			// Droplet's subset: no mounts of its own, seccomp and limits.
			if ms := got["mounts"].([]any); len(ms) != 0 {
				t.Errorf("mounts %v", ms)
			}
			linux := got["linux"].(map[string]any)
			if linux["seccomp"] == nil || linux["resources"] == nil {
				t.Errorf("linux %v", linux)
			}
			for k, v := range orig {
				if !slices.Contains([]string{"annotations", "root", "mounts", "process", "linux"}, k) && !reflect.DeepEqual(got[k], v) {
					t.Errorf("%s changed: %v, want %v", k, got[k], v)
				}
			}
			if len(got) != len(orig) {
				t.Errorf("keys %d, want %d", len(got), len(orig))
			}
			ents, _ := os.ReadDir(filepath.Join(f.root, testID))
			for _, e := range ents {
				if strings.Contains(e.Name(), ".tmp-") {
					t.Errorf("temporary file %s left", e.Name())
				}
			}
		})
	}
}

func TestDropletCreateAnnotatedBundle(t *testing.T) {
	f := newFakeDroplet(t)
	const img = `{"rootfsType":"overlay","imageLayer":["/x"],"upperDir":"/u","workDir":"/w"}`
	var spec map[string]any
	json.Unmarshal([]byte(testBundle), &spec)
	spec["annotations"].(map[string]any)[DropletImageAnnotation] = img
	b, _ := json.Marshal(spec)
	f.writeBundle(t, string(b))
	if _, err := f.d.Create(context.Background(), CreateOptions{ID: testID, Bundle: f.bundle}); err != nil {
		t.Fatal(err)
	}
	var got struct{ Annotations map[string]string }
	out, _ := os.ReadFile(filepath.Join(f.root, testID, "config.json"))
	json.Unmarshal(out, &got)
	if got.Annotations[DropletImageAnnotation] != img {
		t.Errorf("annotation %q, want %q", got.Annotations[DropletImageAnnotation], img)
	}
}

func TestDropletCreateRejectsMounts(t *testing.T) {
	bind := Mount{Type: "bind", Source: "/copy/c1", Options: []string{"rbind", "rw"}}
	for _, tt := range []struct {
		name   string
		mounts []Mount
	}{
		{"none", nil},
		{"bind", []Mount{bind}},
		{"overlay and bind", append(slices.Clone(testOverlay), bind)},
		{"two overlays", append(slices.Clone(testOverlay), testOverlay...)},
		{"tmpfs", []Mount{{Type: "tmpfs", Source: "tmpfs"}}},
		{"no upperdir", overlay("lowerdir=/a:/b", "workdir=/w")},
		{"no workdir", overlay("lowerdir=/a", "upperdir=/u")},
		{"no lowerdir", overlay("upperdir=/u", "workdir=/w")},
		{"empty layer", overlay("lowerdir=/a::/b", "upperdir=/u", "workdir=/w")},
		{"read-only", overlay("lowerdir=/a", "upperdir=/u", "workdir=/w", "ro")},
		{"other option", overlay("lowerdir=/a", "upperdir=/u", "workdir=/w", "index=off")},
		{"comma", overlay("lowerdir=/a,b", "upperdir=/u", "workdir=/w")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeDroplet(t)
			f.writeBundle(t, testBundle)
			_, err := f.d.Create(context.Background(), CreateOptions{ID: testID, Bundle: f.bundle, Mounts: tt.mounts})
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error %v, want invalid argument", err)
			}
			if got := f.calls(t); got != nil {
				t.Errorf("ran %q", got)
			}
			if _, err := os.Stat(filepath.Join(f.root, testID)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("container dir written: %v", err)
			}
		})
	}
}

func TestDropletErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("create fails", func(t *testing.T) {
		f := newFakeDroplet(t)
		f.writeBundle(t, testBundle)
		f.fail(t, "create", "hook createRuntime failed: exit status 2")
		_, err := f.d.Create(ctx, CreateOptions{ID: testID, Bundle: f.bundle, Mounts: testOverlay})
		if err == nil || !strings.HasSuffix(err.Error(), "droplet create failed (exit status 1): hook createRuntime failed: exit status 2") {
			t.Fatalf("error %v", err)
		}
		if _, err := os.Stat(filepath.Join(f.root, testID)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("container dir left: %v", err)
		}
	})
	t.Run("create fails in an existing dir", func(t *testing.T) {
		f := newFakeDroplet(t)
		f.writeBundle(t, testBundle)
		dir := filepath.Join(f.root, testID)
		os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
		os.WriteFile(filepath.Join(dir, "etc", "hosts"), []byte("127.0.0.1 localhost\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "exec.fifo"), nil, 0o600) // left by an earlier attempt
		f.fail(t, "create", "setup network failed")
		if _, err := f.d.Create(ctx, CreateOptions{ID: testID, Bundle: f.bundle, Mounts: testOverlay}); err == nil {
			t.Fatal("no error")
		}
		if _, err := os.Stat(filepath.Join(dir, "etc", "hosts")); err != nil {
			t.Errorf("etc/hosts: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "exec.fifo")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("exec.fifo left: %v", err)
		}
	})
	t.Run("start fails", func(t *testing.T) {
		f := newFakeDroplet(t)
		f.setState(t, testID, "stopped", 0)
		err := f.d.Start(ctx, testID)
		if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "container "+testID+" is stopped, not created") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("state fails", func(t *testing.T) {
		f := newFakeDroplet(t)
		f.setState(t, testID, "running", 1)
		f.fail(t, "state", "invalid status: \"bogus\"")
		_, err := f.d.State(ctx, testID)
		if err == nil || !strings.Contains(err.Error(), `droplet state failed (exit status 1): invalid status: "bogus"`) {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("usage", func(t *testing.T) {
		f := newFakeDroplet(t)
		_, err := f.d.run(ctx, "frobnicate", testID)
		if err == nil || !strings.Contains(err.Error(), "exit status 3): Incorrect Usage: no command frobnicate") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("exists", func(t *testing.T) {
		f := newFakeDroplet(t)
		f.writeBundle(t, testBundle)
		f.setState(t, testID, "running", 7)
		_, err := f.d.Create(ctx, CreateOptions{ID: testID, Bundle: f.bundle, Mounts: testOverlay})
		if !errors.Is(err, errdefs.ErrAlreadyExists) {
			t.Fatalf("error %v", err)
		}
		if got := f.calls(t); got != nil {
			t.Errorf("ran %q", got)
		}
	})
	t.Run("stdin without a terminal", func(t *testing.T) {
		f := newFakeDroplet(t)
		f.writeBundle(t, testBundle)
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		defer w.Close()
		// Droplet's init reads /dev/null: only a terminal gives it input.
		_, err = f.d.Create(ctx, CreateOptions{ID: testID, Bundle: f.bundle, Mounts: testOverlay, Stdin: r})
		if !errors.Is(err, errdefs.ErrNotImplemented) || !strings.HasPrefix(err.Error(), "droplet: ") {
			t.Errorf("stdin: %v, want Droplet's not implemented", err)
		}
		if got := f.calls(t); got != nil {
			t.Errorf("ran %q", got)
		}
	})
	t.Run("canceled", func(t *testing.T) {
		f := newFakeDroplet(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		f.setState(t, testID, "running", 1)
		f.fail(t, "kill", "interrupted")
		if err := f.d.Kill(cctx, testID, syscall.SIGTERM, false); !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v", err)
		}
	})
}

func TestDropletMessage(t *testing.T) {
	for in, want := range map[string]string{
		"2026/01/28 16:57:24 container: c1 not running.\n":               "container: c1 not running.",
		"noise\n2026/01/28 16:57:24 hook failed:\nline two\n":            "hook failed:\nline two",
		"Incorrect Usage: flag provided but not defined: -x\n\nUSAGE:\n": "Incorrect Usage: flag provided but not defined: -x\n\nUSAGE:",
		"": "",
	} {
		if got := dropletMessage(in); got != want {
			t.Errorf("dropletMessage(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDropletDeleteUnmounts checks that Delete unmounts what is mounted in
// the container's directory before removing it, instead of removing files
// through the mount.
func TestDropletDeleteUnmounts(t *testing.T) {
	f := newFakeDroplet(t)
	f.setState(t, testID, "stopped", 0)
	precious := t.TempDir()
	if err := os.WriteFile(filepath.Join(precious, "keep"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(f.root, testID, "rootfs")
	os.MkdirAll(rootfs, 0o755)
	if err := unix.Mount(precious, rootfs, "", unix.MS_BIND, ""); err != nil {
		t.Skipf("cannot bind mount: %v", err)
	}
	defer unix.Unmount(rootfs, unix.MNT_DETACH)
	if err := f.d.Delete(context.Background(), testID, f.bundle, false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(precious, "keep")); err != nil {
		t.Errorf("removed through the mount: %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.root, testID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("container dir left: %v", err)
	}
}

// withBundle returns testBundle changed by edit (on its decoded JSON).
func withBundle(t *testing.T, edit func(spec map[string]any)) string {
	t.Helper()
	var spec map[string]any
	if err := json.Unmarshal([]byte(testBundle), &spec); err != nil {
		t.Fatal(err)
	}
	edit(spec)
	b, _ := json.Marshal(spec)
	return string(b)
}

// TestDropletLayout checks what Create provides that Droplet expects of its
// caller: the audit log directory, the cgroup directory, etc/ (copied from
// the spec's binds, in the container's directory and where Droplet's init
// reads it), and Droplet's subset of the spec.
func TestDropletLayout(t *testing.T) {
	f := newFakeDroplet(t)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "hosts"), []byte("10.166.0.2 c1\n"), 0o644)
	data := t.TempDir()
	f.writeBundle(t, withBundle(t, func(spec map[string]any) {
		spec["mounts"] = []any{
			map[string]any{"destination": "/proc", "type": "proc", "source": "proc"},
			map[string]any{"destination": "/dev/shm", "type": "tmpfs", "source": "shm"},
			map[string]any{"destination": "/etc/hosts", "type": "bind", "source": filepath.Join(src, "hosts"), "options": []string{"rbind", "ro", "rprivate"}},
			map[string]any{"destination": "/data", "type": "bind", "source": data, "options": []string{"rbind", "rw", "rprivate"}},
		}
		spec["linux"].(map[string]any)["seccomp"] = map[string]any{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []any{
			map[string]any{"names": []string{"clone3", "ptrace", "mount"}, "action": "SCMP_ACT_ERRNO"},
		}}
		spec["process"].(map[string]any)["apparmorProfile"] = "condenser-not-loaded"
	}))
	ctx := context.Background()
	if _, err := f.d.Create(ctx, CreateOptions{ID: testID, Bundle: f.bundle, Mounts: testOverlay}); err != nil {
		t.Fatal(err)
	}
	defer f.d.Delete(ctx, testID, f.bundle, true)
	for _, p := range []string{filepath.Join(f.fixed, "log"), filepath.Join(f.fixed, "cgroup", testID)} {
		if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
			t.Errorf("%s: %v", p, err)
		}
	}
	for _, etc := range []string{filepath.Join(f.root, testID, "etc"), filepath.Join(f.fixed, "etc", testID, "etc")} {
		for name, want := range map[string]string{"hosts": "10.166.0.2 c1\n", "hostname": "c1\n"} {
			if b, err := os.ReadFile(filepath.Join(etc, name)); err != nil || string(b) != want {
				t.Errorf("%s/%s: %q %v, want %q", etc, name, b, err, want)
			}
		}
	}
	// Written by the fake as Droplet does: the limits it was given.
	if b, _ := os.ReadFile(filepath.Join(f.fixed, "cgroup", testID, "memory.max")); strings.TrimSpace(string(b)) == "0" || len(b) == 0 {
		t.Errorf("memory.max %q: limits not set", b)
	}
	var got struct {
		Mounts  []map[string]any
		Process map[string]any
		Linux   struct {
			Seccomp         map[string]any
			ApparmorProfile *string
		}
	}
	b, _ := os.ReadFile(filepath.Join(f.root, testID, "config.json"))
	json.Unmarshal(b, &got)
	wantMounts := []map[string]any{{"destination": "/data", "type": "bind", "source": data, "options": []any{"rbind", "rprivate"}}}
	if !reflect.DeepEqual(got.Mounts, wantMounts) {
		t.Errorf("mounts %v, want %v", got.Mounts, wantMounts)
	}
	wantSeccomp := map[string]any{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []any{map[string]any{"names": []any{"ptrace", "mount"}, "action": "SCMP_ACT_ERRNO"}}}
	if !reflect.DeepEqual(got.Linux.Seccomp, wantSeccomp) {
		t.Errorf("seccomp %v, want %v", got.Linux.Seccomp, wantSeccomp)
	}
	if got.Linux.ApparmorProfile != nil {
		t.Errorf("apparmorProfile %q for a profile not loaded", *got.Linux.ApparmorProfile)
	}
	// And the fake's init accepts it.
	if err := f.d.Start(ctx, testID); err != nil {
		t.Fatalf("start: %v", err)
	}
	if st, err := f.d.State(ctx, testID); err != nil || st.Status != "running" {
		t.Errorf("state %+v %v", st, err)
	}
}

// TestDropletRefusesSpec: what Droplet cannot do is refused before it runs,
// as an invalid argument, and nothing is left.
func TestDropletRefusesSpec(t *testing.T) {
	bind := func(src, dst string, opts ...string) map[string]any {
		return map[string]any{"destination": dst, "type": "bind", "source": src, "options": opts}
	}
	tmp := t.TempDir()
	for _, tt := range []struct {
		name string
		edit func(spec map[string]any)
	}{
		{"read-only bind", func(s map[string]any) { s["mounts"] = []any{bind(tmp, "/data", "rbind", "ro")} }},
		{"source under /run", func(s map[string]any) { s["mounts"] = []any{bind("/run/x", "/data", "rbind")} }},
		{"source under /etc/raind", func(s map[string]any) { s["mounts"] = []any{bind("/etc/raind/container", "/data", "rbind")} }},
		{"destination /run", func(s map[string]any) { s["mounts"] = []any{bind(tmp, "/run/x", "rbind")} }},
		{"tmpfs", func(s map[string]any) {
			s["mounts"] = []any{map[string]any{"destination": "/data", "type": "tmpfs", "source": "tmpfs"}}
		}},
		{"no args", func(s map[string]any) { s["process"].(map[string]any)["args"] = []string{} }},
		{"env without =", func(s map[string]any) { s["process"].(map[string]any)["env"] = []string{"PATH=/bin", "FOO"} }},
		{"no network annotation", func(s map[string]any) { delete(s["annotations"].(map[string]any), DropletNetAnnotation) }},
		{"namespace path", func(s map[string]any) {
			s["linux"].(map[string]any)["namespaces"] = []any{map[string]any{"type": "network", "path": "/proc/1/ns/net"}}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeDroplet(t)
			f.writeBundle(t, withBundle(t, tt.edit))
			_, err := f.d.Create(context.Background(), CreateOptions{ID: testID, Bundle: f.bundle, Mounts: testOverlay})
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error %v, want invalid argument", err)
			}
			if got := f.calls(t); got != nil {
				t.Errorf("ran %q", got)
			}
			if _, err := os.Stat(filepath.Join(f.root, testID)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("container dir written: %v", err)
			}
		})
	}
}

func TestDropletSeccomp(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   *specs.LinuxSeccomp
		want []string
	}{
		{"none", nil, nil},
		{"deny list", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"clone3", "bpf"}, Action: specs.ActErrno},
			{Names: []string{"ptrace"}, Action: specs.ActTrace},
			{Names: []string{"setns"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 0, Op: specs.OpEqualTo}}},
		}}, []string{"bpf"}},
		{"allow list", &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
			{Names: slices.DeleteFunc(slices.Clone(dropletSyscalls), func(n string) bool { return n == "reboot" || n == "kcmp" }), Action: specs.ActAllow},
		}}, []string{"kcmp", "reboot"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := dropletSeccomp(tt.in)
			if got == nil || got.DefaultAction != specs.ActAllow {
				t.Fatalf("seccomp %+v", got)
			}
			var names []string
			for _, r := range got.Syscalls {
				if r.Action != specs.ActErrno {
					t.Errorf("action %s", r.Action)
				}
				names = append(names, r.Names...)
			}
			if !slices.Equal(names, tt.want) {
				t.Errorf("denied %q, want %q", names, tt.want)
			}
		})
	}
}

// TestDropletFailures drives Droplet's failure modes through the fake.
func TestDropletFailures(t *testing.T) {
	ctx := context.Background()
	leftovers := func(t *testing.T, f *fakeDroplet) {
		t.Helper()
		for _, n := range []string{"state.json", "exec.fifo", "config_hash.json"} {
			if _, err := os.Lstat(filepath.Join(f.root, testID, n)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s left: %v", n, err)
			}
		}
		if pids := dropletInitsOf(t, f); len(pids) > 0 {
			t.Errorf("inits left: %v", pids)
		}
	}
	t.Run("create fails after starting the init", func(t *testing.T) {
		f := newFakeDroplet(t)
		f.writeBundle(t, testBundle)
		// Droplet fails writing its cgroup files: the init waits on the fifo.
		os.MkdirAll(filepath.Join(f.fixed, "cgroup", testID, "memory.max"), 0o755)
		_, err := f.d.Create(ctx, CreateOptions{ID: testID, Bundle: f.bundle, Mounts: testOverlay})
		if err == nil || !strings.Contains(err.Error(), "memory.max") {
			t.Fatalf("error %v", err)
		}
		leftovers(t, f)
		// The next create does not fail with "file exists".
		if _, err := f.d.Create(ctx, CreateOptions{ID: testID, Bundle: f.bundle, Mounts: testOverlay}); err != nil {
			t.Fatalf("create again: %v", err)
		}
		if err := f.d.Delete(ctx, testID, f.bundle, true); err != nil {
			t.Fatal(err)
		}
		leftovers(t, f)
	})
	t.Run("leftovers of an earlier create", func(t *testing.T) {
		f := newFakeDroplet(t)
		f.writeBundle(t, testBundle)
		dir := filepath.Join(f.root, testID)
		os.MkdirAll(dir, 0o755)
		unix.Mkfifo(filepath.Join(dir, "exec.fifo"), 0o600)
		if _, err := f.d.Create(ctx, CreateOptions{ID: testID, Bundle: f.bundle, Mounts: testOverlay}); err == nil ||
			!strings.Contains(err.Error(), "file exists") {
			t.Fatalf("error %v", err)
		}
		leftovers(t, f)
	})
	t.Run("init fails after start", func(t *testing.T) {
		f := newFakeDroplet(t)
		f.writeBundle(t, testBundle)
		r, w, _ := os.Pipe()
		defer r.Close()
		if _, err := f.d.Create(ctx, CreateOptions{ID: testID, Bundle: f.bundle, Mounts: testOverlay, Stdout: w}); err != nil {
			t.Fatal(err)
		}
		w.Close()
		go io.Copy(io.Discard, r)
		os.WriteFile(filepath.Join(f.dir, "init-fail"), []byte("sh: not found in PATH"), 0o644)
		err := f.d.Start(ctx, testID)
		// Whether the start sees the init die before or after it let it
		// go depends on timing; either way the init's own message is the
		// error.
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), ": sh: not found in PATH") {
			t.Fatalf("error %v", err)
		}
		if err := f.d.Delete(ctx, testID, f.bundle, true); err != nil {
			t.Fatal(err)
		}
		leftovers(t, f)
	})
	t.Run("init gone before start", func(t *testing.T) {
		f := newFakeDroplet(t)
		f.writeBundle(t, testBundle)
		p, err := f.d.Create(ctx, CreateOptions{ID: testID, Bundle: f.bundle, Mounts: testOverlay})
		if err != nil {
			t.Fatal(err)
		}
		killWait(p.Pid)
		if err := f.d.Start(ctx, testID); err == nil || !strings.Contains(err.Error(), "before it was started") {
			t.Fatalf("error %v", err)
		}
		if got := f.calls(t); slices.Contains(got, "start "+testID) {
			t.Errorf("ran droplet start (it would block on the fifo): %q", got)
		}
		if err := f.d.Delete(ctx, testID, f.bundle, true); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("zombie", func(t *testing.T) {
		f := newFakeDroplet(t)
		z := exec.Command("true")
		if err := z.Start(); err != nil {
			t.Fatal(err)
		}
		defer z.Wait()
		for alive(z.Process.Pid) {
			time.Sleep(time.Millisecond)
		}
		fi, _ := os.OpenFile(filepath.Join(f.dir, "inits"), os.O_APPEND|os.O_WRONLY, 0)
		fmt.Fprintln(fi, z.Process.Pid)
		fi.Close()
		f.setState(t, testID, "running", z.Process.Pid)
		st, err := f.d.State(ctx, testID)
		if err != nil || st.Status != "stopped" {
			t.Errorf("state %+v %v, want stopped", st, err)
		}
		if err := f.d.Kill(ctx, testID, syscall.SIGTERM, false); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("kill: %v, want not found", err)
		}
	})
	t.Run("panic", func(t *testing.T) {
		f := newFakeDroplet(t)
		_, err := f.d.run(ctx, "start", testID)
		if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "droplet start crashed (exit status 2, panic: runtime error: index out of range") {
			t.Fatalf("error %v", err)
		}
	})
}

// dropletInitsOf returns the fake's inits of testID still alive.
func dropletInitsOf(t *testing.T, f *fakeDroplet) []int {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(f.dir, "inits"))
	var pids []int
	for _, p := range strings.Fields(string(b)) {
		if pid, _ := strconv.Atoi(p); pid > 0 && pid != f.pid && alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestDropletCgroupV1 applies limits through cgroup v1 on a real process
// (hybrid hosts: Droplet writes only v2 files).
func TestDropletCgroupV1(t *testing.T) {
	if os.Getuid() != 0 || cgroupV2() {
		t.Skip("needs root and cgroup v1 hierarchies")
	}
	path := "/condenser-test/" + testID
	dirs, err := v1Dirs(path)
	if err != nil || dirs["memory"] == "" {
		t.Skipf("no v1 memory hierarchy: %v", err)
	}
	p := exec.Command("sleep", "1000")
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Wait()
	defer p.Process.Kill()
	if err := applyV1(path, p.Process.Pid, 64<<20, 50000, 100000); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dirs["memory"], "memory.limit_in_bytes")); strings.TrimSpace(string(b)) != strconv.Itoa(64<<20) {
		t.Errorf("memory.limit_in_bytes %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dirs["memory"], "cgroup.procs")); strings.TrimSpace(string(b)) != strconv.Itoa(p.Process.Pid) {
		t.Errorf("cgroup.procs %q", b)
	}
	if err := removeV1(path); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left: %v", d, err)
		}
	}
}

func TestLogPrefixLen(t *testing.T) {
	for _, tc := range []struct {
		line string
		want int
	}{
		{"2026/12/01 08:10:02 start failed", 20},
		{"2026/12/01 08:10:02.123456 start failed", 27},
		{"2026/12/01 08:10:02 ", 20},
		{"2026/12/01 08:10:02", -1},
		{"2026/12/01 08:10:02.x", -1},
		{"2026/12/01 08:10:02. x", -1},
		{"2026-12-01 08:10:02 x", -1},
		{"panic: runtime error", -1},
		{"", -1},
		{"2026/12/0a 08:10:02 x", -1},
	} {
		if got := logPrefixLen(tc.line); got != tc.want {
			t.Errorf("logPrefixLen(%q) = %d, want %d", tc.line, got, tc.want)
		}
	}
}
