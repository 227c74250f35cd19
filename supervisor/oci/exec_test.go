package oci

import (
	"errors"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/raind/condenser/internal/errdefs"
)

func TestExecProcess(t *testing.T) {
	init := &specs.Process{
		Args: []string{"nginx"}, Env: []string{"PATH=/bin", "HOSTNAME=h", "A=1", "HOME=/root"}, Cwd: "/srv",
		User:            specs.User{UID: 0, GID: 0, AdditionalGids: []uint32{0, 1}},
		Capabilities:    &specs.LinuxCapabilities{Bounding: []string{"CAP_CHOWN"}},
		NoNewPrivileges: true, ConsoleSize: &specs.Box{Height: 1, Width: 1},
	}
	cases := []struct {
		name  string
		exec  Exec
		check func(t *testing.T, p *specs.Process)
		err   string
	}{
		{"the init's settings", Exec{Args: []string{"ls", "-l"}}, func(t *testing.T, p *specs.Process) {
			if !slices.Equal(p.Args, []string{"ls", "-l"}) || p.Cwd != "/srv" || p.User.UID != 0 || !p.NoNewPrivileges ||
				p.Capabilities != init.Capabilities || p.Terminal || p.ConsoleSize != nil || !slices.Equal(p.Env, init.Env) {
				t.Errorf("%+v", p)
			}
		}, ""},
		{"env over the init's", Exec{Args: []string{"env"}, Env: []string{"A=2", "B=3"}}, func(t *testing.T, p *specs.Process) {
			if want := []string{"PATH=/bin", "HOSTNAME=h", "A=2", "HOME=/root", "B=3"}; !slices.Equal(p.Env, want) {
				t.Errorf("env %q, want %q", p.Env, want)
			}
		}, ""},
		{"terminal and workdir", Exec{Args: []string{"sh"}, Tty: true, WorkingDir: "/tmp"}, func(t *testing.T, p *specs.Process) {
			if !p.Terminal || p.Cwd != "/tmp" || p.ConsoleSize != nil {
				t.Errorf("%+v", p)
			}
		}, ""},
		{"console size", Exec{Args: []string{"sh"}, Tty: true, ConsoleSize: &[2]uint16{24, 80}}, func(t *testing.T, p *specs.Process) {
			if p.ConsoleSize == nil || *p.ConsoleSize != (specs.Box{Height: 24, Width: 80}) {
				t.Errorf("console size %+v", p.ConsoleSize)
			}
		}, ""},
		{"console size without a terminal", Exec{Args: []string{"sh"}, ConsoleSize: &[2]uint16{24, 80}}, func(t *testing.T, p *specs.Process) {
			if p.ConsoleSize != nil {
				t.Errorf("console size %+v", p.ConsoleSize)
			}
		}, ""},
		{"user from passwd, HOME follows", Exec{Args: []string{"id"}, User: "app"}, func(t *testing.T, p *specs.Process) {
			if p.User.UID != 1000 || p.User.GID != 1000 || !slices.Contains(p.Env, "HOME=/home/app") || slices.Contains(p.Env, "HOME=/root") {
				t.Errorf("%+v", p)
			}
		}, ""},
		{"HOME given wins", Exec{Args: []string{"id"}, User: "app", Env: []string{"HOME=/x"}}, func(t *testing.T, p *specs.Process) {
			if !slices.Contains(p.Env, "HOME=/x") || slices.Contains(p.Env, "HOME=/home/app") {
				t.Errorf("env %q", p.Env)
			}
		}, ""},
		{"no command", Exec{}, nil, "no command"},
		{"empty program", Exec{Args: []string{""}}, nil, "no command"},
		{"NUL", Exec{Args: []string{"a\x00"}}, nil, "NUL"},
		{"bad env", Exec{Args: []string{"a"}, Env: []string{"=x"}}, nil, "env"},
		{"relative workdir", Exec{Args: []string{"a"}, WorkingDir: "tmp"}, nil, "not an absolute path"},
		{"unknown user", Exec{Args: []string{"a"}, User: "ghost"}, nil, `no user "ghost"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ExecProcess(init, tc.exec, alpineFS)
			if tc.err != "" {
				if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want an invalid argument with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, p)
			if init.Args[0] != "nginx" || len(init.Env) != 4 {
				t.Errorf("the init's process was changed: %+v", init)
			}
		})
	}
}
