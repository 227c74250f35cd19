package oci

import (
	"runtime"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The default seccomp profile.
//
// DefaultSeccomp is an allowlist: every system call that is not named below
// fails with EPERM. The list was drawn up from the kernel's syscall tables
// (x86_64, i386, arm, arm64) by asking, for each entry, whether an ordinary
// program inside a container needs it, and whether it reaches kernel state
// that a container's namespaces and cgroups do not isolate.
//
// Choices worth knowing:
//
//   - The profile does not depend on the container's capabilities. Syscalls
//     that Docker's profile lets through only with CAP_SYS_ADMIN and similar
//     (mount, unshare, setns, bpf, perf_event_open, ...) are refused even when
//     the capability is granted; such containers need their own profile.
//   - ptrace is refused, and with it process_vm_readv/process_vm_writev, kcmp
//     and pidfd_getfd, which give the same reach into another process. Docker
//     allows ptrace on kernels >= 4.8 (where it can no longer be used to get
//     around seccomp); we keep it out because it is rarely needed in a
//     service container, and debuggers/strace can be run with a custom
//     profile.
//   - io_uring (io_uring_setup/enter/register) is refused, as Docker has done
//     since 2023: it has been a steady source of kernel exploits, and its
//     operations are not seen by seccomp. Programs fall back to epoll/AIO.
//   - clone is allowed only without namespace flags; clone3 fails with ENOSYS,
//     because its flags live in a struct seccomp cannot inspect, and glibc,
//     musl and Go then fall back to clone.
//   - personality is allowed only for the values programs use in practice
//     (PER_LINUX, PER_LINUX32, UNAME26 and the query 0xffffffff); the others
//     (e.g. READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE) weaken the address space.
//   - socket is allowed for every family except AF_VSOCK, which talks to the
//     hypervisor host and is not isolated by network namespaces. (On i386 the
//     socketcall multiplexer cannot be inspected and is allowed as a whole.)
//
// Names that the runtime's libseccomp does not know (syscalls newer than the
// library, or names of another architecture) are skipped by runc and crun
// with a debug message/warning, so the list may name syscalls of recent
// kernels. Syscalls unknown to libseccomp itself get ENOSYS from runc's
// filter, so programs probing for new syscalls fall back gracefully.

// seccompAllowedSyscalls are allowed unconditionally.
var seccompAllowedSyscalls = []string{
	// Files: open/close, read/write, seek.
	"open", "openat", "openat2", "creat", "close", "close_range",
	"read", "readv", "pread64", "preadv", "preadv2",
	"write", "writev", "pwrite64", "pwritev", "pwritev2",
	"lseek", "_llseek",
	"dup", "dup2", "dup3", "fcntl", "fcntl64", "flock", "ioctl",
	"fsync", "fdatasync", "sync", "syncfs",
	"sync_file_range", "sync_file_range2", "arm_sync_file_range",
	"fadvise64", "fadvise64_64", "arm_fadvise64_64", "readahead",
	"fallocate", "truncate", "truncate64", "ftruncate", "ftruncate64",
	"copy_file_range", "sendfile", "sendfile64", "splice", "tee", "vmsplice",
	"cachestat",

	// Files: metadata, directories, names.
	"stat", "lstat", "fstat", "stat64", "lstat64", "fstat64",
	"newfstatat", "fstatat64", "statx",
	"statfs", "fstatfs", "statfs64", "fstatfs64",
	"access", "faccessat", "faccessat2",
	"chmod", "fchmod", "fchmodat", "fchmodat2",
	"chown", "fchown", "fchownat", "lchown", "chown32", "fchown32", "lchown32",
	"umask", "utime", "utimes", "utimensat", "utimensat_time64", "futimesat",
	"getcwd", "chdir", "fchdir", "chroot",
	"getdents", "getdents64",
	"mkdir", "mkdirat", "rmdir", "mknod", "mknodat",
	"link", "linkat", "symlink", "symlinkat", "unlink", "unlinkat",
	"rename", "renameat", "renameat2", "readlink", "readlinkat",
	"getxattr", "lgetxattr", "fgetxattr", "getxattrat",
	"setxattr", "lsetxattr", "fsetxattr", "setxattrat",
	"listxattr", "llistxattr", "flistxattr", "listxattrat",
	"removexattr", "lremovexattr", "fremovexattr", "removexattrat",
	"file_getattr", "file_setattr",

	// Event notification, pipes, multiplexing, asynchronous I/O.
	"pipe", "pipe2",
	"select", "_newselect", "pselect6", "pselect6_time64",
	"poll", "ppoll", "ppoll_time64",
	"epoll_create", "epoll_create1", "epoll_ctl",
	"epoll_wait", "epoll_pwait", "epoll_pwait2",
	"eventfd", "eventfd2", "signalfd", "signalfd4",
	"timerfd_create", "timerfd_settime", "timerfd_gettime",
	"timerfd_settime64", "timerfd_gettime64",
	"inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
	"io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents",
	"io_pgetevents", "io_pgetevents_time64",
	"ioprio_get", "ioprio_set",

	// Memory.
	"brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "msync",
	"madvise", "mincore", "remap_file_pages",
	"mlock", "mlock2", "munlock", "mlockall", "munlockall",
	"membarrier", "memfd_create", "mseal", "map_shadow_stack",
	"pkey_alloc", "pkey_free", "pkey_mprotect",
	"get_mempolicy", "set_mempolicy", "set_mempolicy_home_node", "mbind",

	// Processes and threads (clone, clone3 and personality: see below).
	"fork", "vfork", "execve", "execveat",
	"exit", "exit_group", "wait4", "waitid", "waitpid",
	"getpid", "getppid", "gettid", "set_tid_address",
	"getpgid", "setpgid", "getpgrp", "getsid", "setsid",
	"arch_prctl", "prctl", "set_thread_area", "get_thread_area",
	"set_robust_list", "get_robust_list", "rseq", "rseq_slice_yield",
	"restart_syscall", "seccomp",
	"landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
	"lsm_get_self_attr", "lsm_list_modules",
	"uname", "sysinfo", "getcpu", "getrandom",
	"sethostname", "setdomainname", // isolated by the UTS namespace
	"uprobe", "uretprobe", // only work from the kernel's trampolines
	"breakpoint", "cacheflush", "set_tls", // arm private calls

	// Credentials and capabilities (still checked by the kernel).
	"getuid", "geteuid", "getgid", "getegid",
	"getuid32", "geteuid32", "getgid32", "getegid32",
	"setuid", "setgid", "setreuid", "setregid",
	"setuid32", "setgid32", "setreuid32", "setregid32",
	"setresuid", "setresgid", "getresuid", "getresgid",
	"setresuid32", "setresgid32", "getresuid32", "getresgid32",
	"setfsuid", "setfsgid", "setfsuid32", "setfsgid32",
	"getgroups", "setgroups", "getgroups32", "setgroups32",
	"capget", "capset",

	// Resources and scheduling.
	"getrlimit", "setrlimit", "ugetrlimit", "prlimit64", "getrusage", "times",
	"getpriority", "setpriority", "nice",
	"sched_yield", "sched_getaffinity", "sched_setaffinity",
	"sched_getattr", "sched_setattr", "sched_getparam", "sched_setparam",
	"sched_getscheduler", "sched_setscheduler",
	"sched_get_priority_max", "sched_get_priority_min",
	"sched_rr_get_interval", "sched_rr_get_interval_time64",

	// Signals.
	"kill", "tkill", "tgkill", "pidfd_open", "pidfd_send_signal",
	"rt_sigaction", "rt_sigprocmask", "rt_sigpending", "rt_sigreturn",
	"rt_sigsuspend", "rt_sigqueueinfo", "rt_tgsigqueueinfo",
	"rt_sigtimedwait", "rt_sigtimedwait_time64", "sigaltstack",
	"sigaction", "signal", "sigprocmask", "sigpending", "sigreturn", "sigsuspend",
	"pause",

	// Time (reading clocks, sleeping, timers; setting clocks is refused).
	"time", "gettimeofday", "clock_gettime", "clock_gettime64",
	"clock_getres", "clock_getres_time64",
	"nanosleep", "clock_nanosleep", "clock_nanosleep_time64", "alarm",
	"getitimer", "setitimer",
	"timer_create", "timer_delete", "timer_getoverrun",
	"timer_gettime", "timer_settime", "timer_gettime64", "timer_settime64",

	// Futexes.
	"futex", "futex_time64", "futex_waitv", "futex_wait", "futex_wake",
	"futex_requeue",

	// Sockets (socket itself: see below).
	"socketpair", "socketcall",
	"bind", "connect", "listen", "accept", "accept4", "shutdown",
	"getsockname", "getpeername", "getsockopt", "setsockopt",
	"send", "sendto", "sendmsg", "sendmmsg",
	"recv", "recvfrom", "recvmsg", "recvmmsg", "recvmmsg_time64",

	// System V and POSIX IPC (isolated by the IPC namespace).
	"ipc",
	"shmget", "shmat", "shmdt", "shmctl",
	"semget", "semop", "semtimedop", "semtimedop_time64", "semctl",
	"msgget", "msgsnd", "msgrcv", "msgctl",
	"mq_open", "mq_unlink", "mq_timedsend", "mq_timedsend_time64",
	"mq_timedreceive", "mq_timedreceive_time64", "mq_notify", "mq_getsetattr",
}

// seccompBlockedSyscalls are syscalls deliberately left out of the profile
// (they fall to the default action, EPERM). The list documents the decision
// and is checked by the tests; it is not part of the generated profile.
var seccompBlockedSyscalls = []string{
	// Mounts and the filesystem tree.
	"mount", "umount", "umount2", "pivot_root",
	"fsopen", "fsconfig", "fsmount", "fspick", "move_mount",
	"open_tree", "open_tree_attr", "mount_setattr", "statmount", "listmount",
	// Namespaces.
	"unshare", "setns", "listns",
	// Machine state: swap, power, kernel images and modules.
	"swapon", "swapoff", "reboot", "kexec_load", "kexec_file_load",
	"init_module", "finit_module", "delete_module",
	"create_module", "query_module", "get_kernel_syms",
	// Kernel tracing, BPF, keyrings, kernel log.
	"bpf", "perf_event_open", "lookup_dcookie", "syslog",
	"keyctl", "add_key", "request_key",
	// Other processes (see the ptrace note above).
	"ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
	"process_madvise", "process_mrelease", "migrate_pages", "move_pages",
	// File handles bypass the mount namespace's view.
	"open_by_handle_at", "name_to_handle_at",
	// Hardware, CPU modes.
	"iopl", "ioperm", "vm86", "vm86old", "modify_ldt",
	"pciconfig_read", "pciconfig_write", "pciconfig_iobase",
	// Memory tricks used by exploits.
	"userfaultfd", "memfd_secret",
	// Accounting, quotas, whole-system monitoring.
	"acct", "quotactl", "quotactl_fd", "fanotify_init", "fanotify_mark",
	// Clocks are not namespaced (except through time namespaces).
	"settimeofday", "stime", "clock_settime", "clock_settime64",
	"adjtimex", "clock_adjtime", "clock_adjtime64",
	// io_uring.
	"io_uring_setup", "io_uring_enter", "io_uring_register",
	// Obsolete or unimplemented.
	"nfsservctl", "_sysctl", "uselib", "ustat", "sysfs", "vhangup",
	"afs_syscall", "tuxcall", "security", "vserver", "getpmsg", "putpmsg",
}

// seccompPersonalityValues are the personality(2) arguments allowed:
// PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, and 0xffffffff
// (query the current persona without changing it).
var seccompPersonalityValues = []uint64{0x0, 0x8, 0x20000, 0x20008, 0xffffffff}

// seccompCloneNamespaceFlags are the clone(2) flags that create namespaces;
// clone is allowed only when none of them is set.
const seccompCloneNamespaceFlags uint64 = unix.CLONE_NEWNS | unix.CLONE_NEWUTS |
	unix.CLONE_NEWIPC | unix.CLONE_NEWUSER | unix.CLONE_NEWPID |
	unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP

// seccompArchitectures returns the seccomp architectures for a Go GOARCH: the
// native one first, then those whose binaries the kernel can also run. An
// unknown GOARCH gets nil, which runtimes read as the native arch only.
func seccompArchitectures(goarch string) []specs.Arch {
	switch goarch {
	case "amd64":
		return []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}
	case "arm64":
		return []specs.Arch{specs.ArchAARCH64, specs.ArchARM}
	case "386":
		return []specs.Arch{specs.ArchX86}
	case "arm":
		return []specs.Arch{specs.ArchARM}
	case "riscv64":
		return []specs.Arch{specs.ArchRISCV64}
	case "ppc64le":
		return []specs.Arch{specs.ArchPPC64LE}
	case "s390x":
		return []specs.Arch{specs.ArchS390X, specs.ArchS390}
	case "loong64":
		return []specs.Arch{specs.ArchLOONGARCH64}
	}
	return nil
}

// seccompCloneFlagsArg is the index of clone(2)'s flags argument: s390
// swaps the first two arguments.
func seccompCloneFlagsArg(goarch string) uint {
	if goarch == "s390x" {
		return 1
	}
	return 0
}

func seccompErrno(e syscall.Errno) *uint {
	v := uint(e)
	return &v
}

// DefaultSeccomp returns the default seccomp profile for containers on this
// host: syscalls outside the allowlist fail with EPERM. Each call returns a
// fresh value that the caller may modify. See the notes at the top of this
// file for what is refused and why.
func DefaultSeccomp() *specs.LinuxSeccomp {
	return seccompProfileFor(runtime.GOARCH)
}

func seccompProfileFor(goarch string) *specs.LinuxSeccomp {
	allowed := make([]string, len(seccompAllowedSyscalls))
	copy(allowed, seccompAllowedSyscalls)

	syscalls := []specs.LinuxSyscall{{
		Names:  allowed,
		Action: specs.ActAllow,
	}}

	// personality: one rule per value (rules are ORed, a rule's args ANDed).
	for _, v := range seccompPersonalityValues {
		syscalls = append(syscalls, specs.LinuxSyscall{
			Names:  []string{"personality"},
			Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{{
				Index: 0,
				Value: v,
				Op:    specs.OpEqualTo,
			}},
		})
	}

	syscalls = append(syscalls,
		// clone: allowed when (flags & namespace flags) == 0.
		specs.LinuxSyscall{
			Names:  []string{"clone"},
			Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{{
				Index:    seccompCloneFlagsArg(goarch),
				Value:    seccompCloneNamespaceFlags,
				ValueTwo: 0,
				Op:       specs.OpMaskedEqual,
			}},
		},
		// clone3: its flags cannot be inspected; ENOSYS makes libc fall
		// back to clone, which can.
		specs.LinuxSyscall{
			Names:    []string{"clone3"},
			Action:   specs.ActErrno,
			ErrnoRet: seccompErrno(syscall.ENOSYS),
		},
		// socket: any family but AF_VSOCK.
		specs.LinuxSyscall{
			Names:  []string{"socket"},
			Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{{
				Index: 0,
				Value: unix.AF_VSOCK,
				Op:    specs.OpNotEqual,
			}},
		},
	)

	return &specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: seccompErrno(syscall.EPERM),
		Architectures:   seccompArchitectures(goarch),
		Syscalls:        syscalls,
	}
}
