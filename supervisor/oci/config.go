package oci

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/names"
)

// Config is what a user chooses about a container that shapes its OCI
// configuration (the create fields of the Raind v1 contract, once the REST
// layer has decoded them). Zero values mean "not set": the image's value or
// Docker's default applies. The supervisor keeps it in its stored create
// request, so its JSON keys are part of the record format.
type Config struct {
	// Entrypoint: nil keeps the image's. [""] (Docker's --entrypoint "")
	// clears it and, because the entrypoint was overridden, drops the image's
	// Cmd too. [] (non-nil, empty) clears it but keeps the image's Cmd when
	// Command is empty, as the Docker Engine API does. Not omitempty, so
	// that [] survives a stored record.
	Entrypoint []string `json:"entrypoint"`
	// Command: nil or empty means the image's Cmd, unless Entrypoint is
	// overridden (non-empty, or [""]): then there is no Cmd.
	Command []string `json:"command,omitempty"`
	// Env entries are KEY=VALUE; the request wins over the image. An entry
	// without "=" is rejected (Docker's CLI would copy it from the client's
	// environment; the REST API cannot).
	Env []string `json:"env,omitempty"`
	// Mounts are "/host:/ctr[:ro|rw]" bind mounts.
	Mounts []string `json:"mounts,omitempty"`
	// WorkingDir must be absolute; default the image's, else "/". A missing
	// directory is created by the OCI runtime (runc and crun both do).
	WorkingDir string `json:"workdir,omitempty"`
	// User is "", name, uid, uid:gid, name:group, uid:group or name:gid,
	// resolved against the image's /etc/passwd and /etc/group like runc.
	User string `json:"user,omitempty"`
	// Hostname defaults to the first 12 characters of the container id (the
	// host's hostname with Network "host", as Docker does).
	Hostname string `json:"hostname,omitempty"`
	// Labels become annotations, over the image's labels.
	Labels map[string]string `json:"labels,omitempty"`
	// Network is "host" (the host's network namespace) or the name of a
	// network the container gets its own namespace on: "" or "raind0"
	// (the default bridge), "none" (loopback only), a user-defined one.
	Network string `json:"network,omitempty"`
	// Memory is the memory limit in bytes; 0 means unset.
	Memory int64 `json:"memory,omitempty"`
	// CPUs is a fraction of CPUs (1.5 → 150ms every 100ms); 0 means unset.
	CPUs float64 `json:"cpus,omitempty"`
	// PidsLimit is the maximum number of tasks; 0 means unset (no limit).
	PidsLimit int64 `json:"pids,omitempty"`
	// ReadOnly makes the root filesystem read-only.
	ReadOnly bool `json:"readOnly,omitempty"`
	// Tty gives the process a pseudo-terminal (process.terminal).
	Tty bool `json:"tty,omitempty"`

	// Not (yet) in the Raind v1 contract; Docker's semantics.

	// MemoryReservation is the soft limit in bytes; 0 means unset.
	MemoryReservation int64 `json:"memoryReservation,omitempty"`
	// MemorySwap is Docker's --memory-swap: memory+swap in total, -1
	// unlimited, 0 twice Memory.
	MemorySwap int64 `json:"memorySwap,omitempty"`
	// CPUShares is the relative CPU weight; 0 means unset.
	CPUShares uint64 `json:"cpuShares,omitempty"`
}

// Validate checks everything about c that can be judged without the image:
// network, hostname, working directory, the syntax of user, the command
// line's bytes, env entries, bind mount syntax (whether a host path exists is
// checked by Generate), labels and resource limits. Errors wrap
// errdefs.ErrInvalidArgument and name the field and value.
func (c *Config) Validate() error {
	if _, err := parseNetwork(c.Network); err != nil {
		return err
	}
	if c.Hostname != "" {
		if err := checkHostname(c.Hostname); err != nil {
			return err
		}
	}
	if d := c.WorkingDir; d != "" && !filepath.IsAbs(d) {
		return invalid("workdir %q: not an absolute path", d)
	}
	if _, err := parseUserSpec(c.User); err != nil {
		return err
	}
	for _, field := range []struct {
		name string
		args []string
	}{{"entrypoint", c.Entrypoint}, {"command", c.Command}} {
		for _, a := range field.args {
			if strings.ContainsRune(a, 0) {
				return invalid("%s %q: an argument contains a NUL byte", field.name, field.args)
			}
		}
	}
	for _, kv := range c.Env {
		if err := checkEnv(kv); err != nil {
			return err
		}
	}
	if _, err := parseBinds(c.Mounts); err != nil {
		return err
	}
	for k := range c.Labels {
		if k == "" {
			return invalid("labels: a label needs a key")
		}
	}
	return c.validateResources()
}

// invalid returns an error wrapping errdefs.ErrInvalidArgument.
func invalid(format string, a ...any) error {
	return fmt.Errorf(format+": %w", append(a, errdefs.ErrInvalidArgument)...)
}

// parseNetwork tells whether network n is the host's; any other is a
// namespace of the container's own (whether n exists is the supervisor's
// to check: networks are created at run time).
func parseNetwork(n string) (host bool, err error) {
	switch n {
	case "", "raind0", "none":
		return false, nil
	case "host":
		return true, nil
	}
	if err := names.ValidName(n); err != nil {
		return false, invalid("network %q: not a valid network name", n)
	}
	return false, nil
}

func checkHostname(h string) error {
	if len(h) > maxHostname {
		return invalid("hostname %q: longer than %d bytes", h, maxHostname)
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return invalid("hostname %q: only letters, digits, '-', '.' and '_' are allowed", h)
		}
	}
	return nil
}

func checkEnv(kv string) error {
	key, _, ok := strings.Cut(kv, "=")
	switch {
	case !ok:
		return invalid("env %q: want KEY=VALUE", kv)
	case key == "":
		return invalid("env %q: empty variable name", kv)
	case strings.ContainsRune(kv, 0):
		return invalid("env %q: contains a NUL byte", kv)
	}
	return nil
}

// userSpec is a parsed "user[:group]".
type userSpec struct {
	user, group    string
	uid, gid       int
	uidNum, gidNum bool // user / group is a number
}

// parseUserSpec checks the syntax of a user spec: at most one ':', and
// numeric ids within 0..2^31-1.
func parseUserSpec(s string) (userSpec, error) {
	var u userSpec
	u.user, u.group, _ = strings.Cut(s, ":")
	if strings.Contains(u.group, ":") {
		return u, invalid("user %q: want user[:group]", s)
	}
	var err error
	u.uid, err = strconv.Atoi(u.user)
	u.uidNum = err == nil
	u.gid, err = strconv.Atoi(u.group)
	u.gidNum = err == nil
	if u.uidNum && (u.uid < 0 || u.uid > maxUserID) {
		return u, invalid("user %q: uid %d out of range 0..%d", s, u.uid, maxUserID)
	}
	if u.gidNum && (u.gid < 0 || u.gid > maxUserID) {
		return u, invalid("user %q: gid %d out of range 0..%d", s, u.gid, maxUserID)
	}
	return u, nil
}

// parseBinds parses bind mounts (one per entry, in order) and rejects two
// on one target.
func parseBinds(mounts []string) ([]specs.Mount, error) {
	var binds []specs.Mount
	targets := map[string]bool{}
	for _, m := range mounts {
		b, err := parseBind(m)
		if err != nil {
			return nil, err
		}
		if targets[b.Destination] {
			return nil, invalid("mount %q: duplicate mount point %s", m, b.Destination)
		}
		targets[b.Destination] = true
		binds = append(binds, b)
	}
	return binds, nil
}

// parseBind parses "/host:/ctr[:ro|rw]"; it does not look at the host.
func parseBind(s string) (specs.Mount, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return specs.Mount{}, invalid("mount %q: want /host/path:/container/path[:ro|rw]", s)
	}
	src, dst, mode := parts[0], parts[1], "rw"
	if len(parts) == 3 {
		mode = parts[2]
		if mode != "ro" && mode != "rw" {
			return specs.Mount{}, invalid("mount %q: unknown mode %q (want ro or rw)", s, mode)
		}
	}
	if !filepath.IsAbs(src) {
		return specs.Mount{}, invalid("mount %q: host path %q is not absolute", s, src)
	}
	if hasDotDot(src) {
		return specs.Mount{}, invalid("mount %q: host path %q contains \"..\"", s, src)
	}
	if !filepath.IsAbs(dst) {
		return specs.Mount{}, invalid("mount %q: container path %q is not absolute", s, dst)
	}
	if hasDotDot(dst) {
		return specs.Mount{}, invalid("mount %q: container path %q contains \"..\"", s, dst)
	}
	src, dst = filepath.Clean(src), filepath.Clean(dst)
	if dst == "/" {
		return specs.Mount{}, invalid("mount %q: cannot mount over the container's root directory", s)
	}
	if err := checkProcDestination(dst); err != nil {
		return specs.Mount{}, invalid("mount %q: %v", s, err)
	}
	return specs.Mount{
		Destination: dst, Type: "bind", Source: src,
		Options: []string{"rbind", mode, "rprivate"},
	}, nil
}

// procBindable are the files under /proc that runc lets a bind mount
// cover (those lxcfs emulates); crun is no more lenient.
var procBindable = map[string]bool{
	"/proc/cpuinfo": true, "/proc/diskstats": true, "/proc/meminfo": true, "/proc/stat": true,
	"/proc/swaps": true, "/proc/uptime": true, "/proc/loadavg": true, "/proc/slabinfo": true,
	"/proc/net/dev": true, "/proc/sys/kernel/ns_last_pid": true,
}

// checkProcDestination refuses, before anything is made, the bind mount
// destinations the runtime refuses at create: /proc itself (the
// container's own procfs: runc "cannot be mounted because it is not of type
// proc") and anything under it but the few files lxcfs emulates ("cannot be
// mounted because it is inside /proc"). /sys and /dev can be bound over, as
// with Docker. dst is clean and absolute.
func checkProcDestination(dst string) error {
	switch {
	case dst == "/proc":
		return errors.New("cannot mount over /proc: it is the container's own procfs")
	case strings.HasPrefix(dst, "/proc/") && !procBindable[dst]:
		return fmt.Errorf("cannot mount over %s: the runtime refuses mounts inside /proc, but for %s", dst, strings.Join(slices.Sorted(maps.Keys(procBindable)), ", "))
	}
	return nil
}

func hasDotDot(p string) bool {
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return true
		}
	}
	return false
}

func (c *Config) validateResources() error {
	m, res, swap := c.Memory, c.MemoryReservation, c.MemorySwap
	switch {
	case m < 0:
		return invalid("memory %d: must not be negative (0 is no limit)", m)
	case m > 0 && m < minMemory:
		return invalid("memory %d: the minimum memory limit is 6MB (%d bytes)", m, minMemory)
	case res < 0:
		return invalid("memoryReservation %d: must not be negative", res)
	case res > 0 && res < minMemory:
		return invalid("memoryReservation %d: the minimum memory reservation is 6MB (%d bytes)", res, minMemory)
	case m > 0 && res > m:
		return invalid("memoryReservation %d: larger than the memory limit %d", res, m)
	case swap < -1:
		return invalid("memorySwap %d: want -1 (unlimited), 0 (default) or memory+swap in bytes", swap)
	case swap > 0 && m == 0:
		return invalid("memorySwap %d: set memory too (memorySwap is the memory+swap total)", swap)
	case swap > 0 && swap < m:
		return invalid("memorySwap %d: smaller than the memory limit %d (memorySwap is the memory+swap total)", swap, m)
	}
	if c.CPUs != 0 {
		n := numCPU()
		if math.IsNaN(c.CPUs) || c.CPUs < 0.01 || c.CPUs > float64(n) {
			return invalid("cpus %v: range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available", c.CPUs, n, n)
		}
	}
	if c.PidsLimit < 0 {
		return invalid("pids %d: must not be negative (0 is no limit)", c.PidsLimit)
	}
	return nil
}
