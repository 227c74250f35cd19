package client

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/names"
)

// The client's calls over ttrpc are tested against real shims in package
// shim (TestClientRoundTrip, TestDelete…); these tests cover what needs no
// shim: the options and the command lines of Launch and Cleanup, against a
// fake condenser-shim.

// fakeShim writes a condenser-shim that records its arguments in dir/args,
// then prints stdout and stderr and exits with code.
func fakeShim(t *testing.T, stdout, stderr string, code int) (bin, args string) {
	t.Helper()
	dir := t.TempDir()
	bin, args = filepath.Join(dir, "condenser-shim"), filepath.Join(dir, "args")
	script := "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + args + "\nprintf '%s' '" + stdout + "'\nprintf '%s' '" + stderr + "' >&2\nexit " + strconv.Itoa(code) + "\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, args
}

func readArgs(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(strings.Fields(string(b)), " ")
}

func TestOptionsValidate(t *testing.T) {
	id := names.NewID()
	ok := Options{Binary: "condenser-shim", ID: id, Bundle: "/run/condenser/shims/" + id[:12], Runtime: "runc", RuntimeRoot: "/run/condenser/runtime"}
	tests := []struct {
		name  string
		edit  func(*Options)
		valid bool
	}{
		{"ok", func(*Options) {}, true},
		{"no binary", func(o *Options) { o.Binary = "" }, false},
		{"no id", func(o *Options) { o.ID = "" }, false},
		{"id with slash", func(o *Options) { o.ID = "a/b" }, false},
		{"id ..", func(o *Options) { o.ID = ".." }, false},
		{"id like a flag", func(o *Options) { o.ID = "--help" }, false},
		{"id is a name", func(o *Options) { o.ID = "web-1" }, false},
		{"short id", func(o *Options) { o.ID = id[:12] }, false},
		{"upper-case id", func(o *Options) { o.ID = strings.ToUpper(id) }, false},
		{"relative bundle", func(o *Options) { o.Bundle = "shims/abc" }, false},
		{"no runtime", func(o *Options) { o.Runtime = "" }, false},
		{"no runtime root", func(o *Options) { o.RuntimeRoot = "" }, false},
		{"socket path at the limit", func(o *Options) { o.Bundle = "/" + strings.Repeat("x", 107-len("/shim.sock")-1) }, true},
		{"socket path too long", func(o *Options) { o.Bundle = "/" + strings.Repeat("x", 107-len("/shim.sock")) }, false},
	}
	for _, tc := range tests {
		o := ok
		tc.edit(&o)
		err := o.validate()
		if (err == nil) != tc.valid {
			t.Errorf("%s: %v, want valid %v", tc.name, err, tc.valid)
		}
		if err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", tc.name, err)
		}
		if err != nil {
			if _, err := Launch(context.Background(), o); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("%s: Launch: %v", tc.name, err)
			}
			if _, err := Cleanup(context.Background(), o); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("%s: Cleanup: %v", tc.name, err)
			}
		}
	}
}

func TestLaunchCommandLine(t *testing.T) {
	bin, args := fakeShim(t, "unix:///b/shim.sock\n", "", 0)
	bundle, id := t.TempDir(), names.NewID()
	addr, err := Launch(context.Background(), Options{Binary: bin, ID: id, Bundle: bundle, Runtime: "crun", RuntimeRoot: "/rt"})
	if err != nil || addr != "unix:///b/shim.sock" {
		t.Fatalf("launch: %q %v", addr, err)
	}
	want := "start --id " + id + " --bundle " + bundle + " --runtime crun --runtime-root /rt --socket " + bundle + "/shim.sock"
	if got := readArgs(t, args); got != want {
		t.Errorf("args %q, want %q", got, want)
	}
	bin, _ = fakeShim(t, "", "condenser-shim: shim socket: address already in use", 1)
	if _, err := Launch(context.Background(), Options{Binary: bin, ID: id, Bundle: bundle, Runtime: "crun", RuntimeRoot: "/rt"}); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("failed launch: %v, want the shim's stderr", err)
	}
}

func TestCleanup(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name           string
		stdout, stderr string
		code           int
		want           *Exit
		errHas         string // "": no error
	}{
		{"unknown", `{"unknown":true}` + "\n", "", 0, nil, ""},
		{"exit", `{"pid":42,"exitCode":137,"exitedAt":"2026-01-02T03:04:05Z","oomKilled":true}` + "\n", "", 0, &Exit{Pid: 42, ExitCode: 137, ExitedAt: at, OOMKilled: true}, ""},
		{"failure", "", "condenser-shim: delete c1: shim 77 survives SIGKILL", 1, nil, "shim 77 survives SIGKILL"},
		{"garbage", "hello\n", "", 0, nil, "delete output"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bin, args := fakeShim(t, tc.stdout, tc.stderr, tc.code)
			id := names.NewID()
			e, err := Cleanup(context.Background(), Options{Binary: bin, ID: id, Bundle: "/b", Runtime: "runc", RuntimeRoot: "/rt"})
			if got, want := readArgs(t, args), "delete --id "+id+" --bundle /b --runtime runc --runtime-root /rt"; got != want {
				t.Errorf("args %q, want %q", got, want)
			}
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Errorf("error %v, want one with %q", err, tc.errHas)
				}
				return
			}
			if err != nil || (e == nil) != (tc.want == nil) || (e != nil && (e.Pid != tc.want.Pid || e.ExitCode != tc.want.ExitCode || !e.ExitedAt.Equal(tc.want.ExitedAt) || e.OOMKilled != tc.want.OOMKilled)) {
				t.Errorf("cleanup: %+v %v, want %+v", e, err, tc.want)
			}
		})
	}
}

func TestDialNothing(t *testing.T) {
	if _, err := Dial(context.Background(), "unix://"+filepath.Join(t.TempDir(), "none.sock")); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("dial: %v, want ErrUnavailable", err)
	}
}
