package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raind/condenser/internal/errdefs"
)

func TestEnsureMakesTheSet(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc", "raind", "cert")
	s, created, err := Ensure(dir)
	if err != nil || !created {
		t.Fatalf("Ensure: created %v, %v", created, err)
	}
	modes := map[string]os.FileMode{CertFile: 0o644, KeyFile: 0o600, ClientCertFile: 0o644, ClientKeyFile: 0o600}
	for name, mode := range modes {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), mode)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 4 {
		t.Errorf("directory holds %d entries, want the 4 files (no temporary left)", len(ents))
	}

	server, err := tls.LoadX509KeyPair(s.Cert, s.Key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(server.Certificate[0])
	if !leaf.IsCA || leaf.NotAfter.Before(time.Now().Add(3*365*24*time.Hour)) {
		t.Errorf("raind.crt: CA %v, valid until %v", leaf.IsCA, leaf.NotAfter)
	}
	if k, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("raind.crt key is %T, want ECDSA P-256", leaf.PublicKey)
	}
	if d, err := s.Describe(); err != nil || !strings.Contains(d, "localhost, 127.0.0.1") {
		t.Errorf("Describe: %q, %v", d, err)
	}

	// Ensure again: nothing changes.
	before, _ := os.ReadFile(s.Key)
	if _, created, err := Ensure(dir); err != nil || created {
		t.Errorf("second Ensure: created %v, %v", created, err)
	}
	if after, _ := os.ReadFile(s.Key); !bytes.Equal(before, after) {
		t.Error("second Ensure rewrote raind.key")
	}
}

// The set works as the Raind CLI uses it: its RootCAs hold raind.crt only,
// it dials localhost (or 127.0.0.1) and presents raindClient.crt; the
// daemon verifies client certificates against raind.crt. Both TLS 1.2 and
// 1.3 (the CLI's WebSocket dialer requires 1.3).
func TestRaindCLIHandshake(t *testing.T) {
	s, _, err := Ensure(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	server, err := tls.LoadX509KeyPair(s.Cert, s.Key)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(s.Cert)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("raind.crt: no certificate")
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{server},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_, _ = io.WriteString(c, "hello")
			}()
		}
	}()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	client, err := tls.LoadX509KeyPair(s.ClientCert, s.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(host string, cfg *tls.Config) error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", net.JoinHostPort(host, port), cfg)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c) // with TLS 1.3 a refused client learns it here
		if err == nil && string(b) != "hello" {
			err = errors.New("got " + string(b))
		}
		return err
	}
	for _, host := range []string{"localhost", "127.0.0.1"} {
		for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			cfg := &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{client}, MinVersion: v, MaxVersion: v}
			if err := dial(host, cfg); err != nil {
				t.Errorf("%s, %s: %v", host, tls.VersionName(v), err)
			}
		}
	}
	if err := dial("127.0.0.1", &tls.Config{RootCAs: pool}); err == nil {
		t.Error("a client without a certificate was served")
	}
}

func TestEnsurePartialSetRefused(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Ensure(dir)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(s.Key)
	for _, p := range []string{s.ClientCert, s.ClientKey} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	_, created, err := Ensure(dir)
	if created || !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("partial set: created %v, %v; want ErrInvalidArgument", created, err)
	}
	for _, want := range []string{"raindClient.crt, raindClient.key", "holds raind.crt, raind.key", dir} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if after, _ := os.ReadFile(s.Key); !bytes.Equal(key, after) {
		t.Error("raind.key rewritten")
	}
	if _, err := os.Stat(s.ClientCert); err == nil {
		t.Error("raindClient.crt made for a partial set")
	}
}

// writeNew never replaces a file.
func TestWriteNewKeepsExisting(t *testing.T) {
	p := filepath.Join(t.TempDir(), "raind.key")
	if err := os.WriteFile(p, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeNew(p, []byte("theirs"), 0o600); !errors.Is(err, os.ErrExist) {
		t.Errorf("writeNew over an existing file: %v, want ErrExist", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "mine" {
		t.Errorf("file now holds %q", b)
	}
	if ents, _ := os.ReadDir(filepath.Dir(p)); len(ents) != 1 {
		t.Errorf("%d entries left, want 1", len(ents))
	}
}
