// Command condenser is the Condenser daemon of the Raind stack. This step
// provides its image store commands; the REST API and containers follow.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/raind/condenser/imagestore"
	"github.com/raind/condenser/internal/certs"
	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/listen"
	"github.com/raind/condenser/supervisor/network"
	"github.com/raind/condenser/supervisor/network/nat"
	"github.com/raind/condenser/supervisor/oci"
)

const usage = `usage: condenser [flags] [COMMAND [ARGS]]

Without a command, condenser runs the daemon: the REST API on the unix
socket condenser.sock in --state (/run/condenser/condenser.sock) and, for the Raind CLI, on tcp://127.0.0.1:7755
with mutual TLS (--raind-address), using the certificates in --cert-dir and
creating them when there are none; or on the sockets systemd passes, or on
the --listen addresses instead.

Commands:
  certs                                     create the certificates of --cert-dir if there are none

Commands (offline, on the image store; not while the daemon runs):
  pull [--platform OS/ARCH[/VARIANT]] REF   pull an image and unpack its layers
  images                                    list images
  inspect REF|ID                            show an image record as JSON
  rmi [--force] REF|ID                      remove an image
  import [--repository REPO] FILE|-         import a docker save or OCI layout tarball
  df                                        show disk usage
  gc                                        remove what no image references

Flags:
`

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// version is set at build time (-ldflags "-X main.version=…").
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("condenser", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", "/var/lib/condenser", "directory of images and container data")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	var mirrors, insecure listFlag
	fs.Var(&mirrors, "registry-mirror", "REGISTRY=URL: pull REGISTRY's images from the mirror URL first (repeatable), e.g. docker.io=http://127.0.0.1:5000")
	fs.Var(&insecure, "insecure-registry", "HOST[:PORT]: reach this registry over plain HTTP (repeatable)")
	state := fs.String("state", "/run/condenser", "directory of runtime state (shim bundles, sockets); tmpfs")
	runtimeName := fs.String("runtime", "", "OCI runtime binary or path (default: the first of droplet, crun, runc found)")
	shimBin := fs.String("shim", "", "condenser-shim binary (default: next to condenser, else on PATH)")
	var listens listFlag
	fs.Var(&listens, "listen", "unix:///PATH or tcp://HOST:PORT (repeatable; replaces the defaults, unix://STATE/condenser.sock and tcp:// on --raind-address; a tcp:// one needs the --tls-* flags)")
	var dockerListen listFlag
	fs.Var(&dockerListen, "docker-listen", "unix:///PATH or tcp://HOST:PORT of the Docker Engine API (repeatable; default unix://STATE/docker.sock; \"none\": no Docker API; a tcp:// one is served with mutual TLS as the Raind listener)")
	raindAddr := fs.String("raind-address", listen.RaindAddress, "HOST:PORT of the default mutual-TLS listener, where the Raind CLI dials")
	certDir := fs.String("cert-dir", certs.DefaultDir, "directory of the Raind certificates (raind.crt, raind.key, raindClient.crt, raindClient.key), created when empty; TLS files of the default TCP listener and of TCP sockets systemd passes")
	tlsCert := fs.String("tls-cert", "", "server certificate (PEM) for tcp:// listeners (default --cert-dir's raind.crt, except for --listen tcp://)")
	tlsKey := fs.String("tls-key", "", "server key (PEM) for tcp:// listeners (default --cert-dir's raind.key, except for --listen tcp://)")
	tlsCA := fs.String("tls-client-ca", "", "CA (PEM) that client certificates must chain to, for tcp:// listeners (default --cert-dir's raind.crt, except for --listen tcp://)")
	group := fs.String("socket-group", "", "group owning the unix socket (mode 0660)")
	cgroupParent := fs.String("cgroup-parent", oci.CgroupParent, "cgroup (a cgroupfs path) under which each container gets its own")
	spareShim := fs.Bool("spare-shim", true, "keep a shim started ahead for the next container: faster creates, one idle shim process")
	bridge := fs.String("bridge", network.Default, "the Linux bridge of the default network raind0")
	bridgeIP := fs.String("bridge-ip", network.DefaultAddress.String(), "the default network's gateway address and prefix when Condenser creates its bridge")
	natTable := fs.String("nat-table", nat.DefaultTable, "Condenser's nftables table (family ip) for masquerading and published ports")
	cniConfDir := fs.String("cni-conf-dir", "/etc/condenser/cni/net.d", "directory of CNI *.conflist files, each a network")
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "condenser: --log-level %q: want debug, info, warn or error\n", *logLevel)
		return 2
	}
	if err := oci.ValidCgroupParent(*cgroupParent); err != nil {
		fmt.Fprintf(stderr, "condenser: --cgroup-parent: %v\n", err)
		return 2
	}
	bridgeAddr, err := netip.ParsePrefix(*bridgeIP)
	if err != nil || !bridgeAddr.Addr().Is4() {
		fmt.Fprintf(stderr, "condenser: --bridge-ip %q: want an IPv4 address with its prefix length, e.g. 10.166.0.254/24\n", *bridgeIP)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	m, err := parseMirrors(mirrors)
	if err != nil {
		fmt.Fprintf(stderr, "condenser: %v\n", err)
		return 2
	}
	if fs.Arg(0) == "certs" {
		return runCerts(fs.Args()[1:], *certDir, stdout, stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := imagestore.Open(ctx, imagestore.Options{Root: *root, Mirrors: m, Insecure: insecure, Logger: log, UserAgent: "condenser"})
	if err != nil {
		fmt.Fprintf(stderr, "condenser: %v\n", err)
		return 1
	}
	defer s.Close()
	if fs.NArg() == 0 || fs.Arg(0) == "daemon" {
		err := runDaemon(ctx, daemonConfig{
			root: *root, state: *state, runtime: *runtimeName, shim: *shimBin, cgroupParent: *cgroupParent, spareShim: *spareShim, log: log, images: s,
			network:  network.Config{DefaultBridge: *bridge, DefaultAddress: bridgeAddr, CNIConfDir: *cniConfDir},
			natTable: *natTable,
			listen: listen.Options{Addresses: listens, TLSCert: *tlsCert, TLSKey: *tlsKey, TLSClientCA: *tlsCA, SocketGroup: *group,
				Defaults: []string{"unix://" + filepath.Join(*state, "condenser.sock"), "tcp://" + *raindAddr}},
			certDir: *certDir,
			docker:  dockerListenOptions(dockerListen, *state, listen.Options{TLSCert: *tlsCert, TLSKey: *tlsKey, TLSClientCA: *tlsCA, SocketGroup: *group}),
		})
		if err != nil {
			log.Error("condenser", "error", err)
			if errors.Is(err, errdefs.ErrInvalidArgument) {
				return 2
			}
			return 1
		}
		return 0
	}
	c := &cli{s: s, out: stdout, err: stderr, last: map[string]imagestore.Status{}}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	switch cmd {
	case "pull":
		err = c.pull(ctx, rest)
	case "images":
		err = c.images(ctx)
	case "inspect":
		err = c.inspect(ctx, rest)
	case "rmi":
		err = c.rmi(ctx, rest)
	case "import":
		err = c.importTar(ctx, rest)
	case "df":
		err = c.df(ctx)
	case "gc":
		var st imagestore.GCStats
		if st, err = s.GC(ctx); err == nil {
			fmt.Fprintf(stdout, "removed %d blobs, %d layers, %d temp files\n", st.Blobs, st.Layers, st.Temps)
		}
	default:
		fmt.Fprintf(stderr, "condenser: unknown command %q\n", cmd)
		fs.Usage()
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "condenser %s: %v\n", cmd, err)
		if errors.Is(err, errdefs.ErrInvalidArgument) {
			return 2
		}
		return 1
	}
	return 0
}

// dockerListenOptions are the Docker API's listening addresses: those given
// (none with "none"), else the socket docker.sock in the state directory.
func dockerListenOptions(given []string, state string, o listen.Options) listen.Options {
	switch {
	case len(given) == 1 && given[0] == "none":
	case len(given) > 0:
		o.Addresses = given
	default:
		o.Defaults = []string{"unix://" + filepath.Join(state, "docker.sock")}
	}
	return o
}

func parseMirrors(list []string) (map[string][]string, error) {
	m := map[string][]string{}
	for _, v := range list {
		reg, url, ok := strings.Cut(v, "=")
		if !ok || reg == "" || url == "" {
			return nil, fmt.Errorf("--registry-mirror %q: want REGISTRY=URL, e.g. docker.io=http://127.0.0.1:5000", v)
		}
		m[reg] = append(m[reg], url)
	}
	return m, nil
}

type cli struct {
	s        *imagestore.Store
	out, err io.Writer
	last     map[string]imagestore.Status
}

func (c *cli) pull(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("pull", flag.ContinueOnError)
	fs.SetOutput(c.err)
	plat := fs.String("platform", "", "OS/ARCH[/VARIANT] to pull from a multi-platform image")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		return fmt.Errorf("usage: pull [--platform OS/ARCH[/VARIANT]] REF: %w", errdefs.ErrInvalidArgument)
	}
	var p *v1.Platform
	if *plat != "" {
		var err error
		if p, err = v1.ParsePlatform(*plat); err != nil {
			return fmt.Errorf("--platform %q: %v: %w", *plat, err, errdefs.ErrInvalidArgument)
		}
	}
	start := time.Now()
	img, err := c.s.Pull(ctx, fs.Arg(0), imagestore.PullOptions{Platform: p, Progress: c.progress})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.out, "%s: %s (%s, %d layers, %s) in %s\n", img.Reference().Familiar(), img.ShortID(),
		img.Platform, len(img.Layers), humanSize(img.Size), time.Since(start).Round(time.Millisecond))
	return nil
}

// progress prints one line per layer state change (the store calls it
// serially).
func (c *cli) progress(p imagestore.Progress) {
	if c.last[p.Layer] == p.Status {
		return
	}
	c.last[p.Layer] = p.Status
	fmt.Fprintf(c.out, "%s: %s %s\n", short(p.Layer), p.Status, humanSize(p.Total))
}

func short(digest string) string {
	h := strings.TrimPrefix(digest, "sha256:")
	return h[:min(12, len(h))]
}

func (c *cli) images(ctx context.Context) error {
	imgs, err := c.s.List(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "REPOSITORY\tTAG\tIMAGE ID\tPLATFORM\tCREATED\tSIZE")
	for _, img := range imgs {
		repo, tag := "<none>", "<none>"
		if img.Name != "" {
			r := img.Reference()
			repo, tag = strings.TrimSuffix(r.Familiar(), ":"+r.Identifier()), r.Identifier()
			if r.Digest != "" {
				repo = strings.TrimSuffix(r.Familiar(), "@"+r.Digest)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", repo, tag, img.ShortID(), img.Platform, img.Created.Format(time.DateOnly), humanSize(img.Size))
	}
	return tw.Flush()
}

func (c *cli) inspect(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: inspect REF|ID: %w", errdefs.ErrInvalidArgument)
	}
	img, err := c.s.Inspect(ctx, args[0])
	if err != nil {
		return err
	}
	enc := json.NewEncoder(c.out)
	enc.SetIndent("", "  ")
	return enc.Encode(img)
}

func (c *cli) rmi(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("rmi", flag.ContinueOnError)
	fs.SetOutput(c.err)
	force := fs.Bool("force", false, "remove every name of an image given by ID")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		return fmt.Errorf("usage: rmi [--force] REF|ID: %w", errdefs.ErrInvalidArgument)
	}
	names, err := c.s.Remove(ctx, fs.Arg(0), imagestore.RemoveOptions{Force: *force})
	for _, n := range names {
		fmt.Fprintf(c.out, "untagged %s\n", n)
	}
	return err
}

func (c *cli) importTar(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(c.err)
	repo := fs.String("repository", "", "repository for images the archive tags by tag only")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		return fmt.Errorf("usage: import [--repository REPO] FILE|-: %w", errdefs.ErrInvalidArgument)
	}
	var r io.Reader = os.Stdin
	if fs.Arg(0) != "-" {
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	imgs, err := c.s.Import(ctx, r, imagestore.ImportOptions{Repository: *repo, Progress: c.progress})
	if err != nil {
		return err
	}
	for _, img := range imgs {
		name := "<none>"
		if img.Name != "" {
			name = img.Reference().Familiar()
		}
		fmt.Fprintf(c.out, "imported %s: %s\n", name, img.ShortID())
	}
	return nil
}

func (c *cli) df(ctx context.Context) error {
	u, err := c.s.DiskUsage(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.out, "images %d\nblobs  %s\nlayers %s\ntotal  %s\n", u.Images, humanSize(u.Blobs), humanSize(u.Layers), humanSize(u.Total))
	return nil
}

func humanSize(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}
