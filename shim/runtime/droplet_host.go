package runtime

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Droplet's fixed paths (the defaults of Droplet's unexported fields).
const (
	dropletAuditDir  = "/etc/raind/log"
	dropletEtcRoot   = "/etc/raind/container"
	dropletCgroupDir = "/sys/fs/cgroup/raind"
)

// dropletState is what Droplet's state.json says.
type dropletState struct {
	Status  string `json:"status"`
	Pid     int    `json:"pid"`
	ShimPid int    `json:"shimPid"` // its tty shim's (create -t), else 0
}

// readState reads dir/state.json without running Droplet (whose commands
// panic on a container they cannot handle).
func readState(dir string) (dropletState, error) {
	var st dropletState
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return st, err
	}
	err = json.Unmarshal(b, &st)
	return st, err
}

// dropletInits returns the pids of Droplet's init (or tty shim) processes
// for the container whose fifo is fifo: `droplet init|shim ID FIFO …`.
// Droplet records an init's pid only once create has got through the
// cgroup and network setup: after a failure there, this is how to find it.
func dropletInits(id, fifo string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		// argv[0] is droplet; or an interpreter, the script's path next.
		args := strings.Split(string(b), "\x00")
		for i := 1; i <= 2 && i+2 < len(args); i++ {
			if (args[i] == "init" || args[i] == "shim") && args[i+1] == id && args[i+2] == fifo {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// killWait kills pid (pinned by a pidfd) and waits a while for it to exit.
func killWait(pid int) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
	unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 2000)
}

// cgroupV2 reports whether /sys/fs/cgroup is the unified hierarchy alone.
func cgroupV2() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// v1Controllers are the cgroup v1 controllers the driver applies Droplet's
// limits through on a host that is not cgroup v2 only.
var v1Controllers = []string{"memory", "cpu", "pids"}

// v1Dirs returns cgroup path (absolute, below the root) in each v1
// hierarchy of v1Controllers mounted here: <mount><path>, by controller.
func v1Dirs(path string) (map[string]string, error) {
	mounts, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return m.FSType != "cgroup" || m.Root != "/", false
	})
	if err != nil {
		return nil, err
	}
	dirs := map[string]string{}
	for _, m := range mounts {
		for _, o := range strings.Split(m.VFSOptions, ",") {
			if slices.Contains(v1Controllers, o) && dirs[o] == "" {
				dirs[o] = filepath.Join(m.Mountpoint, path)
			}
		}
	}
	return dirs, nil
}

// applyV1 puts pid in the v1 cgroups at path with the limits Droplet
// wrote only as plain files (it writes cgroup v2 files, which on a hybrid
// host land on the tmpfs under /sys/fs/cgroup and limit nothing).
func applyV1(path string, pid int, memory, quota int64, period uint64) error {
	dirs, err := v1Dirs(path)
	if err != nil {
		return err
	}
	files := map[string][][2]string{
		"memory": {{"memory.limit_in_bytes", strconv.FormatInt(memory, 10)}},
		"cpu":    {{"cpu.cfs_period_us", strconv.FormatUint(period, 10)}, {"cpu.cfs_quota_us", strconv.FormatInt(quota, 10)}},
		"pids":   {{"pids.max", "512"}},
	}
	for _, c := range v1Controllers {
		dir := dirs[c]
		if dir == "" {
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("cgroup v1 %s: %w", c, err)
		}
		for _, f := range append(files[c], [2]string{"cgroup.procs", strconv.Itoa(pid)}) {
			if err := os.WriteFile(filepath.Join(dir, f[0]), []byte(f[1]), 0o644); err != nil {
				return fmt.Errorf("cgroup v1: %w", err)
			}
		}
	}
	return nil
}

// removeV1 kills what is left in the v1 cgroups at path and removes
// them.
func removeV1(path string) error {
	dirs, err := v1Dirs(path)
	if err != nil {
		return err
	}
	var errs []error
	for _, dir := range dirs {
		if err := killRemoveCgroup(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// killRemoveCgroup kills the processes of cgroup dir and removes it; a
// missing dir is no error.
func killRemoveCgroup(dir string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		pids := strings.Fields(string(b))
		if len(pids) == 0 {
			break
		}
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil && pid > 0 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s: processes %v survive SIGKILL", dir, pids)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for {
		err := syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// removeDropletCgroup removes the directory Droplet writes into: a cgroup
// on cgroup v2 (its processes killed first), a plain directory on the
// tmpfs of a hybrid host.
func removeDropletCgroup(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return nil // gone
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		return killRemoveCgroup(dir)
	}
	return os.RemoveAll(dir)
}

// deleteVeth removes the host side of a veth Droplet made, if it is still
// there (a create that failed after making it).
func deleteVeth(name string) error {
	if name == "" || strings.ContainsAny(name, "/\x00") || strings.HasPrefix(name, "-") {
		return nil
	}
	if _, err := os.Lstat(filepath.Join("/sys/class/net", name)); err != nil {
		return nil
	}
	if out, err := exec.Command("ip", "link", "delete", "dev", name).CombinedOutput(); err != nil {
		return fmt.Errorf("delete veth %s: %v: %s", name, err, bytes.TrimSpace(out))
	}
	return nil
}

// initOutput carries the container's init output from logs/init.log (a
// pipe) to the shim's stream, keeping its end: the init's own failure
// (log.Fatal's line) is there when it fails before running the
// container's process.
type initOutput struct {
	w    *os.File // the end init.log names; closed once create is over
	done chan struct{}

	mu   sync.Mutex
	tail []byte
}

const initTail = 4096

// newInitOutput starts copying a new pipe to a duplicate of out (which
// the caller may close).
func newInitOutput(out *os.File) (*initOutput, error) {
	fd, err := unix.FcntlInt(out.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	dup := os.NewFile(uintptr(fd), out.Name())
	r, w, err := os.Pipe()
	if err != nil {
		dup.Close()
		return nil, err
	}
	o := &initOutput{w: w, done: make(chan struct{})}
	go func() {
		defer close(o.done)
		defer dup.Close()
		defer r.Close()
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				o.mu.Lock()
				o.tail = append(o.tail, buf[:n]...)
				if len(o.tail) > initTail {
					o.tail = append([]byte(nil), o.tail[len(o.tail)-initTail:]...)
				}
				o.mu.Unlock()
				dup.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	return o, nil
}

// end returns the last bytes the init wrote, once its output ended or
// after wait.
func (o *initOutput) end(wait time.Duration) []byte {
	select {
	case <-o.done:
	case <-time.After(wait):
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.tail)
}

// initFailure is the init's own error in its output: the last line
// log.Fatal wrote (after a timestamp), or a Go panic, or "".
func initFailure(out []byte) string {
	s := strings.TrimSpace(string(out))
	if i := strings.LastIndex(s, "panic: "); i >= 0 {
		line, _, _ := strings.Cut(s[i:], "\n")
		return line
	}
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if n := logPrefixLen(lines[i]); n >= 0 {
			return strings.TrimSpace(lines[i][n:])
		}
	}
	return ""
}

// exeID identifies the executable a process runs (so that an exec shows).
func exeID(pid int) (uint64, uint64, bool) {
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/exe", pid), &st); err != nil {
		return 0, 0, false
	}
	return st.Dev, st.Ino, true
}

// readAll reads path, at most initTail bytes from its end.
func readTail(path string) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > initTail {
		f.Seek(-initTail, io.SeekEnd)
	}
	b, _ := io.ReadAll(io.LimitReader(f, initTail))
	return b
}

// v1Path is the cgroup the driver puts a container in on a host with v1
// hierarchies: the bundle's linux.cgroupsPath (cgroupfs style, below the
// root), where the shim reads the container's stats and watches for OOM
// kills and `condenser-shim delete` cleans up; /raind/ID, Droplet's own
// name, when the bundle has none (or one that is not a cgroup of its own).
func v1Path(bundle, id string) string {
	var s struct {
		Linux *struct {
			CgroupsPath string `json:"cgroupsPath"`
		} `json:"linux"`
	}
	if b, err := os.ReadFile(filepath.Join(bundle, "config.json")); err == nil && json.Unmarshal(b, &s) == nil && s.Linux != nil {
		p := s.Linux.CgroupsPath
		if strings.HasPrefix(p, "/") && filepath.Clean(p) == p && p != "/" && !strings.Contains(p, ":") {
			return p
		}
	}
	return "/raind/" + id
}
