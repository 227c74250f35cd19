package main

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/raind/condenser/rest/api"
)

// networkCommands are the subcommands of `network`.
func (c *cli) networkCommands() []*cobra.Command {
	return []*cobra.Command{c.networkLsCommand(), c.networkCreateCommand(), c.networkRmCommand(), c.networkInspectCommand()}
}

func (c *cli) networkLsCommand() *cobra.Command {
	var format *string
	cmd := &cobra.Command{
		Use:               "ls [flags]",
		Aliases:           []string{"list"},
		Short:             "List networks",
		Args:              noArgs,
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(*format); err != nil {
				return err
			}
			var list []api.NetworkSummary
			if err := c.call("GET", "/v1/networks", nil, &list); err != nil {
				return err
			}
			if *format == "json" {
				if list == nil {
					list = []api.NetworkSummary{}
				}
				return c.printJSON(list)
			}
			tw := tabwriter.NewWriter(c.out, 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "NAME\tDRIVER\tSUBNET\tGATEWAY\tCONTAINERS")
			for _, n := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", n.Name, n.Driver, orDash(n.Subnet), orDash(n.Gateway), len(n.Containers))
			}
			return tw.Flush()
		},
	}
	format = formatFlag(cmd.Flags())
	completeFormat(cmd)
	return cmd
}

func (c *cli) networkCreateCommand() *cobra.Command {
	var req api.CreateNetworkRequest
	cmd := &cobra.Command{
		Use:               "create [flags] NETWORK",
		Short:             "Create a bridge network",
		Long:              "Create a bridge network. Containers on it (container run --network NETWORK) reach each other by name.",
		Args:              exactArgs(1, "one NETWORK"),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Name = args[0]
			var n api.NetworkSummary
			if err := c.call("POST", "/v1/networks", req, &n); err != nil {
				return err
			}
			fmt.Fprintln(c.out, n.Name)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Subnet, "subnet", "", "subnet in CIDR form, e.g. 10.167.0.0/24 (default: a free /24)")
	f.StringVar(&req.Gateway, "gateway", "", "the bridge's address in the subnet (default: its first)")
	cmd.RegisterFlagCompletionFunc("subnet", cobra.NoFileCompletions)
	cmd.RegisterFlagCompletionFunc("gateway", cobra.NoFileCompletions)
	return cmd
}

func (c *cli) networkRmCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "rm NETWORK...",
		Aliases: []string{"remove"},
		Short:   "Remove networks (not while a container is on one)",
		Args:    needArgs(1, "NETWORK"),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			return c.networkNames(args, false)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.each(args, func(name string) error {
				if err := c.call("DELETE", "/v1/networks/"+esc(name), nil, nil); err != nil {
					return err
				}
				fmt.Fprintln(c.out, name)
				return nil
			})
		},
	}
}

func (c *cli) networkInspectCommand() *cobra.Command {
	return &cobra.Command{
		Use:               "inspect NETWORK...",
		Short:             "Print networks as JSON",
		Args:              needArgs(1, "NETWORK"),
		ValidArgsFunction: c.completeNetworks,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.each(args, func(name string) error {
				var raw json.RawMessage
				if err := c.call("GET", "/v1/networks/"+esc(name), nil, &raw); err != nil {
					return err
				}
				return c.printJSON(raw)
			})
		},
	}
}

// orDash is s, or "-" for a table's empty cell.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// portsColumn is a container's published ports as docker ps shows them:
// 0.0.0.0:8080->80/tcp, 127.0.0.1:5353->53/udp.
func portsColumn(fs []api.Forward) string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		ip, proto := f.HostIP, f.Protocol
		if ip == "" {
			ip = "0.0.0.0"
		}
		if proto == "" {
			proto = "tcp"
		}
		out = append(out, fmt.Sprintf("%s->%d/%s", net.JoinHostPort(ip, strconv.Itoa(f.Source)), f.Destination, proto))
	}
	return strings.Join(out, ", ")
}
