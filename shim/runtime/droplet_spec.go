package runtime

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/raind/condenser/internal/errdefs"
)

// DropletNetAnnotation carries the network Droplet sets up: it makes the
// container's veth from it (see the supervisor's networks).
const DropletNetAnnotation = "io.raind.net.config"

// dropletSyscalls are the only syscall names Droplet's seccomp filter knows:
// any other name in an SCMP_ACT_ERRNO rule fails the container's init.
var dropletSyscalls = []string{
	"bpf", "perf_event_open", "kexec_load", "open_by_handle_at", "ptrace",
	"process_vm_readv", "process_vm_writev", "userfaultfd", "init_module",
	"finit_module", "delete_module", "name_to_handle_at", "kcmp", "reboot",
	"swapon", "swapoff", "mount", "unshare", "setns",
}

// dropletDeniedSources are the bind mount sources Droplet refuses (and
// everything below them), dropletDeniedDests the destinations.
var (
	dropletDeniedSources = []string{"/proc", "/sys", "/dev", "/run", "/var/run", "/boot", "/root", "/bin", "/usr/bin", "/usr/local/bin", "/etc/raind"}
	dropletDeniedDests   = []string{"/proc", "/sys", "/dev", "/run", "/var/run", "/boot"}
)

// dropletEtcFiles are the files of the container's /etc Droplet bind-mounts
// from <container dir>/etc itself.
var dropletEtcFiles = []string{"hosts", "hostname", "resolv.conf"}

// Limits Droplet gets when the spec sets none: Droplet writes whatever it
// is given (0 for none, which memory.max takes as "nothing"), so "no
// limit" is the host's memory and all its CPUs.
const dropletCPUPeriod = 100000

// dropletSpec is what Create writes and needs besides: Droplet's
// config.json and the files it does not make.
type dropletSpec struct {
	config []byte
	rootfs string            // root.path
	etc    map[string][]byte // etc/ files by name
	veth   string            // the host side of the veth Droplet makes, or ""
	memory int64             // the limits written, for cgroup v1
	quota  int64
	period uint64
}

func dropletInvalid(format string, a ...any) error {
	return fmt.Errorf("%w: droplet: "+format, append([]any{errdefs.ErrInvalidArgument}, a...)...)
}

// underAny reports whether p is one of dirs or below one.
func underAny(p string, dirs []string) bool {
	p = filepath.Clean(p)
	for _, d := range dirs {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// dropletOwnMount reports whether m is one Droplet makes itself (proc,
// sysfs, devices, /dev/shm, …): the spec's is dropped.
func dropletOwnMount(m specs.Mount) bool {
	return underAny(m.Destination, []string{"/proc", "/sys", "/dev"})
}

// dropletMounts turns the spec's mounts into Droplet's: user bind mounts
// only, as ["rbind","rprivate"] binds; the container's /etc files become
// etc/ files (returned by name, read from the bind's source); Droplet's
// own mounts are dropped. What Droplet cannot do is an invalid argument.
func dropletMounts(ms []specs.Mount) ([]specs.Mount, map[string][]byte, error) {
	out := []specs.Mount{}
	etc := map[string][]byte{}
	for _, m := range ms {
		bind := m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
		if name, ok := strings.CutPrefix(filepath.Clean(m.Destination), "/etc/"); ok && bind && slices.Contains(dropletEtcFiles, name) {
			b, err := os.ReadFile(m.Source)
			if err != nil {
				return nil, nil, fmt.Errorf("droplet: the container's /etc/%s: %w", name, err)
			}
			etc[name] = b
			continue
		}
		if !bind {
			if dropletOwnMount(m) || m.Destination == "/run" || m.Destination == "/tmp" {
				continue // Droplet mounts its own /proc, /dev, /sys, /run and /tmp
			}
			return nil, nil, dropletInvalid("Droplet mounts only bind mounts, not %s on %s", m.Type, m.Destination)
		}
		switch {
		case filepath.Clean(m.Destination) == "/" || underAny(m.Destination, dropletDeniedDests):
			return nil, nil, dropletInvalid("Droplet refuses a bind mount on %s", m.Destination)
		case filepath.Clean(m.Source) == "/" || underAny(m.Source, dropletDeniedSources):
			return nil, nil, dropletInvalid("Droplet refuses to bind mount %s (it refuses / and everything under %s)", m.Source, strings.Join(dropletDeniedSources, ", "))
		case slices.Contains(m.Options, "ro"):
			return nil, nil, dropletInvalid("Droplet cannot make a read-only mount (%s on %s)", m.Source, m.Destination)
		}
		if fi, err := os.Lstat(m.Source); err != nil {
			return nil, nil, dropletInvalid("bind mount source: %v", err)
		} else if fi.Mode()&os.ModeSymlink != 0 {
			return nil, nil, dropletInvalid("Droplet refuses a bind mount source that is a symbolic link: %s", m.Source)
		}
		out = append(out, specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: []string{"rbind", "rprivate"}})
	}
	return out, etc, nil
}

// dropletSeccomp maps the spec's seccomp profile onto what Droplet can
// enforce: EPERM for some of the 19 syscalls it knows. A default-allow
// profile keeps the names of its unconditional SCMP_ACT_ERRNO rules
// that Droplet knows; a default-deny one (Docker's) denies each known
// name it does not allow unconditionally. No profile is an empty one
// (Droplet requires the field).
func dropletSeccomp(s *specs.LinuxSeccomp) *specs.LinuxSeccomp {
	out := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}
	if s == nil {
		return out
	}
	var names []string
	if s.DefaultAction == specs.ActAllow || s.DefaultAction == specs.ActLog {
		for _, r := range s.Syscalls {
			if r.Action != specs.ActErrno && r.Action != specs.ActKill && r.Action != specs.ActKillProcess && r.Action != specs.ActKillThread {
				continue
			}
			if len(r.Args) > 0 {
				continue
			}
			for _, n := range r.Names {
				if slices.Contains(dropletSyscalls, n) && !slices.Contains(names, n) {
					names = append(names, n)
				}
			}
		}
	} else {
		allowed := map[string]bool{}
		for _, r := range s.Syscalls {
			if (r.Action == specs.ActAllow || r.Action == specs.ActLog) && len(r.Args) == 0 {
				for _, n := range r.Names {
					allowed[n] = true
				}
			}
		}
		for _, n := range dropletSyscalls {
			if !allowed[n] {
				names = append(names, n)
			}
		}
	}
	if len(names) > 0 {
		out.Syscalls = []specs.LinuxSyscall{{Names: names, Action: specs.ActErrno}}
	}
	return out
}

// hostMemory is the host's memory in bytes (MemTotal), or 0.
func hostMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// apparmorLoaded reports whether AppArmor profile name is loaded.
func apparmorLoaded(name string) bool {
	b, err := os.ReadFile("/sys/kernel/security/apparmor/profiles")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if n, _, _ := strings.Cut(l, " ("); n == name {
			return true
		}
	}
	return false
}

// dropletConfig reads the bundle's config.json (at path), the spec
// Condenser generates for runc, and turns it into Droplet's subset for its
// container directory dir: root.path absolute (a relative one is taken
// from dir), image as the image annotation, mounts, seccomp, limits,
// process and AppArmor as Droplet takes them (see droplet.md); the rest,
// fields unknown to the OCI spec included, as it was (Droplet ignores it).
func dropletConfig(path, dir string, image *dropletImage) (*dropletSpec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("droplet create: bundle: %w", err)
	}
	var spec specs.Spec
	var raw map[string]json.RawMessage
	if err = json.Unmarshal(b, &spec); err == nil {
		err = json.Unmarshal(b, &raw)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: droplet create: %s: %w", errdefs.ErrInvalidArgument, path, err)
	}
	if spec.Root == nil || spec.Root.Path == "" {
		return nil, fmt.Errorf("%w: droplet create: %s has no root.path", errdefs.ErrInvalidArgument, path)
	}
	out := &dropletSpec{}
	root := *spec.Root
	if !filepath.IsAbs(root.Path) {
		root.Path = filepath.Join(dir, root.Path)
	}
	root.Readonly = false // Droplet ignores it
	out.rootfs = root.Path

	// process: args, and every env entry a NAME=value.
	if spec.Process == nil || len(spec.Process.Args) == 0 {
		return nil, dropletInvalid("the container has no command (process.args is empty)")
	}
	for _, e := range spec.Process.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return nil, dropletInvalid("environment entry %q is not NAME=value", e)
		}
	}
	mounts, etc, err := dropletMounts(spec.Mounts)
	if err != nil {
		return nil, err
	}
	out.etc = etc
	if _, ok := etc["hostname"]; !ok {
		etc["hostname"] = []byte(spec.Hostname + "\n")
	}
	if _, ok := etc["hosts"]; !ok {
		hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
		if spec.Hostname != "" {
			hosts += "127.0.1.1\t" + spec.Hostname + "\n"
		}
		etc["hosts"] = []byte(hosts)
	}
	if _, ok := etc["resolv.conf"]; !ok {
		b, _ := os.ReadFile("/etc/resolv.conf")
		etc["resolv.conf"] = b
	}

	linux := spec.Linux
	if linux == nil {
		linux = &specs.Linux{}
	}
	for _, ns := range linux.Namespaces {
		if ns.Path != "" {
			return nil, dropletInvalid("Droplet cannot join the %s namespace %s (it makes new ones only)", ns.Type, ns.Path)
		}
	}
	linux.Seccomp = dropletSeccomp(linux.Seccomp)
	res := linux.Resources
	if res == nil {
		res = &specs.LinuxResources{}
		linux.Resources = res
	}
	if res.Memory == nil {
		res.Memory = &specs.LinuxMemory{}
	}
	if res.Memory.Limit == nil || *res.Memory.Limit <= 0 {
		m := hostMemory()
		if m <= 0 {
			m = 1 << 40
		}
		res.Memory.Limit = &m
	}
	if res.CPU == nil {
		res.CPU = &specs.LinuxCPU{}
	}
	if res.CPU.Period == nil || *res.CPU.Period == 0 {
		p := uint64(dropletCPUPeriod)
		res.CPU.Period = &p
	}
	if res.CPU.Quota == nil || *res.CPU.Quota <= 0 {
		q := int64(*res.CPU.Period) * int64(goruntime.NumCPU())
		res.CPU.Quota = &q
	}
	out.memory, out.quota, out.period = *res.Memory.Limit, *res.CPU.Quota, *res.CPU.Period

	ann := map[string]string{}
	for k, v := range spec.Annotations {
		ann[k] = v
	}
	if image != nil {
		var v bytes.Buffer
		enc := json.NewEncoder(&v)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(image); err != nil {
			return nil, err
		}
		ann[DropletImageAnnotation] = strings.TrimSuffix(v.String(), "\n")
	} else if ann[DropletImageAnnotation] == "" {
		return nil, fmt.Errorf("%w: droplet create: no overlay mount and no %s annotation", errdefs.ErrInvalidArgument, DropletImageAnnotation)
	}
	var net struct {
		Interface struct {
			Name string `json:"name"`
		} `json:"interface"`
	}
	if ann[DropletNetAnnotation] == "" {
		return nil, dropletInvalid("no %s annotation: Droplet makes the container's network from it (it runs containers on a bridge network only)", DropletNetAnnotation)
	}
	if err := json.Unmarshal([]byte(ann[DropletNetAnnotation]), &net); err != nil {
		return nil, dropletInvalid("%s: %v", DropletNetAnnotation, err)
	}
	out.veth = net.Interface.Name

	for k, v := range map[string]any{"root": root, "annotations": ann, "mounts": mounts, "process": spec.Process} {
		if raw[k], err = json.Marshal(v); err != nil {
			return nil, err
		}
	}
	// Droplet reads linux.apparmorProfile (not process's), and fails when
	// the kernel has AppArmor and the profile is not loaded: it gets the
	// process's profile when that is loaded, else none.
	lb, err := json.Marshal(linux)
	if err != nil {
		return nil, err
	}
	var lraw map[string]json.RawMessage
	if err := json.Unmarshal(lb, &lraw); err != nil {
		return nil, err
	}
	delete(lraw, "apparmorProfile")
	if p := spec.Process.ApparmorProfile; p != "" && apparmorLoaded(p) {
		lraw["apparmorProfile"], _ = json.Marshal(p)
	}
	if raw["linux"], err = json.Marshal(lraw); err != nil {
		return nil, err
	}
	out.config, err = json.MarshalIndent(raw, "", "\t")
	return out, err
}
