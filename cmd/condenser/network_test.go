package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/raind/condenser/internal/testutil"
)

// Networking as a user sees it: published ports from the host and from
// other containers, containers reaching each other by address on raind0
// and by name on a user-defined network, UDP, conflicts and refusals, host
// and none, and what the list shows.

// netDaemon is a daemon with busybox pulled.
func netDaemon(t *testing.T) *daemonProc {
	t.Helper()
	reg := registryWithBusybox(t)
	d := startDaemon(t, reg.Host)
	if code := d.do("POST", "/v1/images", map[string]string{"image": "busybox"}, nil); code != 200 {
		t.Fatalf("pull: %d", code)
	}
	return d
}

// run creates and starts a container and returns its id.
func (d *daemonProc) run(t *testing.T, req map[string]any) string {
	t.Helper()
	req["image"] = "busybox"
	var env envelope
	if code := d.do("POST", "/v1/containers", req, &env); code != 200 {
		t.Fatalf("create %v: %d %s", req, code, env.Message)
	}
	var c struct{ ID string }
	json.Unmarshal(env.Data, &c)
	if code := d.do("POST", "/v1/containers/"+c.ID+"/actions/start", nil, &env); code != 200 {
		t.Fatalf("start %v: %d %s", req, code, env.Message)
	}
	return c.ID
}

// output runs a container to its exit and returns its exit code and log.
func (d *daemonProc) output(t *testing.T, req map[string]any) (int, string) {
	t.Helper()
	id := d.run(t, req)
	var env envelope
	if code := d.do("POST", "/v1/containers/"+id+"/actions/wait", nil, &env); code != 200 {
		t.Fatalf("wait: %d %s", code, env.Message)
	}
	var w struct{ ExitCode int }
	json.Unmarshal(env.Data, &w)
	resp, err := d.http.Get("http://condenser/v1/containers/" + id + "/log?tail_lines=100")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	d.do("DELETE", "/v1/containers/"+id+"/actions/delete?force=1", nil, nil)
	return w.ExitCode, string(b)
}

// freePort returns a port of the host nothing listens on now.
func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type netDetail struct {
	ContainerID string `json:"containerId"`
	Address     string `json:"address"`
	Forwards    []struct {
		Source, Destination int
		Protocol            string
	} `json:"forwards"`
	NetworkSettings *struct {
		Network, Address, Gateway, MAC string
	} `json:"networkSettings"`
}

func (d *daemonProc) detail(t *testing.T, id string) netDetail {
	t.Helper()
	var env envelope
	if code := d.do("GET", "/v1/containers/"+id, nil, &env); code != 200 {
		t.Fatalf("inspect %s: %d %s", id, code, env.Message)
	}
	var c netDetail
	json.Unmarshal(env.Data, &c)
	return c
}

// httpGet fetches url, retrying (bounded) until the server answers.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestNetworking(t *testing.T) {
	d := netDaemon(t)
	port := freePort(t, "tcp")
	web := d.run(t, map[string]any{"name": "web", "command": []string{"busybox", "httpd", "-f", "-p", "80", "-h", "/etc"}, "port": []string{fmt.Sprintf("%d:80", port)}})
	short := web[:12]

	// From the host, through 127.0.0.1.
	if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/hostname", port)); strings.TrimSpace(got) != short {
		t.Errorf("from the host: %q, want the container's hostname %s", got, short)
	}
	// The list and the detail say where it is.
	var list struct{ Data []netDetail }
	d.do("GET", "/v1/containers", nil, &list)
	i := slices.IndexFunc(list.Data, func(c netDetail) bool { return c.ContainerID == web })
	if i < 0 {
		t.Fatal("web not listed")
	}
	c := list.Data[i]
	if !d.net.Address.Contains(netipAddr(t, c.Address)) || len(c.Forwards) != 1 || c.Forwards[0].Source != port || c.Forwards[0].Destination != 80 || c.Forwards[0].Protocol != "tcp" {
		t.Errorf("summary: address %q forwards %+v (subnet %s)", c.Address, c.Forwards, d.net.Address)
	}
	det := d.detail(t, web)
	if det.NetworkSettings == nil || det.NetworkSettings.Network != "raind0" || det.NetworkSettings.Gateway != d.net.Address.Addr().String() || det.NetworkSettings.MAC == "" {
		t.Errorf("networkSettings %+v", det.NetworkSettings)
	}

	// From another container, by address, and through the published port
	// on the gateway (the host).
	if code, out := d.output(t, map[string]any{"command": []string{"busybox", "wget", "-q", "-O", "-", "http://" + c.Address + "/hostname"}}); code != 0 || strings.TrimSpace(out) != short {
		t.Errorf("from a container by address: exit %d %q", code, out)
	}
	if code, out := d.output(t, map[string]any{"command": []string{"busybox", "wget", "-q", "-O", "-", fmt.Sprintf("http://%s:%d/hostname", d.net.Address.Addr(), port)}}); code != 0 || strings.TrimSpace(out) != short {
		t.Errorf("from a container through the published port: exit %d %q", code, out)
	}

	// A taken host port is a conflict; the refused container leaves nothing.
	var env envelope
	if code := d.do("POST", "/v1/containers", map[string]any{"image": "busybox", "name": "web2", "command": []string{"sleep", "9"}, "port": []string{fmt.Sprintf("%d:81", port)}}, &env); code != 409 {
		t.Errorf("create with a port another container publishes: %d %s", code, env.Message)
	}
	if code := d.do("GET", "/v1/containers/web2", nil, nil); code != 404 {
		t.Errorf("the refused container is left: %d", code)
	}
	if !strings.Contains(env.Message, fmt.Sprint(port)) {
		t.Errorf("the conflict does not name the port: %q", env.Message)
	}
	held, err := net.Listen("tcp", fmt.Sprintf("0.0.0.0:%d", freePort(t, "tcp")))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	hp := held.Addr().(*net.TCPAddr).Port
	if code := d.do("POST", "/v1/containers", map[string]any{"image": "busybox", "command": []string{"true"}, "port": []string{fmt.Sprintf("%d:80", hp)}}, &env); code != 409 {
		t.Errorf("create with a port a host process holds: %d %s", code, env.Message)
	}

	// UDP.
	udpPort := freePort(t, "udp")
	echo := buildUDPEcho(t)
	id := d.run(t, map[string]any{"command": []string{"/udpecho", "53"}, "mount": []string{echo + ":/udpecho:ro"}, "port": []string{fmt.Sprintf("%d:53:udp", udpPort)}})
	waitLog(t, d, id, "listening")
	conn, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", udpPort))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got := make([]byte, 64)
	var n int
	for attempt := 0; attempt < 20 && n == 0; attempt++ {
		conn.Write([]byte("ping"))
		conn.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		n, _ = conn.Read(got)
	}
	if string(got[:n]) != "ping" {
		t.Errorf("udp echo through the published port: %q", got[:n])
	}

	// host and none.
	if code, out := d.output(t, map[string]any{"network": "host", "command": []string{"busybox", "ls", "/sys/class/net"}}); code != 0 || !strings.Contains(out, d.net.Bridge) {
		t.Errorf("network host: exit %d, interfaces %q (want the host's, %s among them)", code, out, d.net.Bridge)
	}
	if code, out := d.output(t, map[string]any{"network": "none", "command": []string{"busybox", "ls", "/sys/class/net"}}); code != 0 || strings.Fields(out)[0] != "lo" || len(strings.Fields(out)) != 1 {
		t.Errorf("network none: exit %d, interfaces %q (want lo only)", code, out)
	}
}

func netipAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatalf("address %q: %v", s, err)
	}
	return a
}

// TestUserDefinedNetwork: containers on a network of their own find each
// other by name; the network cannot go while in use.
func TestUserDefinedNetwork(t *testing.T) {
	d := netDaemon(t)
	name := "nt" + d.net.Bridge[3:] // unique to the test daemon
	var env envelope
	if code := d.do("POST", "/v1/networks", map[string]string{"name": name}, &env); code != 200 {
		t.Fatalf("create network: %d %s", code, env.Message)
	}
	var nw struct{ Bridge string }
	json.Unmarshal(env.Data, &nw)
	t.Cleanup(func() { d.do("DELETE", "/v1/networks/"+name, nil, nil) })
	api := d.run(t, map[string]any{"name": "api", "network": name, "command": []string{"busybox", "httpd", "-f", "-p", "80", "-h", "/etc"}})
	if code, out := d.output(t, map[string]any{"network": name, "command": []string{"busybox", "wget", "-q", "-O", "-", "http://api/hostname"}}); code != 0 || strings.TrimSpace(out) != api[:12] {
		t.Errorf("by name on %s: exit %d %q", name, code, out)
	}
	// raind0 does not resolve names (Docker's default bridge does not).
	if code, _ := d.output(t, map[string]any{"command": []string{"busybox", "wget", "-q", "-T", "2", "-O", "-", "http://api/hostname"}}); code == 0 {
		t.Error("a container on raind0 reached api by name")
	}
	if code := d.do("DELETE", "/v1/networks/"+name, nil, &env); code != 409 {
		t.Errorf("delete a network in use: %d %s", code, env.Message)
	}
	d.do("DELETE", "/v1/containers/api/actions/delete?force=1", nil, nil)
	if code := d.do("DELETE", "/v1/networks/"+name, nil, &env); code != 200 {
		t.Errorf("delete the network: %d %s", code, env.Message)
	}
	if _, err := net.InterfaceByName(nw.Bridge); nw.Bridge == "" || err == nil {
		t.Errorf("the network's bridge %q is left", nw.Bridge)
	}
}

// TestNetworkCyclesLeaveNothing: 200 containers created, started and
// deleted on raind0 with a published port leave the host as it was: no
// veth, namespace, address or record, no NAT rule of a container, and
// iptables' rules of its bridge and subnet untouched (there are none).
func TestNetworkCyclesLeaveNothing(t *testing.T) {
	d := netDaemon(t)
	before := iptablesRules(t, d)
	port := freePort(t, "tcp")
	for i := range 200 {
		id := d.run(t, map[string]any{"command": []string{"sleep", "60"}, "port": []string{fmt.Sprintf("%d:80", port)}})
		if i%50 == 0 && d.detail(t, id).Address == "" {
			t.Fatalf("cycle %d: no address", i)
		}
		if code := d.do("DELETE", "/v1/containers/"+id+"/actions/delete?force=1", nil, nil); code != 200 {
			t.Fatalf("cycle %d: delete: %d", i, code)
		}
	}
	if left := networkLeftovers(d); len(left) > 0 {
		t.Errorf("left behind:\n%s", strings.Join(left, "\n"))
	}
	if rules := publishedRules(t, d.net.Table); rules != 0 {
		t.Errorf("%d published-port rules left in table %s", rules, d.net.Table)
	}
	if after := iptablesRules(t, d); !slices.Equal(after, before) {
		t.Errorf("iptables rules of the daemon's bridge or subnet changed:\n--- before\n%s\n--- after\n%s", strings.Join(before, "\n"), strings.Join(after, "\n"))
	}
}

// iptablesRules is the host's iptables rules that name the daemon's
// bridge or subnet, counters stripped: the daemon must add none (its NAT
// is in its own nftables table). Only those: other test packages running
// at the same time (CNI plugins) change iptables' rules meanwhile.
func iptablesRules(t *testing.T, d *daemonProc) []string {
	t.Helper()
	testutil.RequireBinary(t, "iptables-save")
	out, err := exec.Command("iptables-save").Output()
	if err != nil {
		t.Fatalf("iptables-save: %v", err)
	}
	subnet := d.net.Address.Masked().String()
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, d.net.Bridge) || strings.Contains(l, subnet) {
			lines = append(lines, l)
		}
	}
	return lines
}

// publishedRules counts the rules in the NAT table's chain of published
// ports.
func publishedRules(t *testing.T, table string) int {
	t.Helper()
	c := &nftables.Conn{}
	tb := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: table}
	rules, err := c.GetRules(tb, &nftables.Chain{Name: "published", Table: tb})
	if err != nil {
		return 0 // no table: nothing was ever published
	}
	return len(rules)
}

// buildUDPEcho builds testdata/udpecho static and returns its path.
func buildUDPEcho(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "udpecho")
	cmd := exec.Command("go", "build", "-o", out, "./testdata/udpecho")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build udpecho: %v: %s", err, b)
	}
	return out
}

// waitLog waits until container id's log holds want.
func waitLog(t *testing.T, d *daemonProc, id, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := d.http.Get("http://condenser/v1/containers/" + id + "/log?tail_lines=10")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s: log %q lacks %q", id[:12], b, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
