package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raind/condenser/internal/testutil"
)

// testCerts writes a CA, a server certificate for 127.0.0.1 and a client
// certificate into dir.
func testCerts(t *testing.T, dir string) (caPool *x509.CertPool, client tls.Certificate) {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	write("ca.pem", "CERTIFICATE", caDER)
	issue := func(name string, tmpl *x509.Certificate) tls.Certificate {
		k := key()
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(k)
		write(name+".pem", "CERTIFICATE", der)
		write(name+"-key.pem", "EC PRIVATE KEY", kder)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
	}
	issue("server", &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "condenser"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature})
	client = issue("client", &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "raind"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature})
	caPool = x509.NewCertPool()
	caPool.AddCert(ca)
	return caPool, client
}

func TestTCPNeedsTLSAndClientCertificates(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "runc")
	bin := testutil.BuildBinaries(t, "../condenser", "../condenser-shim") + "/condenser"
	state, _ := os.MkdirTemp("", "cd")
	// Removed after the daemon has stopped (cleanups run last first): it
	// keeps a spare shim there until then.
	t.Cleanup(func() { os.RemoveAll(state) })
	common := append([]string{"--root", t.TempDir(), "--state", state, "--runtime", "runc", "--cgroup-parent", testutil.CgroupParent(t)}, testutil.Network(t).Args()...)

	// Plain TCP is refused at start-up, with a message saying what to do.
	out, err := exec.Command(bin, append(common, "--listen", "tcp://127.0.0.1:0")...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--tls-cert") {
		t.Fatalf("plain TCP: %v\n%s", err, out)
	}

	dir := t.TempDir()
	pool, client := testCerts(t, dir)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, append(common, "--listen", "tcp://"+addr,
		"--tls-cert", filepath.Join(dir, "server.pem"), "--tls-key", filepath.Join(dir, "server-key.pem"),
		"--tls-client-ca", filepath.Join(dir, "ca.pem"))...)
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() })

	get := func(certs []tls.Certificate) (string, error) {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs}}}
		resp, err := c.Get("https://" + addr + "/v1/_ping")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), nil
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		body, err := get([]tls.Certificate{client})
		if err == nil {
			if body != "OK" {
				t.Errorf("ping with a client certificate: %q", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer with a client certificate: %v\n%s", err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if body, err := get(nil); err == nil {
		t.Errorf("answered without a client certificate: %q", body)
	}
}
