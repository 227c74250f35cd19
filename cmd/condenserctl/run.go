package main

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/coder/websocket"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/raind/condenser/rest/api"
)

// list is a repeatable string flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }
func (l *list) Type() string       { return "list" }

// memBytes is a size flag in Docker's forms (see parseBytes).
type memBytes int64

func (m *memBytes) Set(s string) error {
	v, err := parseBytes(s)
	if err != nil {
		return err
	}
	*m = memBytes(v)
	return nil
}

func (m *memBytes) String() string {
	if *m == 0 {
		return ""
	}
	return strconv.FormatInt(int64(*m), 10)
}

func (m *memBytes) Type() string { return "bytes" }

// createFlags are the flags of create and run.
type createFlags struct {
	name, entrypoint, workdir, user, restart string
	network                                  string
	env, volume, publish                     list
	memory                                   memBytes
	tty, interactive, readOnly, rm, detach   bool
	cpus                                     float64
	pids                                     int64
	detachKeys                               detachKeys // run's
}

// flags defines them on fs; run adds --rm, -d and --detach-keys.
func (f *createFlags) flags(fs *pflag.FlagSet, run bool) {
	fs.StringVar(&f.name, "name", "", "container name")
	fs.VarP(&f.env, "env", "e", "set an environment variable KEY=VALUE (repeatable; also --environment)")
	fs.VarP(&f.volume, "volume", "v", "bind mount /host:/ctr[:ro|rw] (repeatable)")
	fs.VarP(&f.publish, "publish", "p", "publish a container port on the host: [IP:]HOST:CONTAINER[/tcp|udp] (repeatable)")
	fs.StringVar(&f.network, "network", "raind0", "the container's network: raind0 (the default bridge), host, none or one made with network create (also --net)")
	fs.BoolVarP(&f.tty, "tty", "t", false, "allocate a terminal")
	fs.BoolVarP(&f.interactive, "interactive", "i", false, "open the container's standard input (run: and attach this input to it)")
	fs.StringVar(&f.entrypoint, "entrypoint", "", "replace the image's entrypoint")
	fs.StringVarP(&f.workdir, "workdir", "w", "", "working directory in the container")
	fs.StringVarP(&f.user, "user", "u", "", "user[:group], as names or ids")
	fs.VarP(&f.memory, "memory", "m", "memory limit: bytes or a number with a unit b, k, m, g (64m, 1.5g); 0 for none")
	fs.Float64Var(&f.cpus, "cpus", 0, "number of CPUs (1.5)")
	fs.Int64Var(&f.pids, "pids-limit", 0, "maximum number of tasks")
	fs.StringVar(&f.restart, "restart", "", "restart policy: no, on-failure[:N], always, unless-stopped")
	fs.BoolVar(&f.readOnly, "read-only", false, "read-only root filesystem")
	if run {
		fs.BoolVar(&f.rm, "rm", false, "remove the container when it exits")
		fs.BoolVarP(&f.detach, "detach", "d", false, "print the container's id and return")
		detachKeysFlag(fs, &f.detachKeys)
	}
	fs.SetNormalizeFunc(flagAliases(map[string]string{"environment": "env", "net": "network"}))
	// Flags after IMAGE are the container command's own, as with docker:
	// run busybox ls -l.
	fs.SetInterspersed(false)
}

// request turns the flags and IMAGE [COMMAND…] into a create request.
func (f *createFlags) request(args []string) *api.CreateContainerRequest {
	req := &api.CreateContainerRequest{
		Image: args[0], Command: args[1:], Env: f.env, Mount: f.volume, Port: f.publish,
		Network: f.network, Tty: f.tty, Name: f.name, Workdir: f.workdir, User: f.user,
		RestartPolicy: f.restart, ReadOnly: f.readOnly, AutoRemove: f.rm && f.detach, OpenStdin: f.interactive,
	}
	if f.entrypoint != "" {
		req.Entrypoint = []string{f.entrypoint}
	}
	if f.memory != 0 || f.cpus != 0 || f.pids != 0 {
		req.Resources = &api.Resources{Memory: int64(f.memory), CPUs: f.cpus, Pids: f.pids}
	}
	return req
}

// sizeRE is Docker's RAMInBytes syntax: a decimal number, an optional
// space, an optional unit k, m, g, t or p (powers of 1024) with an optional
// i, and an optional b; any case.
var sizeRE = regexp.MustCompile(`^(\d+(?:\.\d+)?) ?(?:([kmgtp])i?)?b?$`)

// parseBytes reads a size as docker's --memory does: 512, 512b, 64k, 64m,
// 64MiB, 1g, 1.5G, 2t. Negative sizes, "inf" or "unlimited" are refused,
// as docker refuses them; "" and 0 are no limit.
func parseBytes(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	m := sizeRE.FindStringSubmatch(strings.ToLower(s))
	if m == nil {
		return 0, fmt.Errorf("%q is not a size: want bytes, or a number with a unit b, k, m, g, t (powers of 1024: 64m, 1.5g, 512k); 0 for no limit", s)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size: %v", s, err)
	}
	if m[2] != "" {
		v *= math.Pow(1024, float64(strings.IndexByte("kmgtp", m[2][0])+1))
	}
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(v), nil
}

// runLong is run's own help.
const runLong = "\n\nUnless detached (-d), run attaches to the container's output before starting it (nothing is\n" +
	"lost), with -i to its input too and with -t on this terminal (-it for a shell), and exits with\n" +
	"its status. The detach keys (--detach-keys) leave it running: " + prog + " container attach gets back."

func (c *cli) createCommand(run bool) *cobra.Command {
	var f createFlags
	name, short, more := "create", "Create a container", ""
	if run {
		name, short = "run", "Create and start a container, stream its output and exit with its code"
		more = runLong
	}
	cmd := &cobra.Command{
		Use:   name + " [flags] IMAGE [COMMAND [ARG...]]",
		Short: short,
		Long: short + ".\n\nFlags go before IMAGE: whatever follows IMAGE is the container's command and its\n" +
			"arguments, flags included (" + prog + " container " + name + " busybox ls -l)." + more,
		Args: needArgs(1, "IMAGE"),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return c.completeImages(cmd, args, toComplete)
			}
			return nil, cobra.ShellCompDirectiveDefault
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if run {
				return c.runContainer(&f, args)
			}
			id, err := c.create(&f, args)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.out, id)
			return nil
		},
	}
	f.flags(cmd.Flags(), run)
	cmd.RegisterFlagCompletionFunc("restart", cobra.FixedCompletions(
		[]string{"no", "on-failure", "always", "unless-stopped"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RegisterFlagCompletionFunc("network", func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
		return c.networkNames(nil, true)
	})
	cmd.RegisterFlagCompletionFunc("publish", cobra.NoFileCompletions)
	return cmd
}

// create creates the container; it returns its id.
func (c *cli) create(f *createFlags, args []string) (string, error) {
	var r api.IDResponse
	if err := c.call("POST", "/v1/containers", f.request(args), &r); err != nil {
		return "", err
	}
	return r.ID, nil
}

// execExitCode says whether msg is the runtime's failure to execute the
// container's command, as Docker counts it: 127 when the command does not
// exist (runc: `exec: "/x": stat /x: no such file or directory`,
// `exec: "x": executable file not found in $PATH`; crun: "executable file
// `x` not found"), 126 when it cannot be executed (permission denied, a
// directory, not an executable format); 0 otherwise.
func execExitCode(msg string) int {
	m := strings.ToLower(msg)
	if !strings.Contains(m, `exec: "`) && !strings.Contains(m, "executable file") && !strings.Contains(m, "open executable") {
		return 0
	}
	switch {
	case strings.Contains(m, "no such file or directory"), strings.Contains(m, "not found"):
		return 127
	case strings.Contains(m, "permission denied"), strings.Contains(m, "is a directory"), strings.Contains(m, "exec format error"):
		return 126
	}
	return 0
}

// runError turns the daemon's refusal to execute the command into exit
// status 127 or 126, with its message.
func runError(err error) error {
	var ae *apiError
	if errors.As(err, &ae) {
		if code := execExitCode(ae.msg); code != 0 {
			return exitError{code, err}
		}
	}
	return err
}

// runContainer creates and starts; unless detached it attaches to the
// container's stdio first (so that no output is lost), relays until the
// container exits, exits with its code and, with --rm, removes it. A
// container the client detaches from (the detach keys) goes on.
func (c *cli) runContainer(f *createFlags, args []string) (err error) {
	o := stdio{stdin: f.interactive, tty: f.tty, detachKeys: f.detachKeys.value(c)}
	if f.tty && !f.detach {
		if err := c.requireTerminal(); err != nil {
			return err
		}
	}
	id, err := c.create(f, args)
	if err != nil {
		return runError(err)
	}
	remove := f.rm && !f.detach
	defer func() {
		if !remove {
			return
		}
		if rerr := c.call("DELETE", "/v1/containers/"+id+"/actions/delete?force=true", nil, nil); rerr != nil && err == nil {
			err = rerr
		}
	}()
	var conn *websocket.Conn
	if !f.detach {
		if conn, err = c.openStdio("/v1/containers/"+id+"/stdio", o); err != nil {
			return err
		}
	}
	if f.tty {
		c.presize(id)
	}
	if err := c.call("POST", "/v1/containers/"+id+"/actions/start", api.StartContainerRequest{Tty: f.tty}, nil); err != nil {
		if conn != nil {
			conn.CloseNow()
		}
		return runError(err)
	}
	if f.detach {
		fmt.Fprintln(c.out, id)
		return nil
	}
	ended, err := c.session(conn, o, id)
	remove = remove && ended
	return err
}
