// Command condenserctl is Condenser's own command-line client: the Raind
// CLI's command set (and more) on the Raind v1 REST contract
// (shared/api/raind-v1.md), built with cobra. The real Raind CLI installs as
// raind; this one has a name of its own.
//
//	condenserctl [--host unix:///run/condenser/condenser.sock] container|image|network|version|info|completion …
//
// Exit status: 0 success, 1 an error (the daemon's message, or that it
// cannot be reached), 2 a usage error; `container run`, `exec`, `attach`
// and `start -a` exit with the process's exit code, 127 when its command
// does not exist and 126 when it cannot be executed (Docker's convention),
// and 0 when the client detaches (the detach keys).
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/raind/condenser/rest/api"
)

const (
	prog        = "condenserctl"
	defaultHost = "/run/condenser/condenser.sock"
	version     = "0.1.0"
)

// usageError is a command line mistake: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// exitError ends the program with code; err, when set, is printed first
// (a container's own exit code comes without a message).
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	return fmt.Sprintf("exit status %d", e.code)
}

// apiError is a failure answer of the daemon: its status and the
// envelope's message.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// cli is one invocation: its streams, the global flags and the connection
// to the daemon (made at the first request).
type cli struct {
	in            io.Reader
	out, errOut   io.Writer
	hostFlag      string
	cert, key, ca string
	host          string // as shown in messages
	base          string // URL prefix
	http          *http.Client
	ctx           context.Context
}

func run(args []string, in io.Reader, out, errOut io.Writer) int {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	c := &cli{in: in, out: out, errOut: errOut, ctx: ctx}
	root := c.rootCommand()
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	return c.exitCode(cmd, err)
}

// exitCode prints err as the program's last word and says how to exit.
func (c *cli) exitCode(cmd *cobra.Command, err error) int {
	var ue usageError
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ee.err != nil {
			fmt.Fprintf(c.errOut, "%s: %s\n", prog, ee.err)
		}
		return ee.code
	case errors.As(err, &ue):
		path := prog
		if cmd != nil {
			path = cmd.CommandPath()
		}
		fmt.Fprintf(c.errOut, "%s: %s\nRun '%s --help' for usage.\n", prog, ue.msg, path)
		return 2
	default:
		fmt.Fprintf(c.errOut, "%s: %s\n", prog, err)
		return 1
	}
}

// rootCommand builds the command tree.
func (c *cli) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   prog,
		Short: "Condenser's command-line client",
		Long: prog + " drives the Condenser daemon over its REST API (the Raind v1 contract).\n\n" +
			"The daemon is at " + defaultHost + " unless --host, CONDENSER_HOST or RAIND_HOST says otherwise:\n" +
			"unix:///path/to.sock, /path/to.sock, or https://host:port with --tls-cert, --tls-key and --tls-ca.",
		Args:              cobra.ArbitraryArgs,
		RunE:              c.groupRun,
		SilenceErrors:     true,
		SilenceUsage:      true,
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	pf := root.PersistentFlags()
	pf.StringVarP(&c.hostFlag, "host", "H", envOr(defaultHost, "CONDENSER_HOST", "RAIND_HOST"),
		"daemon address: unix:///path, /path or https://host:port (env CONDENSER_HOST, RAIND_HOST)")
	pf.StringVar(&c.cert, "tls-cert", envOr("", "CONDENSER_TLS_CERT", "RAIND_TLS_CERT"), "client certificate (https)")
	pf.StringVar(&c.key, "tls-key", envOr("", "CONDENSER_TLS_KEY", "RAIND_TLS_KEY"), "client key (https)")
	pf.StringVar(&c.ca, "tls-ca", envOr("", "CONDENSER_TLS_CA", "RAIND_TLS_CA"), "CA certificate of the daemon (https)")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usagef("%s: %v", subPath(cmd), err)
	})

	container := c.group("container", "Manage containers")
	container.AddCommand(c.containerCommands()...)
	image := c.group("image", "Manage images")
	image.AddCommand(c.imageCommands()...)
	network := c.group("network", "Manage networks")
	network.AddCommand(c.networkCommands()...)
	root.AddCommand(container, image, network, c.versionCommand(), c.infoCommand())

	// cobra's completion command (bash, zsh, fish, powershell), made here
	// rather than at Execute so that an unknown shell is a usage error. It
	// takes its output stream when made.
	root.SetIn(c.in)
	root.SetOut(c.out)
	root.SetErr(c.errOut)
	root.InitDefaultCompletionCmd()
	for _, cmd := range root.Commands() {
		if cmd.Name() == "completion" {
			cmd.Short = "Print a shell completion script (bash, zsh, fish, powershell)"
			cmd.Args, cmd.RunE = cobra.ArbitraryArgs, c.groupRun
		}
	}
	return root
}

// group is a command whose subcommands do the work: alone it prints its
// usage (exit 2); with an unknown subcommand it is a usage error.
func (c *cli) group(name, short string) *cobra.Command {
	return &cobra.Command{
		Use:               name,
		Short:             short,
		Args:              cobra.ArbitraryArgs,
		RunE:              c.groupRun,
		ValidArgsFunction: cobra.NoFileCompletions,
	}
}

func (c *cli) groupRun(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(c.errOut, cmd.UsageString())
		return exitError{code: 2}
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	cmd.SuggestionsMinimumDistance = 2
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, " or "))
	}
	return usageError{msg}
}

// subPath is a command's path without the program's name.
func subPath(cmd *cobra.Command) string {
	p := strings.TrimPrefix(cmd.CommandPath(), prog)
	if p == "" {
		return prog
	}
	return strings.TrimPrefix(p, " ")
}

// needArgs requires at least n arguments, named what in the message.
func needArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return usagef("%s: %s required", subPath(cmd), what)
		}
		return nil
	}
}

// exactArgs requires exactly n arguments.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s: %s required (%d given)", subPath(cmd), what, len(args))
		}
		return nil
	}
}

// noArgs refuses arguments.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments (%q given)", subPath(cmd), args[0])
	}
	return nil
}

// envOr is the first of the variables set, or def.
func envOr(def string, keys ...string) string {
	for _, k := range keys {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return def
}

// flagAliases lets several spellings name one flag (--environment is --env).
func flagAliases(aliases map[string]string) func(*pflag.FlagSet, string) pflag.NormalizedName {
	return func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if n, ok := aliases[name]; ok {
			return pflag.NormalizedName(n)
		}
		return pflag.NormalizedName(name)
	}
}

// connect sets up the HTTP client for a unix socket or an https address.
func (c *cli) connect() error {
	if c.http != nil {
		return nil
	}
	host := c.hostFlag
	c.host = host
	if strings.HasPrefix(host, "https://") {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.cert != "" || c.key != "" {
			pair, err := tls.LoadX509KeyPair(c.cert, c.key)
			if err != nil {
				return fmt.Errorf("client certificate: %v", err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		if c.ca != "" {
			pem, err := os.ReadFile(c.ca)
			if err != nil {
				return fmt.Errorf("CA certificate: %v", err)
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return fmt.Errorf("CA certificate %s: no PEM certificate in it", c.ca)
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

// do sends a request; a failure status becomes an *apiError with the
// envelope's message. The caller closes the body.
func (c *cli) do(method, path string, body io.Reader, header map[string]string) (*http.Response, error) {
	if err := c.connect(); err != nil {
		return nil, err
	}
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
		return nil, c.transportError(err)
	}
	if resp.StatusCode >= 300 {
		return nil, responseError(method, path, resp)
	}
	return resp, nil
}

// transportError says that the daemon cannot be reached, when that is
// what err is.
func (c *cli) transportError(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		//lint:ignore ST1005 the program's last word to its user: a sentence
		return fmt.Errorf("cannot reach Condenser at %s: is it running? Start it with `make run` or `systemctl start condenser.socket`.", c.host)
	}
	return err
}

// responseError is a failure answer as an *apiError with the envelope's
// message; it closes the body.
func responseError(method, path string, resp *http.Response) error {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var env api.Envelope
	if json.Unmarshal(b, &env) == nil && env.Message != "" {
		return &apiError{resp.StatusCode, env.Message}
	}
	return &apiError{resp.StatusCode, fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))}
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

func esc(s string) string { return url.PathEscape(s) }

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
				fmt.Fprintf(c.errOut, "%s: %s\n", prog, last)
			}
			last = err
		}
	}
	return last
}

// formatFlag adds --format table|json.
func formatFlag(fs *pflag.FlagSet) *string {
	return fs.String("format", "table", "output format: table or json")
}

func checkFormat(f string) error {
	if f != "table" && f != "json" {
		return usagef("--format %q: want table or json", f)
	}
	return nil
}
