package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/raind/condenser/internal/testutil"
)

// The chaos run: chaosClients clients each take chaosPerClient containers
// through create, start, stop and delete while the daemon is killed (-9) up
// to chaosMaxKills times, every 100–700 ms, and started again.
const (
	chaosClients   = 8
	chaosPerClient = 25
	chaosMaxKills  = 15
	chaosKillSpan  = 60 * time.Second  // no kills after this
	chaosDeadline  = 150 * time.Second // clients give up after this
)

// chaosSeedEnv reruns a chaos test with a given seed; chaosLogEnv names a
// file for the logs of every daemon the test ran.
const (
	chaosSeedEnv = "CONDENSER_CHAOS_SEED"
	chaosLogEnv  = "CONDENSER_CHAOS_LOG"
)

func chaosSeed(t *testing.T) int64 {
	seed := time.Now().UnixNano()
	if v := os.Getenv(chaosSeedEnv); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", chaosSeedEnv, v, err)
		}
		seed = n
	}
	t.Logf("seed %d (rerun with %s=%d; the clients' choices and the kill times repeat, the interleaving does not)", seed, chaosSeedEnv, seed)
	return seed
}

// The stages a chaos container goes through, in order.
const (
	stageCreated = iota
	stageRunning
	stageStopped
	stageDeleted
)

var stageState = [...]string{stageCreated: "created", stageRunning: "running", stageStopped: "stopped", stageDeleted: ""}

// TestReliabilityChaos: 200 containers created, started, stopped and
// deleted by 8 concurrent clients while the daemon is killed with SIGKILL at
// random moments and restarted (a quarter of them are started a second
// time once stopped). Clients ride out the outages and go on from whatever
// state their container is in. Some containers are left created,
// running or stopped on purpose; after a last kill and restart every record
// must match reality (processes, cgroups), and once everything is deleted
// through the API nothing may be left: no shim, mount, cgroup, bundle,
// container directory, log, runtime state or record.
func TestReliabilityChaos(t *testing.T) {
	seed := chaosSeed(t)
	rs := chaosDaemon(t)
	d := rs.d

	ctx, cancel := context.WithTimeout(context.Background(), chaosDeadline)
	var wg sync.WaitGroup                     // the clients and the watcher
	t.Cleanup(func() { cancel(); wg.Wait() }) // runs before the daemon's own clean-up

	// Every container id that shows up on disk, to look for its cgroups at
	// the end (a create cut short never answers with its id).
	stopWatch := rs.watchIDs(ctx, &wg)

	var epoch atomic.Int64 // incremented before each kill
	api := newChaosAPI(d)
	clients := make([]*chaosClient, chaosClients)
	clientsDone := make(chan struct{})
	var cwg sync.WaitGroup
	for i := range clients {
		clients[i] = &chaosClient{id: i, api: api, epoch: &epoch, rng: rand.New(rand.NewSource(seed + int64(i) + 1))}
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			clients[i].run(ctx)
		}()
	}
	wg.Add(1)
	go func() { defer wg.Done(); cwg.Wait(); close(clientsDone) }()

	// The killer, on the test's goroutine (restarting may fail the test).
	rng := rand.New(rand.NewSource(seed))
	start := time.Now()
	kills := 0
	var restarts []time.Duration
kill:
	for kills < chaosMaxKills && time.Since(start) < chaosKillSpan {
		select {
		case <-clientsDone:
			break kill
		case <-time.After(time.Duration(100+rng.Intn(601)) * time.Millisecond):
		}
		epoch.Add(1)
		rs.kill()
		kills++
		t0 := time.Now()
		rs.restart()
		restarts = append(restarts, time.Since(t0))
	}
	t.Logf("%d kills in %v; restarts took %v", kills, time.Since(start).Round(time.Millisecond), restarts)
	<-clientsDone
	t.Logf("clients done after %v", time.Since(start).Round(time.Millisecond))
	var want []string // names of the containers left on purpose
	for _, c := range clients {
		c.report(t)
		for name := range c.left {
			want = append(want, name)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// A last kill, then the records must match reality.
	epoch.Add(1)
	rs.kill()
	rs.restart()
	stopWatch()
	states := rs.checkConsistent(t)
	var got []string
	for name := range states {
		got = append(got, name)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("containers after the run: %v, want %v", got, want)
	}
	for _, c := range clients {
		for name, stage := range c.left {
			if states[name] != stageState[stage] {
				t.Errorf("%s is %q, want %q", name, states[name], stageState[stage])
			}
		}
	}

	// Delete everything through the API; nothing may be left.
	for name := range states {
		var env envelope
		if code := d.do("DELETE", "/v1/containers/"+name+"/actions/delete?force=1", nil, &env); code != 200 {
			t.Errorf("delete %s: %d %s", name, code, env.Message)
		}
	}
	rs.checkNothingLeft(t)
}

// TestReliabilityShimKilled: the shim of a running container is killed
// (SIGKILL) while the daemon runs, and while it is down. The daemon notices
// (at once, or when it starts again), reports the container as stopped
// with an unknown exit status (-1 and an error), kills the container's
// process, which outlives its shim, and removes its cgroups, mounts,
// runtime state and the shim's files; the container can be started again,
// and deleted, leaving nothing.
func TestReliabilityShimKilled(t *testing.T) {
	reg := registryWithBusybox(t)
	d := startDaemon(t, reg.Host)
	rs := newReliabilityState(t, d)
	for _, down := range []bool{false, true} {
		name := map[bool]string{false: "shim-killed-live", true: "shim-killed-down"}[down]
		t.Run(name, func(t *testing.T) {
			var env envelope
			if code := d.do("POST", "/v1/containers", map[string]any{"image": "busybox", "name": name, "command": []string{"sleep", "3600"}}, &env); code != 200 {
				t.Fatalf("create: %d %s", code, env.Message)
			}
			if code := d.do("POST", "/v1/containers/"+name+"/actions/start", nil, &env); code != 200 {
				t.Fatalf("start: %d %s", code, env.Message)
			}
			c := inspect(t, d, name)
			rs.mu.Lock()
			rs.ids[c.ContainerID] = true
			rs.mu.Unlock()
			if c.State != "running" || !procAlive(c.ShimPid) || !procAlive(c.Pid) {
				t.Fatalf("before: %+v", c)
			}
			if down {
				rs.kill()
			}
			if err := syscall.Kill(c.ShimPid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			if down {
				awaitCond(t, "the shim's death", func() bool { return !procAlive(c.ShimPid) })
				rs.restart()
			}
			var after containerDetail
			awaitCond(t, "the container stopped", func() bool { after = inspect(t, d, name); return after.State == "stopped" })
			if after.ExitCode == nil || *after.ExitCode != -1 || after.Error == "" || after.ShimPid != 0 {
				t.Errorf("a container whose shim was killed: exitCode %v, error %q, shimPid %d; want -1, a reason, 0", after.ExitCode, after.Error, after.ShimPid)
			}
			var waited struct{ Data struct{ ExitCode int } }
			if d.do("POST", "/v1/containers/"+name+"/actions/wait", nil, &waited); waited.Data.ExitCode != -1 {
				t.Errorf("wait: %+v", waited)
			}
			// What the shim left: gone, bar what a stopped container keeps.
			if procAlive(c.Pid) && strings.Join(cmdline(c.Pid), " ") == "sleep 3600" {
				t.Errorf("the container's process %d outlived its shim", c.Pid)
			}
			if dirs := d.cgroupDirs(c.ContainerID); len(dirs) > 0 {
				t.Errorf("cgroups left: %v", dirs)
			}
			if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), c.ContainerID) {
				t.Errorf("mounts left:\n%s", mi)
			}
			for _, p := range []string{filepath.Join(d.state, "runtime", c.ContainerID), filepath.Join(c.Bundle, "shim.pid"), filepath.Join(c.Bundle, "shim.sock")} {
				if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s left", p)
				}
			}
			// It runs again, under a new shim.
			if code := d.do("POST", "/v1/containers/"+name+"/actions/start", nil, &env); code != 200 {
				t.Fatalf("start again: %d %s", code, env.Message)
			}
			again := inspect(t, d, name)
			if again.State != "running" || !procAlive(again.ShimPid) || again.ShimPid == c.ShimPid {
				t.Errorf("started again: %+v (shim alive: %v)", again, procAlive(again.ShimPid))
			}
			if !becomes(again.Pid, "sleep 3600") {
				t.Errorf("started again, but its process %d is not running (%q)", again.Pid, cmdline(again.Pid))
			}
			if code := d.do("POST", "/v1/containers/"+name+"/actions/stop?timeout=0", nil, &env); code != 200 {
				t.Fatalf("stop: %d %s", code, env.Message)
			}
			if after := inspect(t, d, name); after.ExitCode == nil || *after.ExitCode != 137 || after.Error != "" {
				t.Errorf("after a stop: exitCode %v, error %q; want 137 and none", after.ExitCode, after.Error)
			}
			if code := d.do("DELETE", "/v1/containers/"+name+"/actions/delete", nil, &env); code != 200 {
				t.Fatalf("delete: %d %s", code, env.Message)
			}
		})
	}
	rs.checkNothingLeft(t)
}

func inspect(t *testing.T, d *daemonProc, ref string) containerDetail {
	t.Helper()
	var env struct {
		Message string          `json:"message"`
		Data    containerDetail `json:"data"`
	}
	if code := d.do("GET", "/v1/containers/"+ref, nil, &env); code != 200 {
		t.Fatalf("inspect %s: %d %s", ref, code, env.Message)
	}
	return env.Data
}

// awaitCond polls cond until it holds, failing the test after 20 s.
func awaitCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// chaosAPI is an HTTP client that reports connection errors instead of
// failing the test.
type chaosAPI struct{ http *http.Client }

func newChaosAPI(d *daemonProc) *chaosAPI {
	return &chaosAPI{http: &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", d.sock)
		}},
	}}
}

// call returns the status and the envelope, or an error when no answer
// came (the daemon is down, or died under the request).
func (a *chaosAPI) call(ctx context.Context, method, path string, body any) (int, envelope, error) {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://condenser"+path, r)
	if err != nil {
		return 0, envelope{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, envelope{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, envelope{}, err
	}
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return resp.StatusCode, env, fmt.Errorf("%s %s: %d, not an envelope: %q", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode, env, nil
}

// awaitUp waits until the daemon answers again.
func (a *chaosAPI) awaitUp(ctx context.Context) error {
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://condenser/v1/_ping", nil)
		if resp, err := a.http.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("daemon not back: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// chaosClient takes its containers through their lifecycle one at a time.
type chaosClient struct {
	id    int
	api   *chaosAPI
	epoch *atomic.Int64
	rng   *rand.Rand

	left       map[string]int // containers left on purpose, and their stage
	outages    int            // requests without an answer
	serverErrs []string       // 5xx answers
	errs       []string       // what went wrong
}

func (c *chaosClient) errorf(format string, args ...any) {
	c.errs = append(c.errs, fmt.Sprintf("client %d: ", c.id)+fmt.Sprintf(format, args...))
}

func (c *chaosClient) report(t *testing.T) {
	t.Logf("client %d: %d requests without an answer, %d 5xx answers", c.id, c.outages, len(c.serverErrs))
	for _, e := range c.serverErrs {
		t.Logf("client %d: %s", c.id, e)
	}
	for _, e := range c.errs {
		t.Error(e)
	}
}

func (c *chaosClient) run(ctx context.Context) {
	c.left = map[string]int{}
	for i := range chaosPerClient {
		name := fmt.Sprintf("chaos-%d-%02d", c.id, i)
		target := stageDeleted
		if c.rng.Intn(10) == 0 { // about 20 of the 200 stay, to check their records
			target = c.rng.Intn(stageDeleted)
			c.left[name] = target
		}
		timeout := 0 // seconds of grace before SIGKILL (sleep ignores SIGTERM)
		if c.rng.Intn(4) == 0 {
			timeout = 1
		}
		runs := 1 // a quarter run twice: started again once stopped
		if c.rng.Intn(4) == 0 {
			runs = 2
		}
		if err := c.drive(ctx, name, target, timeout, runs); err != nil {
			c.errorf("%s: %v", name, err)
			return
		}
	}
}

// drive takes one container to its target stage, running it runs times,
// observing its state before every step, so that after an outage it goes
// on from wherever the container is.
func (c *chaosClient) drive(ctx context.Context, name string, target, timeout, runs int) error {
	seen := false // the container has existed: a 404 now means deleted
	ran := 0      // runs seen (a run is seen running: one request per step)
	var last string
	for tries := 0; ; tries++ {
		if ctx.Err() != nil {
			return fmt.Errorf("not done in time, last state %q: %w", last, ctx.Err())
		}
		if tries > 200 {
			return fmt.Errorf("gave up after %d steps, last state %q", tries, last)
		}
		ep := c.epoch.Load()
		code, env, err := c.api.call(ctx, "GET", "/v1/containers/"+name, nil)
		if err != nil || code >= 500 {
			c.failed("GET", code, env, err)
			if err := c.api.awaitUp(ctx); err != nil {
				return err
			}
			continue
		}
		state := ""
		switch code {
		case 200:
			var detail struct{ State string }
			json.Unmarshal(env.Data, &detail)
			state, seen = detail.State, true
		case 404:
			if seen {
				if target == stageDeleted {
					return nil
				}
				return fmt.Errorf("deleted, but nobody deleted it (last state %q)", last)
			}
		default:
			return fmt.Errorf("GET: %d %s", code, env.Message)
		}
		if state == "running" && last != "running" {
			ran++
		}
		last = state
		if target != stageDeleted && state == stageState[target] && (target == stageCreated || ran >= runs) {
			return nil
		}
		var method, path, want string
		var body any
		switch state {
		case "":
			method, path, want = "POST", "/v1/containers", "created"
			body = map[string]any{"image": "busybox", "name": name, "command": []string{"sleep", "3600"}}
		case "created":
			method, path, want = "POST", "/v1/containers/"+name+"/actions/start", "running"
		case "running":
			method, path, want = "POST", fmt.Sprintf("/v1/containers/%s/actions/stop?timeout=%d", name, timeout), "stopped"
		case "stopped":
			if ran < runs {
				method, path, want = "POST", "/v1/containers/"+name+"/actions/start", "running"
				break
			}
			method, path, want = "DELETE", "/v1/containers/"+name+"/actions/delete", ""
		default: // creating, removing, restarting: nobody else acts on it
			return fmt.Errorf("state %q seen by its only client", state)
		}
		code, env, err = c.api.call(ctx, method, path, body)
		switch {
		case err != nil || code >= 500:
			c.failed(method+" "+path, code, env, err)
			if err := c.api.awaitUp(ctx); err != nil {
				return err
			}
			continue
		case code != 200:
			return fmt.Errorf("%s %s in state %q: %d %s", method, path, state, code, env.Message)
		}
		// The same daemon answered both: the state must be the one the
		// action promised.
		code, env, err = c.api.call(ctx, "GET", "/v1/containers/"+name, nil)
		if err != nil || c.epoch.Load() != ep {
			continue
		}
		got := ""
		if code == 200 {
			var detail struct{ State string }
			json.Unmarshal(env.Data, &detail)
			got = detail.State
		}
		if got != want || (want == "" && code != 404) {
			return fmt.Errorf("%s %s answered 200, then the container is %q (%d %s), want %q", method, path, got, code, env.Message, want)
		}
	}
}

// failed counts a request that got no answer, or a 5xx.
func (c *chaosClient) failed(what string, code int, env envelope, err error) {
	if err != nil {
		c.outages++
		return
	}
	c.serverErrs = append(c.serverErrs, fmt.Sprintf("%s: %d %s", what, code, env.Message))
}

// reliabilityState watches and checks what a daemon leaves on the host.
type reliabilityState struct {
	d    *daemonProc
	shim string // the condenser-shim binary the daemon runs

	mu   sync.Mutex
	ids  map[string]bool // every container id seen on disk
	logs bytes.Buffer    // the logs of the daemons killed so far
}

func newReliabilityState(t *testing.T, d *daemonProc) *reliabilityState {
	rs := &reliabilityState{d: d, shim: filepath.Join(filepath.Dir(d.args[0]), "condenser-shim"), ids: map[string]bool{}}
	t.Cleanup(func() {
		rs.mu.Lock()
		if p := os.Getenv(chaosLogEnv); p != "" {
			os.WriteFile(p, rs.logs.Bytes(), 0o644) // the running daemon's is logged by startDaemon
		}
		if t.Failed() {
			t.Logf("logs of the killed daemons (the last one's follows; all in $%s):\n%s", chaosLogEnv, tail(rs.logs.String(), 200))
		}
		rs.mu.Unlock()
		rs.forceCleanup()
	})
	return rs
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// kill kills the daemon with SIGKILL, keeping its log.
func (rs *reliabilityState) kill() {
	rs.d.stop(syscall.SIGKILL)
	rs.mu.Lock()
	fmt.Fprintf(&rs.logs, "---- killed ----\n")
	rs.logs.Write(rs.d.logs.Bytes())
	rs.mu.Unlock()
}

func (rs *reliabilityState) restart() { rs.d.start() }

var hexID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// noteIDs records the container ids present on disk now.
// chaosDaemon starts a daemon that logs every request, with busybox
// pulled, for a chaos test.
func chaosDaemon(t *testing.T) *reliabilityState {
	reg := registryWithBusybox(t)
	d := startDaemon(t, reg.Host)
	d.args = append(d.args, "--log-level", "debug") // each request in the log
	d.stop(syscall.SIGTERM)
	d.start()
	rs := newReliabilityState(t, d)
	if code := d.do("POST", "/v1/images", map[string]string{"image": "busybox"}, nil); code != 200 {
		t.Fatalf("pull: %d", code)
	}
	return rs
}

// watchIDs notes the container ids on disk every few milliseconds until
// the returned function is called or ctx is done; wg counts the watcher.
func (rs *reliabilityState) watchIDs(ctx context.Context, wg *sync.WaitGroup) (stop func()) {
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			rs.noteIDs()
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return func() { close(done) }
}

func (rs *reliabilityState) noteIDs() {
	for _, dir := range []string{filepath.Join(rs.d.state, "shims"), filepath.Join(rs.d.root, "containers")} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if hexID.MatchString(e.Name()) {
				rs.mu.Lock()
				rs.ids[e.Name()] = true
				rs.mu.Unlock()
			}
		}
	}
}

// shimProcs returns the live shim servers of this daemon: pid → container id.
func (rs *reliabilityState) shimProcs() map[int]string {
	out := map[int]string{}
	// A shim runs in a mount namespace of its own: its exe link, read
	// from here, names the binary by the path its namespace sees (under a
	// chroot, the host's path), so the file is compared, not the name.
	shim, err := os.Stat(rs.shim)
	if err != nil {
		return out
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		args := cmdline(pid)
		if len(args) < 2 || args[1] != "serve" || !procAlive(pid) {
			continue
		}
		if exe, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid), "exe")); err != nil || !os.SameFile(exe, shim) {
			continue
		}
		id, bundle := argValue(args, "--id"), argValue(args, "--bundle")
		if strings.HasPrefix(bundle, rs.d.state+"/") {
			out[pid] = id
		}
	}
	return out
}

func argValue(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func cmdline(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// becomes reports whether pid runs command line cmd within a few seconds:
// a container's init may still be turning into its command when its
// start has returned.
func becomes(pid int, cmd string) bool {
	deadline := time.Now().Add(5 * time.Second)
	for {
		if procAlive(pid) && strings.Join(cmdline(pid), " ") == cmd {
			return true
		}
		if !procAlive(pid) || time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// procAlive reports whether pid exists and is not a zombie.
func procAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

// cgroupDirs lists the cgroup directories of container id, in every
// hierarchy (the spec's cgroupsPath is <--cgroup-parent>/<id>).
func (d *daemonProc) cgroupDirs(id string) []string {
	return testutil.CgroupDirs(d.cgroupParent + "/" + id)
}

// cgroupProcs lists the processes in container id's cgroups.
func (d *daemonProc) cgroupProcs(id string) []int {
	var out []int
	for _, dir := range d.cgroupDirs(id) {
		b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && !slices.Contains(out, pid) {
				out = append(out, pid)
			}
		}
	}
	return out
}

// containerDetail is what the checks read of GET /v1/containers/{id}.
type containerDetail struct {
	ContainerID string `json:"containerId"`
	Name        string `json:"name"`
	State       string `json:"state"`
	Pid         int    `json:"pid"`
	ShimPid     int    `json:"shimPid"`
	ExitCode    *int   `json:"exitCode"`
	Error       string `json:"error"`
	Bundle      string `json:"bundle"`
}

// checkConsistent checks that every record matches reality and returns the
// containers' states by name: a running container has its shim and its
// process alive, and its process in its cgroup; a created one has its shim
// and its (waiting) init; a stopped one has nothing running in its cgroup.
// Every live shim belongs to a container.
func (rs *reliabilityState) checkConsistent(t *testing.T) map[string]string {
	t.Helper()
	d := rs.d
	var list struct{ Data []containerDetail }
	if code := d.do("GET", "/v1/containers?all=1", nil, &list); code != 200 {
		t.Fatalf("list: %d", code)
	}
	shims := rs.shimProcs()
	states := map[string]string{}
	byID := map[string]bool{}
	for _, s := range list.Data {
		var env struct{ Data containerDetail }
		if code := d.do("GET", "/v1/containers/"+s.ContainerID, nil, &env); code != 200 {
			t.Errorf("inspect %s: %d", s.Name, code)
			continue
		}
		c := env.Data
		rs.mu.Lock()
		rs.ids[c.ContainerID] = true
		rs.mu.Unlock()
		states[c.Name], byID[c.ContainerID] = c.State, true
		inCgroup := d.cgroupProcs(c.ContainerID)
		shimOK := procAlive(c.ShimPid) && shims[c.ShimPid] == c.ContainerID
		switch c.State {
		case "running":
			if !shimOK {
				t.Errorf("%s is running, but its shim %d is not (shims: %v)", c.Name, c.ShimPid, shims)
			}
			if !becomes(c.Pid, "sleep 3600") {
				t.Errorf("%s is running, but its process %d is not (%q)", c.Name, c.Pid, cmdline(c.Pid))
			}
			if !slices.Contains(inCgroup, c.Pid) {
				t.Errorf("%s is running, but its process %d is not in its cgroup (%v)", c.Name, c.Pid, inCgroup)
			}
		case "created":
			if !shimOK {
				t.Errorf("%s is created, but its shim %d is not running (shims: %v)", c.Name, c.ShimPid, shims)
			}
			// The init waits in the runtime for start (the API shows
			// no pid before it runs).
			if len(inCgroup) != 1 || !procAlive(inCgroup[0]) || strings.Join(cmdline(inCgroup[0]), " ") == "sleep 3600" {
				t.Errorf("%s is created, but its cgroup does not hold one waiting init: %v", c.Name, inCgroup)
			}
		case "stopped":
			if len(inCgroup) > 0 {
				t.Errorf("%s is stopped, but processes run in its cgroup: %v", c.Name, inCgroup)
			}
			if c.ExitCode == nil {
				t.Errorf("%s is stopped without an exit code", c.Name)
			}
		default:
			t.Errorf("%s is %q after a restart", c.Name, c.State)
		}
	}
	spares := 0
	for pid, id := range shims {
		if !byID[id] {
			if rs.isSpare(id) && spares == 0 {
				spares++
				continue
			}
			t.Errorf("shim %d of %s has no container", pid, id)
		}
	}
	return states
}

// isSpare reports whether id is a spare shim's: launched ahead for the
// next container, it has a bundle directory without a config.
func (rs *reliabilityState) isSpare(id string) bool {
	bundle := filepath.Join(rs.d.state, "shims", id)
	_, errBundle := os.Stat(bundle)
	_, errConfig := os.Stat(filepath.Join(bundle, "config.json"))
	return errBundle == nil && errors.Is(errConfig, os.ErrNotExist)
}

// leftovers lists what this daemon's containers left on the host; the
// daemon's one spare shim (and its bundle directory) is allowed while it
// runs.
func (rs *reliabilityState) leftovers(allowSpare bool) []string {
	d := rs.d
	var out []string
	spare := ""
	for pid, id := range rs.shimProcs() {
		if allowSpare && spare == "" && rs.isSpare(id) {
			spare = id
			continue
		}
		out = append(out, fmt.Sprintf("shim %d of %s", pid, id))
	}
	netns := filepath.Join(d.state, "network", "netns")
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(mi), "\n") {
			if f := strings.Fields(line); allowSpare && len(f) > 4 && f[4] == netns {
				continue // the namespaces' directory, a mount point while the daemon runs
			}
			if strings.Contains(line, d.state+"/") || strings.Contains(line, d.root+"/") {
				out = append(out, "mount "+line)
			}
		}
	}
	out = append(out, networkLeftovers(d)...)
	for _, dir := range []string{filepath.Join(d.state, "shims"), filepath.Join(d.state, "runtime"), filepath.Join(d.root, "containers")} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if e.Name() == "runtime.log" && dir == filepath.Join(d.state, "runtime") {
				continue // the runtime's own log, shared by all containers
			}
			if spare != "" && e.Name() == spare && dir == filepath.Join(d.state, "shims") {
				continue
			}
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	rs.mu.Lock()
	for id := range rs.ids {
		for _, cg := range rs.d.cgroupDirs(id) {
			out = append(out, "cgroup "+cg)
		}
	}
	rs.mu.Unlock()
	return out
}

// checkNothingLeft checks that the daemon lists no container and waits
// (bounded) until nothing is left behind: while the daemon runs (but for
// its spare shim), and once it has stopped.
func (rs *reliabilityState) checkNothingLeft(t *testing.T) {
	t.Helper()
	var list struct{ Data []map[string]any }
	if code := rs.d.do("GET", "/v1/containers?all=1", nil, &list); code != 200 || len(list.Data) != 0 {
		t.Errorf("containers left: %d %v", code, list.Data)
	}
	rs.awaitNothingLeft(t, true)
	rs.d.stop(syscall.SIGTERM)
	rs.awaitNothingLeft(t, false)
	rs.d.start() // for the clean-ups
}

func (rs *reliabilityState) awaitNothingLeft(t *testing.T, allowSpare bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := rs.leftovers(allowSpare)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("left behind (daemon running: %v):\n%s", allowSpare, strings.Join(left, "\n"))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// forceCleanup deletes every container through the API, then removes
// whatever the daemon failed to: it kills the daemon's shims and the processes in
// its containers' cgroups (processes this test caused), deletes runtime
// state, unmounts and removes the cgroups.
func (rs *reliabilityState) forceCleanup() {
	api := newChaosAPI(rs.d)
	ctx := context.Background()
	if _, env, err := api.call(ctx, "GET", "/v1/containers?all=1", nil); err == nil {
		var list []containerDetail
		json.Unmarshal(env.Data, &list)
		for _, c := range list {
			api.call(ctx, "DELETE", "/v1/containers/"+c.ContainerID+"/actions/delete?force=1", nil)
		}
	}
	if len(rs.leftovers(false)) == 0 {
		return
	}
	for pid := range rs.shimProcs() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	rs.mu.Lock()
	ids := make([]string, 0, len(rs.ids))
	for id := range rs.ids {
		ids = append(ids, id)
	}
	rs.mu.Unlock()
	runtimeRoot := filepath.Join(rs.d.state, "runtime")
	for _, id := range ids {
		if runc, err := exec.LookPath("runc"); err == nil {
			exec.Command(runc, "--root", runtimeRoot, "delete", "--force", id).Run()
		}
		for _, pid := range rs.d.cgroupProcs(id) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		var points []string
		for _, line := range strings.Split(string(mi), "\n") {
			f := strings.Fields(line)
			if len(f) > 4 && (strings.HasPrefix(f[4], rs.d.state+"/") || strings.HasPrefix(f[4], rs.d.root+"/")) {
				points = append(points, f[4])
			}
		}
		slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) }) // deepest first
		for _, p := range points {
			syscall.Unmount(p, syscall.MNT_DETACH)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, id := range ids {
		for _, cg := range rs.d.cgroupDirs(id) {
			for err := os.Remove(cg); err != nil && !errors.Is(err, os.ErrNotExist) && time.Now().Before(deadline); err = os.Remove(cg) {
				time.Sleep(20 * time.Millisecond) // its last processes are being reaped
			}
		}
	}
}

// networkLeftovers lists what the daemon's containers left of their
// networks: namespaces, attachment records, allocated addresses, and
// interfaces on the daemon's bridge (its veths).
func networkLeftovers(d *daemonProc) []string {
	var out []string
	state := filepath.Join(d.state, "network")
	// Each line names the container's full id, so that a live container's
	// are told apart (awaitNothingLeftBut): namespaces and records are
	// named by it, an address file holds it, a veth's alias ends with it.
	for _, pattern := range []string{"netns/*", "attachments/*", "ipam/*/*"} {
		files, _ := filepath.Glob(filepath.Join(state, pattern))
		for _, f := range files {
			owner, _ := os.ReadFile(f)
			if strings.HasPrefix(pattern, "ipam") {
				f += " (held by " + strings.TrimSpace(string(owner)) + ")"
			}
			out = append(out, "network state "+f)
		}
	}
	if br, err := netlink.LinkByName(d.net.Bridge); err == nil {
		links, _ := netlink.LinkList()
		for _, l := range links {
			if l.Attrs().MasterIndex == br.Attrs().Index {
				out = append(out, "veth "+l.Attrs().Name+" ("+l.Attrs().Alias+") on "+d.net.Bridge)
			}
		}
	}
	return out
}
