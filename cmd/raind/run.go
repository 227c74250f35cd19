package main

import (
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/raind/condenser/rest/api"
)

// list is a repeatable string flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

// createFlags are the flags of create and run.
type createFlags struct {
	name, entrypoint, workdir, user, memory, restart string
	env, volume, publish                             list
	tty, readOnly, rm, detach                        bool
	cpus                                             float64
	pids                                             int64
}

// flags defines them on fs; run adds --rm and -d.
func (f *createFlags) flags(fs *flag.FlagSet, run bool) {
	fs.StringVar(&f.name, "name", "", "container name")
	for _, n := range []string{"e", "environment", "env"} {
		fs.Var(&f.env, n, "KEY=VALUE (repeatable)")
	}
	for _, n := range []string{"v", "volume"} {
		fs.Var(&f.volume, n, "/host:/ctr[:ro] (repeatable)")
	}
	for _, n := range []string{"p", "publish"} {
		fs.Var(&f.publish, n, "HOST:CONTAINER[/proto] (repeatable)")
	}
	for _, n := range []string{"t", "tty"} {
		fs.BoolVar(&f.tty, n, false, "allocate a terminal")
	}
	fs.StringVar(&f.entrypoint, "entrypoint", "", "replace the image's entrypoint")
	for _, n := range []string{"w", "workdir"} {
		fs.StringVar(&f.workdir, n, "", "working directory")
	}
	for _, n := range []string{"u", "user"} {
		fs.StringVar(&f.user, n, "", "user[:group]")
	}
	fs.StringVar(&f.memory, "memory", "", "memory limit (64m, 1g)")
	fs.StringVar(&f.memory, "m", "", "")
	fs.Float64Var(&f.cpus, "cpus", 0, "CPUs (1.5)")
	fs.Int64Var(&f.pids, "pids-limit", 0, "maximum number of tasks")
	fs.StringVar(&f.restart, "restart", "", "no, on-failure[:N], always, unless-stopped")
	fs.BoolVar(&f.readOnly, "read-only", false, "read-only root filesystem")
	if run {
		fs.BoolVar(&f.rm, "rm", false, "remove the container when it exits")
		for _, n := range []string{"d", "detach"} {
			fs.BoolVar(&f.detach, n, false, "print the id and return")
		}
	}
}

// request turns the flags and IMAGE [COMMAND…] into a create request.
func (f *createFlags) request(args []string) (*api.CreateContainerRequest, error) {
	req := &api.CreateContainerRequest{
		Image: args[0], Command: args[1:], Env: f.env, Mount: f.volume, Port: f.publish,
		Network: "raind0", Tty: f.tty, Name: f.name, Workdir: f.workdir, User: f.user,
		RestartPolicy: f.restart, ReadOnly: f.readOnly, AutoRemove: f.rm && f.detach,
	}
	if f.entrypoint != "" {
		req.Entrypoint = []string{f.entrypoint}
	}
	mem, err := parseBytes(f.memory)
	if err != nil {
		return nil, usagef("--memory %q: want bytes with an optional unit: 64m, 1g", f.memory)
	}
	if mem != 0 || f.cpus != 0 || f.pids != 0 {
		req.Resources = &api.Resources{Memory: mem, CPUs: f.cpus, Pids: f.pids}
	}
	return req, nil
}

// parseBytes reads 512, 64k, 64m, 1g, 1.5G, 2t (powers of 1024, optional b).
func parseBytes(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	t := strings.TrimSuffix(strings.ToLower(s), "b")
	mult := int64(1)
	if t != "" {
		if i := strings.IndexByte("kmgt", t[len(t)-1]); i >= 0 {
			mult = 1 << (10 * (i + 1))
			t = t[:len(t)-1]
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return int64(v * float64(mult)), nil
}

// create parses the flags and creates the container; it returns its id.
func (c *cli) create(name string, args []string, run bool) (string, *createFlags, error) {
	fs := newFlags(name)
	var f createFlags
	f.flags(fs, run)
	if err := parse(fs, args, 1, "IMAGE"); err != nil {
		return "", nil, err
	}
	req, err := f.request(fs.Args())
	if err != nil {
		return "", nil, err
	}
	var r api.IDResponse
	if err := c.call("POST", "/v1/containers", req, &r); err != nil {
		return "", nil, err
	}
	return r.ID, &f, nil
}

func cmdCreate(c *cli, args []string) error {
	id, _, err := c.create("container create", args, false)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.out, id)
	return nil
}

// cmdRun creates and starts; unless detached it streams the log until the
// container stops, exits with its code and, with --rm, removes it.
func cmdRun(c *cli, args []string) (err error) {
	id, f, err := c.create("container run", args, true)
	if err != nil {
		return err
	}
	if f.rm && !f.detach {
		defer func() {
			if rerr := c.call("DELETE", "/v1/containers/"+id+"/actions/delete?force=true", nil, nil); rerr != nil && err == nil {
				err = rerr
			}
		}()
	}
	if err := c.call("POST", "/v1/containers/"+id+"/actions/start", api.StartContainerRequest{Tty: f.tty}, nil); err != nil {
		return err
	}
	if f.detach {
		fmt.Fprintln(c.out, id)
		return nil
	}
	// The log from its beginning, stdout and stderr to their own streams.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range []struct {
		name string
		w    io.Writer
	}{{"stdout", c.out}, {"stderr", c.errOut}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.copyLogs(id, url.Values{"follow": {"1"}, s.name: {"1"}}, s.w)
		}()
	}
	wg.Wait()
	if c.ctx.Err() != nil {
		return fmt.Errorf("interrupted; container %s is still there", short(id))
	}
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	var w api.WaitResponse
	if err := c.call("POST", "/v1/containers/"+id+"/actions/wait", nil, &w); err != nil {
		return err
	}
	if w.ExitCode != 0 {
		return exitError{w.ExitCode}
	}
	return nil
}
