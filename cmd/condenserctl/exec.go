package main

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/coder/websocket"
	"github.com/spf13/cobra"

	"github.com/raind/condenser/rest/api"
)

// exec, attach and start -a: sessions on a process's standard streams
// (stdio.go), Docker's command lines.

func (c *cli) execCommand() *cobra.Command {
	var interactive, tty, detach bool
	var env list
	var user, workdir string
	var keys detachKeys
	cmd := &cobra.Command{
		Use:   "exec [flags] CONTAINER COMMAND [ARG...]",
		Short: "Run a command in a running container and exit with its code",
		Long: "Run a command in a running container, relay its standard streams and exit with its code\n" +
			"(127 when the command does not exist, 126 when it cannot be executed).\n\n" +
			"Flags go before CONTAINER: whatever follows it is the command and its arguments.",
		Args: needArgs(2, "CONTAINER and COMMAND"),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return c.completeContainers(cmd, args, toComplete)
			}
			return nil, cobra.ShellCompDirectiveDefault
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o := stdio{stdin: interactive, tty: tty, detachKeys: keys.value(c)}
			if tty && !detach {
				if err := c.requireTerminal(); err != nil {
					return err
				}
			}
			req := api.ExecRequest{Command: args[1:], Tty: tty, Stdin: interactive, Env: env, User: user, Workdir: workdir}
			if rows, cols, ok := c.windowSize(); tty && ok {
				// The process starts now: it gets the size at once (a
				// Resize frame would come after its first look).
				req.ConsoleSize = &[2]uint16{uint16(rows), uint16(cols)}
			}
			if detach {
				req.Detach = &detach
			}
			var r api.IDResponse
			path := "/v1/containers/" + esc(args[0]) + "/execs"
			if err := c.call("POST", path, req, &r); err != nil {
				return runError(err)
			}
			if detach {
				return nil
			}
			conn, err := c.openStdio(path+"/"+esc(r.ID)+"/stdio", o)
			if err != nil {
				return err
			}
			code, _, err := c.relay(conn, o)
			if err != nil {
				return err
			}
			if code != 0 {
				return exitError{code: code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&interactive, "interactive", "i", false, "send this input to the command")
	f.BoolVarP(&tty, "tty", "t", false, "allocate a terminal")
	f.BoolVarP(&detach, "detach", "d", false, "run the command in the background; print nothing")
	f.VarP(&env, "env", "e", "set an environment variable KEY=VALUE (repeatable)")
	f.StringVarP(&user, "user", "u", "", "user[:group], as names or ids (default: the container's)")
	f.StringVarP(&workdir, "workdir", "w", "", "working directory, absolute (default: the container's)")
	detachKeysFlag(f, &keys)
	f.SetInterspersed(false)
	return cmd
}

// inspect reads a container's record.
func (c *cli) inspect(id string) (*api.ContainerDetail, error) {
	var d api.ContainerDetail
	if err := c.call("GET", "/v1/containers/"+esc(id), nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// attachTo connects to container d's stdio, with its input when stdin and
// the container's is open, refusing a terminal the client has not.
func (c *cli) attachTo(d *api.ContainerDetail, stdin bool, keys string) (*websocket.Conn, stdio, error) {
	o := stdio{stdin: stdin && d.Config.OpenStdin, tty: d.Config.Tty, detachKeys: keys}
	if o.tty && o.stdin {
		if err := c.requireTerminal(); err != nil {
			return nil, o, err
		}
	}
	conn, err := c.openStdio("/v1/containers/"+esc(d.ContainerID)+"/stdio", o)
	return conn, o, err
}

func (c *cli) attachCommand() *cobra.Command {
	var noStdin bool
	var keys detachKeys
	cmd := &cobra.Command{
		Use:   "attach [flags] CONTAINER",
		Short: "Attach to a running container's input and output",
		Long: "Attach this terminal (or these streams) to a running container's input and output and exit\n" +
			"with its code when it exits. The detach keys (--detach-keys, default " + defaultDetachKeys + " on a terminal)\n" +
			"leave it running; its input is attached only when it was created with -i.",
		Args:              exactArgs(1, "one CONTAINER"),
		ValidArgsFunction: c.completeContainers,
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := c.inspect(args[0])
			if err != nil {
				return err
			}
			conn, o, err := c.attachTo(d, !noStdin, keys.value(c))
			if err != nil {
				return err
			}
			_, err = c.session(conn, o, d.ContainerID)
			return err
		},
	}
	cmd.Flags().BoolVar(&noStdin, "no-stdin", false, "do not attach the input")
	detachKeysFlag(cmd.Flags(), &keys)
	return cmd
}

func (c *cli) startCommand() *cobra.Command {
	var attach, interactive bool
	var keys detachKeys
	cmd := &cobra.Command{
		Use:   "start [flags] CONTAINER...",
		Short: "Start containers",
		Long: "Start containers and print their names; with -a (or -i), attach to one container's output\n" +
			"(and input) first, and exit with its code.",
		Args:              needArgs(1, "CONTAINER"),
		ValidArgsFunction: c.completeContainers,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !attach && !interactive {
				return c.idAction("POST", "/actions/start", args)
			}
			if len(args) > 1 {
				return usagef("start: you cannot start and attach multiple containers at once")
			}
			d, err := c.inspect(args[0])
			if err != nil {
				return err
			}
			if d.State == "stopped" {
				return c.restartAttached(d, interactive, keys.value(c))
			}
			conn, o, err := c.attachTo(d, interactive, keys.value(c))
			if err != nil {
				return err
			}
			// A running container is only attached to, as docker does.
			if d.State != "running" {
				if d.Config.Tty {
					c.presize(d.ContainerID)
				}
				if err := c.call("POST", "/v1/containers/"+esc(d.ContainerID)+"/actions/start", api.StartContainerRequest{Tty: d.Config.Tty}, nil); err != nil {
					conn.CloseNow()
					return runError(err)
				}
			}
			_, err = c.session(conn, o, d.ContainerID)
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&attach, "attach", "a", false, "attach to the container's output and exit with its code")
	f.BoolVarP(&interactive, "interactive", "i", false, "attach its input too (implies -a)")
	detachKeysFlag(f, &keys)
	return cmd
}

// restartAttached is start -a of a stopped container. A stopped container
// has no process to attach to (the daemon refuses: 409), so it is started
// first and attached to next: what it prints before is only in its log,
// and if it has stopped again by then, its exit status is all there is.
func (c *cli) restartAttached(d *api.ContainerDetail, stdin bool, keys string) error {
	if d.Config.Tty && stdin && d.Config.OpenStdin {
		if err := c.requireTerminal(); err != nil {
			return err
		}
	}
	id := d.ContainerID
	if err := c.call("POST", "/v1/containers/"+esc(id)+"/actions/start", api.StartContainerRequest{Tty: d.Config.Tty}, nil); err != nil {
		return runError(err)
	}
	conn, o, err := c.attachTo(d, stdin, keys)
	var ae *apiError
	if errors.As(err, &ae) && ae.status == http.StatusConflict {
		var w api.WaitResponse
		if err := c.call("POST", "/v1/containers/"+esc(id)+"/actions/wait", nil, &w); err != nil {
			return err
		}
		fmt.Fprintf(c.errOut, "%s: container %s stopped before it could be attached to; its output is in its log (%s container logs %s)\n", prog, short(id), prog, short(id))
		if w.ExitCode != 0 {
			return exitError{code: w.ExitCode}
		}
		return nil
	}
	if err != nil {
		return err
	}
	_, err = c.session(conn, o, id)
	return err
}
