package supervisor_test

// The default seccomp profile (oci.DefaultSeccomp) under runc: needs root,
// so it lives here with the end-to-end tests rather than in supervisor/oci,
// whose tests run unprivileged.

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/testutil"
	"github.com/raind/condenser/supervisor/oci"
)

// Integration: run containers with runc and the profile.

// seccompProbeSource is a small static program run inside the container; it
// makes raw syscalls and prints "name errno" for each. The %d verbs are the
// host's syscall numbers.
const seccompProbeSource = `package main

import (
	"fmt"
	"syscall"
	"unsafe"
)

const (
	sysClone3        = %d
	sysIoUringSetup  = %d
	sysUserfaultfd   = %d
	sysPerfEventOpen = %d
	sysKeyctl        = %d
	sysSetns         = %d
)

func raw(trap uintptr, a ...uintptr) syscall.Errno {
	var x [6]uintptr
	copy(x[:], a)
	_, _, e := syscall.RawSyscall6(trap, x[0], x[1], x[2], x[3], x[4], x[5])
	return e
}

var keep [][]byte // keeps the strings passed as pointers alive

func str(s string) uintptr {
	b := append([]byte(s), 0)
	keep = append(keep, b)
	return uintptr(unsafe.Pointer(&b[0]))
}

func main() {
	p := func(name string, e syscall.Errno) { fmt.Printf("%%s %%d\n", name, int(e)) }
	p("getpid", raw(syscall.SYS_GETPID))
	p("mount", raw(syscall.SYS_MOUNT, str("none"), str("/mnt"), str("tmpfs"), 0, 0))
	p("umount2", raw(syscall.SYS_UMOUNT2, str("/nonexistent"), 0))
	p("unshare", raw(syscall.SYS_UNSHARE, syscall.CLONE_NEWNS))
	p("setns", raw(sysSetns, ^uintptr(0), 0))
	// CLONE_SIGHAND without CLONE_VM is EINVAL in the kernel: a clone that
	// passes seccomp fails there without creating a process.
	const bad = syscall.CLONE_SIGHAND
	p("clone", raw(syscall.SYS_CLONE, bad))
	for _, f := range []struct {
		n string
		v uintptr
	}{{"newns", 0x20000}, {"newuts", 0x4000000}, {"newipc", 0x8000000}, {"newuser", 0x10000000},
		{"newpid", 0x20000000}, {"newnet", 0x40000000}, {"newcgroup", 0x2000000}} {
		p("clone-"+f.n, raw(syscall.SYS_CLONE, bad|f.v))
	}
	p("clone3", raw(sysClone3, 0, 0))
	p("personality-query", raw(syscall.SYS_PERSONALITY, 0xffffffff))
	p("personality-linux32", raw(syscall.SYS_PERSONALITY, 0x8))
	p("personality-linux", raw(syscall.SYS_PERSONALITY, 0x0))
	p("personality-no-randomize", raw(syscall.SYS_PERSONALITY, 0x0040000))
	p("personality-read-implies-exec", raw(syscall.SYS_PERSONALITY, 0x0400000))
	fd, _, e := syscall.RawSyscall(syscall.SYS_SOCKET, syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if e == 0 {
		syscall.Close(int(fd))
	}
	p("socket-unix", e)
	p("socket-vsock", raw(syscall.SYS_SOCKET, 40, syscall.SOCK_STREAM, 0))
	p("io_uring_setup", raw(sysIoUringSetup, 1, 0))
	p("ptrace", raw(syscall.SYS_PTRACE, 0x4206, 0x7fffffff, 0, 0))
	p("keyctl", raw(sysKeyctl, 9999))
	p("perf_event_open", raw(sysPerfEventOpen, 0, 0, ^uintptr(0), ^uintptr(0), 0))
	p("userfaultfd", raw(sysUserfaultfd, 0xffff))
}
`

// seccompProbeWant is what the probe must print under oci.DefaultSeccomp.
var seccompProbeWant = map[string]syscall.Errno{
	"getpid":                        0,
	"mount":                         syscall.EPERM,
	"umount2":                       syscall.EPERM,
	"unshare":                       syscall.EPERM,
	"setns":                         syscall.EPERM,
	"clone":                         syscall.EINVAL, // allowed by seccomp, refused by the kernel
	"clone-newns":                   syscall.EPERM,
	"clone-newuts":                  syscall.EPERM,
	"clone-newipc":                  syscall.EPERM,
	"clone-newuser":                 syscall.EPERM,
	"clone-newpid":                  syscall.EPERM,
	"clone-newnet":                  syscall.EPERM,
	"clone-newcgroup":               syscall.EPERM,
	"clone3":                        syscall.ENOSYS,
	"personality-query":             0,
	"personality-linux32":           0,
	"personality-linux":             0,
	"personality-no-randomize":      syscall.EPERM,
	"personality-read-implies-exec": syscall.EPERM,
	"socket-unix":                   0,
	"socket-vsock":                  syscall.EPERM,
	"io_uring_setup":                syscall.EPERM,
	"ptrace":                        syscall.EPERM,
	"keyctl":                        syscall.EPERM,
	"perf_event_open":               syscall.EPERM,
	"userfaultfd":                   syscall.EPERM,
}

// seccompTestContainers counts containers, for unique ids.
var seccompTestContainers atomic.Int64

// seccompTestHost holds what the integration test needs from the host.
type seccompTestHost struct {
	runc      string
	stateRoot string // runc --root, private to the test
	rootfs    string
}

// seccompTestSetup checks the prerequisites (skipping, or failing when
// CI=true) and builds a busybox rootfs with the probe.
func seccompTestSetup(t *testing.T) *seccompTestHost {
	t.Helper()
	testutil.RequireRoot(t)
	h := &seccompTestHost{runc: testutil.RequireBinary(t, "runc")}
	busybox := testutil.RequireBinary(t, "/bin/busybox")
	if f, err := elf.Open(busybox); err != nil {
		t.Fatalf("read %s: %v", busybox, err)
	} else {
		dynamic := slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP })
		f.Close()
		if dynamic {
			msg := busybox + " is dynamically linked; install it with: apt-get install busybox-static"
			if testutil.InCI() {
				t.Fatal(msg + " (CI=true: failing instead of skipping)")
			}
			t.Skip(msg)
		}
	}
	goTool := testutil.RequireBinary(t, "go")

	dir := t.TempDir()
	h.stateRoot = filepath.Join(dir, "state")
	h.rootfs = filepath.Join(dir, "rootfs")
	for _, d := range []string{"bin", "proc", "dev", "mnt", "tmp", "probe"} {
		if err := os.MkdirAll(filepath.Join(h.rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src, err := os.Open(busybox)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(filepath.Join(h.rootfs, "bin", "busybox"), os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	for _, applet := range []string{"sh", "echo", "true", "mount", "umount", "unshare", "linux32", "cat"} {
		if err := os.Symlink("busybox", filepath.Join(h.rootfs, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}

	// Build the probe, statically, for the host.
	probeDir := filepath.Join(dir, "probe-src")
	if err := os.MkdirAll(probeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	source := fmt.Sprintf(seccompProbeSource, unix.SYS_CLONE3, unix.SYS_IO_URING_SETUP,
		unix.SYS_USERFAULTFD, unix.SYS_PERF_EVENT_OPEN, unix.SYS_KEYCTL, unix.SYS_SETNS)
	if err := os.WriteFile(filepath.Join(probeDir, "main.go"), []byte(source), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(probeDir, "go.mod"), []byte("module seccompprobe\n\ngo 1.21\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	build := exec.Command(goTool, "build", "-o", filepath.Join(h.rootfs, "bin", "seccomp-probe"), ".")
	build.Dir = probeDir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the probe: %v\n%s", err, out)
	}
	return h
}

// seccompTestRun runs args in a new container with the given profile (nil:
// no seccomp) and CAP_SYS_ADMIN, and returns its stdout, stderr and exit code.
func (h *seccompTestHost) run(t *testing.T, profile *specs.LinuxSeccomp, args ...string) (string, string, int) {
	t.Helper()
	bundle := t.TempDir()
	caps := []string{"CAP_SYS_ADMIN", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_SETUID", "CAP_SETGID"}
	spec := specs.Spec{
		Version:  "1.0.2",
		Root:     &specs.Root{Path: h.rootfs},
		Hostname: "seccomp-test",
		Process: &specs.Process{
			Args: args,
			Cwd:  "/",
			Env:  []string{"PATH=/bin"},
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "size=65536k"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.NetworkNamespace},
			},
			Seccomp: profile,
		},
	}
	b, err := json.MarshalIndent(&spec, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}

	id := fmt.Sprintf("condenser-seccomp-test-%d-%d-%d", os.Getpid(), time.Now().UnixNano(), seccompTestContainers.Add(1))
	t.Cleanup(func() {
		out, err := exec.Command(h.runc, "--root", h.stateRoot, "delete", "--force", id).CombinedOutput()
		if err != nil && !strings.Contains(string(out), "does not exist") {
			t.Logf("runc delete %s: %v: %s", id, err, out)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.runc, "--root", h.stateRoot, "run", "--bundle", bundle, id)
	var stdout, stderr bytes.Buffer
	cmd.Stdin = nil
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err = cmd.Run()
	code := 0
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("runc run %v: %v\nstderr: %s", args, err, stderr.String())
	}
	if ctx.Err() != nil {
		t.Fatalf("runc run %v: timed out\nstderr: %s", args, stderr.String())
	}
	return stdout.String(), stderr.String(), code
}

func TestSeccompRuncIntegration(t *testing.T) {
	h := seccompTestSetup(t)
	profile := oci.DefaultSeccomp()

	t.Run("echo", func(t *testing.T) {
		out, errOut, code := h.run(t, profile, "sh", "-c", "echo ok")
		if code != 0 || out != "ok\n" {
			t.Fatalf("sh -c 'echo ok': exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})

	t.Run("fork-exec", func(t *testing.T) {
		// Command substitution forks; /bin/cat is exec'ed; linux32 calls
		// personality(PER_LINUX32), an allowed value.
		out, errOut, code := h.run(t, profile, "sh", "-c", `x=$(echo sub); echo "$x" | /bin/cat; linux32 /bin/true && echo l32`)
		if code != 0 || out != "sub\nl32\n" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})

	// Without seccomp the same container may mount and unshare, so below
	// only seccomp stands in the way.
	t.Run("control-without-seccomp", func(t *testing.T) {
		out, errOut, code := h.run(t, nil, "sh", "-c", "mount -t tmpfs none /mnt && unshare -m true && echo ok")
		if code != 0 || out != "ok\n" {
			t.Fatalf("without seccomp: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})

	t.Run("mount-blocked", func(t *testing.T) {
		out, errOut, code := h.run(t, profile, "mount", "-t", "tmpfs", "none", "/mnt")
		// busybox mount reports EPERM (and EACCES) as "permission denied
		// (are you root?)"; the probe below checks the errno itself.
		if code == 0 || !strings.Contains(errOut, "permission denied") {
			t.Fatalf("mount: exit %d, stdout %q, stderr %q; want failure with permission denied", code, out, errOut)
		}
	})

	t.Run("unshare-blocked", func(t *testing.T) {
		out, errOut, code := h.run(t, profile, "unshare", "-m", "true")
		if code == 0 || !strings.Contains(errOut, "Operation not permitted") {
			t.Fatalf("unshare -m: exit %d, stdout %q, stderr %q; want Operation not permitted", code, out, errOut)
		}
	})

	t.Run("probe", func(t *testing.T) {
		out, errOut, code := h.run(t, profile, "/bin/seccomp-probe")
		if code != 0 {
			t.Fatalf("probe: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		got := map[string]syscall.Errno{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			name, num, ok := strings.Cut(line, " ")
			n, err := strconv.Atoi(num)
			if !ok || err != nil {
				t.Fatalf("probe output line %q", line)
			}
			got[name] = syscall.Errno(n)
		}
		for name, want := range seccompProbeWant {
			g, ok := got[name]
			switch {
			case !ok:
				t.Errorf("%s: not reported", name)
			case g != want:
				t.Errorf("%s: errno %d (%v), want %d (%v)", name, int(g), g, int(want), want)
			}
		}
		if len(got) != len(seccompProbeWant) {
			t.Errorf("probe reported %d checks, want %d:\n%s", len(got), len(seccompProbeWant), out)
		}
	})
}
