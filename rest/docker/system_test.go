package docker

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/system"

	"github.com/raind/condenser/internal/volumes"
	"github.com/raind/condenser/supervisor"
)

func TestInfoAndDiskUsage(t *testing.T) {
	vs := volumes.New(filepath.Join(t.TempDir(), "volumes"))
	ts := newTestServer(t, Deps{Volumes: vs, System: System{Version: "1.2.3", Runtime: "/usr/sbin/runc", StorageDriver: "overlay2", CgroupVersion: "1", KernelVersion: "6.1.0"}})
	img := ts.images.add("docker.io/library/busybox:latest", busyboxID, nil)
	ts.images.Tag(t.Context(), "busybox", "mybox:1")
	ts.sup.containers = []*supervisor.Container{
		{ID: strings.Repeat("a", 64), Name: "a", ImageID: img.ID, State: supervisor.StateRunning},
		{ID: strings.Repeat("b", 64), Name: "b", ImageID: img.ID, State: supervisor.StateStopped},
		{ID: strings.Repeat("c", 64), Name: "c", ImageID: img.ID, State: supervisor.StateCreated},
	}
	if _, err := vs.Create(t.Context(), "data", nil); err != nil {
		t.Fatal(err)
	}

	var info system.Info
	if err := json.Unmarshal([]byte(ts.want(200, "GET", "/v1.50/info", "")), &info); err != nil {
		t.Fatal(err)
	}
	if info.ServerVersion != "1.2.3" || info.Driver != "overlay2" || info.Containers != 3 || info.ContainersRunning != 1 ||
		info.ContainersStopped != 2 || info.Images != 1 || info.OSType != "linux" || info.CgroupDriver != "cgroupfs" ||
		info.DefaultRuntime != "runc" || info.Runtimes["runc"].Path != "/usr/sbin/runc" || info.NCPU < 1 || info.MemTotal <= 0 || info.ID == "" {
		t.Fatalf("info %+v", info)
	}

	var df legacyDiskUsage
	if err := json.Unmarshal([]byte(ts.want(200, "GET", "/system/df", "")), &df); err != nil {
		t.Fatal(err)
	}
	if len(df.Images) != 1 || df.Images[0].Containers != 3 || len(df.Images[0].RepoTags) != 2 || df.LayersSize != 4096 ||
		len(df.Containers) != 3 || df.Containers[0].Names[0] != "/a" || len(df.Volumes) != 1 || df.Volumes[0].UsageData == nil || df.BuildCache == nil {
		t.Fatalf("df %+v", df)
	}
}
