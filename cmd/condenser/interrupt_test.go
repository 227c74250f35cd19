package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raind/condenser/internal/testutil"
)

// slowRuntime is a runc wrapper that, while DIR/slow-<command> exists,
// marks DIR/in-<command> and hangs in that command: a way to kill the
// daemon in the middle of a create or a delete.
func slowRuntime(t *testing.T, dir string) string {
	t.Helper()
	runc := testutil.RequireBinary(t, "runc")
	script := fmt.Sprintf(`#!/bin/sh
for cmd in create delete; do
	case " $* " in *" $cmd "*)
		if [ -e %[1]s/slow-$cmd ]; then touch %[1]s/in-$cmd; while [ -e %[1]s/slow-$cmd ]; do sleep 0.05; done; fi;;
	esac
done
exec %[2]s "$@"
`, dir, runc)
	p := filepath.Join(dir, "runc")
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func awaitFile(t *testing.T, p string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(p); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", p)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestKilledDuringCreateAndDelete kills the daemon (-9) while the runtime
// is creating, and while it is deleting, a container: after a restart
// nothing of it is left — record, shim, mount, bundle, directory, network.
func TestKilledDuringCreateAndDelete(t *testing.T) {
	reg := registryWithBusybox(t)
	for _, phase := range []string{"create", "delete"} {
		t.Run(phase, func(t *testing.T) {
			d := startDaemon(t, reg.Host)
			ctl := t.TempDir()
			rt := slowRuntime(t, ctl)
			for i, a := range d.args {
				if a == "--runtime" {
					d.args[i+1] = rt
				}
			}
			d.stop(syscall.SIGTERM)
			d.start()
			if phase == "delete" {
				var env envelope
				if code := d.do("POST", "/v1/containers", map[string]any{"image": "busybox", "name": "victim", "command": []string{"sleep", "100"}}, &env); code != 200 {
					t.Fatalf("create: %d %+v", code, env)
				}
			}
			os.WriteFile(filepath.Join(ctl, "slow-"+phase), nil, 0o644)
			go func() {
				// This request never completes: the daemon dies under it.
				req, _ := http.NewRequest("DELETE", "http://condenser/v1/containers/victim/actions/delete", nil)
				if phase == "create" {
					req, _ = http.NewRequest("POST", "http://condenser/v1/containers", strings.NewReader(`{"image":"busybox","name":"victim","command":["sleep","100"]}`))
				}
				if resp, err := d.http.Do(req); err == nil {
					resp.Body.Close()
				}
			}()
			awaitFile(t, filepath.Join(ctl, "in-"+phase))
			d.stop(syscall.SIGKILL)
			os.Remove(filepath.Join(ctl, "slow-"+phase)) // the hung runtime command goes on and ends
			d.start()

			var list struct{ Data []map[string]any }
			d.do("GET", "/v1/containers?all=1", nil, &list)
			if len(list.Data) != 0 {
				b, _ := json.Marshal(list.Data)
				t.Errorf("containers after the restart: %s", b)
			}
			// A stopped daemon leaves nothing either (not even its spare
			// shim).
			d.stop(syscall.SIGTERM)
			defer d.start() // for the cleanup
			deadline := time.Now().Add(10 * time.Second)
			for {
				left := leftovers(d)
				if len(left) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("left behind: %v", left)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// leftovers lists what a deleted container could leave: shim processes,
// mounts, bundles, runtime state, container directories (the runtime's
// own shared log file in its root is not a container's) and its network.
func leftovers(d *daemonProc) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), "serve") && strings.Contains(string(b), d.state+"/") {
			out = append(out, "shim "+p)
		}
	}
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(mi), "\n") {
			if strings.Contains(line, d.state+"/") || strings.Contains(line, d.root+"/") {
				out = append(out, "mount "+line)
			}
		}
	}
	for _, dir := range []string{filepath.Join(d.state, "shims"), filepath.Join(d.state, "runtime"), filepath.Join(d.root, "containers")} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if e.IsDir() && e.Name() != "tmp" && !strings.HasPrefix(e.Name(), ".") {
				out = append(out, filepath.Join(dir, e.Name()))
			}
		}
	}
	return append(out, networkLeftovers(d)...)
}
