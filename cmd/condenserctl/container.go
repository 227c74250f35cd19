package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/raind/condenser/rest/api"
)

// containerCommands are the subcommands of `container`.
func (c *cli) containerCommands() []*cobra.Command {
	return []*cobra.Command{
		c.createCommand(false),
		c.createCommand(true),
		c.startCommand(),
		c.stopRestartCommand("stop"),
		c.stopRestartCommand("restart"),
		c.killCommand(),
		c.rmCommand(),
		c.waitCommand(),
		c.execCommand(),
		c.attachCommand(),
		c.logsCommand(),
		c.lsCommand(),
		c.inspectCommand(),
		c.statsCommand(),
	}
}

// idCommand posts (or deletes) one action to every container named; query
// gives the action's query string once the flags are parsed.
func (c *cli) idCommand(use, short, method, action string, query func() string) *cobra.Command {
	return &cobra.Command{
		Use:               use,
		Short:             short,
		Args:              needArgs(1, "CONTAINER"),
		ValidArgsFunction: c.completeContainers,
		RunE: func(cmd *cobra.Command, args []string) error {
			q := ""
			if query != nil {
				q = query()
			}
			return c.idAction(method, action+q, args)
		},
	}
}

func (c *cli) idAction(method, action string, ids []string) error {
	return c.each(ids, func(id string) error {
		var r api.IDResponse
		if err := c.call(method, "/v1/containers/"+esc(id)+action, nil, &r); err != nil {
			return err
		}
		fmt.Fprintln(c.out, id)
		return nil
	})
}

func (c *cli) stopRestartCommand(action string) *cobra.Command {
	var timeout int
	short := map[string]string{"stop": "Stop containers (SIGTERM, then SIGKILL after the timeout)", "restart": "Restart containers"}[action]
	cmd := c.idCommand(action+" [flags] CONTAINER...", short, "POST", "/actions/"+action,
		func() string { return "?timeout=" + strconv.Itoa(timeout) })
	cmd.Flags().IntVarP(&timeout, "timeout", "t", 10, "seconds to wait for the container to stop before killing it")
	return cmd
}

func (c *cli) killCommand() *cobra.Command {
	var sig string
	cmd := c.idCommand("kill [flags] CONTAINER...", "Send a signal to containers (default KILL)", "POST", "/actions/kill",
		func() string { return "?signal=" + url.QueryEscape(sig) })
	cmd.Flags().StringVarP(&sig, "signal", "s", "KILL", "signal name or number")
	cmd.RegisterFlagCompletionFunc("signal", cobra.FixedCompletions(
		[]string{"KILL", "TERM", "INT", "HUP", "QUIT", "USR1", "USR2", "STOP", "CONT"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func (c *cli) rmCommand() *cobra.Command {
	var force bool
	cmd := c.idCommand("rm [flags] CONTAINER...", "Remove containers", "DELETE", "/actions/delete",
		func() string { return "?force=" + strconv.FormatBool(force) })
	cmd.Aliases = []string{"remove"}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "stop running containers first")
	return cmd
}

func (c *cli) waitCommand() *cobra.Command {
	return &cobra.Command{
		Use:               "wait CONTAINER...",
		Short:             "Wait for containers to exit and print their exit codes",
		Args:              needArgs(1, "CONTAINER"),
		ValidArgsFunction: c.completeContainers,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.each(args, func(id string) error {
				var w api.WaitResponse
				if err := c.call("POST", "/v1/containers/"+esc(id)+"/actions/wait", nil, &w); err != nil {
					return err
				}
				fmt.Fprintln(c.out, w.ExitCode)
				return nil
			})
		},
	}
}

func (c *cli) logsCommand() *cobra.Command {
	var follow, ts bool
	var tail, since string
	cmd := &cobra.Command{
		Use:               "logs [flags] CONTAINER",
		Short:             "Print a container's log",
		Args:              exactArgs(1, "one CONTAINER"),
		ValidArgsFunction: c.completeContainers,
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{"follow": {strconv.FormatBool(follow)}, "tail": {tail}, "timestamps": {strconv.FormatBool(ts)}}
			if since != "" {
				q.Set("since", since)
			}
			return c.copyLogs(args[0], q, c.out)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&follow, "follow", "f", false, "follow the log")
	f.StringVarP(&tail, "tail", "n", "all", "the last N lines (or all)")
	f.BoolVarP(&ts, "timestamps", "t", false, "prefix lines with their time")
	f.StringVar(&since, "since", "", "from this time: RFC 3339, Unix seconds or a duration (10m)")
	return cmd
}

// copyLogs streams …/logs?q into w.
func (c *cli) copyLogs(id string, q url.Values, w io.Writer) error {
	resp, err := c.do("GET", "/v1/containers/"+esc(id)+"/logs?"+q.Encode(), nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	if err != nil && c.ctx.Err() != nil {
		return nil
	}
	return err
}

func (c *cli) inspectCommand() *cobra.Command {
	return &cobra.Command{
		Use:               "inspect CONTAINER...",
		Short:             "Print containers as JSON",
		Args:              needArgs(1, "CONTAINER"),
		ValidArgsFunction: c.completeContainers,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.each(args, func(id string) error {
				var raw json.RawMessage
				if err := c.call("GET", "/v1/containers/"+esc(id), nil, &raw); err != nil {
					return err
				}
				return c.printJSON(raw)
			})
		},
	}
}

func (c *cli) lsCommand() *cobra.Command {
	var all bool
	var format *string
	cmd := &cobra.Command{
		Use:               "ls [flags]",
		Aliases:           []string{"list", "ps"},
		Short:             "List containers",
		Args:              noArgs,
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(*format); err != nil {
				return err
			}
			var list []api.ContainerSummary
			if err := c.call("GET", "/v1/containers?all="+strconv.FormatBool(all), nil, &list); err != nil {
				return err
			}
			if *format == "json" {
				if list == nil {
					list = []api.ContainerSummary{}
				}
				return c.printJSON(list)
			}
			tw := tabwriter.NewWriter(c.out, 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "CONTAINER ID\tNAME\tIMAGE\tSTATE\tCREATED\tPORTS")
			for _, s := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", short(s.ContainerID), s.Name, imageName(s.ImageRepository, s.ImageReference),
					s.State, ago(s.CreatedAt), portsColumn(s.Forwards))
			}
			return tw.Flush()
		},
	}
	format = formatFlag(cmd.Flags())
	cmd.Flags().BoolVarP(&all, "all", "a", true, "include stopped containers (--all=false: running ones only)")
	completeFormat(cmd)
	return cmd
}

func (c *cli) statsCommand() *cobra.Command {
	var format *string
	cmd := &cobra.Command{
		Use:               "stats [flags] [CONTAINER...]",
		Short:             "Print resource usage (of every running container without arguments)",
		ValidArgsFunction: c.completeContainers,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(*format); err != nil {
				return err
			}
			var list []api.ContainerStats
			if len(args) == 0 {
				if err := c.call("GET", "/v1/containers/stats", nil, &list); err != nil {
					return err
				}
			}
			for _, id := range args {
				var s api.ContainerStats
				if err := c.call("GET", "/v1/containers/"+esc(id)+"/stats", nil, &s); err != nil {
					return err
				}
				list = append(list, s)
			}
			if *format == "json" {
				if list == nil {
					list = []api.ContainerStats{}
				}
				return c.printJSON(list)
			}
			tw := tabwriter.NewWriter(c.out, 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "CONTAINER ID\tNAME\tCPU TIME\tMEM USAGE / LIMIT\tPIDS\tBLOCK I/O")
			for _, s := range list {
				limit := "unlimited"
				if s.Memory.Limit > 0 {
					limit = size(int64(s.Memory.Limit))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s / %s\t%d\t%s / %s\n", short(s.ContainerID), s.Name,
					time.Duration(s.CPU.UsageNanos).Round(time.Millisecond), size(int64(s.Memory.Usage)), limit,
					s.Pids.Current, size(int64(s.IO.ReadBytes)), size(int64(s.IO.WriteBytes)))
			}
			return tw.Flush()
		},
	}
	format = formatFlag(cmd.Flags())
	completeFormat(cmd)
	return cmd
}
