package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/names"
)

func TestCreateAsksTheShimForATerminalOrStdin(t *testing.T) {
	cases := []struct {
		name            string
		tty, openStdin  bool
		terminal, stdin bool
	}{
		{"neither", false, false, false, false},
		{"stdin pipe", false, true, false, true},
		{"terminal", true, false, true, false},
		{"terminal takes the input", true, true, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newFakeDaemon(t)
			c := d.create("c", func(r *CreateRequest) { r.Tty, r.OpenStdin = tc.tty, tc.openStdin })
			sh := d.shims.live(c.ID)[0]
			if sh.create.Terminal != tc.terminal || sh.create.Stdin != tc.stdin {
				t.Errorf("shim create: terminal %v stdin %v, want %v %v", sh.create.Terminal, sh.create.Stdin, tc.terminal, tc.stdin)
			}
			spec := readSpec(t, c.Bundle)
			if spec.Process.Terminal != tc.tty {
				t.Errorf("config.json process.terminal = %v, want %v", spec.Process.Terminal, tc.tty)
			}
		})
	}
}

func readSpec(t *testing.T, bundle string) *specs.Spec {
	t.Helper()
	p, err := readProcess(bundle)
	if err != nil {
		t.Fatal(err)
	}
	return &specs.Spec{Process: p}
}

func TestExec(t *testing.T) {
	ctx := context.Background()
	d := newFakeDaemon(t)
	c := d.create("web", func(r *CreateRequest) { r.Env = []string{"A=1", "B=2"} })
	if _, err := d.sup.Exec(ctx, "web", ExecRequest{Command: []string{"true"}}); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("exec in a created container: %v, want a conflict", err)
	}
	if _, err := d.sup.Start(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	id, err := d.sup.Exec(ctx, "web", ExecRequest{Command: []string{"sh", "-c", "echo"}, Env: []string{"B=3", "C=4"}, WorkingDir: "/tmp", User: "1000:50", Tty: true, Stdin: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := names.ValidID(id); err != nil {
		t.Fatalf("exec id %q: %v", id, err)
	}
	sh := d.shims.live(c.ID)[0]
	o := sh.execs[0]
	if o.ID != id || !o.Terminal || o.Stdin || o.Detach {
		t.Errorf("shim exec options %+v: want id %s, a terminal, no stdin pipe (the terminal is the input), not detached", o, id)
	}
	var p specs.Process
	if err := json.Unmarshal(o.Process, &p); err != nil {
		t.Fatal(err)
	}
	init := readSpec(t, c.Bundle).Process
	if !slices.Equal(p.Args, []string{"sh", "-c", "echo"}) || !p.Terminal || p.Cwd != "/tmp" || p.User.UID != 1000 || p.User.GID != 50 {
		t.Errorf("process %+v", p)
	}
	for _, kv := range []string{"A=1", "B=3", "C=4", "HOME=/"} {
		if !slices.Contains(p.Env, kv) {
			t.Errorf("env %q lacks %s", p.Env, kv)
		}
	}
	if slices.Contains(p.Env, "B=2") {
		t.Errorf("env %q keeps the container's B", p.Env)
	}
	if !slices.Equal(p.Capabilities.Bounding, init.Capabilities.Bounding) || p.NoNewPrivileges != init.NoNewPrivileges {
		t.Errorf("the exec's security settings differ from the init's")
	}

	e, got, err := d.sup.ExecState(ctx, "web", id)
	if err != nil || e.ID != id || got.ID != c.ID {
		t.Fatalf("exec state: %+v %v", e, err)
	}
	if _, _, err := d.sup.ExecState(ctx, "web", names.NewID()); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("state of an unknown exec: %v", err)
	}
	if err := d.sup.Resize(ctx, "web", id, 30, 100); err != nil || sh.resize != [3]int{0, 30, 100} {
		t.Errorf("resize: %v, shim got %v", err, sh.resize)
	}
	// Detached, no terminal, stdin asked: a pipe.
	if _, err := d.sup.Exec(ctx, c.ID, ExecRequest{Command: []string{"cat"}, Stdin: true, Detach: true}); err != nil {
		t.Fatal(err)
	}
	if o := sh.execs[1]; o.Terminal || !o.Stdin || !o.Detach {
		t.Errorf("second exec options %+v", o)
	}
	execs, _, err := d.sup.Execs(ctx, "web")
	if err != nil || len(execs) != 2 || execs[0].ID != id {
		t.Errorf("execs: %+v %v", execs, err)
	}

	// They go with the container.
	if _, err := d.sup.Kill(ctx, "web", 9); err != nil {
		t.Fatal(err)
	}
	d.await(c.ID, "stopped", inState(StateStopped))
	if _, err := d.sup.Exec(ctx, "web", ExecRequest{Command: []string{"true"}}); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("exec in a stopped container: %v, want a conflict", err)
	}
	if _, _, err := d.sup.ExecState(ctx, "web", id); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("exec state after the container stopped: %v, want not found", err)
	}
	if execs, _, err := d.sup.Execs(ctx, "web"); err != nil || len(execs) != 0 {
		t.Errorf("execs of a stopped container: %+v %v", execs, err)
	}
}

func TestExecValidates(t *testing.T) {
	d := newFakeDaemon(t)
	d.create("c", nil)
	if _, err := d.sup.Start(context.Background(), "c"); err != nil {
		t.Fatal(err)
	}
	for _, r := range []ExecRequest{
		{},
		{Command: []string{""}},
		{Command: []string{"x\x00"}},
		{Command: []string{"ls"}, Env: []string{"NOEQUALS"}},
		{Command: []string{"ls"}, WorkingDir: "relative"},
		{Command: []string{"ls"}, User: "1:2:3"},
		{Command: []string{"ls"}, User: "nobody-in-passwd"},
	} {
		if _, err := d.sup.Exec(context.Background(), "c", r); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("exec %+v: %v, want an invalid argument", r, err)
		}
	}
	if _, err := d.sup.Exec(context.Background(), "nosuch", ExecRequest{Command: []string{"ls"}}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("exec in a missing container: %v", err)
	}
}

func TestAttach(t *testing.T) {
	ctx := context.Background()
	d := newFakeDaemon(t)
	c := d.create("tty", func(r *CreateRequest) { r.Tty = true })

	// Before the start: what docker run -it does.
	st, err := d.sup.Attach(ctx, "tty", AttachOptions{Stdin: true})
	if err != nil {
		t.Fatal(err)
	}
	if fs := st.(*fakeStream); !fs.Terminal() || !fs.req.Stdin || fs.req.Exec != "" {
		t.Errorf("stream %+v", fs)
	}
	st.Close()
	if _, err := d.sup.Attach(ctx, "tty", AttachOptions{Exec: names.NewID()}); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("attach to an exec of a created container: %v", err)
	}
	if _, err := d.sup.Start(ctx, "tty"); err != nil {
		t.Fatal(err)
	}
	id, err := d.sup.Exec(ctx, "tty", ExecRequest{Command: []string{"sh"}})
	if err != nil {
		t.Fatal(err)
	}
	// The shim holds the streams: after a daemon restart they are there.
	d.restart()
	st, err = d.sup.Attach(ctx, c.ID, AttachOptions{Exec: id})
	if err != nil {
		t.Fatal(err)
	}
	if fs := st.(*fakeStream); fs.Terminal() || fs.req.Exec != id || fs.req.Stdin {
		t.Errorf("exec stream %+v", fs)
	}
	st.Close()
	for _, tc := range []struct {
		exec string
		want error
	}{
		{names.NewID(), errdefs.ErrNotFound},
		{"../../etc", errdefs.ErrNotFound},
	} {
		if _, err := d.sup.Attach(ctx, "tty", AttachOptions{Exec: tc.exec}); !errors.Is(err, tc.want) {
			t.Errorf("attach to exec %q: %v, want %v", tc.exec, err, tc.want)
		}
	}
	if _, err := d.sup.Kill(ctx, "tty", 9); err != nil {
		t.Fatal(err)
	}
	d.await(c.ID, "stopped", inState(StateStopped))
	if _, err := d.sup.Attach(ctx, "tty", AttachOptions{}); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("attach to a stopped container: %v, want a conflict", err)
	}
	if err := d.sup.Resize(ctx, "tty", "", 1, 1); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("resize a stopped container: %v, want a conflict", err)
	}
}

// The kernel is told ahead that a runtime will move a process into a
// cgroup (Config.WarmCgroups, internal/cgwarm) on every path that runs the
// runtime's create or exec: a create, a restart of a stopped container, an
// exec.
func TestWarmCgroupsAheadOfTheRuntime(t *testing.T) {
	ctx := context.Background()
	d := newFakeDaemon(t)
	var warmed atomic.Int32
	d.cfg.WarmCgroups = func() { warmed.Add(1) }
	d.restart()
	step := func(what string, fn func() error) {
		t.Helper()
		before := warmed.Load()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if warmed.Load() == before {
			t.Errorf("%s: cgroup moves not warmed", what)
		}
	}
	step("create", func() error { d.create("web", nil); return nil })
	if _, err := d.sup.Start(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	step("exec", func() error { _, err := d.sup.Exec(ctx, "web", ExecRequest{Command: []string{"true"}}); return err })
	if _, err := d.sup.Stop(ctx, "web", time.Second); err != nil {
		t.Fatal(err)
	}
	step("restart", func() error { _, err := d.sup.Start(ctx, "web"); return err })
}
