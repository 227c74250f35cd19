package network

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/testutil"
)

// env is a Manager on a state of its own whose default network is a test
// bridge ("cnt" + 6 hex digits) on a random 10.199.N.0/24: the tests never
// touch the host's raind0.
type env struct {
	cfg    Config
	m      *Manager
	h      *netlink.Handle
	bridge string
	addr   netip.Prefix // the default network's gateway/24
	links  []string     // made by the test: deleted at the end if left
}

// own names an interface the test makes (a bridge, a veth), deleted at
// the end whatever happens.
func (e *env) own(name string) { e.links = append(e.links, name) }

func randHex(n int) string {
	b := make([]byte, (n+1)/2)
	rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// freeTestSubnet reserves a 10.199.N.0/24 that no route of the host, no
// other test process and none of avoid uses, until the test ends; the
// test may turn ip_forward on (testutil.HoldIPForward puts it back).
func freeTestSubnet(t testing.TB, _ *netlink.Handle, avoid ...netip.Prefix) netip.Prefix {
	t.Helper()
	testutil.HoldIPForward(t)
	return testutil.ReserveSubnet(t, 199, 199, avoid...)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// newEnv makes an env; opts change its configuration before it is
// opened.
func newEnv(t testing.TB, opts ...func(*Config)) *env {
	t.Helper()
	testutil.RequireRoot(t)
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	subnet := freeTestSubnet(t, h)
	e := &env{
		h:      h,
		bridge: "cnt" + randHex(6),
		addr:   netip.PrefixFrom(broadcast(subnet).Prev(), 24),
	}
	e.cfg = Config{
		Root: t.TempDir(), State: t.TempDir(),
		DefaultBridge: e.bridge, DefaultAddress: e.addr,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	if _, ok := t.(*testing.B); ok {
		e.cfg.Logger = nil
	}
	for _, o := range opts {
		o(&e.cfg)
	}
	// Registered first, so it runs last: whatever the test's Manager left
	// of its own, found by the aliases of its state, and the netns mount.
	t.Cleanup(func() { e.removeAll(t) })
	e.m = e.open(t)
	t.Cleanup(func() {
		if err := e.m.Reconcile(context.Background(), nil); err != nil {
			t.Errorf("clean-up: Reconcile: %v", err)
		}
	})
	return e
}

// open opens another Manager on e's directories (a restarted daemon).
func (e *env) open(t testing.TB) *Manager {
	t.Helper()
	m, err := Open(context.Background(), e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// removeAll deletes every interface e's state owns, the namespaces, and
// the shared mount of <state>/netns.
func (e *env) removeAll(t testing.TB) {
	tag := e.tag()
	links, err := (&Manager{h: e.h}).linkList()
	if err != nil {
		t.Error(err)
	}
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Alias, "condenser:"+tag+":") && l.Type() == "veth" {
			t.Errorf("left behind: veth %s (%s)", l.Attrs().Name, l.Attrs().Alias)
			e.h.LinkDel(l)
		}
	}
	for _, l := range links { // bridges after their ports
		if strings.HasPrefix(l.Attrs().Alias, "condenser:"+tag+":") && l.Type() == "bridge" {
			e.h.LinkDel(l)
		}
	}
	for _, name := range append(e.links, e.bridge) {
		if l, err := e.h.LinkByName(name); err == nil {
			e.h.LinkDel(l)
		}
	}
	dir := filepath.Join(e.cfg.State, "netns")
	ents, _ := os.ReadDir(dir)
	for _, ent := range ents {
		t.Errorf("left behind: namespace %s", ent.Name())
		removeNamespace(filepath.Join(dir, ent.Name()))
	}
	for unix.Unmount(dir, unix.MNT_DETACH) == nil {
	}
}

// tag is the aliases' tag of e's state.
func (e *env) tag() string {
	sum := sha256.Sum256([]byte(e.cfg.State))
	return hex.EncodeToString(sum[:4])
}

// assertClean fails unless e's state holds no attachment, namespace,
// address or veth, and the default bridge (if any) has no port.
func (e *env) assertClean(t testing.TB) {
	t.Helper()
	for _, d := range []string{"netns", "attachments"} {
		if ents, _ := os.ReadDir(filepath.Join(e.cfg.State, d)); len(ents) > 0 {
			t.Errorf("left in %s: %d entries, e.g. %s", d, len(ents), ents[0].Name())
		}
	}
	pools, _ := os.ReadDir(filepath.Join(e.cfg.State, "ipam"))
	for _, p := range pools {
		if ents, _ := os.ReadDir(filepath.Join(e.cfg.State, "ipam", p.Name())); len(ents) > 0 {
			t.Errorf("left in ipam/%s: %d addresses, e.g. %s", p.Name(), len(ents), ents[0].Name())
		}
	}
	if n := e.ports(t, e.bridge); n != 0 {
		t.Errorf("bridge %s has %d ports", e.bridge, n)
	}
	e.waitVethsGone(t)
}

// waitVethsGone waits until no veth of e's state is left: Detach leaves
// them to the kernel, which deletes them with their namespace, on its
// own time. It fails after 30 s.
func (e *env) waitVethsGone(t testing.TB) {
	t.Helper()
	updates := make(chan netlink.LinkUpdate, 256)
	done := make(chan struct{})
	defer close(done)
	if err := netlink.LinkSubscribe(updates, done); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(30 * time.Second)
	tag := e.tag()
	for {
		links, err := (&Manager{h: e.h}).linkList()
		if err != nil {
			t.Fatal(err)
		}
		var left []string
		for _, l := range links {
			if strings.HasPrefix(l.Attrs().Alias, "condenser:"+tag+":") && l.Type() == "veth" {
				left = append(left, l.Attrs().Name)
			}
		}
		if len(left) == 0 {
			return
		}
		select {
		case <-updates: // something changed: look again
		case <-timeout:
			t.Fatalf("veths still there after 30 s: %v", left)
		}
	}
}

// ports counts the ports of bridge (0 when it is missing).
func (e *env) ports(t testing.TB, bridge string) int {
	t.Helper()
	br, err := e.h.LinkByName(bridge)
	if isNotFound(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	links, err := (&Manager{h: e.h}).linkList()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			n++
		}
	}
	return n
}

// inNamespace runs fn on a thread in the network namespace at path ("":
// the host's). The goroutine never unlocks its thread, which ends with
// it, back in its namespace first (see createNamespace).
func inNamespace(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	c := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		back, err := netns.Get()
		if err != nil {
			c <- err
			return
		}
		defer back.Close()
		ns, err := netns.GetFromPath(path)
		if err != nil {
			c <- err
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			c <- err
			return
		}
		defer netns.Set(back)
		c <- fn()
	}()
	return <-c
}

// talk listens on addr:0 in the namespace server, connects from the
// namespace client, and checks that a line goes there and back.
func talk(t testing.TB, server string, addr netip.Addr, client string) {
	t.Helper()
	if err := try(server, addr, client); err != nil {
		t.Fatal(err)
	}
}

func try(server string, addr netip.Addr, client string) error {
	var ln net.Listener
	if err := inNamespace(server, func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
		return err
	}); err != nil {
		return fmt.Errorf("listen on %s in %q: %w", addr, server, err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.Copy(c, c)
	}()
	var c net.Conn
	if err := inNamespace(client, func() (err error) {
		c, err = net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		return err
	}); err != nil {
		return fmt.Errorf("connect from %q to %s: %w", client, ln.Addr(), err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	msg := "hello from " + client + "\n"
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		return fmt.Errorf("echo from %s: %q, %v", ln.Addr(), buf, err)
	}
	return nil
}
