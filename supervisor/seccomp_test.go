package supervisor

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
	"regexp"
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
)

// seccompRuleNames returns, for each syscall name, the rules naming it.
func seccompRuleNames(p *specs.LinuxSeccomp) map[string][]specs.LinuxSyscall {
	m := map[string][]specs.LinuxSyscall{}
	for _, r := range p.Syscalls {
		for _, n := range r.Names {
			m[n] = append(m[n], r)
		}
	}
	return m
}

func TestSeccompDefaultAction(t *testing.T) {
	p := DefaultSeccomp()
	if p.DefaultAction != specs.ActErrno {
		t.Errorf("DefaultAction = %q, want %q", p.DefaultAction, specs.ActErrno)
	}
	if p.DefaultErrnoRet == nil || *p.DefaultErrnoRet != uint(syscall.EPERM) {
		t.Errorf("DefaultErrnoRet = %v, want EPERM (%d)", p.DefaultErrnoRet, syscall.EPERM)
	}
	if len(p.Flags) != 0 || p.ListenerPath != "" {
		t.Errorf("unexpected flags %v / listener %q", p.Flags, p.ListenerPath)
	}
}

func TestSeccompArchitectures(t *testing.T) {
	cases := map[string][]specs.Arch{
		"amd64": {specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		"arm64": {specs.ArchAARCH64, specs.ArchARM},
	}
	for goarch, want := range cases {
		if got := seccompProfileFor(goarch).Architectures; !slices.Equal(got, want) {
			t.Errorf("%s: Architectures = %v, want %v", goarch, got, want)
		}
	}
	got := DefaultSeccomp().Architectures
	if want, ok := cases[runtime.GOARCH]; ok && !slices.Equal(got, want) {
		t.Errorf("host %s: Architectures = %v, want %v", runtime.GOARCH, got, want)
	}
	if runtime.GOARCH == "amd64" || runtime.GOARCH == "arm64" {
		if len(got) == 0 {
			t.Errorf("host %s: no architectures", runtime.GOARCH)
		}
	}
	if got := seccompArchitectures("wasm"); got != nil {
		t.Errorf("unknown arch: %v, want nil (native only)", got)
	}
}

func TestSeccompNoDuplicateNames(t *testing.T) {
	nameRE := regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	for _, list := range [][]string{seccompAllowedSyscalls, seccompBlockedSyscalls} {
		seen := map[string]bool{}
		for _, n := range list {
			if !nameRE.MatchString(n) {
				t.Errorf("bad syscall name %q", n)
			}
			if seen[n] {
				t.Errorf("duplicate name %q", n)
			}
			seen[n] = true
		}
	}

	p := DefaultSeccomp()
	for name, rules := range seccompRuleNames(p) {
		if len(rules) == 1 {
			continue
		}
		// Only argument-conditional rules may repeat a name (they are ORed),
		// and then every rule for that name must be conditional.
		for _, r := range rules {
			if len(r.Args) == 0 {
				t.Errorf("%q appears in %d rules, one of them unconditional", name, len(rules))
				break
			}
		}
	}
	for _, r := range p.Syscalls {
		seen := map[string]bool{}
		for _, n := range r.Names {
			if seen[n] {
				t.Errorf("duplicate %q in one rule", n)
			}
			seen[n] = true
		}
	}
}

func TestSeccompBlockedNotAllowed(t *testing.T) {
	p := DefaultSeccomp()
	byName := seccompRuleNames(p)
	for _, n := range seccompBlockedSyscalls {
		if rules, ok := byName[n]; ok {
			t.Errorf("blocked syscall %q appears in the profile (%d rules)", n, len(rules))
		}
	}
	// The ones the profile promises to keep out.
	for _, n := range []string{
		"mount", "umount2", "pivot_root", "swapon", "swapoff", "reboot",
		"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
		"bpf", "perf_event_open", "keyctl", "add_key", "request_key", "ptrace",
		"unshare", "setns", "open_by_handle_at", "name_to_handle_at", "iopl", "ioperm",
		"userfaultfd", "acct", "quotactl", "settimeofday", "clock_settime", "adjtimex",
		"lookup_dcookie", "vm86", "nfsservctl", "syslog",
		"io_uring_setup", "io_uring_enter", "io_uring_register",
	} {
		if !slices.Contains(seccompBlockedSyscalls, n) {
			t.Errorf("%q missing from seccompBlockedSyscalls", n)
		}
	}
	// Sanity: what every program needs is allowed without condition.
	allow := p.Syscalls[0]
	if allow.Action != specs.ActAllow || len(allow.Args) != 0 {
		t.Fatalf("first rule is not the unconditional allowlist: %+v", allow)
	}
	for _, n := range []string{
		"read", "write", "openat", "close", "fstat", "newfstatat", "mmap", "munmap",
		"mprotect", "brk", "execve", "exit_group", "wait4", "futex", "rt_sigaction",
		"rt_sigreturn", "rt_sigprocmask", "sigaltstack", "epoll_pwait", "epoll_ctl",
		"clock_gettime", "nanosleep", "getrandom", "socketpair", "connect", "accept4",
		"sendmsg", "recvmsg", "fcntl", "ioctl", "getdents64", "prctl", "arch_prctl",
		"set_tid_address", "set_robust_list", "rseq", "prlimit64", "sched_getaffinity",
		"fork", "vfork", "pipe2", "dup3", "getpid", "gettid", "tgkill", "madvise",
	} {
		if !slices.Contains(allow.Names, n) {
			t.Errorf("%q not in the allowlist", n)
		}
	}
}

func TestSeccompConditionalRules(t *testing.T) {
	for _, goarch := range []string{"amd64", "arm64", "s390x"} {
		p := seccompProfileFor(goarch)
		byName := seccompRuleNames(p)

		for _, n := range []string{"personality", "clone", "clone3", "socket"} {
			if slices.Contains(p.Syscalls[0].Names, n) {
				t.Errorf("%s: %q is unconditionally allowed", goarch, n)
			}
		}

		// personality: one ALLOW rule per safe value, arg0 == value.
		var values []uint64
		for _, r := range byName["personality"] {
			if r.Action != specs.ActAllow || len(r.Names) != 1 || len(r.Args) != 1 {
				t.Errorf("%s: malformed personality rule %+v", goarch, r)
				continue
			}
			a := r.Args[0]
			if a.Index != 0 || a.Op != specs.OpEqualTo || a.ValueTwo != 0 {
				t.Errorf("%s: malformed personality arg %+v", goarch, a)
			}
			values = append(values, a.Value)
		}
		slices.Sort(values)
		if want := []uint64{0x0, 0x8, 0x20000, 0x20008, 0xffffffff}; !slices.Equal(values, want) {
			t.Errorf("%s: personality values %#x, want %#x", goarch, values, want)
		}

		// clone: ALLOW when (flags & namespace flags) == 0.
		wantMask := uint64(unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
			unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP)
		if wantMask != 0x7e020000 {
			t.Fatalf("namespace mask %#x", wantMask)
		}
		wantIndex := uint(0)
		if goarch == "s390x" {
			wantIndex = 1
		}
		if rules := byName["clone"]; len(rules) != 1 {
			t.Errorf("%s: %d clone rules, want 1", goarch, len(rules))
		} else if r := rules[0]; r.Action != specs.ActAllow || len(r.Names) != 1 || len(r.Args) != 1 ||
			r.Args[0] != (specs.LinuxSeccompArg{Index: wantIndex, Value: wantMask, ValueTwo: 0, Op: specs.OpMaskedEqual}) {
			t.Errorf("%s: malformed clone rule %+v", goarch, r)
		}

		// clone3: ENOSYS, so that libc falls back to clone.
		if rules := byName["clone3"]; len(rules) != 1 {
			t.Errorf("%s: %d clone3 rules, want 1", goarch, len(rules))
		} else if r := rules[0]; r.Action != specs.ActErrno || r.ErrnoRet == nil ||
			*r.ErrnoRet != uint(syscall.ENOSYS) || len(r.Args) != 0 || len(r.Names) != 1 {
			t.Errorf("%s: malformed clone3 rule %+v", goarch, r)
		}

		// socket: any family but AF_VSOCK.
		if rules := byName["socket"]; len(rules) != 1 {
			t.Errorf("%s: %d socket rules, want 1", goarch, len(rules))
		} else if r := rules[0]; r.Action != specs.ActAllow || len(r.Args) != 1 ||
			r.Args[0] != (specs.LinuxSeccompArg{Index: 0, Value: unix.AF_VSOCK, Op: specs.OpNotEqual}) {
			t.Errorf("%s: malformed socket rule %+v", goarch, r)
		}

		// Every rule: a known action; ERRNO rules carry their errno.
		for _, r := range p.Syscalls {
			if len(r.Names) == 0 {
				t.Errorf("%s: rule without names", goarch)
			}
			switch r.Action {
			case specs.ActAllow:
				if r.ErrnoRet != nil {
					t.Errorf("%s: ALLOW rule %v with errnoRet", goarch, r.Names)
				}
			case specs.ActErrno:
				if r.ErrnoRet == nil {
					t.Errorf("%s: ERRNO rule %v without errnoRet", goarch, r.Names)
				}
			default:
				t.Errorf("%s: unexpected action %q for %v", goarch, r.Action, r.Names)
			}
		}
	}
}

func TestSeccompFreshValueAndJSON(t *testing.T) {
	p := DefaultSeccomp()
	p.Syscalls[0].Names[0] = "mutated"
	p.Syscalls = nil
	*p.DefaultErrnoRet = 99
	q := DefaultSeccomp()
	if q.Syscalls[0].Names[0] == "mutated" || *q.DefaultErrnoRet != 1 {
		t.Fatal("DefaultSeccomp shares state between calls")
	}

	b, err := json.Marshal(q)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`"defaultAction":"SCMP_ACT_ERRNO"`, `"defaultErrnoRet":1`, `"SCMP_CMP_MASKED_EQ"`} {
		if !bytes.Contains(b, []byte(s)) {
			t.Errorf("JSON lacks %s", s)
		}
	}
	var back specs.LinuxSeccomp
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(&back)
	if !bytes.Equal(b, b2) {
		t.Error("JSON round trip changed the profile")
	}
}

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

// seccompProbeWant is what the probe must print under DefaultSeccomp.
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
	profile := DefaultSeccomp()

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
