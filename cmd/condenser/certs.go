package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/raind/condenser/internal/certs"
	"github.com/raind/condenser/internal/errdefs"
)

// ensureCerts returns the TLS files of the Raind listener, the set in dir,
// making it when dir holds none and logging so.
func ensureCerts(dir string, log *slog.Logger) (cert, key, clientCA string, err error) {
	s, created, err := certs.Ensure(dir)
	if err != nil {
		return "", "", "", err
	}
	if created {
		desc, _ := s.Describe()
		log.Info("created the Raind certificates: the CA and server certificate, and the client certificate the Raind CLI presents",
			"dir", dir, "files", strings.Join(s.Files(), " "), "certificates", strings.TrimSpace(strings.ReplaceAll(desc, "\n", "; ")))
	}
	return s.Cert, s.Key, s.Cert, nil
}

// runCerts is `condenser certs [--cert-dir DIR]`: the daemon's first-start
// certificates, on demand.
func runCerts(args []string, dir string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("certs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&dir, "cert-dir", dir, "directory of the Raind certificates")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: condenser certs [--cert-dir DIR]\n\nCreates raind.crt (CA and server certificate), raind.key, raindClient.crt and\nraindClient.key in DIR when none of them is there; never overwrites.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	s, created, err := certs.Ensure(dir)
	if err != nil {
		fmt.Fprintf(stderr, "condenser certs: %v\n", err)
		if errors.Is(err, errdefs.ErrInvalidArgument) {
			return 2
		}
		return 1
	}
	if created {
		fmt.Fprintf(stdout, "created in %s:\n", dir)
	} else {
		fmt.Fprintf(stdout, "certificates exist in %s; nothing changed:\n", dir)
	}
	for _, f := range s.Files() {
		fmt.Fprintf(stdout, "  %s\n", f)
	}
	desc, err := s.Describe()
	if err != nil {
		fmt.Fprintf(stderr, "condenser certs: %v\n", err)
		return 1
	}
	fmt.Fprint(stdout, desc)
	return 0
}
