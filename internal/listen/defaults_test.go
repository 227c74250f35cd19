package listen

import (
	"crypto/tls"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raind/condenser/internal/errdefs"
)

// The defaults (the unix socket and Raind's TCP address) get their TLS
// files from DefaultTLS, called once; explicit addresses do not.
func TestDefaultsUseDefaultTLS(t *testing.T) {
	p := newPKI(t)
	calls := 0
	def := func() (string, string, string, error) {
		calls++
		return p.certFile, p.keyFile, p.caFile, nil
	}
	sock := filepath.Join(t.TempDir(), "condenser.sock")
	ls := listenOK(t, Options{Defaults: []string{"unix://" + sock, "tcp://127.0.0.1:0"}, DefaultTLS: def})
	if len(ls) != 2 || calls != 1 {
		t.Fatalf("%d listeners, DefaultTLS called %d times; want 2 and 1", len(ls), calls)
	}
	if d := Describe(ls[1]); !strings.Contains(d, "TLS 1.2/1.3") || !strings.Contains(d, p.caFile) {
		t.Errorf("TCP listener described as %q", d)
	}
	serve(t, ls[1], "raind")
	if got, err := httpsGet(ls[1].Addr().String(), &tls.Config{RootCAs: p.caPool, Certificates: []tls.Certificate{p.client}, MinVersion: tls.VersionTLS13}); err != nil || got != "raind" {
		t.Errorf("TLS 1.3 client with a certificate: %q, %v", got, err)
	}
	if _, err := httpsGet(ls[1].Addr().String(), &tls.Config{RootCAs: p.caPool}); err == nil {
		t.Error("client without a certificate served")
	}

	// Explicit addresses replace the defaults, and a tcp:// one still needs
	// the flags.
	calls = 0
	_, err := Listen(testContext(t), Options{Addresses: []string{"tcp://127.0.0.1:0"}, Defaults: []string{"tcp://127.0.0.1:0"}, DefaultTLS: def})
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "--tls-cert") || calls != 0 {
		t.Errorf("explicit tcp:// without flags: %v (DefaultTLS called %d times)", err, calls)
	}
	// The flags win over DefaultTLS.
	calls = 0
	listenOK(t, Options{Defaults: []string{"tcp://127.0.0.1:0"}, DefaultTLS: def, TLSCert: p.certFile, TLSKey: p.keyFile, TLSClientCA: p.caFile})
	if calls != 0 {
		t.Errorf("DefaultTLS called although the flags were given")
	}
	// Its error is Listen's, and nothing is left listening.
	boom := errors.New("no certificates")
	_, err = Listen(testContext(t), Options{Defaults: []string{"unix://" + sock, "tcp://127.0.0.1:0"},
		DefaultTLS: func() (string, string, string, error) { return "", "", "", boom }})
	if !errors.Is(err, boom) {
		t.Errorf("DefaultTLS failing: %v", err)
	}
}
