package supervisor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/raind/condenser/imagestore"
	"github.com/raind/condenser/internal/names"
	"github.com/raind/condenser/internal/testutil"
	"github.com/raind/condenser/rootfs"
	"github.com/raind/condenser/shim/client"
	"github.com/raind/condenser/shim/logging"
	"github.com/raind/condenser/supervisor/oci"
)

// world is an image store, a rootfs manager and a state dir, as the daemon
// will have them.
type world struct {
	store  *imagestore.Store
	rootfs *rootfs.Manager
	root   string
	// cgroupParent is the world's own parent of its containers' cgroups
	// (a request without one gets it), removed at the end of the test.
	cgroupParent string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	root := t.TempDir()
	s, err := imagestore.Open(context.Background(), imagestore.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	m, err := rootfs.NewManager(filepath.Join(root, "containers"))
	if err != nil {
		t.Fatal(err)
	}
	// The runtimes create the containers' parent cgroup; the cleanup of
	// CgroupParent removes it once the containers are gone.
	return &world{store: s, rootfs: m, root: root, cgroupParent: testutil.CgroupParent(t)}
}

// run creates and runs one container of img under a real shim and runtime
// as the supervisor will, waits for it and returns its exit code and output.
func (w *world) run(t *testing.T, rt testutil.Runtime, img imagestore.Image, req oci.Request, ro bool) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, err := w.store.Config(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	layers := w.store.LayerDirs(img)
	req.Config.ReadOnly = ro
	if req.CgroupParent == "" {
		req.CgroupParent = w.cgroupParent
	}
	bundle := filepath.Join(w.root, "shims", req.ID[:12])
	req.Etc, err = oci.WriteEtcFiles(filepath.Join(w.root, "containers", req.ID+"-etc"), req.Config.Hostname, req.Config.Network == "host")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := oci.Generate(&cfg.Config, req, func(p string) ([]byte, error) { return rootfs.ReadFile(layers, p) })
	if err != nil {
		t.Fatal(err)
	}
	// A read-only root is the runtime's job (spec root.readonly): the
	// overlay keeps a writable upper so that the runtime can create the
	// mount points the image lacks, as Docker's init layer does.
	mounts, err := w.rootfs.Prepare(ctx, req.ID, layers, rootfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.rootfs.Remove(context.Background(), req.ID); err != nil {
			t.Error(err)
		}
	})
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(spec)
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	o := client.Options{Binary: shimBinary(t), ID: req.ID, Bundle: bundle, Runtime: rt.Binary, RuntimeRoot: filepath.Join(w.root, "runtime")}
	addr, err := client.Launch(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		c.Kill(context.Background(), 9, true)
		c.Delete(context.Background())
		c.Shutdown(context.Background(), true)
		c.Close()
	}()
	logPath := filepath.Join(bundle, req.ID+"-json.log")
	if _, err := c.Create(ctx, client.CreateOptions{Rootfs: mounts, LogPath: logPath}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	e, err := c.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	entries, err := logging.ReadLast(logPath, 3, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, en := range entries {
		out.WriteString(en.Log)
	}
	return e.ExitCode, out.String()
}

// TestContainersSeeWhatTheySpecAsks runs containers of a real pulled image
// with each runtime and observes from inside: user and groups, env, cwd,
// hostname, the capability set, a read-only root, a memory limit, a
// read-only bind mount, and the image's whiteouts.
func TestContainersSeeWhatTheySpecAsks(t *testing.T) {
	rts := testutil.Runtimes(t)
	reg := testutil.StartRegistry(t)
	ref := reg.Ref("test/feature:1")
	reg.Push(t, ref, testutil.FeatureImage(t))
	w := newWorld(t)
	img, err := w.store.Pull(context.Background(), ref, imagestore.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hostDir := t.TempDir()
	os.WriteFile(filepath.Join(hostDir, "f"), []byte("from the host"), 0o644)

	script := strings.Join([]string{
		"id", "echo FOO=$FOO", "pwd", "hostname", "cat /etc/hostname", "grep -c e2e-host /etc/hosts", "grep -c nameserver /etc/resolv.conf",
		"grep CapBnd /proc/self/status",
		"(cat /sys/fs/cgroup/memory/memory.limit_in_bytes || cat /sys/fs/cgroup/memory.max) 2>/dev/null",
		"cat /host/f; echo", "touch /host/x 2>/dev/null && echo host-writable || echo host-readonly",
		"ls /data | tr '\\n' ' '; echo", "ls /opq | tr '\\n' ' '; echo",
		"echo lo=$(cat /sys/class/net/lo/operstate) ifaces=$(ls /sys/class/net | tr '\\n' ' ')",
	}, "; ")
	for _, rt := range rts {
		for _, ro := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/readonly=%v", rt.Name, ro), func(t *testing.T) {
				req := oci.Request{
					ID:      names.NewID(),
					Seccomp: true,
					Config: oci.Config{
						Command:    []string{"sh", "-c", script},
						Env:        []string{"FOO=bar"},
						WorkingDir: "/work/dir",
						User:       "nobody",
						Hostname:   "e2e-host",
						Mounts:     []string{hostDir + ":/host:ro"},
						Memory:     64 << 20,
					},
				}
				code, out := w.run(t, rt, img, req, ro)
				if code != 0 {
					t.Fatalf("exit %d:\n%s", code, out)
				}
				for _, want := range []string{
					"uid=65534(nobody) gid=65534(nobody)", "FOO=bar", "/work/dir\n", "e2e-host\ne2e-host\n1\n",
					"CapBnd:\t00000000a80425fb", fmt.Sprint(64 << 20), "from the host\n", "host-readonly",
					"\nkeep new.txt \n", "\nupper \n", "lo=unknown ifaces=lo\n",
				} {
					if !strings.Contains(out, want) {
						t.Errorf("output lacks %q:\n%s", want, out)
					}
				}
				// As root: Docker's capability set is effective, and the
				// root is writable unless read-only.
				req.ID, req.Config.User = names.NewID(), "root"
				req.Config.Command = []string{"sh", "-c", "grep CapEff /proc/self/status; touch /rootfile 2>/dev/null && echo root-writable || echo root-readonly"}
				want := "root-writable"
				if ro {
					want = "root-readonly"
				}
				if _, out := w.run(t, rt, img, req, ro); !strings.Contains(out, want) || !strings.Contains(out, "CapEff:\t00000000a80425fb") {
					t.Errorf("as root: want %s and Docker's capabilities:\n%s", want, out)
				}
			})
		}
	}
}

// TestManyLayerImage runs an image of 60 layers: its overlay option string
// is longer than a page.
func TestManyLayerImage(t *testing.T) {
	rts := testutil.Runtimes(t)
	reg := testutil.StartRegistry(t)
	layers := []v1.Layer{testutil.Layer(t, testutil.BusyboxEntries(t)...)}
	for i := 1; i < 60; i++ {
		layers = append(layers, testutil.Layer(t, testutil.Entry{Name: fmt.Sprintf("layers/l%02d", i), Content: []byte(fmt.Sprintf("%d\n", i))}))
	}
	ref := reg.Ref("test/many:1")
	reg.Push(t, ref, testutil.Image(t, nil, layers...))
	w := newWorld(t)
	img, err := w.store.Pull(context.Background(), ref, imagestore.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(img.Layers) != 60 {
		t.Fatalf("%d layers", len(img.Layers))
	}
	if n := len(strings.Join(w.store.LayerDirs(img), ":")); n <= 4096 {
		t.Fatalf("lowerdir is only %d bytes: the test would not exceed a page", n)
	}
	for _, rt := range rts {
		t.Run(rt.Name, func(t *testing.T) {
			req := oci.Request{ID: names.NewID(), Config: oci.Config{Command: []string{"sh", "-c", "ls /layers | wc -l; cat /layers/l01 /layers/l59"}}}
			code, out := w.run(t, rt, img, req, false)
			if code != 0 || out != "59\n1\n59\n" {
				t.Errorf("exit %d, output %q", code, out)
			}
		})
	}
}

// shimBinary is condenser-shim, built once for the package's tests.
func shimBinary(t *testing.T) string {
	return filepath.Join(testutil.BuildBinaries(t, "../cmd/condenser-shim"), "condenser-shim")
}

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveBinaries()
	os.Exit(code)
}

const e2ePasswd = `root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/:/sbin/nologin
app:x:1000:1000:App User:/home/app:/bin/sh
`

const e2eGroup = `root:x:0:root
staff:x:50:app, nginx
app:x:1000:
audio:x:18:app
nobody:x:65534:
`

// TestGenerateSpecRuntimes runs specs of oci.Generate directly under runc and
// crun (each where installed; crun through the hybrid-cgroup workaround of
// shared/reference/peers-on-this-machine.md), without shim or image store,
// and checks what the process sees: the user and groups, a working
// directory the runtime had to create, HOME, the hostname and /etc files, a
// read-only bind, and the limits.
func TestGenerateSpecRuntimes(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: not running containers")
	}
	testutil.RequireRoot(t)
	busybox := testutil.RequireBinary(t, "/bin/busybox")
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		t.Fatal(err)
	}
	cgroupV2 := st.Type == unix.CGROUP2_SUPER_MAGIC

	for _, rt := range testutil.Runtimes(t) {
		name, bin := rt.Name, rt.Binary
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			bundle := filepath.Join(dir, "bundle")
			rootfs := filepath.Join(bundle, "rootfs")
			for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "data", "home/app"} {
				if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			bb, err := os.ReadFile(busybox)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), bb, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, a := range []string{"sh", "id", "pwd", "cat", "hostname", "touch", "echo"} {
				if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", a)); err != nil {
					t.Fatal(err)
				}
			}
			for p, s := range map[string]string{"/etc/passwd": e2ePasswd, "/etc/group": e2eGroup} {
				if err := os.WriteFile(filepath.Join(rootfs, p), []byte(s), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			hostData := filepath.Join(dir, "hostdata")
			if err := os.MkdirAll(hostData, 0o755); err != nil {
				t.Fatal(err)
			}
			etc := map[string]string{"hosts": "127.0.0.1 localhost\n", "hostname": "probe\n", "resolv.conf": "nameserver 192.0.2.53\n", "hostdata/file": "from the host\n"}
			for p, s := range etc {
				if err := os.WriteFile(filepath.Join(dir, p), []byte(s), 0o644); err != nil {
					t.Fatal(err)
				}
			}

			id := names.NewID()
			// The runtimes create the parent cgroup; its cleanup, registered
			// before the runtime's delete, removes it after the container.
			parent := testutil.CgroupParent(t)
			req := oci.Request{
				ID:              id,
				CgroupParent:    parent,
				CgroupV2:        cgroupV2,
				Seccomp:         true,
				NoNewPrivileges: true,
				Etc:             oci.EtcFiles{Hosts: filepath.Join(dir, "hosts"), Hostname: filepath.Join(dir, "hostname"), ResolvConf: filepath.Join(dir, "resolv.conf")},
				Config: oci.Config{
					Command:    []string{"sh", "-c", `id; pwd; echo "HOME=$HOME"; hostname; cat /etc/hostname /etc/resolv.conf /data/file; ulimit -n; touch /data/x 2>/dev/null || echo ro-bind`},
					User:       "app",
					WorkingDir: "/work/missing",
					Hostname:   "probe",
					Mounts:     []string{hostData + ":/data:ro"},
					Memory:     64 << 20,
					CPUs:       0.5,
					PidsLimit:  50,
				},
			}
			img := &v1.Config{Cmd: []string{"/bin/sh"}, Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}}
			spec, err := oci.Generate(img, req, func(p string) ([]byte, error) { return os.ReadFile(filepath.Join(rootfs, p)) })
			if err != nil {
				t.Fatal(err)
			}
			data, err := json.MarshalIndent(spec, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644); err != nil {
				t.Fatal(err)
			}

			state := filepath.Join(dir, "state")
			t.Cleanup(func() {
				out, err := exec.Command(bin, "--root", state, "delete", "--force", id).CombinedOutput()
				if err != nil && !strings.Contains(string(out), "does not exist") && !strings.Contains(string(out), "not found") {
					t.Logf("%s delete %s: %v: %s", name, id, err, out)
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "--root", state, "run", "--bundle", bundle, id)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s run: %v\nstdout: %s\nstderr: %s", name, err, stdout.String(), stderr.String())
			}
			var rl unix.Rlimit
			if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
				t.Fatal(err)
			}
			want := strings.Join([]string{
				"uid=1000(app) gid=1000(app) groups=18(audio),50(staff),1000(app)",
				"/work/missing",
				"HOME=/home/app",
				"probe",
				"probe",
				"nameserver 192.0.2.53",
				"from the host",
				fmt.Sprint(min(rl.Max, 1048576)),
				"ro-bind",
			}, "\n") + "\n"
			if got := stdout.String(); got != want {
				t.Errorf("container output:\n%s\nwant:\n%s\nstderr: %s", got, want, stderr.String())
			}
		})
	}
}
