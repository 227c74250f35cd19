package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/raind/condenser/internal/testutil"
)

var raindFiles = []string{"raind.crt", "raind.key", "raindClient.crt", "raindClient.key"}

// raindClient is a client that behaves as the Raind CLI does: RootCAs
// holding raind.crt alone, the client certificate raindClient.crt, dialling
// https://localhost:PORT; and its WebSocket dialer, TLS 1.3 only.
type raindClient struct {
	base string
	http *http.Client
	tls  *tls.Config
}

func newRaindClient(t *testing.T, certDir, port string) *raindClient {
	t.Helper()
	pemBytes, err := os.ReadFile(filepath.Join(certDir, "raind.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("raind.crt: no certificate")
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(certDir, "raindClient.crt"), filepath.Join(certDir, "raindClient.key"))
	if err != nil {
		t.Fatal(err)
	}
	return &raindClient{
		base: "https://localhost:" + port,
		http: &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}},
		tls:  &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, Certificates: []tls.Certificate{cert}},
	}
}

func (c *raindClient) do(t *testing.T, method, path, body string) (int, envelope) {
	t.Helper()
	req, _ := http.NewRequest(method, c.base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatalf("%s %s: %d %q: %v", method, path, resp.StatusCode, b, err)
	}
	return resp.StatusCode, env
}

// The daemon with its default listeners (the unix socket in --state, and
// mutual TLS where the Raind CLI dials, moved off 7755 by --raind-address):
// it makes the certificates at first start, serves the Raind contract over
// TLS to the client certificate it made — the TLS 1.3 WebSocket attach
// included — refuses a client without one, and a second start keeps them.
func TestRaindTransportEndToEnd(t *testing.T) {
	reg := registryWithBusybox(t)
	testutil.RequireRoot(t)
	certDir := filepath.Join(t.TempDir(), "etc", "raind", "cert")
	port := strconv.Itoa(freePort(t, "tcp"))
	// The unix socket is a default listener too (in --state): the test
	// pings through it.
	d := startDaemonListening(t, reg.Host, func(*daemonProc) []string {
		return []string{"--cert-dir", certDir, "--raind-address", "127.0.0.1:" + port}
	})

	// The certificates, made and logged.
	modes := map[string]os.FileMode{"raind.crt": 0o644, "raind.key": 0o600, "raindClient.crt": 0o644, "raindClient.key": 0o600}
	contents := map[string][]byte{}
	for _, f := range raindFiles {
		p := filepath.Join(certDir, f)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: %v\n%s", f, err, d.logs)
		}
		if fi.Mode().Perm() != modes[f] {
			t.Errorf("%s: mode %v, want %v", f, fi.Mode().Perm(), modes[f])
		}
		contents[f], _ = os.ReadFile(p)
	}
	logs := d.logs.String()
	for _, want := range []string{"created the Raind certificates", "tcp://127.0.0.1:" + port + " (TLS 1.2/1.3, client certificates required", "unix://" + d.sock} {
		if !strings.Contains(logs, want) {
			t.Errorf("log does not say %q:\n%s", want, logs)
		}
	}

	// The Raind contract over TLS, as the Raind CLI speaks it.
	c := newRaindClient(t, certDir, port)
	if code, env := c.do(t, "GET", "/v1/containers", ""); code != 200 || env.Status != "success" || string(env.Data) != "[]" {
		t.Fatalf("list: %d %+v", code, env)
	}
	if code, env := c.do(t, "POST", "/v1/images", `{"image":"busybox"}`); code != 200 {
		t.Fatalf("pull: %d %+v", code, env)
	}
	code, env := c.do(t, "POST", "/v1/containers", `{"image":"busybox","command":["sh"],"tty":true,"name":"raind-tty"}`)
	if code != 200 {
		t.Fatalf("create: %d %+v", code, env)
	}
	var created struct{ ID string }
	_ = json.Unmarshal(env.Data, &created)
	if code, env := c.do(t, "POST", "/v1/containers/"+created.ID+"/actions/start", `{"tty":true}`); code != 200 {
		t.Fatalf("start: %d %+v", code, env)
	}
	code, env = c.do(t, "GET", "/v1/containers", "")
	var list []map[string]any
	_ = json.Unmarshal(env.Data, &list)
	if code != 200 || len(list) != 1 || list[0]["state"] != "running" || list[0]["imageRepository"] != "library/busybox" || list[0]["imageReference"] != "latest" {
		t.Errorf("list after start: %d %s", code, env.Data)
	}
	if code, env := c.do(t, "GET", "/v1/policies/RAIND-EW", ""); code != 501 || !strings.Contains(env.Message, "not implemented") {
		t.Errorf("policies: %d %+v", code, env)
	}

	// The terminal, over a TLS 1.3 WebSocket.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, "wss://localhost:"+port+"/v1/containers/"+created.ID+"/attach", &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: c.tls}},
	})
	if err != nil {
		t.Fatalf("attach: %v (%v)", err, resp)
	}
	defer ws.CloseNow()
	frame := func(typ byte, payload []byte) []byte {
		b := []byte{typ, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
		return append(b, payload...)
	}
	if err := ws.Write(ctx, websocket.MessageBinary, frame(1, []byte{0, 24, 0, 80})); err != nil {
		t.Fatal(err)
	}
	if err := ws.Write(ctx, websocket.MessageBinary, frame(0, []byte("echo tls-$((6*7))\n"))); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for !strings.Contains(out.String(), "tls-42") {
		_, b, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("attach read: %v; got %q", err, out.String())
		}
		out.Write(b)
	}
	_ = ws.Close(websocket.StatusGoingAway, "detached")

	// Without a client certificate: the handshake fails.
	raw, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", "127.0.0.1:"+port,
		&tls.Config{RootCAs: c.tls.RootCAs, ServerName: "localhost"})
	if err == nil {
		_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = raw.Read(make([]byte, 1)) // TLS 1.3: the alert comes after the client's Finished
		raw.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "tls:") {
		t.Errorf("client without a certificate: %v, want a TLS alert", err)
	}
	if _, err := (&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.tls.RootCAs}}}).Get(c.base + "/v1/containers"); err == nil {
		t.Error("HTTP client without a certificate was served")
	}

	// A second start keeps the certificates, and says nothing of making them.
	d.stop(syscall.SIGTERM)
	d.start()
	for _, f := range raindFiles {
		if b, _ := os.ReadFile(filepath.Join(certDir, f)); !bytes.Equal(b, contents[f]) {
			t.Errorf("%s changed by the second start", f)
		}
	}
	if strings.Contains(d.logs.String(), "created the Raind certificates") {
		t.Errorf("second start made certificates:\n%s", d.logs)
	}
	if code, _ := newRaindClient(t, certDir, port).do(t, "GET", "/v1/containers", ""); code != 200 {
		t.Errorf("list after restart: %d", code)
	}
}

// condenser certs makes the set in an empty directory, leaves a full one
// alone, and refuses a partial one naming what is missing.
func TestCertsCommand(t *testing.T) {
	bin := testutil.BuildBinaries(t, "../condenser") + "/condenser"
	dir := filepath.Join(t.TempDir(), "cert")
	run := func() (string, error) {
		out, err := exec.Command(bin, "certs", "--cert-dir", dir).CombinedOutput()
		return string(out), err
	}
	out, err := run()
	if err != nil || !strings.Contains(out, "created in "+dir) || !strings.Contains(out, "localhost, 127.0.0.1") {
		t.Fatalf("certs on an empty dir: %v\n%s", err, out)
	}
	key, _ := os.ReadFile(filepath.Join(dir, "raind.key"))
	for _, f := range raindFiles {
		if !strings.Contains(out, filepath.Join(dir, f)) {
			t.Errorf("output does not name %s:\n%s", f, out)
		}
	}
	out, err = run()
	if err != nil || !strings.Contains(out, "certificates exist in "+dir+"; nothing changed") {
		t.Errorf("certs on a full dir: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "raind.key")); !bytes.Equal(b, key) {
		t.Error("raind.key rewritten")
	}
	if err := os.Remove(filepath.Join(dir, "raindClient.key")); err != nil {
		t.Fatal(err)
	}
	out, err = run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(out, "but not raindClient.key") {
		t.Errorf("certs on a partial dir: %v\n%s", err, out)
	}
	// The global flag works too: condenser --cert-dir D certs.
	b, err := exec.Command(bin, "--cert-dir", filepath.Join(t.TempDir(), "other"), "certs").CombinedOutput()
	if err != nil || !strings.Contains(string(b), "created in") {
		t.Errorf("condenser --cert-dir D certs: %v\n%s", err, b)
	}
}

// Under socket activation with the units' three sockets, named as
// contrib/systemd names them, the daemon serves the unix one as it is,
// wraps the TCP one in mutual TLS with the certificates of --cert-dir, and
// serves the Docker API on the one named docker (and makes no docker.sock
// of its own).
func TestSocketActivationNamed(t *testing.T) {
	testutil.RequireRoot(t)
	sa := testutil.RequireBinary(t, "systemd-socket-activate")
	testutil.RequireBinary(t, "runc")
	dir := testutil.BuildBinaries(t, "../condenser", "../condenser-shim")
	state, _ := os.MkdirTemp("", "cd")
	t.Cleanup(func() { os.RemoveAll(state) })
	sock := filepath.Join(state, "activated.sock")
	dockerSock := filepath.Join(state, "activated-docker.sock")
	port := strconv.Itoa(freePort(t, "tcp"))
	certDir := filepath.Join(t.TempDir(), "cert")
	args := append([]string{"-l", sock, "-l", "127.0.0.1:" + port, "-l", dockerSock, "--fdname=condenser:raind-tls:docker",
		dir + "/condenser", "--root", t.TempDir(), "--state", state, "--runtime", "runc", "--cgroup-parent", testutil.CgroupParent(t),
		"--cert-dir", certDir}, testutil.Network(t).Args()...)
	cmd := exec.Command(sa, args...)
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	unix := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", sock)
	}}}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := unix.Get("http://condenser/v1/_ping")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("activated daemon not answering: %v\n%s", err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	c := newRaindClient(t, certDir, port)
	if code, env := c.do(t, "GET", "/v1/containers", ""); code != 200 || env.Status != "success" {
		t.Errorf("list over the activated TLS socket: %d %+v", code, env)
	}
	if _, err := (&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.tls.RootCAs}}}).Get(c.base + "/v1/_ping"); err == nil {
		t.Error("client without a certificate served on the activated TLS socket")
	}
	docker := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", dockerSock)
	}}}
	resp, err := docker.Get("http://docker/v1.50/version")
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ ApiVersion string }
	json.NewDecoder(resp.Body).Decode(&v)
	resp.Body.Close()
	if resp.StatusCode != 200 || v.ApiVersion != "1.50" {
		t.Errorf("Docker API on the activated socket named docker: %d %+v", resp.StatusCode, v)
	}
	if _, err := os.Stat(filepath.Join(state, "docker.sock")); err == nil {
		t.Error("the activated daemon made a docker.sock of its own beside the one systemd passed")
	}
	for _, want := range []string{"name condenser)", "name raind-tls; TLS 1.2/1.3", "name docker)", "created the Raind certificates"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log does not say %q:\n%s", want, logs.String())
		}
	}
}
