package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/testutil"
)

// The answers to an adversarial user's requests: what the request got
// wrong is a 4xx saying so, the host's state a 5xx saying what it is.

// TestDaemonCreateRefusedByTheRuntime: a create the runtime refuses because
// of the request (its command does not exist) is a 400 with the runtime's
// own message, not a 500 "internal error"; a bind mount onto /proc is
// refused before anything is made. Nothing is left of either.
func TestDaemonCreateRefusedByTheRuntime(t *testing.T) {
	reg := registryWithBusybox(t)
	d := startDaemon(t, reg.Host)
	for _, tc := range []struct {
		req  map[string]any
		want string
	}{
		{map[string]any{"image": "busybox", "command": []string{"/nonexistent"}}, `exec: "/nonexistent": stat /nonexistent: no such file or directory`},
		{map[string]any{"image": "busybox", "command": []string{"nonexistent"}}, `executable file not found`},
		{map[string]any{"image": "busybox", "command": []string{"true"}, "mount": []string{"/tmp:/proc"}}, "/proc"},
		{map[string]any{"image": "busybox", "command": []string{"true"}, "mount": []string{"/tmp:/proc/sys"}}, "/proc/sys"},
	} {
		var env envelope
		code := d.do("POST", "/v1/containers", tc.req, &env)
		if code != http.StatusBadRequest || env.Status != "fail" || !strings.Contains(env.Message, tc.want) {
			t.Errorf("create %v: %d %q, want 400 saying %q", tc.req, code, env.Message, tc.want)
		}
	}
	var list struct{ Data []map[string]any }
	d.do("GET", "/v1/containers?all=1", nil, &list)
	if len(list.Data) != 0 {
		t.Errorf("refused creates left containers: %v", list.Data)
	}
}

// TestDaemonRefusesCrunOnHybridHost: on a hybrid cgroup host whose cgroup2
// hierarchy has controllers, crun fails every create; `--runtime crun` is
// refused at start, saying why, instead of being accepted.
func TestDaemonRefusesCrunOnHybridHost(t *testing.T) {
	testutil.RequireRoot(t)
	crun := testutil.RequireBinary(t, "crun")
	if host := hostCgroups(); host.mode != cgroups.Hybrid || host.unifiedControllers == "" {
		t.Skip("not a hybrid cgroup host with cgroup2 controllers: crun works here")
	}
	dir := testutil.BuildBinaries(t, "../condenser", "../condenser-shim")
	state, err := os.MkdirTemp("", "cd")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(state)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, rt := range []string{"crun", crun} {
		args := append([]string{"--root", t.TempDir(), "--state", state, "--runtime", rt, "--cgroup-parent", testutil.CgroupParent(t),
			"--listen", "unix://" + filepath.Join(state, "c.sock")}, testutil.Network(t).Args()...)
		out, err := exec.CommandContext(ctx, dir+"/condenser", args...).CombinedOutput()
		if ctx.Err() != nil {
			t.Fatalf("--runtime %s: the daemon started and served (killed after 20 s):\n%s", rt, out)
		}
		if err == nil || !strings.Contains(string(out), "hybrid") || !strings.Contains(string(out), "runc") {
			t.Errorf("--runtime %s: %v\n%s\nwant a refusal saying why (hybrid) and what to use (runc)", rt, err, out)
		}
	}
}

func TestRuntimeUsable(t *testing.T) {
	hybrid := cgroupHost{mode: cgroups.Hybrid, unifiedControllers: "hugetlb"}
	for _, tc := range []struct {
		path string
		host cgroupHost
		ok   bool
	}{
		{"/usr/bin/crun", hybrid, false},
		{"/usr/sbin/runc", hybrid, true},
		{"/usr/bin/crun", cgroupHost{mode: cgroups.Hybrid}, true}, // no controllers in cgroup2: crun copes
		{"/usr/bin/crun", cgroupHost{mode: cgroups.Unified}, true},
		{"/usr/bin/crun", cgroupHost{mode: cgroups.Legacy}, true},
	} {
		if err := runtimeUsable(tc.path, tc.host); (err == nil) != tc.ok {
			t.Errorf("runtimeUsable(%s, %+v) = %v, want ok=%v", tc.path, tc.host, err, tc.ok)
		}
	}
}

// TestDaemonPullOntoFullDisk: a pull whose layer does not fit on the
// store's disk is a 507 that says the disk is full, and the daemon does not
// go on to Docker Hub after its mirror (it would report Docker Hub's
// unrelated failure instead).
func TestDaemonPullOntoFullDisk(t *testing.T) {
	reg := testutil.StartRegistry(t)
	noise := make([]byte, 6<<20)
	rand.Read(noise)
	reg.Push(t, reg.Ref("test/big:1"), testutil.Image(t, nil, testutil.Layer(t, testutil.Entry{Name: "big", Content: noise})))
	d := startDaemon(t, reg.Host)
	d.stop(syscall.SIGTERM)
	if err := unix.Mount("tmpfs", d.root, "tmpfs", 0, "size=8m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(d.root, unix.MNT_DETACH) })
	d.start()
	var env envelope
	code := d.do("POST", "/v1/images", map[string]string{"image": "test/big:1"}, &env)
	if code != http.StatusInsufficientStorage || !strings.Contains(env.Message, "no space left on device") || !strings.Contains(env.Message, "out of disk space") {
		t.Errorf("pull onto a full disk: %d %q, want 507 saying the disk is full", code, env.Message)
	}
	if strings.Contains(env.Message, "index.docker.io") || strings.Contains(env.Message, "before:") {
		t.Errorf("Docker Hub was tried after the mirror filled the disk: %q", env.Message)
	}
}

// TestDaemonInvalidReferences: references that are no Docker reference
// (a path, dots for a registry) are a 400, not a registry dialled.
func TestDaemonInvalidReferences(t *testing.T) {
	reg := registryWithBusybox(t)
	d := startDaemon(t, reg.Host)
	for _, ref := range []string{"../../etc/passwd", "./x", "../x:1", "a/../b"} {
		var env envelope
		if code := d.do("POST", "/v1/images", map[string]string{"image": ref}, &env); code != http.StatusBadRequest || !strings.Contains(env.Message, "invalid reference") {
			t.Errorf("pull %q: %d %q, want 400 invalid reference", ref, code, env.Message)
		}
		if code := d.do("POST", "/v1/containers", map[string]any{"image": ref}, &env); code != http.StatusBadRequest {
			t.Errorf("create from %q: %d %q, want 400", ref, code, env.Message)
		}
	}
}

// TestDaemonImportNoPanic imports, over kept-alive connections, archives
// the importer does not read to their end (one with bytes after the tar's
// end, one that is not a tar): answers as usual, and no panic in the
// daemon's log (stop checks it).
func TestDaemonImportNoPanic(t *testing.T) {
	d := startDaemon(t, "127.0.0.1:1")
	tag, _ := name.NewTag("example.com/busybox:1")
	var archive bytes.Buffer
	if err := tarball.Write(tag, testutil.BusyboxImage(t), &archive); err != nil {
		t.Fatal(err)
	}
	padded := append(bytes.Clone(archive.Bytes()), make([]byte, 10<<10)...)
	for _, tc := range []struct {
		body []byte
		code int
	}{
		{archive.Bytes(), 200}, {padded, 200}, {bytes.Repeat([]byte("x"), 64<<10), 400},
	} {
		for _, ndjson := range []bool{false, true} {
			for range 3 {
				req, _ := http.NewRequest("POST", "http://condenser/v1/images/import", io.MultiReader(bytes.NewReader(tc.body)))
				if ndjson {
					req.Header.Set("Accept", "application/x-ndjson")
				}
				resp, err := d.http.Do(req)
				if err != nil {
					t.Fatalf("import: %v", err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != tc.code {
					t.Errorf("import (ndjson %v): %d %s %v, want %d", ndjson, resp.StatusCode, b, err, tc.code)
				}
			}
		}
	}
	d.stop(syscall.SIGTERM) // fails the test if the log shows a panic
	d.start()               // for the cleanup
}

// TestDaemonShutdownEndsStreams: SIGTERM with a `logs -f` and an events
// stream open: both clients see their stream end cleanly (EOF, no error),
// and the daemon exits, before the shutdown grace period — not at its end
// with the connections cut.
func TestDaemonShutdownEndsStreams(t *testing.T) {
	reg := registryWithBusybox(t)
	d := startDaemon(t, reg.Host)
	var env envelope
	if code := d.do("POST", "/v1/containers", map[string]any{"image": "busybox", "name": "talker", "command": []string{"sh", "-c", "while true; do echo hi; sleep 0.2; done"}}, &env); code != 200 {
		t.Fatalf("create: %d %+v", code, env)
	}
	if code := d.do("POST", "/v1/containers/talker/actions/start", nil, &env); code != 200 {
		t.Fatalf("start: %d %+v", code, env)
	}
	type result struct {
		path string
		body string
		err  error
	}
	results := make(chan result, 2)
	for _, path := range []string{"/v1/containers/talker/logs?follow=1", "/v1/events"} {
		resp, err := d.http.Get("http://condenser" + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %v %v", path, resp, err)
		}
		br := bufio.NewReader(resp.Body)
		first := ""
		if strings.Contains(path, "logs") {
			// The stream is flowing: its first line is in.
			if first, err = br.ReadString('\n'); err != nil {
				t.Fatalf("GET %s: first line %q: %v", path, first, err)
			}
		}
		go func() {
			b, err := io.ReadAll(br)
			resp.Body.Close()
			results <- result{path, first + string(b), err}
		}()
	}
	start := time.Now()
	d.cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	cmd := d.cmd
	go func() { exited <- cmd.Wait() }()
	for range 2 {
		select {
		case r := <-results:
			if r.err != nil {
				t.Errorf("%s: the stream ended with %v after %v, want a clean end", r.path, r.err, time.Since(start))
			}
			if strings.Contains(r.path, "logs") && !strings.Contains(r.body, "hi\n") {
				t.Errorf("%s: %q", r.path, r.body)
			}
		case <-time.After(shutdownGrace):
			t.Fatalf("a stream still open %v after SIGTERM", shutdownGrace)
		}
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("the daemon's exit: %v", err)
		}
	case <-time.After(shutdownGrace):
		t.Fatalf("the daemon still running %v after SIGTERM", shutdownGrace)
	}
	if elapsed := time.Since(start); elapsed >= shutdownGrace {
		t.Errorf("shutdown took %v: the grace period ran out", elapsed)
	}
	d.cmd = nil
	d.checkLog()
	// The container kept running; the cleanup needs the daemon.
	d.start()
	var detail struct{ Data struct{ State string } }
	d.do("GET", "/v1/containers/talker", nil, &detail)
	if detail.Data.State != "running" {
		t.Errorf("the container after the daemon's restart: %q", detail.Data.State)
	}
}
