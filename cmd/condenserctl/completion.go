package main

import (
	"context"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/raind/condenser/rest/api"
)

// Shell completion is cobra's (`condenserctl completion bash|zsh|fish|powershell`);
// these functions add the daemon's containers, images and networks as
// arguments.
// A daemon that cannot be reached in time completes nothing.

// completionCall is a GET bounded by a short timeout.
func (c *cli) completionCall(path string, out any) error {
	ctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
	defer cancel()
	saved := c.ctx
	c.ctx = ctx
	defer func() { c.ctx = saved }()
	return c.call("GET", path, nil, out)
}

// completeContainers offers the names of the containers not yet on the line.
func (c *cli) completeContainers(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	var list []api.ContainerSummary
	if err := c.completionCall("/v1/containers?all=true", &list); err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, s := range list {
		if !slices.Contains(args, s.Name) {
			names = append(names, s.Name)
		}
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// completeImages offers the images' names (repository:tag).
func (c *cli) completeImages(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	var list []api.ImageSummary
	if err := c.completionCall("/v1/images", &list); err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, i := range list {
		if n := imageName(i.Repository, i.Reference); !slices.Contains(args, n) {
			names = append(names, n)
		}
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// completeNetworks offers the names of the networks not yet on the line.
func (c *cli) completeNetworks(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	return c.networkNames(args, true)
}

// networkNames offers the names of the networks not in args, the built-in
// ones (raind0, host, none) only with builtIn.
func (c *cli) networkNames(args []string, builtIn bool) ([]string, cobra.ShellCompDirective) {
	var list []api.NetworkSummary
	if err := c.completionCall("/v1/networks", &list); err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, n := range list {
		if (builtIn || !n.BuiltIn) && !slices.Contains(args, n.Name) {
			names = append(names, n.Name)
		}
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// completeFormat completes --format.
func completeFormat(cmd *cobra.Command) {
	cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))
}
