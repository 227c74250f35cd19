package docker

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/network"

	"github.com/raind/condenser/supervisor"
)

func TestNetworks(t *testing.T) {
	ts := newTestServer(t, Deps{})
	var list []network.Inspect
	if err := json.Unmarshal([]byte(ts.want(200, "GET", "/v1.50/networks", "")), &list); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range list {
		names = append(names, n.Name+"/"+n.Driver)
	}
	if strings.Join(names, " ") != "bridge/bridge host/host none/null" {
		t.Fatalf("networks %v", names)
	}

	var cr network.CreateResponse
	body := `{"Name":"app","Driver":"bridge","IPAM":{"Config":[{"Subnet":"10.99.0.0/24","Gateway":"10.99.0.1"}]},"Labels":{"x":"y"}}`
	if err := json.Unmarshal([]byte(ts.want(201, "POST", "/networks/create", body)), &cr); err != nil {
		t.Fatal(err)
	}
	if len(cr.ID) != 64 {
		t.Fatalf("create: %+v", cr)
	}
	if msg := errMessage(t, ts.want(409, "POST", "/networks/create", body)); msg != "network with name app already exists" {
		t.Fatalf("duplicate: %q", msg)
	}
	for _, b := range []string{`{"Name":"bridge"}`, `{"Name":"host"}`} {
		ts.want(403, "POST", "/networks/create", b)
	}
	ts.want(400, "POST", "/networks/create", `{"Name":"x","Driver":"overlay"}`)
	ts.want(501, "POST", "/networks/create", `{"Name":"x","Internal":true}`)
	ts.want(400, "POST", "/networks/create", `{}`)

	// By name, by id, by id prefix; bridge is raind0.
	for _, ref := range []string{"app", cr.ID, cr.ID[:12]} {
		var n network.Inspect
		if err := json.Unmarshal([]byte(ts.want(200, "GET", "/networks/"+ref, "")), &n); err != nil {
			t.Fatal(err)
		}
		if n.Name != "app" || n.ID != cr.ID || n.Labels["x"] != "y" || len(n.IPAM.Config) != 1 || n.IPAM.Config[0].Subnet.String() != "10.99.0.0/24" {
			t.Fatalf("inspect %s: %+v", ref, n)
		}
	}
	var br network.Inspect
	if err := json.Unmarshal([]byte(ts.want(200, "GET", "/networks/bridge", "")), &br); err != nil {
		t.Fatal(err)
	}
	if br.Name != "bridge" || br.Options["com.docker.network.bridge.name"] != "raind0" {
		t.Fatalf("bridge: %+v", br)
	}
	if msg := errMessage(t, ts.want(404, "GET", "/networks/nope", "")); msg != "network nope not found" {
		t.Fatalf("404: %q", msg)
	}
	ts.want(200, "GET", "/networks?filters="+urlQuery(`{"name":{"ap":true}}`), "")

	// In use: 409; built-in: 403.
	ts.sup.containers = []*supervisor.Container{{ID: strings.Repeat("c", 64), Name: "web",
		Endpoint: &supervisor.Endpoint{Network: "app", IP: netip.MustParseAddr("10.99.0.2"), Prefix: netip.MustParsePrefix("10.99.0.0/24")}}}
	var n network.Inspect
	if err := json.Unmarshal([]byte(ts.want(200, "GET", "/networks/app", "")), &n); err != nil {
		t.Fatal(err)
	}
	if ep := n.Containers[strings.Repeat("c", 64)]; ep.Name != "web" || ep.IPv4Address.String() != "10.99.0.2/24" {
		t.Fatalf("containers %+v", n.Containers)
	}
	ts.want(409, "DELETE", "/networks/app", "")
	ts.want(403, "DELETE", "/networks/bridge", "")
	ts.want(403, "DELETE", "/networks/host", "")
	var rep network.PruneReport
	if err := json.Unmarshal([]byte(ts.want(200, "POST", "/networks/prune", "")), &rep); err != nil || len(rep.NetworksDeleted) != 0 {
		t.Fatalf("prune while in use: %+v %v", rep, err)
	}
	ts.sup.containers = nil
	ts.want(204, "DELETE", "/networks/app", "")
	ts.want(404, "DELETE", "/networks/app", "")
	ts.want(501, "POST", "/networks/bridge/connect", `{}`)
}
