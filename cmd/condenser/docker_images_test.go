package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// raindCreate creates (without starting) a busybox container through the
// Raind API, removed when the test ends, and returns its id.
func (d *daemonProc) raindCreate(t *testing.T, req map[string]any) string {
	t.Helper()
	req["image"] = "busybox"
	var env envelope
	if code := d.do("POST", "/v1/containers", req, &env); code != 200 {
		t.Fatalf("create %v: %d %s", req, code, env.Message)
	}
	var c struct{ ID string }
	if err := json.Unmarshal(env.Data, &c); err != nil || c.ID == "" {
		t.Fatalf("create %v: %s: %v", req, env.Data, err)
	}
	t.Cleanup(func() { d.do("DELETE", "/v1/containers/"+c.ID+"/actions/delete?force=1", nil, nil) })
	return c.ID
}

// TestDockerImages drives the image endpoints with the docker CLI: pull
// through the daemon's mirror, list, inspect, tag, untag, the in-use
// conflict, history, save and load.
func TestDockerImages(t *testing.T) {
	d, docker := dockerDaemon(t)

	out := docker.ok("pull", "busybox")
	if !strings.Contains(out, "Status: Downloaded newer image for busybox:latest") || !strings.Contains(out, "Pull complete") {
		t.Fatalf("pull output:\n%s", out)
	}
	if out := docker.ok("pull", "busybox"); !strings.Contains(out, "Image is up to date for busybox:latest") {
		t.Fatalf("second pull:\n%s", out)
	}
	if _, errs, code := docker.run("", "pull", "nosuchimage"); code == 0 || errs == "" {
		t.Fatalf("pull of a missing image: exit %d, %q", code, errs)
	}

	if got := docker.ok("images", "--format", "{{.Repository}}:{{.Tag}}"); got != "busybox:latest" {
		t.Fatalf("images: %q", got)
	}
	if got := docker.ok("images"); !strings.Contains(got, "busybox") || !strings.Contains(got, "latest") {
		t.Fatalf("images table:\n%s", got)
	}
	if got := docker.ok("inspect", "busybox", "--format", "{{.Os}}"); got != "linux" {
		t.Fatalf("inspect .Os: %q", got)
	}
	id := docker.ok("image", "inspect", "busybox", "--format", "{{.Id}}")
	if !strings.HasPrefix(id, "sha256:") || len(id) != 71 {
		t.Fatalf("image id %q", id)
	}
	if got := docker.ok("image", "inspect", "busybox", "--format", "{{json .Config.Cmd}} {{.RootFS.Type}} {{len .RootFS.Layers}}"); got != `["/bin/sh"] layers 1` {
		t.Fatalf("inspect config: %q", got)
	}
	if _, errs, code := docker.run("", "image", "inspect", "nope"); code == 0 || !strings.Contains(errs, "No such image: nope") {
		t.Fatalf("inspect of a missing image: exit %d, %q", code, errs)
	}

	docker.ok("tag", "busybox", "mybox:1")
	if got := docker.ok("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"); !strings.Contains(got, "mybox:1 "+id[7:19]) || !strings.Contains(got, "busybox:latest "+id[7:19]) {
		t.Fatalf("images after tag:\n%s", got)
	}
	if got := docker.ok("images", "--filter", "reference=mybox", "--format", "{{.Repository}}:{{.Tag}}"); got != "mybox:1" {
		t.Fatalf("reference filter: %q", got)
	}
	if got := docker.ok("rmi", "mybox:1"); got != "Untagged: mybox:1" {
		t.Fatalf("rmi mybox:1: %q", got)
	}

	if got := docker.ok("history", "busybox", "--format", "{{.ID}} {{.CreatedBy}}"); !strings.HasPrefix(got, id[7:19]) {
		t.Fatalf("history:\n%s", got)
	}

	// A container uses the image: its last name cannot go.
	cid := d.raindCreate(t, map[string]any{"name": "user"})
	_, errs, code := docker.run("", "rmi", "busybox")
	want := `conflict: unable to remove repository reference "busybox" (must force) - container ` + cid[:12] + " is using its referenced image " + id[7:19]
	if code == 0 || !strings.Contains(errs, want) {
		t.Fatalf("rmi of an image in use: exit %d\n%s\nwant %s", code, errs, want)
	}
	d.do("DELETE", "/v1/containers/"+cid+"/actions/delete?force=1", nil, nil)

	// docker save, rmi, docker load: the same image again.
	f := filepath.Join(t.TempDir(), "busybox.tar")
	docker.ok("save", "busybox", "-o", f)
	if got := docker.ok("rmi", "busybox"); !strings.Contains(got, "Untagged: busybox:latest") || !strings.Contains(got, "Deleted: "+id) {
		t.Fatalf("rmi busybox:\n%s", got)
	}
	if got := docker.ok("images", "-q"); got != "" {
		t.Fatalf("images left: %q", got)
	}
	if got := docker.ok("load", "-i", f); got != "Loaded image: busybox:latest" {
		t.Fatalf("load: %q", got)
	}
	if got := docker.ok("image", "inspect", "busybox", "--format", "{{.Id}}"); got != id {
		t.Fatalf("loaded image id %q, want %s", got, id)
	}
	// The loaded image runs (through the Raind API: its layers are there).
	code2, log := d.output(t, map[string]any{"command": []string{"echo", "loaded"}})
	if code2 != 0 || !strings.Contains(log, "loaded") {
		t.Fatalf("run of the loaded image: %d %q", code2, log)
	}
}
