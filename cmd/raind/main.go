// Command raind is the Raind CLI: a client of the Raind v1 REST contract
// (shared/api/raind-v1.md) that Condenser serves.
//
//	raind [--host unix:///run/condenser/condenser.sock] container|image|version|info|completion …
//
// Every command is one row of the commands table; exit status 0 is success,
// 1 an error (the daemon's message, or that it cannot be reached), 2 a usage
// error, and `container run` exits with the container's exit code.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/raind/condenser/rest/api"
)

const (
	defaultHost = "/run/condenser/condenser.sock"
	version     = "0.1.0"
)

// command is one row of the dispatch table.
type command struct {
	args string // the usage after the command's name
	help string
	run  func(c *cli, args []string) error
}

// commands is the dispatch table, keyed by "group verb" (or a single word).
var commands = map[string]command{
	"container create":  {"[flags] IMAGE [COMMAND [ARG…]]", "create a container", cmdCreate},
	"container run":     {"[flags] IMAGE [COMMAND [ARG…]]", "create and start a container, stream its output and exit with its code", cmdRun},
	"container start":   {"CONTAINER…", "start containers", idAction("POST", "/actions/start", "")},
	"container stop":    {"[--timeout S] CONTAINER…", "stop containers", cmdStopRestart("stop")},
	"container restart": {"[--timeout S] CONTAINER…", "restart containers", cmdStopRestart("restart")},
	"container kill":    {"[-s SIGNAL] CONTAINER…", "send a signal to containers (default KILL)", cmdKill},
	"container rm":      {"[-f] CONTAINER…", "remove containers", cmdRm},
	"container wait":    {"CONTAINER…", "wait for containers to exit and print their exit codes", cmdWait},
	"container logs":    {"[-f] [--tail N] [--timestamps] CONTAINER", "print a container's log", cmdLogs},
	"container ls":      {"[--format table|json]", "list containers", cmdLs},
	"container inspect": {"CONTAINER…", "print containers as JSON", cmdInspect},
	"container stats":   {"[--format table|json] [CONTAINER…]", "print resource usage", cmdStats},
	"image pull":        {"IMAGE", "pull an image", cmdPull},
	"image ls":          {"[--format table|json]", "list images", cmdImages},
	"image rm":          {"[-f] IMAGE…", "remove images", cmdImageRm},
	"image inspect":     {"IMAGE…", "print images as JSON", cmdImageInspect},
	"image import":      {"FILE|-", "import a docker save or OCI layout tarball", cmdImport},
	"version":           {"", "print the client's and the daemon's versions", cmdVersion},
	"info":              {"", "print the daemon's system information", cmdInfo},
}

// completion lists the table itself: added here to avoid an initialization cycle.
func init() {
	commands["completion"] = command{"bash|zsh", "print a shell completion script", cmdCompletion}
}

// usageError is a command line mistake: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// exitError carries a container's exit code out of `run` and `wait`.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// cli is one invocation: its streams and its connection to the daemon.
type cli struct {
	in          io.Reader
	out, errOut io.Writer
	host        string // as given, for messages
	base        string // URL prefix
	http        *http.Client
	ctx         context.Context
}

func run(args []string, in io.Reader, out, errOut io.Writer) int {
	c := &cli{in: in, out: out, errOut: errOut}
	err := c.main(args)
	var ue usageError
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue):
		fmt.Fprintf(errOut, "raind: %s\nRun 'raind help' for usage.\n", ue.msg)
		return 2
	default:
		fmt.Fprintf(errOut, "raind: %s\n", err)
		return 1
	}
}

func (c *cli) main(args []string) error {
	fs := flag.NewFlagSet("raind", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	host := fs.String("host", envOr("RAIND_HOST", defaultHost), "daemon address: unix:///path, /path or https://host:port")
	fs.StringVar(host, "H", *host, "")
	cert := fs.String("tls-cert", os.Getenv("RAIND_TLS_CERT"), "client certificate (https)")
	key := fs.String("tls-key", os.Getenv("RAIND_TLS_KEY"), "client key (https)")
	ca := fs.String("tls-ca", os.Getenv("RAIND_TLS_CA"), "CA certificate of the daemon (https)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.usage(c.out)
			return nil
		}
		return usageError{err.Error()}
	}
	args = fs.Args()
	if len(args) == 0 || args[0] == "help" {
		if len(args) == 0 {
			c.usage(c.errOut)
			return exitError{2}
		}
		c.usage(c.out)
		return nil
	}
	name := args[0]
	cmd, ok := commands[name]
	rest := args[1:]
	if !ok {
		if len(args) < 2 || !isGroup(name) {
			return usagef("unknown command %q", strings.Join(args[:min(2, len(args))], " "))
		}
		name = args[0] + " " + args[1]
		if cmd, ok = commands[name]; !ok {
			return usagef("unknown command %q", name)
		}
		rest = args[2:]
	}
	if len(rest) > 0 && (rest[0] == "-h" || rest[0] == "--help") {
		fmt.Fprintf(c.out, "Usage: raind %s %s\n\n%s\n", name, cmd.args, cmd.help)
		return nil
	}
	if err := c.connect(*host, *cert, *key, *ca); err != nil {
		return err
	}
	var cancel context.CancelFunc
	c.ctx, cancel = signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	return cmd.run(c, rest)
}

func isGroup(s string) bool { return s == "container" || s == "image" }

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func (c *cli) usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: raind [--host ADDR] [--tls-cert F --tls-key F --tls-ca F] COMMAND\n\nCommands:")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, n := range commandNames() {
		fmt.Fprintf(tw, "  %s %s\t%s\n", n, commands[n].args, commands[n].help)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nThe daemon is at", defaultHost, "unless --host or RAIND_HOST says otherwise.")
}

func commandNames() []string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// connect sets up the HTTP client for a unix socket or an https address.
func (c *cli) connect(host, cert, key, ca string) error {
	c.host = host
	if strings.HasPrefix(host, "https://") {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if cert != "" || key != "" {
			pair, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				return fmt.Errorf("client certificate: %v", err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		if ca != "" {
			pem, err := os.ReadFile(ca)
			if err != nil {
				return fmt.Errorf("CA certificate: %v", err)
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return fmt.Errorf("CA certificate %s: no PEM certificate in it", ca)
			}
		}
		c.base = strings.TrimSuffix(host, "/")
		c.http = &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, Proxy: nil}}
		return nil
	}
	path := strings.TrimPrefix(host, "unix://")
	if strings.Contains(path, "://") || path == "" {
		return usagef("--host %q: want unix:///path/to.sock, /path/to.sock or https://host:port", host)
	}
	c.host = path
	c.base = "http://condenser"
	c.http = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}}
	return nil
}

// do sends a request; a failure status becomes an error with the
// envelope's message. The caller closes the body.
func (c *cli) do(method, path string, body io.Reader, header map[string]string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(c.ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, fmt.Errorf("cannot reach Condenser at %s: is it running? Start it with `make run` or `systemctl start condenser.socket`.", c.host)
		}
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var env api.Envelope
		if json.Unmarshal(b, &env) == nil && env.Message != "" {
			return nil, errors.New(env.Message)
		}
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	return resp, nil
}

// call sends a JSON request and decodes the envelope's data into out.
func (c *cli) call(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	resp, err := c.do(method, path, body, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var env struct {
		api.Envelope
		Data json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return fmt.Errorf("%s %s: reading the response: %v", method, path, err)
	}
	if env.Status != api.StatusSuccess {
		return errors.New(env.Message)
	}
	if out != nil && len(env.Data) > 0 {
		if raw, ok := out.(*json.RawMessage); ok {
			*raw = env.Data
			return nil
		}
		return json.Unmarshal(env.Data, out)
	}
	return nil
}

// printJSON writes v indented.
func (c *cli) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.out, "%s\n", b)
	return err
}

// newFlags makes a command's flag set; parse errors are usage errors.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func parse(fs *flag.FlagSet, args []string, minArgs int, what string) error {
	if err := fs.Parse(args); err != nil {
		return usageError{fs.Name() + ": " + err.Error()}
	}
	if fs.NArg() < minArgs {
		return usagef("%s: %s required", fs.Name(), what)
	}
	return nil
}

func esc(s string) string { return url.PathEscape(s) }

// idAction posts (or deletes) the same action to every container named.
func idAction(method, action, query string) func(*cli, []string) error {
	return func(c *cli, args []string) error {
		fs := newFlags("container")
		if err := parse(fs, args, 1, "CONTAINER"); err != nil {
			return err
		}
		return c.each(fs.Args(), func(id string) error {
			var r api.IDResponse
			if err := c.call(method, "/v1/containers/"+esc(id)+action+query, nil, &r); err != nil {
				return err
			}
			fmt.Fprintln(c.out, id)
			return nil
		})
	}
}

// each runs fn for every id, reports every failure and returns the last.
func (c *cli) each(ids []string, fn func(string) error) error {
	var last error
	for _, id := range ids {
		if err := fn(id); err != nil {
			var ee exitError
			if errors.As(err, &ee) {
				return err
			}
			if last != nil {
				fmt.Fprintf(c.errOut, "raind: %s\n", last)
			}
			last = err
		}
	}
	return last
}

func cmdStopRestart(action string) func(*cli, []string) error {
	return func(c *cli, args []string) error {
		fs := newFlags("container " + action)
		timeout := fs.Int("timeout", 10, "seconds before SIGKILL")
		fs.IntVar(timeout, "t", 10, "")
		if err := parse(fs, args, 1, "CONTAINER"); err != nil {
			return err
		}
		return idAction("POST", "/actions/"+action, "?timeout="+strconv.Itoa(*timeout))(c, fs.Args())
	}
}

func cmdKill(c *cli, args []string) error {
	fs := newFlags("container kill")
	sig := fs.String("signal", "KILL", "signal name or number")
	fs.StringVar(sig, "s", "KILL", "")
	if err := parse(fs, args, 1, "CONTAINER"); err != nil {
		return err
	}
	return idAction("POST", "/actions/kill", "?signal="+url.QueryEscape(*sig))(c, fs.Args())
}

func cmdRm(c *cli, args []string) error {
	fs := newFlags("container rm")
	force := fs.Bool("force", false, "stop running containers first")
	fs.BoolVar(force, "f", false, "")
	if err := parse(fs, args, 1, "CONTAINER"); err != nil {
		return err
	}
	return idAction("DELETE", "/actions/delete", "?force="+strconv.FormatBool(*force))(c, fs.Args())
}

func cmdWait(c *cli, args []string) error {
	fs := newFlags("container wait")
	if err := parse(fs, args, 1, "CONTAINER"); err != nil {
		return err
	}
	return c.each(fs.Args(), func(id string) error {
		var w api.WaitResponse
		if err := c.call("POST", "/v1/containers/"+esc(id)+"/actions/wait", nil, &w); err != nil {
			return err
		}
		fmt.Fprintln(c.out, w.ExitCode)
		return nil
	})
}

func cmdLogs(c *cli, args []string) error {
	fs := newFlags("container logs")
	follow := fs.Bool("follow", false, "follow the log")
	fs.BoolVar(follow, "f", false, "")
	tail := fs.String("tail", "all", "the last N lines")
	ts := fs.Bool("timestamps", false, "prefix lines with their time")
	since := fs.String("since", "", "RFC 3339 time, Unix seconds or a duration (10m)")
	if err := parse(fs, args, 1, "CONTAINER"); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("container logs: one CONTAINER")
	}
	q := url.Values{"follow": {strconv.FormatBool(*follow)}, "tail": {*tail}, "timestamps": {strconv.FormatBool(*ts)}}
	if *since != "" {
		q.Set("since", *since)
	}
	return c.copyLogs(fs.Arg(0), q, c.out)
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

func cmdInspect(c *cli, args []string) error {
	fs := newFlags("container inspect")
	if err := parse(fs, args, 1, "CONTAINER"); err != nil {
		return err
	}
	return c.each(fs.Args(), func(id string) error {
		var raw json.RawMessage
		if err := c.call("GET", "/v1/containers/"+esc(id), nil, &raw); err != nil {
			return err
		}
		return c.printJSON(raw)
	})
}

// formatFlag adds --format table|json.
func formatFlag(fs *flag.FlagSet) *string {
	return fs.String("format", "table", "table or json")
}

func checkFormat(f string) error {
	if f != "table" && f != "json" {
		return usagef("--format %q: want table or json", f)
	}
	return nil
}

func cmdLs(c *cli, args []string) error {
	fs := newFlags("container ls")
	format := formatFlag(fs)
	all := fs.Bool("all", true, "include stopped containers")
	fs.BoolVar(all, "a", true, "")
	if err := parse(fs, args, 0, ""); err != nil {
		return err
	}
	if err := checkFormat(*format); err != nil {
		return err
	}
	var list []api.ContainerSummary
	if err := c.call("GET", "/v1/containers?all="+strconv.FormatBool(*all), nil, &list); err != nil {
		return err
	}
	if *format == "json" {
		if list == nil {
			list = []api.ContainerSummary{}
		}
		return c.printJSON(list)
	}
	tw := tabwriter.NewWriter(c.out, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "CONTAINER ID\tNAME\tIMAGE\tSTATE\tCREATED")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", short(s.ContainerID), s.Name, imageName(s.ImageRepository, s.ImageReference), s.State, ago(s.CreatedAt))
	}
	return tw.Flush()
}

func cmdStats(c *cli, args []string) error {
	fs := newFlags("container stats")
	format := formatFlag(fs)
	if err := parse(fs, args, 0, ""); err != nil {
		return err
	}
	if err := checkFormat(*format); err != nil {
		return err
	}
	var list []api.ContainerStats
	if fs.NArg() == 0 {
		if err := c.call("GET", "/v1/containers/stats", nil, &list); err != nil {
			return err
		}
	}
	for _, id := range fs.Args() {
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
}

func cmdImages(c *cli, args []string) error {
	fs := newFlags("image ls")
	format := formatFlag(fs)
	if err := parse(fs, args, 0, ""); err != nil {
		return err
	}
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
}

func cmdImageRm(c *cli, args []string) error {
	fs := newFlags("image rm")
	force := fs.Bool("force", false, "remove even if containers use it")
	fs.BoolVar(force, "f", false, "")
	if err := parse(fs, args, 1, "IMAGE"); err != nil {
		return err
	}
	return c.each(fs.Args(), func(ref string) error {
		if err := c.call("DELETE", "/v1/images?force="+strconv.FormatBool(*force), api.RemoveImageRequest{Image: ref}, nil); err != nil {
			return err
		}
		fmt.Fprintln(c.out, "Deleted", ref)
		return nil
	})
}

func cmdImageInspect(c *cli, args []string) error {
	fs := newFlags("image inspect")
	if err := parse(fs, args, 1, "IMAGE"); err != nil {
		return err
	}
	return c.each(fs.Args(), func(ref string) error {
		var raw json.RawMessage
		if err := c.call("GET", "/v1/images/status?image="+url.QueryEscape(ref), nil, &raw); err != nil {
			return err
		}
		return c.printJSON(raw)
	})
}

func cmdVersion(c *cli, args []string) error {
	if err := parse(newFlags("version"), args, 0, ""); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "Client: raind %s\n", version)
	var v api.VersionInfo
	if err := c.call("GET", "/v1/version", nil, &v); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "Server: condenser %s (API %s, %s, %s/%s)\n", v.Version, v.APIVersion, v.GoVersion, v.OS, v.Arch)
	return nil
}

func cmdInfo(c *cli, args []string) error {
	if err := parse(newFlags("info"), args, 0, ""); err != nil {
		return err
	}
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
