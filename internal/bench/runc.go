package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// bareRunc runs a copy of a bundle's config.json with `runc run`, in the
// foreground, as the baseline a container engine adds its cost to.
type bareRunc struct {
	bundle, root string
	mounted      string // the overlay made for runc's root, if any
	n            int
}

// newBareRunc copies the config of bundle into dir/bundle, rooted at
// rootfs and in a cgroup of its own. A root filesystem seen through a
// shim's mount namespace (/proc/PID/root/…, where Condenser's shims mount
// it) is mounted again on the host for runc, an overlay of the same
// layers with a writable layer of its own: runc takes no root through
// /proc.
func newBareRunc(bundle, rootfs, dir string) (_ *bareRunc, err error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, err
	}
	var spec map[string]any
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, err
	}
	r := &bareRunc{bundle: filepath.Join(dir, "bundle"), root: filepath.Join(dir, "runc")}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	if err := os.MkdirAll(r.bundle, 0o700); err != nil {
		return nil, err
	}
	if strings.HasPrefix(rootfs, "/proc/") {
		if rootfs, err = r.mountLike(rootfs, filepath.Join(bundle, "rootfs")); err != nil {
			return nil, err
		}
	}
	spec["root"] = map[string]any{"path": rootfs}
	if linux, ok := spec["linux"].(map[string]any); ok {
		linux["cgroupsPath"] = "/condenser-bench/runc"
	}
	if b, err = json.Marshal(spec); err != nil {
		return nil, err
	}
	return r, os.WriteFile(filepath.Join(r.bundle, "config.json"), b, 0o600)
}

// mountLike mounts on dir/bundle/rootfs an overlay of the lower layers of
// the overlay at mountPoint in the namespace of /proc/PID (from procPath,
// /proc/PID/root/…), and returns its path.
func (r *bareRunc) mountLike(procPath, mountPoint string) (string, error) {
	pid, _, _ := strings.Cut(strings.TrimPrefix(procPath, "/proc/"), "/")
	mi, err := os.ReadFile("/proc/" + pid + "/mountinfo")
	if err != nil {
		return "", err
	}
	var lower string
	for _, line := range strings.Split(string(mi), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 || f[4] != mountPoint {
			continue
		}
		_, super, _ := strings.Cut(line, " - ")
		sf := strings.Fields(super)
		if len(sf) < 3 || sf[0] != "overlay" {
			return "", fmt.Errorf("%s is a %s mount, not an overlay", mountPoint, sf[0])
		}
		for _, o := range strings.Split(sf[2], ",") {
			if v, ok := strings.CutPrefix(o, "lowerdir="); ok {
				lower = v
			}
		}
	}
	if lower == "" {
		return "", fmt.Errorf("no overlay with lower layers at %s in process %s's mount namespace", mountPoint, pid)
	}
	base := filepath.Dir(r.bundle)
	root := filepath.Join(r.bundle, "rootfs")
	for _, d := range []string{root, filepath.Join(base, "upper"), filepath.Join(base, "work")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return "", err
		}
	}
	opts := "lowerdir=" + lower + ",upperdir=" + filepath.Join(base, "upper") + ",workdir=" + filepath.Join(base, "work")
	if err := unix.Mount("overlay", root, "overlay", 0, opts); err != nil {
		return "", fmt.Errorf("mount the bare runc's root: %w", err)
	}
	r.mounted = root
	return root, nil
}

// run runs the container to its exit and returns how long that took.
func (r *bareRunc) run(ctx context.Context) (time.Duration, error) {
	r.n++
	cmd := exec.CommandContext(ctx, "runc", "--root", r.root, "run", "--bundle", r.bundle, fmt.Sprint("bench-runc-", r.n))
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(t0)
	if err != nil {
		return 0, fmt.Errorf("runc run: %w: %s", err, out)
	}
	return d, nil
}

// close removes the cgroups runc leaves (the parent of the container's).
func (r *bareRunc) close() {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/condenser-bench")
	for _, d := range dirs {
		os.Remove(d)
	}
	if r.mounted != "" {
		if err := unix.Unmount(r.mounted, 0); err != nil {
			unix.Unmount(r.mounted, unix.MNT_DETACH)
		}
	}
	os.RemoveAll(filepath.Dir(r.bundle))
}
