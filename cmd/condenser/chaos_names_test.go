package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The two-name chaos run: namesClients clients each send namesOpsPerRound
// random operations per round, for namesRounds rounds, all on the same two
// container names; the daemon is stopped with SIGTERM once per round, at a
// seeded moment, and started again.
const (
	namesClients     = 8
	namesRounds      = 2
	namesOpsPerRound = 50 // 100 operations per client in all
	namesDeadline    = 4 * time.Minute
)

var namesNames = [...]string{"twin-a", "twin-b"}

// namesOp is one operation a client may send: method, path (%s: the name)
// and body.
type namesOp struct {
	what, method, path string
	create             bool
}

var namesOps = []namesOp{
	{what: "create", method: "POST", path: "/v1/containers", create: true},
	{what: "start", method: "POST", path: "/v1/containers/%s/actions/start"},
	{what: "stop", method: "POST", path: "/v1/containers/%s/actions/stop?timeout=0"},
	{what: "stop 1s", method: "POST", path: "/v1/containers/%s/actions/stop?timeout=1"},
	{what: "restart", method: "POST", path: "/v1/containers/%s/actions/restart?timeout=0"},
	{what: "delete", method: "DELETE", path: "/v1/containers/%s/actions/delete"},
	{what: "rm -f", method: "DELETE", path: "/v1/containers/%s/actions/delete?force=1"},
}

// TestReliabilityChaosNames: 8 concurrent clients × 100 random operations
// (create, start, stop, restart, delete, rm -f) on the same two container
// names, so that every operation races others on the same container. Every
// answer must be 2xx, 404 or 409 — never a 5xx or anything else; a request
// may go unanswered only when the daemon was stopped under it. The daemon
// is stopped with SIGTERM in the middle of each round and started again;
// between the rounds and at the end every record must match its processes
// and cgroups (no record without its container, no shim without its
// record) and the containers deleted so far must have left nothing; once
// both are deleted nothing may be left: no shim, mount, cgroup, bundle,
// container directory, log, runtime state or record. The seed ($CONDENSER_CHAOS_SEED) fixes the clients' choices
// and the moments of the SIGTERMs (counted in operations).
func TestReliabilityChaosNames(t *testing.T) {
	seed := chaosSeed(t)
	rs := chaosDaemon(t)
	d := rs.d

	ctx, cancel := context.WithTimeout(context.Background(), namesDeadline)
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	defer rs.watchIDs(ctx, &wg)() // every container id seen on disk, for the cgroup checks

	api := newChaosAPI(d)
	var (
		epoch atomic.Int64 // odd while the daemon is being stopped and started
		ops   atomic.Int64 // operations answered or cut short, this round
		down  sync.RWMutex // held (write) while the daemon is stopped and started
	)
	clients := make([]*namesClient, namesClients)
	for i := range clients {
		clients[i] = &namesClient{id: i, api: api, epoch: &epoch, ops: &ops, down: &down,
			rng: rand.New(rand.NewSource(seed + int64(i) + 1)), codes: map[string]map[int]int{}}
	}
	rng := rand.New(rand.NewSource(seed))
	start := time.Now()
	for round := range namesRounds {
		// The SIGTERM comes after a seeded number of operations: between
		// a quarter and three quarters of the round.
		total := namesClients * namesOpsPerRound
		at := int64(total/4 + rng.Intn(total/2))
		ops.Store(0)
		var cwg sync.WaitGroup
		for _, c := range clients {
			cwg.Add(1)
			go func() { defer cwg.Done(); c.run(ctx, namesOpsPerRound) }()
		}
		clientsDone := make(chan struct{})
		go func() { cwg.Wait(); close(clientsDone) }()
		termed := false
	wait:
		for {
			select {
			case <-clientsDone:
				break wait
			case <-time.After(2 * time.Millisecond):
			}
			if !termed && ops.Load() >= at {
				termed = true
				t0 := time.Now()
				down.Lock()
				epoch.Add(1)
				rs.term()
				rs.restart()
				epoch.Add(1)
				down.Unlock()
				t.Logf("round %d: SIGTERM after %d operations; stopped and started again in %v", round, at, time.Since(t0).Round(time.Millisecond))
			}
		}
		if !termed {
			t.Errorf("round %d: the clients finished (%d operations) before the SIGTERM at %d", round, ops.Load(), at)
		}
		if ctx.Err() != nil {
			t.Fatalf("round %d not done in %v", round, namesDeadline)
		}
		// Nothing in flight: every record must match reality, and the
		// containers deleted so far must have left nothing.
		// (The leftovers first: a superfluous spare shim may still be on
		// its way out.)
		failed := t.Failed()
		rs.awaitNothingLeftBut(t, rs.liveIDs(t))
		states := rs.checkConsistent(t)
		if !failed && t.Failed() {
			rs.describeShims(t)
		}
		t.Logf("round %d done after %v: %v", round, time.Since(start).Round(time.Millisecond), states)
	}

	bad := 0
	for _, c := range clients {
		bad += c.report(t)
	}

	// A last SIGTERM and start; the records must still match reality.
	rs.term()
	if bad > 0 {
		rs.logFailedRequests(t)
	}
	rs.restart()
	failed := t.Failed()
	states := rs.checkConsistent(t)
	if !failed && t.Failed() {
		rs.describeShims(t)
	}
	for name := range states {
		var env envelope
		if code := d.do("DELETE", "/v1/containers/"+name+"/actions/delete?force=1", nil, &env); code != 200 {
			t.Errorf("delete %s: %d %s", name, code, env.Message)
		}
	}
	rs.checkNothingLeft(t)
}

// namesClient sends random operations on the two names.
type namesClient struct {
	id    int
	api   *chaosAPI
	epoch *atomic.Int64
	ops   *atomic.Int64
	down  *sync.RWMutex
	rng   *rand.Rand

	codes   map[string]map[int]int // operation → status → count
	outages int                    // requests cut short by a stop of the daemon
	bad     []string               // answers other than 200, 404 and 409, and requests lost while the daemon ran
}

func (c *namesClient) run(ctx context.Context, n int) {
	for range n {
		if ctx.Err() != nil {
			c.bad = append(c.bad, fmt.Sprintf("client %d: not done in time", c.id))
			return
		}
		op := namesOps[c.rng.Intn(len(namesOps))]
		name := namesNames[c.rng.Intn(len(namesNames))]
		// A short pause, sometimes, so that the interleavings vary.
		pause := time.Duration(c.rng.Intn(20)) * time.Millisecond
		time.Sleep(pause)
		c.do(ctx, op, name)
		c.ops.Add(1)
	}
}

func (c *namesClient) do(ctx context.Context, op namesOp, name string) {
	path, body := op.path, any(nil)
	if op.create {
		body = map[string]any{"image": "busybox", "name": name, "command": []string{"sleep", "3600"}}
	} else {
		path = fmt.Sprintf(op.path, name)
	}
	ep := c.epoch.Load()
	code, env, err := c.api.call(ctx, op.method, path, body)
	if err != nil && code == 0 {
		// No answer: only a stop of the daemon may cut a request short.
		c.down.RLock() // the daemon is up again
		//lint:ignore SA2001 a barrier: waits until the restarter releases down
		c.down.RUnlock()
		if ep%2 == 1 || c.epoch.Load() != ep {
			c.outages++
			return
		}
		c.bad = append(c.bad, fmt.Sprintf("client %d: %s %s: no answer while the daemon ran: %v", c.id, op.method, path, err))
		return
	}
	if c.codes[op.what] == nil {
		c.codes[op.what] = map[int]int{}
	}
	c.codes[op.what][code]++
	switch {
	case err != nil:
		c.bad = append(c.bad, fmt.Sprintf("client %d: %s %s: %v", c.id, op.method, path, err))
	case code/100 != 2 && code != 404 && code != 409:
		c.bad = append(c.bad, fmt.Sprintf("client %d: %s %s: %d %s", c.id, op.method, path, code, env.Message))
	}
}

// report logs the client's tally and fails the test for each bad answer;
// it returns their number.
func (c *namesClient) report(t *testing.T) int {
	t.Helper()
	var b strings.Builder
	for _, op := range namesOps {
		fmt.Fprintf(&b, " %s %v;", op.what, c.codes[op.what])
	}
	t.Logf("client %d: %d cut short by a stop;%s", c.id, c.outages, strings.TrimSuffix(b.String(), ";"))
	for _, e := range c.bad {
		t.Error(e)
	}
	return len(c.bad)
}

// term stops the daemon with SIGTERM (it finishes its requests, up to its
// grace period), keeping its log.
func (rs *reliabilityState) term() {
	rs.d.stop(syscall.SIGTERM)
	rs.mu.Lock()
	fmt.Fprintf(&rs.logs, "---- stopped (SIGTERM) ----\n")
	rs.logs.Write(rs.d.logs.Bytes())
	rs.mu.Unlock()
}

var failedRequest = regexp.MustCompile(`request failed|panic|level=ERROR|level=WARN`)

// logFailedRequests logs the lines of the stopped daemons' logs that tell
// why a request failed (a 500 carries only "internal error (request N)").
func (rs *reliabilityState) logFailedRequests(t *testing.T) {
	t.Helper()
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var out []string
	for _, line := range bytes.Split(rs.logs.Bytes(), []byte("\n")) {
		if failedRequest.Match(line) || bytes.HasPrefix(line, []byte("---- ")) {
			out = append(out, string(line))
		}
	}
	t.Logf("errors in the daemons' logs:\n%s", strings.Join(out, "\n"))
}

// describeShims logs, for each live shim of the daemon, what its bundle
// and container directories hold: what tells a leaked shim from a spare.
func (rs *reliabilityState) describeShims(t *testing.T) {
	t.Helper()
	for pid, id := range rs.shimProcs() {
		var b strings.Builder
		fmt.Fprintf(&b, "shim %d of %s (ppid %s):", pid, id, ppid(pid))
		for _, dir := range []string{filepath.Join(rs.d.state, "shims", id), filepath.Join(rs.d.root, "containers", id), filepath.Join(rs.d.state, "runtime", id)} {
			ents, err := os.ReadDir(dir)
			if err != nil {
				fmt.Fprintf(&b, "\n  %s: %v", dir, err)
				continue
			}
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			fmt.Fprintf(&b, "\n  %s: %v", dir, names)
		}
		t.Log(b.String())
	}
}

func ppid(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i > 0 {
		if f := strings.Fields(s[i+1:]); len(f) > 1 {
			return f[1]
		}
	}
	return "?"
}

// liveIDs returns the ids of the containers the daemon lists.
func (rs *reliabilityState) liveIDs(t *testing.T) map[string]bool {
	t.Helper()
	var list struct{ Data []containerDetail }
	if code := rs.d.do("GET", "/v1/containers?all=1", nil, &list); code != 200 {
		t.Fatalf("list: %d", code)
	}
	ids := map[string]bool{}
	for _, c := range list.Data {
		ids[c.ContainerID] = true
	}
	return ids
}

// awaitNothingLeftBut waits (bounded) until nothing is left on the host
// but what the containers live holds and the daemon's spare shim.
func (rs *reliabilityState) awaitNothingLeftBut(t *testing.T, live map[string]bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var left []string
	next:
		for _, l := range rs.leftovers(true) {
			for id := range live {
				if strings.Contains(l, id) {
					continue next
				}
			}
			left = append(left, l)
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("left behind by the containers deleted so far:\n%s", strings.Join(left, "\n"))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
