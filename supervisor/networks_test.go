package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/supervisor/oci"
)

// fakeNetworks connects containers to networks on paper.
type fakeNetworks struct {
	mu         sync.Mutex
	nets       map[string]Network
	namespaces map[string]string // id → path
	endpoints  map[string]*Endpoint
	next       byte
	reconciled []string // ids removed by Reconcile
}

func newFakeNetworks() *fakeNetworks {
	return &fakeNetworks{
		nets: map[string]Network{
			"raind0": {Name: "raind0", Driver: "bridge", Bridge: "raind0", Subnet: netip.MustParsePrefix("10.166.0.0/24"), Gateway: netip.MustParseAddr("10.166.0.254"), BuiltIn: true},
			"host":   {Name: "host", Driver: "host", BuiltIn: true},
			"none":   {Name: "none", Driver: "null", BuiltIn: true},
		},
		namespaces: map[string]string{}, endpoints: map[string]*Endpoint{},
	}
}

func (f *fakeNetworks) List(context.Context) ([]Network, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Network
	for _, n := range f.nets {
		out = append(out, n)
	}
	return out, nil
}

func (f *fakeNetworks) Get(_ context.Context, name string) (Network, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.nets[name]
	if !ok {
		return Network{}, fmt.Errorf("network %s: %w", name, errdefs.ErrNotFound)
	}
	return n, nil
}

func (f *fakeNetworks) Create(_ context.Context, cfg NetworkConfig) (Network, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := Network{Name: cfg.Name, Driver: "bridge", Subnet: netip.MustParsePrefix(cfg.Subnet)}
	f.nets[cfg.Name] = n
	return n, nil
}

func (f *fakeNetworks) Remove(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.nets, name)
	return nil
}

func (f *fakeNetworks) ParsePorts(specs []string) ([]PublishedPort, error) {
	var out []PublishedPort
	for _, s := range specs {
		var h, c uint16
		if _, err := fmt.Sscanf(s, "%d:%d", &h, &c); err != nil {
			return nil, fmt.Errorf("port %q: %w", s, errdefs.ErrInvalidArgument)
		}
		out = append(out, PublishedPort{HostPort: h, ContainerPort: c, Protocol: "tcp"})
	}
	return out, nil
}

func (f *fakeNetworks) Namespace(_ context.Context, id string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := "/run/fake/netns/" + id
	f.namespaces[id] = p
	return p, nil
}

func (f *fakeNetworks) Connect(_ context.Context, id string, r ConnectRequest) (*Endpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.namespaces[id] == "" && !r.External {
		return nil, fmt.Errorf("connect %s: no namespace", id)
	}
	for oid, e := range f.endpoints {
		for _, p := range e.Ports {
			for _, q := range r.Ports {
				if p.HostPort == q.HostPort {
					return nil, fmt.Errorf("port %d is published by %s: %w", p.HostPort, oid, errdefs.ErrConflict)
				}
			}
		}
	}
	f.next++
	n := f.nets[r.Network]
	e := &Endpoint{Network: r.Network, IP: netip.AddrFrom4([4]byte{10, 166, 0, f.next}), Prefix: n.Subnet, Gateway: n.Gateway, Ports: r.Ports, Bridge: n.Bridge}
	if r.External {
		e.Veth = "vc" + id[:10]
		f.namespaces[id] = "external"
	}
	f.endpoints[id] = e
	return e, nil
}

func (f *fakeNetworks) Disconnect(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.namespaces, id)
	delete(f.endpoints, id)
	return nil
}

func (f *fakeNetworks) Reconcile(_ context.Context, keep func(string) bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id := range f.namespaces {
		if !keep(id) {
			delete(f.namespaces, id)
			delete(f.endpoints, id)
			f.reconciled = append(f.reconciled, id)
		}
	}
	return nil
}

func (f *fakeNetworks) has(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.namespaces[id] != ""
}

func newNetDaemon(t *testing.T) (*fakeDaemon, *fakeNetworks) {
	t.Helper()
	d := newFakeDaemon(t)
	n := newFakeNetworks()
	d.cfg.Networks = n
	d.restart()
	return d, n
}

func TestNetworkLifecycle(t *testing.T) {
	ctx := context.Background()
	d, n := newNetDaemon(t)
	c := d.create("web", func(r *CreateRequest) { r.Ports = []string{"18080:80"} })
	if !n.has(c.ID) {
		t.Fatal("no namespace after create")
	}
	spec := readFullSpec(t, c.Bundle)
	var path string
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == "network" {
			path = ns.Path
		}
	}
	if path != "/run/fake/netns/"+c.ID {
		t.Errorf("the spec's network namespace is %q", path)
	}
	c = d.get(c.ID)
	if c.Endpoint == nil || c.Endpoint.IP.String() != "10.166.0.1" || len(c.Endpoint.Ports) != 1 || c.Endpoint.Network != "raind0" {
		t.Fatalf("endpoint %+v", c.Endpoint)
	}
	hosts, err := os.ReadFile(filepath.Join(d.sup.containerDir(c.ID), "etc", "hosts"))
	if err != nil || !strings.Contains(string(hosts), "10.166.0.1\t"+c.ShortID()+"\tweb\n") {
		t.Errorf("/etc/hosts %q %v", hosts, err)
	}
	// A taken port is a conflict, and the refused create leaves nothing.
	if _, err := d.sup.Create(ctx, CreateRequest{Image: "busybox", Name: "web2", Ports: []string{"18080:81"}}); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("create with a taken port: %v", err)
	}
	if nets, _ := d.sup.Networks(ctx); !slices.ContainsFunc(nets, func(n Network) bool { return n.Name == "raind0" && slices.Equal(n.Containers, []string{c.ID}) }) {
		t.Errorf("networks %+v", nets)
	}
	if _, err := d.sup.Start(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	// A daemon restart keeps a running container's network.
	d.restart()
	if !n.has(c.ID) || d.get(c.ID).Endpoint == nil {
		t.Fatal("the network went with a daemon restart")
	}
	// The exit takes it away; a new start gives it back.
	d.shims.exitContainer(t, c.ID, 0)
	// The record says stopped first, then the shim and the network go
	// (supervisor.exited): wait for the network's release, bounded.
	c = d.await(c.ID, "stopped and released", func(c *Container) bool { return c.State == StateStopped && c.ShimAddress == "" })
	if n.has(c.ID) || c.Endpoint != nil {
		t.Errorf("stopped: namespace %v, endpoint %+v", n.has(c.ID), c.Endpoint)
	}
	if _, err := d.sup.Start(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if c = d.get(c.ID); !n.has(c.ID) || c.Endpoint == nil {
		t.Fatal("no network after a new start")
	}
	if _, err := d.sup.Delete(ctx, "web", true); err != nil {
		t.Fatal(err)
	}
	if n.has(c.ID) {
		t.Error("the namespace outlived its container")
	}
}

func TestNetworkChecks(t *testing.T) {
	ctx := context.Background()
	d, n := newNetDaemon(t)
	for _, tc := range []struct {
		req  CreateRequest
		want error
	}{
		{CreateRequest{Image: "busybox", Config: oci.Config{Network: "nosuch"}}, errdefs.ErrNotFound},
		{CreateRequest{Image: "busybox", Config: oci.Config{Network: "host"}, Ports: []string{"1:2"}}, errdefs.ErrInvalidArgument},
		{CreateRequest{Image: "busybox", Config: oci.Config{Network: "none"}, Ports: []string{"1:2"}}, errdefs.ErrInvalidArgument},
		{CreateRequest{Image: "busybox", Ports: []string{"x"}}, errdefs.ErrInvalidArgument},
	} {
		if _, err := d.sup.Create(ctx, tc.req); !errors.Is(err, tc.want) {
			t.Errorf("create %+v: %v, want %v", tc.req, err, tc.want)
		}
	}
	// host and none get no namespace of Condenser's.
	for _, net := range []string{"host", "none"} {
		c := d.create("on-"+net, func(r *CreateRequest) { r.Network = net })
		if n.has(c.ID) || c.Endpoint != nil {
			t.Errorf("%s: a namespace of Condenser's", net)
		}
	}
	// A network in use cannot go.
	if _, err := d.sup.CreateNetwork(ctx, NetworkConfig{Name: "backend", Subnet: "10.167.0.0/24"}); err != nil {
		t.Fatal(err)
	}
	d.create("api", func(r *CreateRequest) { r.Network = "backend" })
	if err := d.sup.RemoveNetwork(ctx, "backend"); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("remove a network in use: %v", err)
	}
	if _, err := d.sup.Delete(ctx, "api", true); err != nil {
		t.Fatal(err)
	}
	if err := d.sup.RemoveNetwork(ctx, "backend"); err != nil {
		t.Errorf("remove an unused network: %v", err)
	}
}

// TestNetworksReconciledAtStart: what a killed daemon left of a container
// that is no longer created or running goes at the next start; a running
// container's stays.
func TestNetworksReconciledAtStart(t *testing.T) {
	ctx := context.Background()
	d, n := newNetDaemon(t)
	run := d.create("run", nil)
	if _, err := d.sup.Start(ctx, "run"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Namespace(ctx, "leftover"); err != nil {
		t.Fatal(err)
	}
	d.restart()
	if !n.has(run.ID) || n.has("leftover") || !slices.Equal(n.reconciled, []string{"leftover"}) {
		t.Errorf("after the restart: running kept %v, reconciled %v", n.has(run.ID), n.reconciled)
	}
}

func readFullSpec(t *testing.T, bundle string) *specs.Spec {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	return &spec
}

// TestNamesOnUserDefinedNetworks: containers on a user-defined network
// find each other by name (/etc/hosts, kept up to date as they come and
// go); on raind0 they do not, as on Docker's default bridge.
func TestNamesOnUserDefinedNetworks(t *testing.T) {
	ctx := context.Background()
	d, _ := newNetDaemon(t)
	if _, err := d.sup.CreateNetwork(ctx, NetworkConfig{Name: "backend", Subnet: "10.167.0.0/24"}); err != nil {
		t.Fatal(err)
	}
	hosts := func(c *Container) string {
		b, err := os.ReadFile(filepath.Join(d.sup.containerDir(c.ID), "etc", "hosts"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	a := d.create("a", func(r *CreateRequest) { r.Network = "backend" })
	b := d.create("b", func(r *CreateRequest) { r.Network = "backend" })
	x := d.create("x", nil) // raind0
	y := d.create("y", nil)
	a, b, x = d.get(a.ID), d.get(b.ID), d.get(x.ID)
	if h := hosts(a); !strings.Contains(h, b.Endpoint.IP.String()+"\tb\n") {
		t.Errorf("a's hosts lack b:\n%s", h)
	}
	if h := hosts(b); !strings.Contains(h, a.Endpoint.IP.String()+"\ta\n") {
		t.Errorf("b's hosts lack a:\n%s", h)
	}
	if h := hosts(x); strings.Contains(h, "\ty\n") || strings.Contains(h, "\ta\n") {
		t.Errorf("x on raind0 resolves others:\n%s", h)
	}
	_ = y
	if _, err := d.sup.Delete(ctx, "b", true); err != nil {
		t.Fatal(err)
	}
	if h := hosts(a); strings.Contains(h, "\tb\n") {
		t.Errorf("a's hosts still name b after it went:\n%s", h)
	}
	// After a daemon restart the members are known again.
	d.restart()
	c := d.create("c", func(r *CreateRequest) { r.Network = "backend" })
	if h := hosts(d.get(a.ID)); !strings.Contains(h, d.get(c.ID).Endpoint.IP.String()+"\tc\n") {
		t.Errorf("a's hosts lack c after a restart:\n%s", h)
	}
}

// TestDropletNetwork: with Droplet, which makes the veth itself, the
// address is allocated before the create and named in the spec's
// io.raind.net.config annotation; host and none are refused.
func TestDropletNetwork(t *testing.T) {
	ctx := context.Background()
	d, n := newNetDaemon(t)
	d.cfg.Runtime = "/usr/local/bin/droplet"
	d.restart()
	c := d.create("web", func(r *CreateRequest) { r.Ports = []string{"8080:80"} })
	spec := readFullSpec(t, c.Bundle)
	var conf struct {
		HostInterface, BridgeInterface string
		Interface                      struct {
			Name string
			IPv4 struct{ Address, Gateway string }
		}
	}
	if err := json.Unmarshal([]byte(spec.Annotations["io.raind.net.config"]), &conf); err != nil {
		t.Fatalf("annotation %q: %v", spec.Annotations["io.raind.net.config"], err)
	}
	if conf.HostInterface != "eth0" || conf.BridgeInterface != "raind0" || conf.Interface.Name != "vc"+c.ID[:10] ||
		conf.Interface.IPv4.Address != "10.166.0.1/24" || conf.Interface.IPv4.Gateway != "10.166.0.254" {
		t.Errorf("annotation %+v", conf)
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == "network" && ns.Path != "" {
			t.Errorf("a namespace path for Droplet: %s", ns.Path)
		}
	}
	if c := d.get(c.ID); c.Endpoint == nil || len(c.Endpoint.Ports) != 1 {
		t.Errorf("endpoint %+v", c.Endpoint)
	}
	if _, err := d.sup.Delete(ctx, "web", true); err != nil || n.has(c.ID) {
		t.Errorf("delete: %v; network left %v", err, n.has(c.ID))
	}
	for _, net := range []string{"host", "none"} {
		if _, err := d.sup.Create(ctx, CreateRequest{Image: "busybox", Config: oci.Config{Network: net}}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Droplet on %s: %v, want an invalid argument", net, err)
		}
	}
}
