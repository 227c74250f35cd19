package stats

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/errdefs"
)

// The package reads the cgroup file system itself rather than through
// github.com/containerd/cgroups: the shim needs a dozen files, and the
// library (with the eBPF, D-Bus and logging packages it links) was the
// larger part of the shim's binary and of its resident text. The layout
// rules below are the library's, so that both find the same directories.

// defaultV2Mountpoint is where the unified hierarchy is mounted in unified
// mode (as the library, runc and systemd assume).
const defaultV2Mountpoint = "/sys/fs/cgroup"

// mode is the host's cgroup layout.
type mode int

const (
	modeUnavailable mode = iota
	modeLegacy           // v1 hierarchies only
	modeHybrid           // v1 hierarchies plus a cgroup2 mount at /sys/fs/cgroup/unified
	modeUnified          // cgroup2 at /sys/fs/cgroup
)

// hostMode detects the layout as cgroups.Mode does: by the file system
// types of /sys/fs/cgroup and /sys/fs/cgroup/unified.
func hostMode() mode {
	var st unix.Statfs_t
	if err := unix.Statfs(defaultV2Mountpoint, &st); err != nil {
		return modeUnavailable
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		return modeUnified
	}
	if err := unix.Statfs(filepath.Join(defaultV2Mountpoint, "unified"), &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return modeHybrid
	}
	return modeLegacy
}

// v1Controllers are the v1 hierarchies looked for below the v1 root, as
// cgroup1.Default lists them: a combined mount (cpu,cpuacct) is found
// under each name through the symbolic links systemd makes.
var v1Controllers = [...]string{
	"systemd", "freezer", "pids", "net_cls", "net_prio", "perf_event", "cpuset",
	"cpu", "cpuacct", "memory", "blkio", "rdma", "devices", "hugetlb",
}

// v1Root is the directory holding the v1 hierarchies: the parent of the
// first cgroup (v1) mount in mountinfo.
func v1Root() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent maj:min root mountpoint options [optional...] - fstype source super
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		if fstype, _, _ := strings.Cut(post, " "); fstype != "cgroup" {
			continue
		}
		if fields := strings.Fields(pre); len(fields) >= 5 {
			return filepath.Dir(fields[4]), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("no cgroup v1 mount: %w", errdefs.ErrUnavailable)
}

// v1Hierarchy is one v1 controller's directory for a cgroup.
type v1Hierarchy struct {
	name, dir string
}

// v1Dirs returns, for each v1 hierarchy below root, the cgroup's directory
// in it (which may not exist).
func v1Dirs(root, path string) []v1Hierarchy {
	var hs []v1Hierarchy
	for _, name := range v1Controllers {
		if _, err := os.Lstat(filepath.Join(root, name)); err == nil {
			hs = append(hs, v1Hierarchy{name: name, dir: filepath.Join(root, name, path)})
		}
	}
	return hs
}

// readFile reads a small cgroup file; a missing file is (nil, nil), as a
// counter this kernel or cgroup does not have reads as zero.
func readFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// parseUint parses a single-value cgroup file's content: "max" is
// unlimited (MaxUint64), empty is 0.
func parseUint(b []byte) (uint64, error) {
	s := string(bytes.TrimSpace(b))
	switch s {
	case "":
		return 0, nil
	case "max":
		return math.MaxUint64, nil
	}
	return strconv.ParseUint(s, 10, 64)
}

// readUint reads a single-value file (0 when missing).
func readUint(dir, name string) (uint64, error) {
	if dir == "" {
		return 0, nil
	}
	b, err := readFile(filepath.Join(dir, name))
	if err != nil {
		return 0, err
	}
	v, err := parseUint(b)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return v, nil
}

// readKey reads key's value from a flat keyed file ("key value" lines:
// memory.stat, memory.events, cpu.stat, memory.oom_control); found is false
// when the file or the key is missing.
func readKey(dir, name, key string) (v uint64, found bool, err error) {
	if dir == "" {
		return 0, false, nil
	}
	b, err := readFile(filepath.Join(dir, name))
	if err != nil || b == nil {
		return 0, false, err
	}
	for line := range bytes.Lines(b) {
		k, val, ok := bytes.Cut(bytes.TrimSpace(line), []byte(" "))
		if ok && string(k) == key {
			v, err := strconv.ParseUint(string(bytes.TrimSpace(val)), 10, 64)
			if err != nil {
				return 0, false, fmt.Errorf("%s %s: %w", name, key, err)
			}
			return v, true, nil
		}
	}
	return 0, false, nil
}

// readProcs appends the pids in dir's cgroup.procs and, recursively, in
// its descendants'.
func readProcs(dir string, pids []int) ([]int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	for line := range bytes.Lines(b) {
		if s := bytes.TrimSpace(line); len(s) > 0 {
			pid, err := strconv.Atoi(string(s))
			if err != nil {
				return nil, fmt.Errorf("cgroup.procs: %w", err)
			}
			pids = append(pids, pid)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if e.IsDir() {
			// A child removed meanwhile has no processes left to report.
			more, err := readProcs(filepath.Join(dir, e.Name()), pids)
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENODEV) {
				continue
			}
			if err != nil {
				return nil, err
			}
			pids = more
		}
	}
	return pids, nil
}

// Join creates the cgroup at path (a clean absolute path below the cgroup
// root) where it is missing — in the unified hierarchy, or in every v1
// hierarchy, the cpuset's cpus and mems copied from its parents as the
// kernel needs — and moves the process pid into it, as cgroup2.NewManager
// and cgroup1.New with no resources followed by AddProc do.
func Join(path string, pid int) error {
	if err := checkPath(path); err != nil {
		return err
	}
	switch hostMode() {
	case modeUnified:
		dir := filepath.Join(defaultV2Mountpoint, path)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("cgroup %s: %w", path, err)
		}
		return writeProcs(dir, pid)
	case modeLegacy, modeHybrid:
	default:
		return fmt.Errorf("cgroup %s: no cgroup file system mounted: %w", path, errdefs.ErrUnavailable)
	}
	root, err := v1Root()
	if err != nil {
		return fmt.Errorf("cgroup %s: %w", path, err)
	}
	userns := inUserNS()
	for _, h := range v1Dirs(root, path) {
		if h.name == "devices" && userns {
			continue // the library leaves it alone too: it cannot be changed from a user namespace
		}
		if h.name == "cpuset" {
			if err := makeCpuset(strings.TrimSuffix(h.dir, path), path); err != nil {
				return fmt.Errorf("cgroup %s: cpuset: %w", path, err)
			}
		} else if err := os.MkdirAll(h.dir, 0o755); err != nil {
			return fmt.Errorf("cgroup %s: %w", path, err)
		}
		if err := writeProcs(h.dir, pid); err != nil {
			return fmt.Errorf("cgroup %s: %s: %w", path, h.name, err)
		}
	}
	return nil
}

// makeCpuset creates path below the cpuset hierarchy's root, each new
// level given its parent's cpuset.cpus and cpuset.mems: a v1 cpuset with
// them empty takes no process.
func makeCpuset(root, path string) error {
	dir := root
	for _, part := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
		parent := dir
		dir = filepath.Join(dir, part)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			cur, err := readFile(filepath.Join(dir, f))
			if err != nil {
				return err
			}
			if len(bytes.TrimSpace(cur)) > 0 {
				continue
			}
			v, err := readFile(filepath.Join(parent, f))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, f), v, 0); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeProcs moves pid into the cgroup at dir. The kernel refuses (EINVAL)
// a task still being created: retried a few times, as runc does.
func writeProcs(dir string, pid int) error {
	f, err := os.OpenFile(filepath.Join(dir, "cgroup.procs"), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	for i := 0; ; i++ {
		_, err = f.Write([]byte(strconv.Itoa(pid)))
		if err == nil || !errors.Is(err, syscall.EINVAL) || i == 4 {
			return err
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// inUserNS reports whether this process runs in a user namespace (its
// uid_map is not the identity over the whole range).
func inUserNS() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return !(len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295")
}
