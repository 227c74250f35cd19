package listen

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raind/condenser/internal/errdefs"
)

// waitBound bounds every wait in these tests.
const waitBound = 10 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	t.Cleanup(cancel)
	return ctx
}

// inCI reports whether CI=true: required environments fail instead of
// skipping.
func inCI() bool {
	v, err := strconv.ParseBool(os.Getenv("CI"))
	return err == nil && v
}

func listenOK(t *testing.T, o Options) []net.Listener {
	t.Helper()
	ls, err := Listen(testContext(t), o)
	if err != nil {
		t.Fatalf("Listen(%+v): %v", o, err)
	}
	t.Cleanup(func() { closeAll(ls) })
	return ls
}

// serve answers every HTTP request on l with body until the test ends.
func serve(t *testing.T, l net.Listener, body string) {
	t.Helper()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, body)
		}),
		ReadHeaderTimeout: waitBound,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		select {
		case <-done:
		case <-time.After(waitBound):
			t.Error("HTTP server did not stop")
		}
	})
}

// unixGet sends GET / over the unix socket path and returns the body.
func unixGet(path string) (string, error) {
	c := &http.Client{
		Timeout: waitBound,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}},
	}
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://condenser/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestUnixSocketCreated(t *testing.T) {
	base := t.TempDir()
	path := filepath.Join(base, "a", "b", "condenser.sock")
	ls := listenOK(t, Options{Addresses: []string{"unix://" + path}})
	if len(ls) != 1 {
		t.Fatalf("got %d listeners, want 1", len(ls))
	}
	if d := Describe(ls[0]); !strings.Contains(d, "unix://"+path) {
		t.Errorf("description %q does not name unix://%s", d, path)
	}
	for _, d := range []string{filepath.Join(base, "a"), filepath.Join(base, "a", "b")} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if !fi.IsDir() || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: mode %v, want a directory with mode 0755", d, fi.Mode())
		}
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want a socket with mode 0660", fi.Mode())
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) != os.Geteuid() || int(st.Gid) != os.Getegid() {
		t.Errorf("socket owned by %d:%d, want %d:%d", st.Uid, st.Gid, os.Geteuid(), os.Getegid())
	}
	serve(t, ls[0], "hello")
	if got, err := unixGet(path); err != nil || got != "hello" {
		t.Fatalf("GET over the socket: %q, %v", got, err)
	}
	// Closing the listener removes the socket file.
	_ = ls[0].Close()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file still there after Close: %v", err)
	}
}

func TestUnixSocketGroup(t *testing.T) {
	// A group the process may give files to: as root any group, else its own.
	g, err := user.LookupGroupId(strconv.Itoa(os.Getegid()))
	if err != nil {
		t.Skipf("cannot name the process's group: %v", err)
	}
	if os.Geteuid() == 0 {
		for _, n := range []string{"daemon", "nogroup", "adm"} {
			if og, err := user.LookupGroup(n); err == nil && og.Gid != "0" {
				g = og
				break
			}
		}
	}
	path := filepath.Join(t.TempDir(), "condenser.sock")
	ls := listenOK(t, Options{Addresses: []string{"unix://" + path}, SocketGroup: g.Name})
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want 0660", fi.Mode())
	}
	if gid := fi.Sys().(*syscall.Stat_t).Gid; strconv.Itoa(int(gid)) != g.Gid {
		t.Errorf("socket group %d, want %s (%s)", gid, g.Gid, g.Name)
	}
	if d := Describe(ls[0]); !strings.Contains(d, "group "+g.Name) {
		t.Errorf("description %q does not name group %s", d, g.Name)
	}

	// An unknown group is bad configuration, found before anything is created.
	other := filepath.Join(t.TempDir(), "x", "condenser.sock")
	_, err = Listen(testContext(t), Options{Addresses: []string{"unix://" + other}, SocketGroup: "no-such-group-condenser"})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("unknown group: got %v, want ErrInvalidArgument", err)
	}
	if _, err := os.Lstat(filepath.Dir(other)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("directory created despite the bad group: %v", err)
	}
}

func TestUnixStaleSocketReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "condenser.sock")
	old, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	old.(*net.UnixListener).SetUnlinkOnClose(false)
	_ = old.Close() // a daemon that died: the file stays, nobody listens
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != fs.ModeSocket {
		t.Fatalf("stale socket not in place: %v", err)
	}

	ls := listenOK(t, Options{Addresses: []string{"unix://" + path}})
	serve(t, ls[0], "new")
	if got, err := unixGet(path); err != nil || got != "new" {
		t.Fatalf("GET over the replaced socket: %q, %v", got, err)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("replaced socket: %v, %v", fi, err)
	}
}

func TestUnixLiveSocketRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "condenser.sock")
	live, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = live.Close() })
	serve(t, live, "first")
	before, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}

	_, err = Listen(testContext(t), Options{Addresses: []string{"unix://" + path}})
	if !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("got %v, want ErrAlreadyExists", err)
	}
	if want := "another condenser is listening on " + path; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	after, err := os.Lstat(path)
	if err != nil {
		t.Fatalf("live socket file gone: %v", err)
	}
	if !os.SameFile(before, after) {
		t.Error("live socket file was replaced")
	}
	if got, err := unixGet(path); err != nil || got != "first" {
		t.Fatalf("the first daemon no longer answers: %q, %v", got, err)
	}
}

func TestUnixNonSocketRefused(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "condenser.sock")
	if err := os.WriteFile(file, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "subdir.sock")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.sock")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{file, sub, link} {
		_, err := Listen(testContext(t), Options{Addresses: []string{"unix://" + p}})
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "not a socket") {
			t.Errorf("%s: got %v, want ErrInvalidArgument saying it is not a socket", p, err)
		}
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "precious" {
		t.Errorf("regular file touched: %q, %v", b, err)
	}
	if fi, err := os.Lstat(sub); err != nil || !fi.IsDir() {
		t.Errorf("directory touched: %v", err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode().Type() != fs.ModeSymlink {
		t.Errorf("symlink touched: %v", err)
	}
}

func TestBadAddresses(t *testing.T) {
	for _, a := range []string{
		"", "/run/condenser.sock", "unix://relative.sock", "unix://", "http://127.0.0.1:80",
		"udp://127.0.0.1:53", "tcp://127.0.0.1", "tcp://127.0.0.1:99999", "tcp://127.0.0.1:80/x",
		"unix:///" + strings.Repeat("x", 200),
	} {
		_, err := Listen(testContext(t), Options{Addresses: []string{a}})
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%q: got %v, want ErrInvalidArgument", a, err)
		}
	}
	p := "unix://" + filepath.Join(t.TempDir(), "s.sock")
	if _, err := Listen(testContext(t), Options{Addresses: []string{p, p}}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("duplicate address: got %v, want ErrInvalidArgument", err)
	}
}

func TestPlainTCPRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "condenser.sock")
	for _, o := range []Options{
		{Addresses: []string{"unix://" + path, "tcp://127.0.0.1:0"}},
		{Addresses: []string{"tcp://127.0.0.1:0"}, TLSCert: "cert.pem", TLSKey: "key.pem"},
	} {
		_, err := Listen(testContext(t), o)
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("%+v: got %v, want ErrInvalidArgument", o, err)
		}
		for _, want := range []string{"plain TCP is refused", "--tls-cert", "--tls-key", "--tls-client-ca"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
	}
	// The configuration is checked before any socket is created.
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("unix socket created although the tcp address was refused: %v", err)
	}
}

// pki is a test CA with a server certificate for 127.0.0.1 and a client
// certificate, as PEM files.
type pki struct {
	caFile, certFile, keyFile string
	caPool                    *x509.CertPool
	client                    tls.Certificate
	rogue                     tls.Certificate // a client certificate from another CA
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	ca, caKey := makeCert(t, nil, nil, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "condenser test CA"},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	})
	srv, srvKey := makeCert(t, ca, caKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "condenser"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	cli, cliKey := makeCert(t, ca, caKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "client"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	rogueCA, rogueCAKey := makeCert(t, nil, nil, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "rogue CA"},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	})
	rogue, rogueKey := makeCert(t, rogueCA, rogueCAKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "rogue client"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})

	p := &pki{
		caFile:   filepath.Join(dir, "ca.pem"),
		certFile: filepath.Join(dir, "server.pem"),
		keyFile:  filepath.Join(dir, "server-key.pem"),
		caPool:   x509.NewCertPool(),
		client:   tls.Certificate{Certificate: [][]byte{cli.Raw}, PrivateKey: cliKey},
		rogue:    tls.Certificate{Certificate: [][]byte{rogue.Raw}, PrivateKey: rogueKey},
	}
	p.caPool.AddCert(ca)
	writePEM(t, p.caFile, "CERTIFICATE", ca.Raw)
	writePEM(t, p.certFile, "CERTIFICATE", srv.Raw)
	der, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, p.keyFile, "EC PRIVATE KEY", der)
	return p
}

var serial int64

func makeCert(t *testing.T, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, tmpl *x509.Certificate) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl.SerialNumber = big.NewInt(serial)
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// httpsGet sends GET / to addr with the TLS client configuration cfg.
func httpsGet(addr string, cfg *tls.Config) (string, error) {
	c := &http.Client{Timeout: waitBound, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("https://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// tlsHandshake completes a TLS handshake with addr, and a read so that a
// TLS 1.3 server's rejection of the client certificate arrives.
func tlsHandshake(addr string, cfg *tls.Config) error {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: waitBound}, Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(waitBound))
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\n\r\n"); err != nil {
		return err
	}
	_, err = c.Read(make([]byte, 1))
	return err
}

func TestTCPTLSClientCertificates(t *testing.T) {
	p := newPKI(t)
	ls := listenOK(t, Options{
		Addresses: []string{"tcp://127.0.0.1:0"},
		TLSCert:   p.certFile, TLSKey: p.keyFile, TLSClientCA: p.caFile,
	})
	if len(ls) != 1 {
		t.Fatalf("got %d listeners, want 1", len(ls))
	}
	addr := ls[0].Addr().String()
	if d := Describe(ls[0]); !strings.Contains(d, "tcp://"+addr) || !strings.Contains(d, "TLS") {
		t.Errorf("description %q does not name tcp://%s and TLS", d, addr)
	}
	serve(t, ls[0], "secure")

	// Without a client certificate the handshake fails, at either TLS version
	// (with TLS 1.3 the client learns it on its first read).
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		err := tlsHandshake(addr, &tls.Config{RootCAs: p.caPool, MaxVersion: v})
		// TLS 1.2 reports "handshake failure", TLS 1.3 "certificate required".
		if err == nil || !strings.Contains(err.Error(), "remote error: tls:") {
			t.Errorf("client without a certificate (%s): got %v, want the server's TLS alert", tls.VersionName(v), err)
		}
	}
	if _, err := httpsGet(addr, &tls.Config{RootCAs: p.caPool}); err == nil {
		t.Error("HTTP client without a certificate was served")
	}
	// So it does with a certificate from another CA.
	if _, err := httpsGet(addr, &tls.Config{RootCAs: p.caPool, Certificates: []tls.Certificate{p.rogue}}); err == nil {
		t.Error("client with a certificate from another CA was served")
	}
	// And below TLS 1.2.
	if _, err := httpsGet(addr, &tls.Config{RootCAs: p.caPool, Certificates: []tls.Certificate{p.client},
		MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Error("TLS 1.1 client was served")
	}
	// A client with a certificate from the CA gets an answer, over HTTP/1.1
	// and HTTP/2.
	for _, protos := range [][]string{{"http/1.1"}, {"h2"}} {
		got, err := httpsGet(addr, &tls.Config{RootCAs: p.caPool, Certificates: []tls.Certificate{p.client}, NextProtos: protos})
		if err != nil || got != "secure" {
			t.Errorf("client with a certificate (%v): %q, %v", protos, got, err)
		}
	}
	// Exactly TLS 1.2 is fine.
	got, err := httpsGet(addr, &tls.Config{RootCAs: p.caPool, Certificates: []tls.Certificate{p.client}, MaxVersion: tls.VersionTLS12})
	if err != nil || got != "secure" {
		t.Errorf("TLS 1.2 client with a certificate: %q, %v", got, err)
	}
}

func TestTCPBadTLSFiles(t *testing.T) {
	p := newPKI(t)
	for name, o := range map[string]Options{
		"missing cert": {TLSCert: "/nonexistent/cert.pem", TLSKey: p.keyFile, TLSClientCA: p.caFile},
		"missing CA":   {TLSCert: p.certFile, TLSKey: p.keyFile, TLSClientCA: "/nonexistent/ca.pem"},
		"CA not PEM":   {TLSCert: p.certFile, TLSKey: p.keyFile, TLSClientCA: p.keyFile},
	} {
		o.Addresses = []string{"tcp://127.0.0.1:0"}
		if _, err := Listen(testContext(t), o); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: got %v, want ErrInvalidArgument", name, err)
		}
	}
}

// The socket activation test re-executes the test binary under
// systemd-socket-activate; these variables tell the child it is the helper.
const (
	helperEnv       = "CONDENSER_LISTEN_HELPER"
	helperUnusedEnv = "CONDENSER_LISTEN_HELPER_UNUSED"
)

func TestSocketActivation(t *testing.T) {
	activate, err := exec.LookPath("systemd-socket-activate")
	switch {
	case os.Geteuid() != 0:
		err = errors.New("this test must run as root")
	case err != nil:
		err = fmt.Errorf("systemd-socket-activate is not installed (apt-get install systemd): %w", err)
	}
	if err != nil {
		if inCI() {
			t.Fatalf("%v (CI=true: failing instead of skipping)", err)
		}
		t.Skipf("skipping socket activation test: %v (with CI=true this fails instead)", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "act.sock")
	unused := filepath.Join(dir, "unused", "configured.sock")
	out, err := os.Create(filepath.Join(dir, "helper.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()

	// systemd-socket-activate passes on only a few variables, and those set
	// with -E. It execs the helper in place (same PID) on the first
	// connection.
	cmd := exec.Command(activate, "-l", sock,
		"-E", helperEnv+"=1", "-E", helperUnusedEnv+"="+unused,
		self, "-test.run=^TestHelperActivated$", "-test.v", "-test.timeout=60s")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // by PID
		select {
		case <-exited:
		case <-time.After(waitBound):
			t.Errorf("helper %d did not exit after SIGKILL", cmd.Process.Pid)
		}
	})
	helperLog := func() string {
		b, _ := os.ReadFile(out.Name())
		return string(b)
	}

	// Wait for systemd-socket-activate to create the socket.
	deadline := time.Now().Add(waitBound)
	for {
		if _, err := os.Lstat(sock); err == nil {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("systemd-socket-activate exited early: %v\n%s", err, helperLog())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not created within %v\n%s", sock, waitBound, helperLog())
		}
	}

	// The connection starts the helper, which answers on the passed socket.
	conn, err := net.DialTimeout("unix", sock, waitBound)
	if err != nil {
		t.Fatalf("dial %s: %v\n%s", sock, err, helperLog())
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(waitBound))
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: condenser\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read the helper's answer: %v\n%s", err, helperLog())
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || string(body) != "activated" {
		t.Fatalf("helper answered %d %q (%v), want 200 \"activated\"\n%s", resp.StatusCode, body, err, helperLog())
	}
	if _, err := os.Lstat(unused); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the configured address %s was used despite socket activation: %v", unused, err)
	}
}

// TestHelperActivated is the process TestSocketActivation starts under
// systemd-socket-activate. It serves "activated" over HTTP on the socket
// systemd passed, or an explanation of what went wrong.
func TestHelperActivated(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper process for TestSocketActivation")
	}
	fds := os.Getenv("LISTEN_FDS")
	ls, err := Listen(context.Background(), Options{Addresses: []string{"unix://" + os.Getenv(helperUnusedEnv)}})
	answer := "activated"
	switch {
	case err != nil:
		t.Fatalf("Listen: %v", err)
	case len(ls) != 1:
		t.Fatalf("Listen returned %d listeners, want 1 (LISTEN_FDS was %q)", len(ls), fds)
	case os.Getenv("LISTEN_FDS") != "" || os.Getenv("LISTEN_PID") != "":
		answer = "LISTEN_* still set after Listen"
	case !strings.Contains(Describe(ls[0]), "act.sock") || !strings.Contains(Describe(ls[0]), "socket activation"):
		answer = "unexpected description " + Describe(ls[0])
	}
	t.Logf("listening on %s", Describe(ls[0]))
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, answer)
		}),
		ReadHeaderTimeout: waitBound,
	}
	// Serve until killed, but never outlive an abandoned parent for long.
	time.AfterFunc(time.Minute, func() { _ = srv.Close() })
	if err := srv.Serve(ls[0]); !errors.Is(err, http.ErrServerClosed) {
		t.Fatal(err)
	}
}
