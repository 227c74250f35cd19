package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/raind/condenser/rest/api"
)

func (c *cli) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:               "version",
		Short:             "Print the client's and the daemon's versions",
		Args:              noArgs,
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(c.out, "Client: %s %s\n", prog, version)
			var v api.VersionInfo
			if err := c.call("GET", "/v1/version", nil, &v); err != nil {
				return err
			}
			fmt.Fprintf(c.out, "Server: condenser %s (API %s, %s, %s/%s)\n", v.Version, v.APIVersion, v.GoVersion, v.OS, v.Arch)
			return nil
		},
	}
}

func (c *cli) infoCommand() *cobra.Command {
	return &cobra.Command{
		Use:               "info",
		Short:             "Print the daemon's system information",
		Args:              noArgs,
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			var i api.SystemInfo
			if err := c.call("GET", "/v1/info", nil, &i); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(c.out, 0, 8, 1, ' ', 0)
			for _, kv := range [][2]any{
				{"Containers", fmt.Sprintf("%d (running %d, stopped %d)", i.Containers, i.ContainersRunning, i.ContainersStopped)},
				{"Images", i.Images}, {"Runtime", strings.TrimSpace(i.Runtime + " " + i.RuntimeVersion)},
				{"Cgroup mode", i.CgroupMode}, {"Storage driver", i.StorageDriver}, {"Root", i.Root}, {"State", i.State},
				{"Kernel", i.KernelVersion}, {"OS/Arch", i.OS + "/" + i.Arch}, {"CPUs", i.NCPU}, {"Memory", size(i.MemTotal)},
			} {
				fmt.Fprintf(tw, "%s:\t%v\n", kv[0], kv[1])
			}
			return tw.Flush()
		},
	}
}

// short is an id without its algorithm, cut to 12 characters.
func short(id string) string {
	if i := strings.IndexByte(id, ':'); i >= 0 {
		id = id[i+1:]
	}
	return id[:min(12, len(id))]
}

func imageName(repo, ref string) string {
	repo = strings.TrimPrefix(strings.TrimPrefix(repo, "docker.io/"), "library/")
	if strings.HasPrefix(ref, "sha256:") {
		return repo + "@" + ref
	}
	return repo + ":" + ref
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d seconds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d minutes ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d hours ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	f, i := float64(n), 0
	for f >= unit && i < 4 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f%ciB", f, "BKMGT"[i])
}
