// Package certs makes the certificates of Raind's transport: the daemon
// serves the Raind contract on 127.0.0.1:7755 with mutual TLS, and the Raind
// CLI dials it with the files of one directory (/etc/raind/cert):
//
//	raind.crt        the daemon's certificate, which is also the CA
//	raind.key        its key (0600)
//	raindClient.crt  the client certificate, signed by raind.crt
//	raindClient.key  its key (0600)
//
// The Raind CLI trusts raind.crt alone (its RootCAs) and presents
// raindClient.crt; it has no separate CA file. So raind.crt is a
// self-signed CA certificate that is at the same time the server's leaf:
// names localhost, 127.0.0.1 and ::1, key usages for signing certificates
// and for TLS, extended key usages server and client authentication (a CA
// restricted to serverAuth would make every client certificate it signs fail
// verification with "incompatible key usage"). Go's crypto/x509 accepts a
// leaf that is itself in the root pool as a chain of one, and the daemon
// verifies client certificates against the same raind.crt.
//
// Keys are ECDSA P-256; certificates are valid for Validity. Existing files
// are never overwritten: Ensure makes the set only when none of the four
// files exists, and refuses a partial set, naming the missing files.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/raind/condenser/internal/errdefs"
)

// DefaultDir is where the Raind CLI looks for its certificates.
const DefaultDir = "/etc/raind/cert"

// The files of a certificate directory, as the Raind CLI names them.
const (
	CertFile       = "raind.crt"
	KeyFile        = "raind.key"
	ClientCertFile = "raindClient.crt"
	ClientKeyFile  = "raindClient.key"
)

// Validity is how long the certificates Ensure makes are valid.
const Validity = 5 * 365 * 24 * time.Hour

// Hosts are the names the server certificate is valid for: the Raind CLI
// dials https://localhost:7755.
var Hosts = []string{"localhost", "127.0.0.1", "::1"}

const (
	dirMode  = 0o755
	certMode = 0o644
	keyMode  = 0o600
)

// Set is the paths of the files of one certificate directory.
type Set struct {
	Dir string
	// Cert is the server certificate and the CA that client certificates
	// must chain to; Key is its key.
	Cert, Key string
	// ClientCert and ClientKey are what the Raind CLI presents.
	ClientCert, ClientKey string
}

// In returns the paths of dir's files.
func In(dir string) Set {
	return Set{
		Dir:        dir,
		Cert:       filepath.Join(dir, CertFile),
		Key:        filepath.Join(dir, KeyFile),
		ClientCert: filepath.Join(dir, ClientCertFile),
		ClientKey:  filepath.Join(dir, ClientKeyFile),
	}
}

// Files returns the set's paths, in the order of the package's constants.
func (s Set) Files() []string { return []string{s.Cert, s.Key, s.ClientCert, s.ClientKey} }

// Ensure makes the certificates in dir (creating it, mode 0755) when none of
// the four files is there, and reports whether it made them. When all four
// are there it leaves them alone (it does not read them: the daemon's TLS
// set-up does, and says what is wrong with them). When only some are there
// it makes nothing and returns an errdefs.ErrInvalidArgument naming the
// missing files. Files are created without ever replacing one: should
// another process make the set at the same time, Ensure keeps that one.
func Ensure(dir string) (s Set, created bool, err error) {
	s = In(dir)
	for attempt := 0; ; attempt++ {
		present, missing, err := s.survey()
		if err != nil {
			return s, false, err
		}
		if len(missing) == 0 {
			return s, false, nil
		}
		if len(present) > 0 {
			return s, false, fmt.Errorf("certificate directory %s holds %s but not %s: restore the missing files, or move the others away to have a new set made (nothing was overwritten): %w",
				dir, strings.Join(present, ", "), strings.Join(missing, ", "), errdefs.ErrInvalidArgument)
		}
		err = s.create(time.Now())
		if err == nil {
			return s, true, nil
		}
		if !errors.Is(err, fs.ErrExist) || attempt > 0 {
			return s, false, err
		}
		// Another process made (some of) the files meanwhile: look again.
	}
}

// survey returns the base names of the files present and missing.
func (s Set) survey() (present, missing []string, err error) {
	for _, p := range s.Files() {
		_, err := os.Lstat(p)
		switch {
		case err == nil:
			present = append(present, filepath.Base(p))
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, filepath.Base(p))
		default:
			return nil, nil, fmt.Errorf("certificate directory: %w", err)
		}
	}
	return present, missing, nil
}

// create makes the four files. On error it removes those it made.
func (s Set) create(now time.Time) error {
	files, err := generate(now)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.Dir, dirMode); err != nil {
		return fmt.Errorf("certificate directory: %w", err)
	}
	var made []string
	for i, p := range s.Files() {
		if err := writeNew(p, files[i].data, files[i].mode); err != nil {
			for _, m := range made {
				_ = os.Remove(m)
			}
			return err
		}
		made = append(made, p)
	}
	if d, err := os.Open(s.Dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

type file struct {
	data []byte
	mode os.FileMode
}

// generate returns the PEM files in the order of Set.Files.
func generate(now time.Time) ([]file, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certificates: %w", err)
	}
	clientKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certificates: %w", err)
	}
	host, _ := os.Hostname()
	ca := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "Raind daemon CA (Condenser on " + host + ")", Organization: []string{"Raind"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(Validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true, // it signs leaves only
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range Hosts {
		if ip := net.ParseIP(h); ip != nil {
			ca.IPAddresses = append(ca.IPAddresses, ip)
		} else {
			ca.DNSNames = append(ca.DNSNames, h)
		}
	}
	client := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "Raind CLI", Organization: []string{"Raind"}},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(Validity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, c := range []*x509.Certificate{ca, client} {
		if c.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127)); err != nil {
			return nil, fmt.Errorf("certificates: %w", err)
		}
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("certificates: CA: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("certificates: CA: %w", err)
	}
	clientDER, err := x509.CreateCertificate(rand.Reader, client, caCert, &clientKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("certificates: client: %w", err)
	}
	caKeyDER, err := x509.MarshalPKCS8PrivateKey(caKey)
	if err != nil {
		return nil, fmt.Errorf("certificates: %w", err)
	}
	clientKeyDER, err := x509.MarshalPKCS8PrivateKey(clientKey)
	if err != nil {
		return nil, fmt.Errorf("certificates: %w", err)
	}
	enc := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	return []file{
		{enc("CERTIFICATE", caDER), certMode},
		{enc("PRIVATE KEY", caKeyDER), keyMode},
		{enc("CERTIFICATE", clientDER), certMode},
		{enc("PRIVATE KEY", clientKeyDER), keyMode},
	}, nil
}

// writeNew writes path with data and mode, complete and synced, unless path
// exists (an error wrapping fs.ErrExist): the data goes to a temporary file
// in the same directory, which is then linked to path — link(2), unlike
// rename(2), never replaces a file.
func writeNew(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("certificates: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("certificates: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("certificates: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("certificates: write %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	return nil
}

// Describe returns what the set is, for logs and `condenser certs`: the
// subject, names and expiry of each certificate.
func (s Set) Describe() (string, error) {
	var b strings.Builder
	for _, p := range []string{s.Cert, s.ClientCert} {
		data, err := os.ReadFile(p)
		if err != nil {
			return "", fmt.Errorf("certificates: %w", err)
		}
		blk, _ := pem.Decode(data)
		if blk == nil || blk.Type != "CERTIFICATE" {
			return "", fmt.Errorf("certificates: %s: no PEM certificate in it: %w", p, errdefs.ErrInvalidArgument)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return "", fmt.Errorf("certificates: %s: %w: %w", p, err, errdefs.ErrInvalidArgument)
		}
		fmt.Fprintf(&b, "%s: %q", filepath.Base(p), c.Subject.CommonName)
		if c.IsCA {
			b.WriteString(", CA")
		}
		var names []string
		names = append(names, c.DNSNames...)
		for _, ip := range c.IPAddresses {
			names = append(names, ip.String())
		}
		if len(names) > 0 {
			fmt.Fprintf(&b, ", server for %s", strings.Join(names, ", "))
		}
		fmt.Fprintf(&b, ", valid until %s\n", c.NotAfter.UTC().Format(time.DateOnly))
	}
	return b.String(), nil
}
