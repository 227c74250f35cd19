package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/raind/condenser/rest/api"
)

// imageCommands are the subcommands of `image`.
func (c *cli) imageCommands() []*cobra.Command {
	return []*cobra.Command{c.pullCommand(), c.imagesCommand(), c.imageRmCommand(), c.imageInspectCommand(), c.importCommand()}
}

func (c *cli) pullCommand() *cobra.Command {
	var platform string
	cmd := &cobra.Command{
		Use:               "pull [flags] IMAGE",
		Short:             "Pull an image",
		Args:              exactArgs(1, "one IMAGE"),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			req := api.PullImageRequest{Image: args[0]}
			if platform != "" {
				req.OS, req.Arch, _ = strings.Cut(platform, "/")
			}
			b, _ := json.Marshal(req)
			var res api.PullResult
			if err := c.progress("/v1/images", strings.NewReader(string(b)), &res); err != nil {
				return err
			}
			fmt.Fprintf(c.out, "Pulled %s", res.Image)
			if res.Digest != "" {
				fmt.Fprintf(c.out, " (%s)", res.Digest)
			}
			fmt.Fprintln(c.out)
			return nil
		},
	}
	cmd.Flags().StringVar(&platform, "platform", "", "os/arch (default: the daemon's)")
	cmd.RegisterFlagCompletionFunc("platform", cobra.FixedCompletions(
		[]string{"linux/amd64", "linux/arm64", "linux/arm", "linux/386", "linux/ppc64le", "linux/s390x", "linux/riscv64"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func (c *cli) importCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "import FILE|-",
		Short: "Import a docker save or OCI layout tarball (- reads stdin)",
		Args:  exactArgs(1, "FILE (or - for stdin)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var body io.Reader = c.in
			if name := args[0]; name != "-" {
				f, err := os.Open(name)
				if err != nil {
					return err
				}
				defer f.Close()
				body = f
			}
			var images []api.ImageSummary
			if err := c.progress("/v1/images/import", body, &images); err != nil {
				return err
			}
			for _, i := range images {
				fmt.Fprintf(c.out, "Imported %s (%s)\n", imageName(i.Repository, i.Reference), short(i.ID))
			}
			return nil
		},
	}
}

func (c *cli) imagesCommand() *cobra.Command {
	var format *string
	cmd := &cobra.Command{
		Use:               "ls [flags]",
		Aliases:           []string{"list"},
		Short:             "List images",
		Args:              noArgs,
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(*format); err != nil {
				return err
			}
			var list []api.ImageSummary
			if err := c.call("GET", "/v1/images", nil, &list); err != nil {
				return err
			}
			if *format == "json" {
				if list == nil {
					list = []api.ImageSummary{}
				}
				return c.printJSON(list)
			}
			tw := tabwriter.NewWriter(c.out, 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE")
			for _, i := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", i.Repository, i.Reference, short(i.ID), ago(i.CreatedAt), size(i.Size))
			}
			return tw.Flush()
		},
	}
	format = formatFlag(cmd.Flags())
	completeFormat(cmd)
	return cmd
}

func (c *cli) imageRmCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:               "rm [flags] IMAGE...",
		Aliases:           []string{"remove"},
		Short:             "Remove images",
		Args:              needArgs(1, "IMAGE"),
		ValidArgsFunction: c.completeImages,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.each(args, func(ref string) error {
				if err := c.call("DELETE", "/v1/images?force="+strconv.FormatBool(force), api.RemoveImageRequest{Image: ref}, nil); err != nil {
					return err
				}
				fmt.Fprintln(c.out, "Deleted", ref)
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove even if containers use it")
	return cmd
}

func (c *cli) imageInspectCommand() *cobra.Command {
	return &cobra.Command{
		Use:               "inspect IMAGE...",
		Short:             "Print images as JSON",
		Args:              needArgs(1, "IMAGE"),
		ValidArgsFunction: c.completeImages,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.each(args, func(ref string) error {
				var raw json.RawMessage
				if err := c.call("GET", "/v1/images/status?image="+url.QueryEscape(ref), nil, &raw); err != nil {
					return err
				}
				return c.printJSON(raw)
			})
		},
	}
}

// progress posts body with Accept: application/x-ndjson, shows the layers'
// progress and decodes the closing envelope's data into out.
func (c *cli) progress(path string, body io.Reader, out any) error {
	resp, err := c.do("POST", path, body, map[string]string{"Accept": "application/x-ndjson"})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	show := c.plainProgress()
	if isTerminal(c.out) {
		show = c.barProgress()
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var line struct {
			api.PullProgress
			Message string          `json:"message"`
			Data    json.RawMessage `json:"data"`
		}
		if err := dec.Decode(&line); err != nil {
			if err == io.EOF {
				return errors.New("the daemon closed the stream before saying whether it worked")
			}
			return fmt.Errorf("reading the progress: %v", err)
		}
		if line.Layer != "" {
			show(line.PullProgress)
			continue
		}
		if line.Status != api.StatusSuccess {
			return errors.New(line.Message)
		}
		if len(line.Data) > 0 && out != nil {
			return json.Unmarshal(line.Data, out)
		}
		return nil
	}
}

// plainProgress prints one line per layer state change.
func (c *cli) plainProgress() func(api.PullProgress) {
	last := map[string]string{}
	return func(p api.PullProgress) {
		if last[p.Layer] != p.Status {
			last[p.Layer] = p.Status
			fmt.Fprintf(c.out, "%s: %s\n", short(p.Layer), p.Status)
		}
	}
}

// barProgress redraws one bar per layer, in order of appearance.
func (c *cli) barProgress() func(api.PullProgress) {
	var order []string
	state := map[string]api.PullProgress{}
	return func(p api.PullProgress) {
		if len(order) > 0 {
			fmt.Fprintf(c.out, "\x1b[%dA", len(order)) // back to the first bar
		}
		if _, ok := state[p.Layer]; !ok {
			order = append(order, p.Layer)
		}
		state[p.Layer] = p
		for _, l := range order {
			fmt.Fprintf(c.out, "\x1b[2K%s\n", bar(state[l]))
		}
	}
}

func bar(p api.PullProgress) string {
	const width = 30
	line := fmt.Sprintf("%s: %-11s", short(p.Layer), p.Status)
	switch {
	case p.Status == "done" || p.Status == "exists":
		return line
	case p.Total > 0:
		n := int(min(p.Current, p.Total) * width / p.Total)
		return fmt.Sprintf("%s [%s>%s] %s/%s", line, strings.Repeat("=", n), strings.Repeat(" ", width-n), size(p.Current), size(p.Total))
	case p.Current > 0:
		return fmt.Sprintf("%s %s", line, size(p.Current))
	}
	return line
}

// isTerminal says whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
