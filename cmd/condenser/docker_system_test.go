package main

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDockerSystem drives info, events, system df, networks and volumes
// with the docker CLI.
func TestDockerSystem(t *testing.T) {
	d, docker := dockerDaemon(t)

	version := docker.ok("version", "--format", "{{.Server.Version}}")
	if got := docker.ok("info", "--format", "{{.ServerVersion}} {{.Driver}} {{.OSType}} {{.CgroupDriver}}"); got != version+" overlay2 linux cgroupfs" {
		t.Fatalf("info: %q (server version %q)", got, version)
	}
	if got := docker.ok("info", "--format", "{{.DockerRootDir}} {{.DefaultRuntime}}"); got != d.root+" runc" {
		t.Fatalf("info root and runtime: %q", got)
	}
	docker.ok("info") // the CLI's own rendering of every field

	// A container made through the Raind API shows in Docker's events
	// (replayed: it happened before the request) and in info.
	docker.ok("pull", "busybox")
	cid := d.raindCreate(t, map[string]any{"name": "evt"})
	// --until is in whole seconds (the CLI sends "--until 0s" as the
	// current second, which leaves out what happened within it, as with
	// Docker): the next second, which the stream waits for.
	until := strconv.FormatInt(time.Now().Unix()+1, 10)
	out := docker.ok("events", "--since", "1m", "--until", until, "--filter", "type=container",
		"--format", "{{.Type}} {{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}} {{.Actor.Attributes.image}}")
	if !strings.Contains(out, "container create "+cid+" evt busybox:latest") {
		t.Fatalf("events:\n%s", out)
	}
	if strings.Contains(out, "image ") {
		t.Fatalf("type filter let other events through:\n%s", out)
	}
	// The CLI's default format reads the legacy fields too.
	if out := docker.ok("events", "--since", "1m", "--until", "0s", "--filter", "event=create"); !strings.Contains(out, "container create "+cid) {
		t.Fatalf("events (default format):\n%s", out)
	}
	if got := docker.ok("info", "--format", "{{.Containers}} {{.ContainersStopped}} {{.Images}}"); got != "1 1 1" {
		t.Fatalf("info counts: %q", got)
	}
	if out := docker.ok("system", "df"); !regexp.MustCompile(`Images\s+1\s+1`).MatchString(out) || !regexp.MustCompile(`Containers\s+1\s+0`).MatchString(out) ||
		!strings.Contains(out, "Local Volumes") {
		t.Fatalf("system df:\n%s", out)
	}

	// Networks: bridge is raind0; a user-defined one comes and goes.
	if got := docker.ok("network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}"); got != "bridge bridge local\nhost host local\nnone null local" {
		t.Fatalf("network ls:\n%s", got)
	}
	id := docker.ok("network", "create", "--label", "team=a", "dnet")
	t.Cleanup(func() { docker.run("", "network", "rm", "dnet") })
	if len(id) != 64 {
		t.Fatalf("network create: %q", id)
	}
	if got := docker.ok("network", "inspect", "dnet", "--format", "{{.Name}} {{.Id}} {{.Driver}} {{.Labels.team}} {{len .IPAM.Config}}"); got != "dnet "+id+" bridge a 1" {
		t.Fatalf("network inspect: %q", got)
	}
	if got := docker.ok("network", "ls", "--filter", "label=team=a", "--format", "{{.Name}}"); got != "dnet" {
		t.Fatalf("network ls by label: %q", got)
	}
	if _, errs, code := docker.run("", "network", "create", "dnet"); code == 0 || !strings.Contains(errs, "already exists") {
		t.Fatalf("duplicate network: exit %d %q", code, errs)
	}
	if _, errs, code := docker.run("", "network", "rm", "bridge"); code == 0 || !strings.Contains(errs, "pre-defined network") {
		t.Fatalf("rm bridge: exit %d %q", code, errs)
	}
	docker.ok("network", "rm", id[:12])
	if got := docker.ok("network", "ls", "--format", "{{.Name}}"); strings.Contains(got, "dnet") {
		t.Fatalf("network left:\n%s", got)
	}

	// Volumes: directories under the root, refused removal while a
	// container's bind uses one.
	if got := docker.ok("volume", "create", "--label", "k=v", "data"); got != "data" {
		t.Fatalf("volume create: %q", got)
	}
	mp := docker.ok("volume", "inspect", "data", "--format", "{{.Mountpoint}}")
	if mp != filepath.Join(d.root, "volumes", "data", "_data") {
		t.Fatalf("mountpoint %q", mp)
	}
	if got := docker.ok("volume", "ls", "--format", "{{.Name}} {{.Driver}}"); got != "data local" {
		t.Fatalf("volume ls: %q", got)
	}
	user := d.raindCreate(t, map[string]any{"name": "voluser", "mount": []string{mp + ":/data"}})
	if _, errs, code := docker.run("", "volume", "rm", "data"); code == 0 || !strings.Contains(errs, "volume is in use - ["+user+"]") {
		t.Fatalf("rm of a volume in use: exit %d %q", code, errs)
	}
	d.do("DELETE", "/v1/containers/"+user+"/actions/delete?force=1", nil, nil)
	if got := docker.ok("volume", "rm", "data"); got != "data" {
		t.Fatalf("volume rm: %q", got)
	}
	if _, errs, code := docker.run("", "volume", "inspect", "data"); code == 0 || !strings.Contains(errs, "No such volume: data") {
		t.Fatalf("inspect of a removed volume: exit %d %q", code, errs)
	}
}
