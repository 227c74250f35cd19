package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestDockerMixedClients: one daemon, one set of containers. A container
// the docker CLI runs is seen, stopped and removed through the Raind
// contract; one the Raind contract runs is seen, stopped and removed by the
// docker CLI.
func TestDockerMixedClients(t *testing.T) {
	d, docker := dockerDaemon(t)
	pullBusybox(t, d)

	raindState := func(ref string) (int, string) {
		t.Helper()
		var env envelope
		code := d.do("GET", "/v1/containers/"+ref, nil, &env)
		var c struct{ State string }
		json.Unmarshal(env.Data, &c)
		return code, c.State
	}

	// docker → Raind.
	id := docker.ok("run", "-d", "--name", "from-docker", "busybox", "sleep", "300")
	var list struct{ Data []map[string]any }
	d.do("GET", "/v1/containers", nil, &list)
	found := false
	for _, c := range list.Data {
		found = found || (c["containerId"] == id && c["name"] == "from-docker" && c["state"] == "running")
	}
	if !found {
		t.Fatalf("the Raind API does not list docker's running container %s: %v", id, list.Data)
	}
	if code := d.do("POST", "/v1/containers/from-docker/actions/stop", nil, nil); code != 200 {
		t.Fatalf("Raind stop of docker's container: HTTP %d", code)
	}
	if got := docker.ok("ps", "-a", "--filter", "name=from-docker", "--format", "{{.State}}"); got != "exited" {
		t.Fatalf("docker sees the container the Raind API stopped as %q, want exited", got)
	}
	if code := d.do("DELETE", "/v1/containers/from-docker/actions/delete", nil, nil); code != 200 {
		t.Fatalf("Raind delete of docker's container: HTTP %d", code)
	}
	if got := docker.ok("ps", "-aq", "--filter", "name=from-docker"); got != "" {
		t.Fatalf("docker still lists the container the Raind API removed: %q", got)
	}

	// Raind → docker.
	rid := d.run(t, map[string]any{"name": "from-raind", "command": []string{"sleep", "300"}})
	if got := docker.ok("ps", "--filter", "name=from-raind", "--format", "{{.ID}} {{.Names}} {{.Image}} {{.State}}"); !strings.HasPrefix(rid, strings.Fields(got + " x")[0]) || !strings.Contains(got, " from-raind busybox") || !strings.HasSuffix(got, " running") {
		t.Fatalf("docker ps of the Raind API's container %s: %q", rid, got)
	}
	docker.ok("stop", "-t", "1", "from-raind")
	if code, state := raindState(rid); code != 200 || state != "stopped" {
		t.Fatalf("the Raind API sees the container docker stopped as %d %q, want stopped", code, state)
	}
	docker.ok("rm", "from-raind")
	if code, _ := raindState(rid); code != 404 {
		t.Fatalf("the Raind API still has the container docker removed: HTTP %d", code)
	}
}
