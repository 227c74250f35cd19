package oci

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/names"
)

// Request is what Generate builds a spec from: the user's Config and what
// the daemon decides about the container.
type Request struct {
	// ID is the container id (64 hex); it names the cgroup and, by default,
	// the hostname. Name is the container's name; it is not part of the spec.
	ID, Name string
	// CgroupParent is the cgroup under which the container gets its own
	// (see ValidCgroupParent); "" is the package's CgroupParent.
	CgroupParent string
	// Config is the user's choices.
	Config Config
	// CgroupV2 reports whether the host runs the unified hierarchy; the
	// container gets a cgroup namespace only there (as Docker does).
	CgroupV2 bool
	// Seccomp applies DefaultSeccomp().
	Seccomp bool
	// NoNewPrivileges sets the process's no_new_privs bit.
	NoNewPrivileges bool
	// Etc are the files WriteEtcFiles wrote, bind-mounted onto /etc/hosts,
	// /etc/hostname and /etc/resolv.conf; a "" path mounts nothing.
	Etc EtcFiles
}

// fileReader reads a file of the image's root filesystem, e.g. "/etc/passwd";
// the caller reads it from the layers. A file that is absent yields an error
// wrapping fs.ErrNotExist.
type fileReader = func(path string) ([]byte, error)

// noFiles is the fileReader of an image without files.
func noFiles(p string) ([]byte, error) {
	return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
}

// CgroupParent is the default cgroup (a cgroupfs path) under which every
// container gets its own: the spec's cgroupsPath is parent + "/" + id.
const CgroupParent = "/condenser"

// ValidCgroupParent checks a cgroup parent: a plain cgroupfs path, absolute,
// clean and below the root (no "..", not "/", not systemd's
// slice:prefix:name), of path elements without spaces or control
// characters. The error wraps errdefs.ErrInvalidArgument.
func ValidCgroupParent(p string) error {
	// A clean absolute path has no "." or ".." element.
	if !strings.HasPrefix(p, "/") || p == "/" || filepath.Clean(p) != p || strings.ContainsAny(p, ":\\") ||
		strings.ContainsFunc(p, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError }) {
		return invalid("cgroup parent %q: want a clean absolute cgroupfs path below the root, such as %s", p, CgroupParent)
	}
	return nil
}

const (
	specOCIVersion = "1.0.2" // crun 1.8 refuses newer versions
	defaultPathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

	cpuPeriod     = 100000  // µs, as Docker's --cpus
	minMemory     = 6 << 20 // Docker's minimum memory limit and reservation
	minCPUShares  = 2
	maxCPUShares  = 262144
	maxNofile     = 1048576
	maxUserID     = math.MaxInt32
	maxHostname   = 64 // HOST_NAME_MAX
	shortIDLength = 12
)

// Host facts Generate and Validate depend on; variables so that tests can
// pin them.
var (
	// nofileHardLimit returns this process's hard RLIMIT_NOFILE: a container
	// cannot be given more without CAP_SYS_RESOURCE.
	nofileHardLimit = func() (uint64, error) {
		var rl unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
			return 0, err
		}
		return rl.Max, nil
	}
	numCPU             = runtime.NumCPU
	hostHostname       = os.Hostname
	statHostPath       = os.Stat
	swapLimitSupported = hostSwapLimitSupported
)

// dockerCapabilities is Docker's default capability set, in Docker's order.
var dockerCapabilities = []string{
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_FSETID",
	"CAP_FOWNER",
	"CAP_MKNOD",
	"CAP_NET_RAW",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETFCAP",
	"CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT",
	"CAP_KILL",
	"CAP_AUDIT_WRITE",
}

var dockerMaskedPaths = []string{
	"/proc/asound",
	"/proc/acpi",
	"/proc/kcore",
	"/proc/keys",
	"/proc/latency_stats",
	"/proc/timer_list",
	"/proc/timer_stats",
	"/proc/sched_debug",
	"/proc/scsi",
	"/sys/firmware",
	"/sys/devices/virtual/powercap",
}

var dockerReadonlyPaths = []string{
	"/proc/bus",
	"/proc/fs",
	"/proc/irq",
	"/proc/sys",
	"/proc/sysrq-trigger",
}

// Generate builds a container's OCI runtime configuration (config.json)
// from the image's config and the request, with Docker's semantics. img may
// be nil (no image defaults); readFile reads a file of the image's root
// filesystem (e.g. "/etc/passwd"; absent files wrap fs.ErrNotExist) and may
// be nil (the image has no /etc/passwd or /etc/group). Invalid requests
// (req.Config.Validate, the id, the merged command line, the user against
// the image, a bind's host path that does not exist, …) yield errors
// wrapping errdefs.ErrInvalidArgument that name the bad field and value;
// failing to read the image's files yields other errors.
func Generate(img *v1.Config, req Request, readFile func(path string) ([]byte, error)) (*specs.Spec, error) {
	if img == nil {
		img = &v1.Config{}
	}
	if readFile == nil {
		readFile = noFiles
	}
	if err := names.ValidID(req.ID); err != nil {
		return nil, err
	}
	parent := req.CgroupParent
	if parent == "" {
		parent = CgroupParent
	}
	if err := ValidCgroupParent(parent); err != nil {
		return nil, err
	}
	cfg := &req.Config
	if err := cfg.Validate(); err != nil {
		return nil, err
	}

	args, err := processArgs(img, cfg)
	if err != nil {
		return nil, err
	}

	hostNetwork, _ := parseNetwork(cfg.Network) // validated

	hostname, err := containerHostname(req, hostNetwork)
	if err != nil {
		return nil, err
	}

	cwd, err := workingDir(img, cfg)
	if err != nil {
		return nil, err
	}

	userSpec := cfg.User
	if userSpec == "" {
		userSpec = img.User
	}
	user, err := resolveUser(userSpec, readFile)
	if err != nil {
		return nil, err
	}

	env := processEnv(img.Env, cfg.Env, hostname, user.Home)

	mounts, err := containerMounts(req)
	if err != nil {
		return nil, err
	}

	resources := containerResources(cfg, req.CgroupV2)

	nofile, err := nofileHardLimit()
	if err != nil {
		return nil, fmt.Errorf("read RLIMIT_NOFILE: %w", err)
	}
	nofile = min(nofile, maxNofile)

	namespaces := []specs.LinuxNamespace{
		{Type: specs.PIDNamespace},
		{Type: specs.IPCNamespace},
		{Type: specs.UTSNamespace},
		{Type: specs.MountNamespace},
	}
	if !hostNetwork {
		namespaces = append(namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	}
	if req.CgroupV2 {
		namespaces = append(namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}

	spec := &specs.Spec{
		Version: specOCIVersion,
		Process: &specs.Process{
			Terminal: cfg.Tty,
			User: specs.User{
				UID:            user.UID,
				GID:            user.GID,
				AdditionalGids: user.AdditionalGids,
			},
			Args: args,
			Env:  env,
			Cwd:  cwd,
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  append([]string(nil), dockerCapabilities...),
				Effective: append([]string(nil), dockerCapabilities...),
				Permitted: append([]string(nil), dockerCapabilities...),
			},
			Rlimits: []specs.POSIXRlimit{
				{Type: "RLIMIT_NOFILE", Hard: nofile, Soft: nofile},
			},
			NoNewPrivileges: req.NoNewPrivileges,
		},
		Root:        &specs.Root{Path: "rootfs", Readonly: cfg.ReadOnly},
		Hostname:    hostname,
		Mounts:      mounts,
		Annotations: annotations(img.Labels, cfg.Labels),
		Linux: &specs.Linux{
			Resources:     resources,
			CgroupsPath:   parent + "/" + req.ID,
			Namespaces:    namespaces,
			MaskedPaths:   append([]string(nil), dockerMaskedPaths...),
			ReadonlyPaths: append([]string(nil), dockerReadonlyPaths...),
		},
	}
	if req.Seccomp {
		spec.Linux.Seccomp = DefaultSeccomp()
	}
	return spec, nil
}

// processArgs merges entrypoint and command as the Docker Engine does
// (daemon/commit.go merge, then "reset the Entrypoint if it is [\"\"]").
func processArgs(img *v1.Config, cfg *Config) ([]string, error) {
	entrypoint, cmd := cfg.Entrypoint, cfg.Command
	if len(entrypoint) == 0 {
		if len(cmd) == 0 {
			cmd = img.Cmd
		}
		if entrypoint == nil {
			entrypoint = img.Entrypoint
		}
	}
	if len(entrypoint) == 1 && entrypoint[0] == "" {
		entrypoint = nil
	}
	args := make([]string, 0, len(entrypoint)+len(cmd))
	args = append(args, entrypoint...)
	args = append(args, cmd...)
	if len(args) == 0 {
		return nil, invalid("command: no command specified (the image has no Entrypoint or Cmd; give a command)")
	}
	if args[0] == "" {
		return nil, invalid("command %q: the program name is empty", args)
	}
	for _, a := range args {
		if strings.ContainsRune(a, 0) {
			return nil, invalid("command %q: an argument contains a NUL byte", args)
		}
	}
	return args, nil
}

func containerHostname(req Request, hostNetwork bool) (string, error) {
	h := req.Config.Hostname
	if h != "" {
		return h, nil // validated
	}
	if hostNetwork {
		hn, err := hostHostname()
		if err != nil {
			return "", fmt.Errorf("read the host's hostname: %w", err)
		}
		return hn, nil
	}
	h = req.ID
	if len(h) > shortIDLength {
		h = h[:shortIDLength]
	}
	if err := checkHostname(h); err != nil {
		return "", fmt.Errorf("the default hostname, from container id %q: %w", req.ID, err)
	}
	return h, nil
}

func workingDir(img *v1.Config, cfg *Config) (string, error) {
	if d := cfg.WorkingDir; d != "" {
		return filepath.Clean(d), nil // validated: absolute
	}
	if d := img.WorkingDir; d != "" {
		if !filepath.IsAbs(d) {
			return "", invalid("the image's WorkingDir %q: not an absolute path (give workdir to override it)", d)
		}
		return filepath.Clean(d), nil
	}
	return "/", nil
}

// processEnv builds the environment as Docker does: PATH and HOSTNAME first,
// then the image's entries, then the request's (validated), each replacing
// an earlier entry with the same key in place; HOME from /etc/passwd when
// still unset.
func processEnv(imageEnv, reqEnv []string, hostname, home string) []string {
	env := []string{defaultPathEnv, "HOSTNAME=" + hostname}
	index := map[string]int{"PATH": 0, "HOSTNAME": 1}
	set := func(kv string) {
		key, _, _ := strings.Cut(kv, "=")
		if i, ok := index[key]; ok {
			env[i] = kv
			return
		}
		index[key] = len(env)
		env = append(env, kv)
	}
	for _, kv := range imageEnv {
		if key, _, ok := strings.Cut(kv, "="); ok && key != "" {
			set(kv)
		}
	}
	for _, kv := range reqEnv {
		set(kv)
	}
	if _, ok := index["HOME"]; !ok {
		if home == "" {
			home = "/"
		}
		env = append(env, "HOME="+home)
	}
	return env
}

func annotations(imageLabels, reqLabels map[string]string) map[string]string {
	if len(imageLabels)+len(reqLabels) == 0 {
		return nil
	}
	a := make(map[string]string, len(imageLabels)+len(reqLabels))
	for k, v := range imageLabels {
		a[k] = v
	}
	for k, v := range reqLabels {
		a[k] = v
	}
	return a
}

// ---- user resolution ------------------------------------------------------

// execUser is a resolved process user.
type execUser struct {
	UID, GID       uint32
	AdditionalGids []uint32 // the primary gid, then the supplementary groups
	Home           string
}

type passwdEntry struct {
	name     string
	uid, gid int
	home     string
}

type groupEntry struct {
	name    string
	gid     int
	members []string
}

// resolveUser resolves a Docker user spec against the image's /etc/passwd and
// /etc/group with the rules of runc's user.GetExecUser, and returns the
// supplementary groups as Docker does (primary gid first):
//
//   - "" is uid 0; a name is looked up in /etc/passwd (first match wins);
//     a number is always a uid, and may be absent from /etc/passwd (then the
//     gid is 0 and HOME is "/").
//   - A user found in /etc/passwd gives the primary gid and HOME.
//   - ":group" overrides the gid: a name looked up in /etc/group, or a
//     number (which may be absent). Supplementary groups (every group of
//     /etc/group that lists the user's name as a member) are only added when
//     no group was given.
//   - A name that cannot be found (or with no /etc/passwd or /etc/group in
//     the image) is an invalid argument; ids must be within 0..2^31-1.
func resolveUser(spec string, read fileReader) (execUser, error) {
	u := execUser{Home: "/"}
	us, err := parseUserSpec(spec)
	if err != nil {
		return u, err
	}
	userArg, groupArg := us.user, us.group
	uidArg, gidArg := us.uid, us.gid

	passwdData, havePasswd, err := readImageFile(read, "/etc/passwd")
	if err != nil {
		return u, err
	}
	var matched *passwdEntry
	for _, p := range parsePasswd(passwdData) {
		if userArg == "" && p.uid == 0 || us.uidNum && p.uid == uidArg || userArg != "" && !us.uidNum && p.name == userArg {
			matched = &p
			break
		}
	}
	var uid, gid int
	switch {
	case matched != nil:
		uid, gid = matched.uid, matched.gid
		if matched.home != "" {
			u.Home = matched.home
		}
	case userArg == "":
		// root, whether or not the image has an entry for it
	case us.uidNum:
		uid = uidArg
	case !havePasswd:
		return u, invalid("user %q: the image has no /etc/passwd to look up %q in (use a numeric uid)", spec, userArg)
	default:
		return u, invalid("user %q: no user %q in the image's /etc/passwd", spec, userArg)
	}

	var sgids []uint32
	if groupArg != "" || matched != nil {
		groupData, haveGroup, err := readImageFile(read, "/etc/group")
		if err != nil {
			return u, err
		}
		groups := parseGroup(groupData)
		if groupArg != "" {
			found := false
			for _, g := range groups {
				if us.gidNum && g.gid == gidArg || !us.gidNum && g.name == groupArg {
					gid, found = g.gid, true
					break
				}
			}
			switch {
			case found:
			case us.gidNum:
				gid = gidArg
			case !haveGroup:
				return u, invalid("user %q: the image has no /etc/group to look up %q in (use a numeric gid)", spec, groupArg)
			default:
				return u, invalid("user %q: no group %q in the image's /etc/group", spec, groupArg)
			}
		} else {
			for _, g := range groups {
				for _, m := range g.members {
					if m == matched.name {
						sgids = append(sgids, uint32(g.gid))
						break
					}
				}
			}
		}
	}
	u.UID, u.GID = uint32(uid), uint32(gid)
	u.AdditionalGids = append([]uint32{u.GID}, sgids...)
	return u, nil
}

// readImageFile reads one of the image's files; absent is not an error.
func readImageFile(read fileReader, path string) ([]byte, bool, error) {
	data, err := read(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s from the image: %w", path, err)
	}
	return data, true, nil
}

// parsePasswd parses /etc/passwd lines (name:password:uid:gid:gecos:home:shell).
// Unlike runc, which reads an unparsable uid as 0, a line whose uid or gid is
// not a number is skipped rather than taken for root.
func parsePasswd(data []byte) []passwdEntry {
	var out []passwdEntry
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) < 4 {
			continue
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil || uid < 0 || gid < 0 || uid > maxUserID || gid > maxUserID {
			continue
		}
		e := passwdEntry{name: f[0], uid: uid, gid: gid}
		if len(f) > 5 {
			e.home = f[5]
		}
		out = append(out, e)
	}
	return out
}

// parseGroup parses /etc/group lines (name:password:gid:member,member...).
func parseGroup(data []byte) []groupEntry {
	var out []groupEntry
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) < 3 {
			continue
		}
		gid, err := strconv.Atoi(f[2])
		if err != nil || gid < 0 || gid > maxUserID {
			continue
		}
		e := groupEntry{name: f[0], gid: gid}
		if len(f) > 3 && f[3] != "" {
			for _, m := range strings.Split(f[3], ",") {
				if m = strings.TrimSpace(m); m != "" {
					e.members = append(e.members, m)
				}
			}
		}
		out = append(out, e)
	}
	return out
}

// ---- mounts ---------------------------------------------------------------

// defaultMounts are Docker's default mounts.
func defaultMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"ro", "nosuid", "noexec", "nodev", "relatime"}},
	}
}

// containerMounts returns Docker's default mounts (minus those a bind
// replaces), then the per-container /etc files and the request's binds,
// ordered parents first so that a bind on /a never hides one on /a/b.
func containerMounts(req Request) ([]specs.Mount, error) {
	binds, err := parseBinds(req.Config.Mounts) // validated
	if err != nil {
		return nil, err
	}
	targets := map[string]bool{}
	for i, b := range binds { // binds[i] is parsed from Mounts[i]
		if _, err := statHostPath(b.Source); errors.Is(err, fs.ErrNotExist) {
			return nil, invalid("mount %q: host path %q does not exist", req.Config.Mounts[i], b.Source)
		} else if err != nil {
			return nil, invalid("mount %q: host path %q: %v", req.Config.Mounts[i], b.Source, err)
		}
		targets[b.Destination] = true
	}

	// /etc/hosts, /etc/hostname, /etc/resolv.conf: writable like Docker's
	// unless the root filesystem is read-only; a user bind on the same
	// target wins.
	mode := "rw"
	if req.Config.ReadOnly {
		mode = "ro"
	}
	var extra []specs.Mount
	for _, f := range []struct{ field, src, dst string }{
		{"Etc.Hosts", req.Etc.Hosts, "/etc/hosts"},
		{"Etc.Hostname", req.Etc.Hostname, "/etc/hostname"},
		{"Etc.ResolvConf", req.Etc.ResolvConf, "/etc/resolv.conf"},
	} {
		if f.src == "" || targets[f.dst] {
			continue
		}
		if !filepath.IsAbs(f.src) || hasDotDot(f.src) {
			return nil, invalid("%s %q: want an absolute path without \"..\"", f.field, f.src)
		}
		extra = append(extra, specs.Mount{
			Destination: f.dst, Type: "bind", Source: filepath.Clean(f.src),
			Options: []string{"rbind", mode, "rprivate"},
		})
	}
	extra = append(extra, binds...)
	sort.SliceStable(extra, func(i, j int) bool {
		return pathDepth(extra[i].Destination) < pathDepth(extra[j].Destination)
	})

	// As Docker: a bind replaces the default mount on the same target, and
	// a bind on /dev replaces every default mount under /dev.
	var mounts []specs.Mount
	for _, m := range defaultMounts() {
		if targets[m.Destination] || targets["/dev"] && strings.HasPrefix(m.Destination, "/dev/") {
			continue
		}
		mounts = append(mounts, m)
	}
	return append(mounts, extra...), nil
}

func pathDepth(p string) int {
	return strings.Count(filepath.Clean(p), "/")
}

// ---- resources ------------------------------------------------------------

func devRule(typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
	r := specs.LinuxDeviceCgroup{Allow: true, Type: typ, Access: access}
	if major >= 0 {
		r.Major = &major
	}
	if minor >= 0 {
		r.Minor = &minor
	}
	return r
}

// defaultDevices is Docker's device cgroup: deny everything, then allow
// mknod of any device and use of the standard ones (-1 is "*").
func defaultDevices() []specs.LinuxDeviceCgroup {
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		devRule("c", -1, -1, "m"),
		devRule("b", -1, -1, "m"),
		devRule("c", 1, 3, "rwm"),    // /dev/null
		devRule("c", 1, 5, "rwm"),    // /dev/zero
		devRule("c", 1, 7, "rwm"),    // /dev/full
		devRule("c", 1, 8, "rwm"),    // /dev/random
		devRule("c", 1, 9, "rwm"),    // /dev/urandom
		devRule("c", 5, 0, "rwm"),    // /dev/tty
		devRule("c", 5, 1, "rwm"),    // /dev/console
		devRule("c", 5, 2, "rwm"),    // /dev/ptmx
		devRule("c", 136, -1, "rwm"), // /dev/pts/*
		devRule("c", 10, 200, "rwm"), // /dev/net/tun
	}
}

// containerResources builds the cgroup settings of a validated cfg.
func containerResources(cfg *Config, cgroupV2 bool) *specs.LinuxResources {
	r := &specs.LinuxResources{Devices: defaultDevices(), Memory: memoryResources(cfg, cgroupV2)}

	if cfg.CPUs != 0 || cfg.CPUShares != 0 {
		cpu := &specs.LinuxCPU{}
		if cfg.CPUs != 0 {
			nano := int64(math.Round(cfg.CPUs * 1e9))
			quota := nano * cpuPeriod / 1e9
			period := uint64(cpuPeriod)
			cpu.Quota, cpu.Period = &quota, &period
		}
		if cfg.CPUShares != 0 {
			// Docker clamps to the kernel's range rather than failing.
			shares := min(max(cfg.CPUShares, minCPUShares), maxCPUShares)
			cpu.Shares = &shares
		}
		r.CPU = cpu
	}

	if cfg.PidsLimit > 0 {
		limit := cfg.PidsLimit
		r.Pids = &specs.LinuxPids{Limit: &limit}
	}
	return r
}

// memoryResources builds the memory settings of a validated cfg: Docker's
// --memory-swap semantics, as far as the host accounts swap.
func memoryResources(cfg *Config, cgroupV2 bool) *specs.LinuxMemory {
	m, res, swap := cfg.Memory, cfg.MemoryReservation, cfg.MemorySwap
	if m == 0 && res == 0 {
		return nil
	}
	mem := &specs.LinuxMemory{}
	if m > 0 {
		mem.Limit = &m
		// Without swap accounting the runtime cannot write a swap limit;
		// Docker then ignores --memory-swap ("Memory limited without swap").
		if swapLimitSupported(cgroupV2) {
			if swap == 0 {
				swap = -1
				if m <= math.MaxInt64/2 {
					swap = 2 * m // Docker: swap as large as memory
				}
			}
			mem.Swap = &swap
		}
	}
	if res > 0 {
		mem.Reservation = &res
	}
	return mem
}

// hostSwapLimitSupported reports whether the memory controller accounts swap,
// so that a runtime can set a memory+swap limit.
func hostSwapLimitSupported(cgroupV2 bool) bool {
	if !cgroupV2 {
		_, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
		return err == nil
	}
	// The root cgroup has no memory.swap.max: look at our own cgroup and at
	// the usual systemd ones.
	candidates := []string{"/sys/fs/cgroup/init.scope", "/sys/fs/cgroup/system.slice"}
	if data, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if p, ok := strings.CutPrefix(line, "0::"); ok && p != "/" {
				candidates = append([]string{filepath.Join("/sys/fs/cgroup", p)}, candidates...)
			}
		}
	}
	for _, c := range candidates {
		if _, err := os.Stat(filepath.Join(c, "memory.swap.max")); err == nil {
			return true
		}
	}
	return false
}
