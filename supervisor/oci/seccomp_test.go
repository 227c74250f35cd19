package oci

import (
	"bytes"
	"encoding/json"
	"regexp"
	"runtime"
	"slices"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
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
