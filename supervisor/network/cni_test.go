package network

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/names"
	"github.com/raind/condenser/internal/testutil"
)

// cniEnv is an env with a conflist of Debian's bridge and host-local
// plugins on a test bridge and subnet. The bridge plugin's side effects
// are undone: the bridge it creates is deleted, ip_forward put back
// (TestMain); ipMasq is off, so it writes no iptables rule.
type cniEnv struct {
	*env
	name, bridge, dataDir string
}

func newCNIEnv(t *testing.T) *cniEnv {
	t.Helper()
	testutil.RequireRoot(t)
	for _, p := range []string{"bridge", "host-local"} {
		if _, err := os.Stat(filepath.Join("/usr/lib/cni", p)); err != nil {
			msg := fmt.Sprintf("test requires the CNI plugin /usr/lib/cni/%s: install it with: apt-get install --no-install-recommends containernetworking-plugins", p)
			if testutil.InCI() {
				t.Fatal(msg + " (CI=true: failing instead of skipping)")
			}
			t.Skip(msg)
		}
	}
	confDir := t.TempDir()
	c := &cniEnv{name: "cnitest-" + randHex(6), bridge: "cnt" + randHex(6), dataDir: filepath.Join(t.TempDir(), "host-local")}
	c.env = newEnv(t, func(cfg *Config) {
		cfg.CNIConfDir = confDir
		cfg.CNIPluginDirs = []string{"/usr/lib/cni"}
	})
	c.own(c.bridge)
	subnet := freeTestSubnet(t, c.h, c.addr.Masked())
	conf := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [{
    "type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false, "hairpinMode": true,
    "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": %q}
  }]
}`, c.name, c.bridge, subnet, c.dataDir)
	if err := os.WriteFile(filepath.Join(confDir, "10-test.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return c
}

// hostLocal returns the addresses host-local holds for the network.
func (c *cniEnv) hostLocal(t *testing.T) []string {
	ents, err := os.ReadDir(filepath.Join(c.dataDir, c.name))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Name() != "lock" && e.Name()[0] != '.' && e.Name() != "last_reserved_ip.0" {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestCNI(t *testing.T) {
	c := newCNIEnv(t)
	ctx := context.Background()
	n, err := c.m.Network(ctx, c.name)
	if err != nil {
		t.Fatal(err)
	}
	if n.Kind != KindCNI || n.Bridge != c.bridge || !n.Subnet.IsValid() || n.Gateway != n.Subnet.Addr().Next() {
		t.Errorf("Network = %+v", n)
	}
	all, _ := c.m.Networks(ctx)
	if len(all) != 4 || all[0].Name != c.name {
		t.Errorf("Networks = %+v", all)
	}
	if _, err := c.m.CreateNetwork(ctx, NetworkConfig{Name: c.name, Subnet: "10.198.0.0/24"}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("CreateNetwork(the CNI network's name): %v", err)
	}
	if _, err := c.m.CreateNetwork(ctx, NetworkConfig{Name: "other", Subnet: n.Subnet.String()}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("CreateNetwork(the CNI network's subnet): %v", err)
	}
	if err := c.m.RemoveNetwork(ctx, c.name); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("RemoveNetwork(a CNI network): %v", err)
	}

	t0 := time.Now()
	a, err := c.m.Attach(ctx, names.NewID(), AttachRequest{Network: c.name, Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("CNI Attach: %v", time.Since(t0))
	b, err := c.m.Attach(ctx, names.NewID(), AttachRequest{Network: c.name, Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if !n.Subnet.Contains(a.IP) || a.Gateway != n.Gateway || a.Prefix.Bits() != 24 || a.MAC == "" || a.Veth == "" || a.Bridge != c.bridge || a.Namespace == "" {
		t.Errorf("a: %+v", a)
	}
	if a.IP == b.IP {
		t.Errorf("a and b have %s", a.IP)
	}
	checkInside(t, a)
	talk(t, a.Namespace, a.IP, b.Namespace)
	talk(t, "", a.Gateway, b.Namespace)
	if p := c.m.Peers(c.name); len(p) != 2 {
		t.Errorf("Peers = %+v", p)
	}
	if got := c.hostLocal(t); len(got) != 2 {
		t.Errorf("host-local holds %v", got)
	}
	if _, err := c.m.Attach(ctx, a.ID, AttachRequest{Network: c.name}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("a second Attach: %v", err)
	}

	t0 = time.Now()
	if err := c.m.Detach(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	t.Logf("CNI Detach: %v", time.Since(t0))
	if err := c.m.Detach(ctx, a.ID); err != nil {
		t.Errorf("Detach again: %v", err)
	}
	if _, err := c.h.LinkByName(a.Veth); !isNotFound(err) {
		t.Errorf("a's veth %s: %v", a.Veth, err)
	}
	if got := c.hostLocal(t); len(got) != 1 || got[0] != b.IP.String() {
		t.Errorf("host-local holds %v, want only %s", got, b.IP)
	}

	// The daemon dies with b attached, and during an ADD (a pending record
	// and the plugins' work without the final record). Reconcile, keeping
	// nothing, runs DEL for both.
	id := names.NewID()
	path, err := c.m.NewNamespace(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	pending := &record{Kind: KindCNI, Pending: true, Attachment: Attachment{ID: id, Network: c.name, Namespace: path}}
	if err := c.m.writeRecord(pending); err != nil {
		t.Fatal(err)
	}
	l, err := c.m.cniList(ctx, c.name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.m.cni.AddNetworkList(ctx, l.list, c.m.runtimeConf(id, path)); err != nil {
		t.Fatal(err)
	}
	if got := c.hostLocal(t); len(got) != 2 {
		t.Errorf("host-local holds %v", got)
	}
	m := c.open(t)
	if err := m.Reconcile(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got := c.hostLocal(t); len(got) != 0 {
		t.Errorf("host-local still holds %v", got)
	}
	if _, err := c.h.LinkByName(b.Veth); !isNotFound(err) {
		t.Errorf("b's veth %s: %v", b.Veth, err)
	}
	cache, _ := os.ReadDir(filepath.Join(c.cfg.State, "cni-cache", "results"))
	if len(cache) != 0 {
		t.Errorf("libcni's cache holds %d results", len(cache))
	}
	c.assertClean(t)
	if n := c.ports(t, c.bridge); n != 0 {
		t.Errorf("the CNI bridge has %d ports", n)
	}
}

// A conflist that disappears: Detach runs DEL with the configuration
// libcni cached.
func TestCNIConflistGone(t *testing.T) {
	c := newCNIEnv(t)
	ctx := context.Background()
	a, err := c.m.Attach(ctx, names.NewID(), AttachRequest{Network: c.name})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(c.cfg.CNIConfDir, "10-test.conflist")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.m.Network(ctx, c.name); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Network after its conflist went: %v", err)
	}
	if err := c.m.Detach(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if got := c.hostLocal(t); len(got) != 0 {
		t.Errorf("host-local still holds %v", got)
	}
	if _, err := c.h.LinkByName(a.Veth); !isNotFound(err) {
		t.Errorf("the veth %s: %v", a.Veth, err)
	}
	c.assertClean(t)
}
