package oci

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// EtcFiles are the per-container files bind-mounted on /etc/hosts,
// /etc/hostname and /etc/resolv.conf.
type EtcFiles struct {
	Hosts, Hostname, ResolvConf string // paths
}

// hostResolvConf is the host's resolver configuration (a variable for tests).
var hostResolvConf = "/etc/resolv.conf"

// fallbackNameservers are used when the host only has loopback resolvers,
// which a container in its own network namespace cannot reach (Docker does
// the same).
var fallbackNameservers = []string{"8.8.8.8", "8.8.4.4"}

// WriteEtcFiles writes the container's hosts, hostname and resolv.conf into
// dir. With the host's network the host's resolv.conf is
// used as is; in the container's own namespace loopback nameservers are
// dropped.
func WriteEtcFiles(dir, hostname string, hostNetwork bool) (EtcFiles, error) {
	f := EtcFiles{
		Hosts:      filepath.Join(dir, "hosts"),
		Hostname:   filepath.Join(dir, "hostname"),
		ResolvConf: filepath.Join(dir, "resolv.conf"),
	}
	hosts := Hosts(hostname, nil)
	resolv, err := os.ReadFile(hostResolvConf)
	if err != nil && !os.IsNotExist(err) {
		return f, fmt.Errorf("read %s: %w", hostResolvConf, err)
	}
	if !hostNetwork {
		resolv = containerResolvConf(resolv)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return f, err
	}
	// Not synced, and not through a temporary file: no container reads
	// them until it starts, and they are written again whenever a stopped
	// container starts (after a reboot too), so a power loss cannot leave
	// a container with empty ones. That keeps three fsyncs (about 2 ms
	// here) off every create.
	for path, data := range map[string][]byte{f.Hosts: []byte(hosts), f.Hostname: []byte(hostname + "\n"), f.ResolvConf: resolv} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return f, err
		}
	}
	return f, nil
}

// Host is an /etc/hosts entry: an address and its names.
type Host struct {
	IP    netip.Addr
	Names []string
}

// Hosts is a container's /etc/hosts: localhost, then its own entries
// (its address on its network with its hostname and name, or 127.0.1.1
// with its hostname when it has none), then its peers' (the containers on
// the same user-defined network, by name).
func Hosts(hostname string, entries []Host) string {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	if len(entries) == 0 && hostname != "" {
		entries = []Host{{IP: netip.AddrFrom4([4]byte{127, 0, 1, 1}), Names: []string{hostname}}}
	}
	for _, e := range entries {
		if !e.IP.IsValid() || len(e.Names) == 0 {
			continue
		}
		b.WriteString(e.IP.String())
		for _, n := range e.Names {
			b.WriteString("\t" + n)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// containerResolvConf drops loopback nameservers from a resolv.conf and
// falls back to public ones when none is left.
func containerResolvConf(in []byte) []byte {
	var out bytes.Buffer
	servers := 0
	sc := bufio.NewScanner(bytes.NewReader(in))
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "nameserver" {
			if ip, err := netip.ParseAddr(f[1]); err == nil && ip.IsLoopback() {
				continue
			}
			servers++
		}
		out.WriteString(line + "\n")
	}
	if servers == 0 {
		for _, ns := range fallbackNameservers {
			out.WriteString("nameserver " + ns + "\n")
		}
	}
	return out.Bytes()
}

// Nameservers lists the nameservers of a resolv.conf.
func Nameservers(resolv []byte) []string {
	var out []string
	for _, line := range strings.Split(string(resolv), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "nameserver" {
			out = append(out, f[1])
		}
	}
	return out
}
