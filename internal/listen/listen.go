// Package listen gives the Condenser daemon its listening sockets: the ones
// systemd passed by socket activation, or else the configured addresses.
//
// Two kinds of address are accepted:
//
//   - unix://PATH, an absolute path. Missing parent directories are created
//     with mode 0755; the socket gets mode 0660, owned by root and, when
//     Options.SocketGroup is set, by that group. A socket file left behind by
//     a dead daemon is replaced, but only after dialling it shows that nothing
//     listens on it; a live socket, or a path that is not a socket, is an
//     error and is left alone.
//   - tcp://HOST:PORT, served only over TLS 1.2 or 1.3 with required client
//     certificates verified against Options.TLSClientCA. Plain TCP is refused:
//     anyone who reaches the API can run containers as root.
//
// The daemon's defaults (Options.Defaults) are the unix socket and Raind's
// tcp://127.0.0.1:7755, whose TLS files come from Options.DefaultTLS (the
// certificate directory, see internal/certs) unless the --tls-* flags name
// them. Sockets systemd passes are told apart by name (LISTEN_FDNAMES, the
// socket unit's FileDescriptorName=): NameTLS is served with mutual TLS,
// as is every TCP socket whatever its name.
//
// Every error wraps an errdefs kind: ErrInvalidArgument for bad
// configuration, ErrAlreadyExists when another daemon is listening on the
// socket.
package listen

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"

	"github.com/raind/condenser/internal/errdefs"
)

// DefaultAddress is where the daemon listens when no address is configured
// and Options.Defaults is empty.
const DefaultAddress = "unix:///run/condenser/condenser.sock"

// RaindAddress is where the Raind CLI dials (https://localhost:7755).
const RaindAddress = "127.0.0.1:7755"

// The names of the sockets systemd passes (FileDescriptorName= in
// contrib/systemd/condenser.socket).
const (
	NameAPI = "condenser" // the unix socket
	NameTLS = "raind-tls" // Raind's TCP socket, served with mutual TLS
	// NameDocker is the Docker Engine API's socket
	// (contrib/systemd/condenser-docker.socket): the daemon serves it the
	// Docker API instead of Raind's.
	NameDocker = "docker"
)

// The command-line flags named in error messages.
const (
	flagTLSCert     = "--tls-cert"
	flagTLSKey      = "--tls-key"
	flagTLSClientCA = "--tls-client-ca"
)

const (
	socketMode = 0o660
	dirMode    = 0o755
	// maxSocketPath is the size of sun_path in struct sockaddr_un on Linux.
	maxSocketPath = 108
	// probeTimeout bounds the dial that tells a live socket from a stale one.
	probeTimeout = 2 * time.Second
	// lockTimeout bounds the wait for another daemon starting in the same
	// directory.
	lockTimeout = 10 * time.Second
)

// Options for Listen.
type Options struct {
	// Addresses to listen on when systemd passed no socket:
	// "unix:///run/condenser/condenser.sock", "tcp://127.0.0.1:7755".
	// Empty means Defaults.
	Addresses []string
	// Defaults are the addresses when Addresses is empty; empty means
	// DefaultAddress alone.
	Defaults []string
	// TLS files (PEM), all required for tcp:// addresses and for TCP sockets
	// passed by systemd: the server certificate and key, and the CA bundle
	// client certificates must chain to.
	TLSCert, TLSKey, TLSClientCA string
	// DefaultTLS, when set, supplies the TLS files (and may create them)
	// when TLSCert, TLSKey and TLSClientCA are all empty, for TCP among the
	// Defaults and for TCP sockets systemd passes. A tcp:// address given in
	// Addresses still needs the three files named.
	DefaultTLS func() (cert, key, clientCA string, err error)
	// SocketGroup optionally names the group (or numeric gid) that owns the
	// unix socket, so that its members can use the API (mode 0660
	// root:<group>). "" keeps root's group.
	SocketGroup string
}

// Listen returns the daemon's listeners: the sockets systemd passed (socket
// activation, LISTEN_FDS/LISTEN_PID), or else the configured addresses. The
// LISTEN_* variables are unset in either case, so that children do not
// inherit them. When systemd passed sockets, Options.Addresses and
// SocketGroup are ignored (the socket unit owns addresses and permissions);
// TCP sockets are still served only with TLS and client certificates.
//
// Each returned listener describes itself for logs through its String
// method (see Describe). Closing a unix listener created here removes its
// socket file. Nothing is left open or created on error, beyond parent
// directories.
func Listen(ctx context.Context, o Options) ([]net.Listener, error) {
	if ls, err := activated(o); ls != nil || err != nil {
		return ls, err
	}

	addrs, defaults := o.Addresses, false
	if len(addrs) == 0 {
		addrs, defaults = o.Defaults, true
		if len(addrs) == 0 {
			addrs = []string{DefaultAddress}
		}
	}

	// Validate everything before creating anything.
	var (
		plans  []address
		seen   = map[string]bool{}
		tlsCfg *tls.Config
		ca     string
		gid    = -1
	)
	for _, a := range addrs {
		p, err := parseAddress(a)
		if err != nil {
			return nil, err
		}
		key := p.network + "://" + p.addr
		if seen[key] {
			return nil, fmt.Errorf("listen: address %q given twice: %w", a, errdefs.ErrInvalidArgument)
		}
		seen[key] = true
		switch p.network {
		case "tcp":
			if tlsCfg == nil {
				if tlsCfg, ca, err = serverTLS(o, a, defaults); err != nil {
					return nil, err
				}
			}
		case "unix":
			if o.SocketGroup != "" && gid < 0 {
				if gid, err = lookupGroup(o.SocketGroup); err != nil {
					return nil, err
				}
			}
		}
		plans = append(plans, p)
	}

	var ls []net.Listener
	for _, p := range plans {
		var (
			l   net.Listener
			err error
		)
		switch p.network {
		case "unix":
			l, err = listenUnix(ctx, p.addr, gid, o.SocketGroup)
		case "tcp":
			l, err = listenTCP(ctx, p.addr, tlsCfg, ca)
		}
		if err != nil {
			closeAll(ls)
			return nil, err
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// Describe returns a one-line description of l for logs: what Listen's
// listeners say about themselves, or else NETWORK://ADDRESS.
func Describe(l net.Listener) string {
	if s, ok := l.(fmt.Stringer); ok {
		return s.String()
	}
	return l.Addr().Network() + "://" + l.Addr().String()
}

// described is a listener that says where it came from.
type described struct {
	net.Listener
	desc string
	// name is the systemd socket's name (LISTEN_FDNAMES) and activated
	// whether systemd passed it at all.
	name      string
	activated bool
}

// Activated reports whether systemd passed l (socket activation), and under
// which name (FileDescriptorName=, "" when unnamed).
func Activated(l net.Listener) (name string, ok bool) {
	if d, isD := l.(*described); isD && d.activated {
		return d.name, true
	}
	return "", false
}

func (d *described) String() string { return d.desc }

func closeAll(ls []net.Listener) {
	for _, l := range ls {
		_ = l.Close()
	}
}

type address struct {
	network string // "unix" or "tcp"
	addr    string // a clean absolute path, or HOST:PORT
}

func parseAddress(a string) (address, error) {
	scheme, rest, ok := strings.Cut(a, "://")
	if !ok {
		return address{}, fmt.Errorf("listen: address %q: want unix:///PATH or tcp://HOST:PORT: %w", a, errdefs.ErrInvalidArgument)
	}
	switch scheme {
	case "unix":
		if !filepath.IsAbs(rest) {
			return address{}, fmt.Errorf("listen: address %q: want an absolute socket path, as in unix:///run/condenser/condenser.sock: %w", a, errdefs.ErrInvalidArgument)
		}
		p := filepath.Clean(rest)
		if len(p) > maxSocketPath {
			return address{}, fmt.Errorf("listen: address %q: socket path is %d bytes, longer than the %d the kernel accepts: %w", a, len(p), maxSocketPath, errdefs.ErrInvalidArgument)
		}
		return address{"unix", p}, nil
	case "tcp":
		host, port, err := net.SplitHostPort(rest)
		if err != nil || strings.ContainsAny(rest, "/?#") {
			return address{}, fmt.Errorf("listen: address %q: want tcp://HOST:PORT, as in tcp://127.0.0.1:7755: %w", a, errdefs.ErrInvalidArgument)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return address{}, fmt.Errorf("listen: address %q: bad port %q: %w", a, port, errdefs.ErrInvalidArgument)
		}
		return address{"tcp", net.JoinHostPort(host, port)}, nil
	default:
		return address{}, fmt.Errorf("listen: address %q: unsupported scheme %q, want unix:// or tcp://: %w", a, scheme, errdefs.ErrInvalidArgument)
	}
}

// serverTLS builds the TLS configuration TCP is served with, and returns
// the client CA file it uses; what names the TCP socket in error messages.
// useDefault allows Options.DefaultTLS.
func serverTLS(o Options, what string, useDefault bool) (*tls.Config, string, error) {
	if useDefault && o.DefaultTLS != nil && o.TLSCert == "" && o.TLSKey == "" && o.TLSClientCA == "" {
		var err error
		if o.TLSCert, o.TLSKey, o.TLSClientCA, err = o.DefaultTLS(); err != nil {
			return nil, "", fmt.Errorf("listen: %s: %w", what, err)
		}
	}
	var missing []string
	for _, f := range []struct{ v, flag string }{
		{o.TLSCert, flagTLSCert}, {o.TLSKey, flagTLSKey}, {o.TLSClientCA, flagTLSClientCA},
	} {
		if f.v == "" {
			missing = append(missing, f.flag)
		}
	}
	if len(missing) > 0 {
		return nil, "", fmt.Errorf("listen: %s: plain TCP is refused: TCP is served only over TLS with verified client certificates; "+
			"pass %s FILE, %s FILE and %s FILE (missing %s), or listen on a unix:// socket: %w",
			what, flagTLSCert, flagTLSKey, flagTLSClientCA, strings.Join(missing, ", "), errdefs.ErrInvalidArgument)
	}
	cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
	if err != nil {
		return nil, "", fmt.Errorf("listen: %s %s / %s %s: %w: %w", flagTLSCert, o.TLSCert, flagTLSKey, o.TLSKey, err, errdefs.ErrInvalidArgument)
	}
	pem, err := os.ReadFile(o.TLSClientCA)
	if err != nil {
		return nil, "", fmt.Errorf("listen: %s: %w: %w", flagTLSClientCA, err, errdefs.ErrInvalidArgument)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, "", fmt.Errorf("listen: %s %s: no PEM certificate in it: %w", flagTLSClientCA, o.TLSClientCA, errdefs.ErrInvalidArgument)
	}
	// TLS 1.3 is offered too (crypto/tls's default maximum): the Raind CLI's
	// WebSocket dialer requires it.
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		// net/http's Server.Serve and gRPC both negotiate HTTP/2 by ALPN.
		NextProtos: []string{"h2", "http/1.1"},
	}, o.TLSClientCA, nil
}

func lookupGroup(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return -1, fmt.Errorf("listen: socket group %q: %w: %w", name, err, errdefs.ErrInvalidArgument)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return -1, fmt.Errorf("listen: socket group %q: gid %q: %w", name, g.Gid, errdefs.ErrInvalidArgument)
	}
	return gid, nil
}

func listenTCP(ctx context.Context, addr string, cfg *tls.Config, ca string) (net.Listener, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen: tcp://%s: %w", addr, err)
	}
	return &described{
		Listener: tls.NewListener(l, cfg),
		desc:     fmt.Sprintf("tcp://%s (TLS 1.2/1.3, client certificates required, verified against %s)", l.Addr(), ca),
	}, nil
}

// listenUnix creates the unix socket path; gid >= 0 gives it that group.
func listenUnix(ctx context.Context, path string, gid int, group string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := mkdirs(dir); err != nil {
		return nil, err
	}
	unlock, err := lockDir(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer unlock()

	if err := clearStale(ctx, path); err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen: unix://%s: %w", path, err)
	}
	// Until the chmod the socket has mode 0777 &^ umask, which with the usual
	// umask lets nobody but root connect; nothing is accepted before Listen
	// returns anyway.
	if gid >= 0 {
		if err := os.Lchown(path, -1, gid); err != nil {
			_ = l.Close()
			return nil, fmt.Errorf("listen: unix://%s: give the socket to group %s: %w", path, group, err)
		}
	}
	if err := os.Chmod(path, socketMode); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("listen: unix://%s: %w", path, err)
	}
	desc := fmt.Sprintf("unix://%s (mode 0660", path)
	if gid >= 0 {
		desc += ", group " + group
	}
	return &described{Listener: l, desc: desc + ")"}, nil
}

// mkdirs creates dir and its missing parents with mode 0755 (whatever the
// umask), leaving existing directories alone.
func mkdirs(dir string) error {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || !errors.Is(err, fs.ErrNotExist) {
			break
		}
		missing = append(missing, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("listen: create socket directory: %w", err)
	}
	for _, d := range missing {
		if err := os.Chmod(d, dirMode); err != nil {
			return fmt.Errorf("listen: create socket directory: %w", err)
		}
	}
	return nil
}

// lockDir takes an exclusive flock on dir, so that two daemons starting at
// once cannot both find a stale socket, and the second remove the socket the
// first just created.
func lockDir(ctx context.Context, dir string) (unlock func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("listen: lock socket directory: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, lockTimeout)
	defer cancel()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = f.Close()
			return nil, fmt.Errorf("listen: lock socket directory %s: %w", dir, err)
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("listen: lock socket directory %s (held by another process starting?): %w: %w", dir, ctx.Err(), errdefs.ErrUnavailable)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// clearStale makes path free for a new socket: nothing there, or a socket
// nobody listens on (removed). A live socket and anything that is not a
// socket are errors and are left alone.
func clearStale(ctx context.Context, path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listen: unix://%s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("listen: unix://%s: exists and is not a socket (%s); not removing it: %w", path, fi.Mode().Type(), errdefs.ErrInvalidArgument)
	}
	d := net.Dialer{Timeout: probeTimeout}
	c, err := d.DialContext(ctx, "unix", path)
	switch {
	case err == nil:
		_ = c.Close()
		return fmt.Errorf("listen: another condenser is listening on %s: %w", path, errdefs.ErrAlreadyExists)
	case errors.Is(err, syscall.EAGAIN):
		// The listener's backlog is full: it is alive.
		return fmt.Errorf("listen: another condenser is listening on %s (busy): %w", path, errdefs.ErrAlreadyExists)
	case errors.Is(err, syscall.ENOENT):
		return nil
	case !errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("listen: unix://%s: cannot tell whether another condenser is listening on it: %w: %w", path, err, errdefs.ErrUnavailable)
	}
	// Stale: nobody listens. Remove it.
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("listen: unix://%s: remove stale socket: %w", path, err)
	}
	return nil
}

// activated returns the sockets systemd passed, nil if none, and unsets the
// LISTEN_* variables either way. A socket named NameTLS, and any TCP socket,
// is served with mutual TLS; the others (NameAPI, unnamed) as they are.
func activated(o Options) ([]net.Listener, error) {
	files := activation.Files(true)
	if len(files) == 0 {
		return nil, nil
	}
	defer func() {
		for _, f := range files {
			_ = f.Close() // net.FileListener dups the descriptor
		}
	}()
	var (
		ls     []net.Listener
		tlsCfg *tls.Config
		ca     string
	)
	for i, f := range files {
		fd := 3 + i
		l, err := net.FileListener(f)
		if err != nil {
			closeAll(ls)
			return nil, fmt.Errorf("listen: systemd socket activation: fd %d (%s) is not a listening stream socket: %w: %w", fd, f.Name(), err, errdefs.ErrInvalidArgument)
		}
		from := fmt.Sprintf("systemd socket activation, fd %d", fd)
		name := f.Name()
		if name == "LISTEN_FD_"+strconv.Itoa(fd) {
			name = "" // go-systemd's name for an unnamed socket
		}
		if name != "" {
			from += ", name " + name
		}
		switch a := l.Addr(); {
		case a.Network() == "tcp" || (a.Network() == "unix" && name == NameTLS):
			if tlsCfg == nil {
				if tlsCfg, ca, err = serverTLS(o, fmt.Sprintf("%s://%s (%s)", a.Network(), a, from), true); err != nil {
					_ = l.Close()
					closeAll(ls)
					return nil, err
				}
			}
			ls = append(ls, &described{
				name: name, activated: true,
				Listener: tls.NewListener(l, tlsCfg),
				desc:     fmt.Sprintf("%s://%s (%s; TLS 1.2/1.3, client certificates required, verified against %s)", a.Network(), a, from, ca),
			})
		case a.Network() == "unix":
			ls = append(ls, &described{Listener: l, desc: fmt.Sprintf("unix://%s (%s)", a, from), name: name, activated: true})
		default:
			_ = l.Close()
			closeAll(ls)
			return nil, fmt.Errorf("listen: systemd socket activation: fd %d is a %s socket, want unix or tcp: %w", fd, l.Addr().Network(), errdefs.ErrInvalidArgument)
		}
	}
	return ls, nil
}
