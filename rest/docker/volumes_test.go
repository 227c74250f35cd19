package docker

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/volume"

	"github.com/raind/condenser/internal/volumes"
	"github.com/raind/condenser/supervisor"
)

func TestVolumes(t *testing.T) {
	root := filepath.Join(t.TempDir(), "volumes")
	ts := newTestServer(t, Deps{Volumes: volumes.New(root)})

	var v volume.Volume
	if err := json.Unmarshal([]byte(ts.want(201, "POST", "/v1.50/volumes/create", `{"Name":"data","Labels":{"a":"b"}}`)), &v); err != nil {
		t.Fatal(err)
	}
	if v.Name != "data" || v.Driver != "local" || v.Scope != "local" || v.Mountpoint != filepath.Join(root, "data", "_data") || v.Labels["a"] != "b" || v.CreatedAt == "" {
		t.Fatalf("create: %+v", v)
	}
	var anon volume.Volume
	if err := json.Unmarshal([]byte(ts.want(201, "POST", "/volumes/create", `{}`)), &anon); err != nil || len(anon.Name) != 64 {
		t.Fatalf("anonymous: %+v %v", anon, err)
	}
	ts.want(400, "POST", "/volumes/create", `{"Name":"bad/name"}`)
	ts.want(400, "POST", "/volumes/create", `{"Name":"x1","Driver":"nfs"}`)
	ts.want(501, "POST", "/volumes/create", `{"Name":"x1","DriverOpts":{"type":"nfs"}}`)

	var list volume.ListResponse
	if err := json.Unmarshal([]byte(ts.want(200, "GET", "/volumes", "")), &list); err != nil || len(list.Volumes) != 2 || list.Warnings == nil {
		t.Fatalf("list: %+v %v", list, err)
	}
	if err := json.Unmarshal([]byte(ts.want(200, "GET", "/volumes?filters="+urlQuery(`{"label":{"a=b":true}}`), "")), &list); err != nil || len(list.Volumes) != 1 {
		t.Fatalf("list by label: %+v %v", list, err)
	}
	ts.want(200, "GET", "/volumes/data", "")
	if msg := errMessage(t, ts.want(404, "GET", "/volumes/nope", "")); msg != "No such volume: nope" {
		t.Fatalf("404: %q", msg)
	}

	// In use by a container's bind: 409 with the ids, even forced.
	id := strings.Repeat("c", 64)
	ts.sup.containers = []*supervisor.Container{{ID: id, Name: "web",
		Request: supervisor.CreateRequest{}}}
	ts.sup.containers[0].Request.Mounts = []string{v.Mountpoint + ":/data:ro"}
	msg := errMessage(t, ts.want(409, "DELETE", "/volumes/data?force=1", ""))
	if msg != "remove data: volume is in use - ["+id+"]" {
		t.Fatalf("in use: %q", msg)
	}
	if err := json.Unmarshal([]byte(ts.want(200, "GET", "/volumes?filters="+urlQuery(`{"dangling":{"true":true}}`), "")), &list); err != nil || len(list.Volumes) != 1 || list.Volumes[0].Name != anon.Name {
		t.Fatalf("dangling: %+v %v", list, err)
	}
	// Prune: anonymous unused volumes only (API ≥ 1.42), then all.
	var rep volume.PruneReport
	if err := json.Unmarshal([]byte(ts.want(200, "POST", "/volumes/prune", "")), &rep); err != nil || len(rep.VolumesDeleted) != 1 || rep.VolumesDeleted[0] != anon.Name {
		t.Fatalf("prune: %+v %v", rep, err)
	}
	ts.sup.containers = nil
	ts.want(204, "DELETE", "/volumes/data", "")
	ts.want(404, "DELETE", "/volumes/data", "")
	ts.want(204, "DELETE", "/volumes/data?force=1", "")

	// No store: a clear 501.
	none := newTestServer(t, Deps{})
	none.want(501, "GET", "/volumes", "")
}
