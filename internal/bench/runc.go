package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// bareRunc runs a copy of a bundle's config.json with `runc run`, in the
// foreground, as the baseline a container engine adds its cost to.
type bareRunc struct {
	bundle, root string
	n            int
}

// newBareRunc copies the config of bundle into dir/bundle, rooted at
// rootfs and in a cgroup of its own.
func newBareRunc(bundle, rootfs, dir string) (*bareRunc, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, err
	}
	var spec map[string]any
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, err
	}
	spec["root"] = map[string]any{"path": rootfs}
	if linux, ok := spec["linux"].(map[string]any); ok {
		linux["cgroupsPath"] = "/condenser-bench/runc"
	}
	r := &bareRunc{bundle: filepath.Join(dir, "bundle"), root: filepath.Join(dir, "runc")}
	if b, err = json.Marshal(spec); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(r.bundle, 0o700); err != nil {
		return nil, err
	}
	return r, os.WriteFile(filepath.Join(r.bundle, "config.json"), b, 0o600)
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
	os.RemoveAll(filepath.Dir(r.bundle))
}
