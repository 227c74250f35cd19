package supervisor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/testutil"
)

var specUpdate = flag.Bool("update", false, "rewrite the golden files in testdata/")

const specTestID = "3f2a9c1d7e5b4a60c8d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0"

// pinSpecHost replaces the host facts GenerateSpec reads with fixed ones.
// Host paths for binds "exist" unless they contain "missing".
func pinSpecHost(t *testing.T) {
	t.Helper()
	oldNofile, oldCPU, oldHost, oldStat, oldSwap := nofileHardLimit, numCPU, hostHostname, statHostPath, swapLimitSupported
	t.Cleanup(func() {
		nofileHardLimit, numCPU, hostHostname, statHostPath, swapLimitSupported = oldNofile, oldCPU, oldHost, oldStat, oldSwap
	})
	nofileHardLimit = func() (uint64, error) { return math.MaxUint64, nil } // RLIM_INFINITY
	numCPU = func() int { return 4 }
	hostHostname = func() (string, error) { return "buildhost", nil }
	statHostPath = func(p string) (fs.FileInfo, error) {
		if strings.Contains(p, "missing") {
			return nil, &fs.PathError{Op: "stat", Path: p, Err: fs.ErrNotExist}
		}
		return nil, nil
	}
	swapLimitSupported = func(bool) bool { return true }
}

// fakeImageFS is a FileReader over a map of file contents.
func fakeImageFS(files map[string]string) FileReader {
	return func(p string) ([]byte, error) {
		if s, ok := files[p]; ok {
			return []byte(s), nil
		}
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
}

const alpinePasswd = `root:x:0:0:root:/root:/bin/sh
bin:x:1:1:bin:/bin:/sbin/nologin
daemon:x:2:2:daemon:/sbin:/sbin/nologin
nobody:x:65534:65534:nobody:/:/sbin/nologin
nginx:x:101:101:nginx:/var/cache/nginx:/sbin/nologin
app:x:1000:1000:App User:/home/app:/bin/sh
nohome:x:1001:1001::::
`

const alpineGroup = `root:x:0:root
bin:x:1:root,bin,daemon
daemon:x:2:root,bin,daemon
wheel:x:10:root
staff:x:50:app, nginx
nginx:x:101:nginx
app:x:1000:
audio:x:18:app
nogroup:x:65533:
nobody:x:65534:
`

var alpineFS = fakeImageFS(map[string]string{"/etc/passwd": alpinePasswd, "/etc/group": alpineGroup})

func alpineConfig() *v1.Config {
	return &v1.Config{
		Cmd: []string{"/bin/sh"},
		Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	}
}

func nginxConfig() *v1.Config {
	return &v1.Config{
		Entrypoint: []string{"/docker-entrypoint.sh"},
		Cmd:        []string{"nginx", "-g", "daemon off;"},
		Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "NGINX_VERSION=1.25.3", "PKG_RELEASE=1"},
		WorkingDir: "/usr/share/nginx",
		Labels:     map[string]string{"maintainer": "NGINX Docker Maintainers", "org.example.tier": "image"},
		StopSignal: "SIGQUIT",
	}
}

func withEtcFiles(r SpecRequest) SpecRequest {
	dir := "/run/condenser/shims/" + r.ID
	r.HostsPath, r.HostnamePath, r.ResolvConfPath = dir+"/hosts", dir+"/hostname", dir+"/resolv.conf"
	return r
}

func TestGenerateSpecGolden(t *testing.T) {
	pinSpecHost(t)
	cases := []struct {
		name string
		img  *v1.Config
		req  SpecRequest
	}{
		{
			// docker run alpine: image defaults, Condenser's default network.
			name: "alpine-default",
			img:  alpineConfig(),
			req:  withEtcFiles(SpecRequest{ID: specTestID, Name: "quirky_turing", Network: "raind0"}),
		},
		{
			// docker run --entrypoint /bin/echo -e X=1 -u nginx --label ... nginx hello
			name: "nginx-entrypoint-user-env-labels",
			img:  nginxConfig(),
			req: withEtcFiles(SpecRequest{
				ID: specTestID, Name: "web",
				Entrypoint: []string{"/bin/echo"},
				Command:    []string{"hello"},
				Env:        []string{"NGINX_VERSION=override", "X=1", "EMPTY="},
				User:       "nginx",
				Labels:     map[string]string{"org.example.tier": "request", "com.example.owner": "ops"},
			}),
		},
		{
			// docker run --network host --read-only --security-opt no-new-privileges -u 1000:50 -w /srv -v ...
			name: "host-network-readonly-binds",
			img:  alpineConfig(),
			req: withEtcFiles(SpecRequest{
				ID: specTestID, Name: "hostnet",
				Command:         []string{"sh", "-c", "sleep 1"},
				Network:         "host",
				ReadOnly:        true,
				NoNewPrivileges: true,
				User:            "1000:50",
				WorkingDir:      "/srv/app/",
				Mounts:          []string{"/srv/data/cache:/data/cache", "/srv/data:/data:ro", "/etc/ssl/certs:/etc/ssl/certs:rw"},
			}),
		},
		{
			// Resource limits on a cgroup v2 host, user with supplementary groups.
			name: "resources-cgroupv2",
			img:  alpineConfig(),
			req: SpecRequest{
				ID: specTestID, Name: "limited",
				Command:           []string{"/bin/sh"},
				Hostname:          "worker-1",
				User:              "app",
				Memory:            256 << 20,
				MemoryReservation: 128 << 20,
				MemorySwap:        512 << 20,
				CPUs:              1.5,
				CPUShares:         512,
				PidsLimit:         100,
				CgroupV2:          true,
				Network:           "none",
			},
		},
		{
			// Binds that replace default mounts and /etc files; cleared
			// entrypoint keeps the image's Cmd ([] through the API).
			name: "bind-overrides",
			img:  nginxConfig(),
			req: withEtcFiles(SpecRequest{
				ID: specTestID, Name: "overrides",
				Entrypoint: []string{},
				Mounts:     []string{"/host/shm:/dev/shm", "/host/hosts:/etc/hosts:ro", "/host/deep:/a/b/c", "/host/a:/a"},
				Memory:     64 << 20,
				PidsLimit:  -1,
			}),
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec, err := GenerateSpec(c.img, c.req, alpineFS)
			if err != nil {
				t.Fatalf("GenerateSpec: %v", err)
			}
			got, err := json.MarshalIndent(spec, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", c.name+".json")
			if *specUpdate {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./supervisor/ -run TestGenerateSpecGolden -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the generated spec (rerun with -update if the change is intended):\n%s",
					path, lineDiff(string(want), string(got)))
			}
		})
	}
}

// lineDiff is a small diff for golden failures: the first differing lines.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 20; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  - %s\n  + %s\n", i+1, wl, gl)
			shown++
		}
	}
	return b.String()
}

func TestGenerateSpecInvalid(t *testing.T) {
	pinSpecHost(t)
	base := func() SpecRequest { return SpecRequest{ID: specTestID, Command: []string{"true"}} }
	cases := []struct {
		name string
		img  *v1.Config
		mod  func(*SpecRequest)
		want string // substring of the error
	}{
		{"no id", nil, func(r *SpecRequest) { r.ID = "" }, "container id: empty"},
		{"id with slash", nil, func(r *SpecRequest) { r.ID = "a/b" }, `container id "a/b"`},
		{"empty command, no image", nil, func(r *SpecRequest) { r.Command = nil }, "no command specified"},
		{"empty command, image without cmd", &v1.Config{}, func(r *SpecRequest) { r.Command = []string{} }, "no command specified"},
		{"entrypoint cleared drops image cmd", alpineConfig(), func(r *SpecRequest) { r.Command = nil; r.Entrypoint = []string{""} }, "no command specified"},
		{"empty program", nil, func(r *SpecRequest) { r.Command = []string{"", "x"} }, "program name is empty"},
		{"nul in arg", nil, func(r *SpecRequest) { r.Command = []string{"echo", "a\x00b"} }, "NUL"},
		{"env without =", nil, func(r *SpecRequest) { r.Env = []string{"A=1", "FOO"} }, `env "FOO": want KEY=VALUE`},
		{"env empty key", nil, func(r *SpecRequest) { r.Env = []string{"=x"} }, `env "=x": empty variable name`},
		{"env nul", nil, func(r *SpecRequest) { r.Env = []string{"A=\x00"} }, "NUL"},
		{"relative workdir", nil, func(r *SpecRequest) { r.WorkingDir = "app" }, `workdir "app": not an absolute path`},
		{"relative image workdir", &v1.Config{WorkingDir: "app"}, func(r *SpecRequest) {}, `WorkingDir "app"`},
		{"unknown network", nil, func(r *SpecRequest) { r.Network = "bridge" }, `network "bridge"`},
		{"hostname too long", nil, func(r *SpecRequest) { r.Hostname = strings.Repeat("h", 65) }, "longer than 64"},
		{"hostname bad chars", nil, func(r *SpecRequest) { r.Hostname = "a b" }, `hostname "a b"`},
		{"unknown user", nil, func(r *SpecRequest) { r.User = "ghost" }, `no user "ghost"`},
		{"unknown group", nil, func(r *SpecRequest) { r.User = "app:ghosts" }, `no group "ghosts"`},
		{"negative uid", nil, func(r *SpecRequest) { r.User = "-1" }, "out of range"},
		{"uid too large", nil, func(r *SpecRequest) { r.User = "2147483648" }, "out of range"},
		{"too many colons", nil, func(r *SpecRequest) { r.User = "1:2:3" }, "want user[:group]"},
		{"image user unknown", &v1.Config{User: "ghost", Cmd: []string{"x"}}, func(r *SpecRequest) {}, `no user "ghost"`},
		{"mount one part", nil, func(r *SpecRequest) { r.Mounts = []string{"/data"} }, `mount "/data": want /host/path:/container/path`},
		{"mount four parts", nil, func(r *SpecRequest) { r.Mounts = []string{"/a:/b:ro:z"} }, "want /host/path:/container/path"},
		{"mount bad mode", nil, func(r *SpecRequest) { r.Mounts = []string{"/a:/b:z"} }, `unknown mode "z"`},
		{"mount relative host", nil, func(r *SpecRequest) { r.Mounts = []string{"data:/data"} }, `host path "data" is not absolute`},
		{"mount named volume", nil, func(r *SpecRequest) { r.Mounts = []string{"vol:/data"} }, `host path "vol" is not absolute`},
		{"mount empty host", nil, func(r *SpecRequest) { r.Mounts = []string{":/data"} }, `host path "" is not absolute`},
		{"mount host dotdot", nil, func(r *SpecRequest) { r.Mounts = []string{"/srv/../etc:/data"} }, `host path "/srv/../etc" contains ".."`},
		{"mount relative target", nil, func(r *SpecRequest) { r.Mounts = []string{"/srv:data"} }, `container path "data" is not absolute`},
		{"mount empty target", nil, func(r *SpecRequest) { r.Mounts = []string{"/srv:"} }, `container path "" is not absolute`},
		{"mount target dotdot", nil, func(r *SpecRequest) { r.Mounts = []string{"/srv:/data/../etc"} }, `container path "/data/../etc" contains ".."`},
		{"mount target root", nil, func(r *SpecRequest) { r.Mounts = []string{"/srv:/"} }, "container's root"},
		{"mount target root unclean", nil, func(r *SpecRequest) { r.Mounts = []string{"/srv://."} }, "container's root"},
		{"mount host missing", nil, func(r *SpecRequest) { r.Mounts = []string{"/srv/missing:/data"} }, `host path "/srv/missing" does not exist`},
		{"mount duplicate target", nil, func(r *SpecRequest) { r.Mounts = []string{"/a:/data", "/b:/data/"} }, "duplicate mount point /data"},
		{"hosts path relative", nil, func(r *SpecRequest) { r.HostsPath = "hosts" }, `hostsPath "hosts"`},
		{"resolv.conf path dotdot", nil, func(r *SpecRequest) { r.ResolvConfPath = "/run/../etc/resolv.conf" }, "resolvConfPath"},
		{"cpus negative", nil, func(r *SpecRequest) { r.CPUs = -1 }, "cpus -1: range of CPUs is from 0.01 to 4.00"},
		{"cpus too small", nil, func(r *SpecRequest) { r.CPUs = 0.001 }, "cpus 0.001"},
		{"cpus too many", nil, func(r *SpecRequest) { r.CPUs = 4.5 }, "cpus 4.5"},
		{"cpus NaN", nil, func(r *SpecRequest) { r.CPUs = math.NaN() }, "cpus NaN"},
		{"cpus Inf", nil, func(r *SpecRequest) { r.CPUs = math.Inf(1) }, "cpus +Inf"},
		{"memory negative", nil, func(r *SpecRequest) { r.Memory = -1 }, "memory -1: must not be negative"},
		{"memory too small", nil, func(r *SpecRequest) { r.Memory = 1 << 20 }, "memory 1048576: the minimum memory limit is 6MB"},
		{"reservation negative", nil, func(r *SpecRequest) { r.MemoryReservation = -5 }, "memoryReservation -5"},
		{"reservation too small", nil, func(r *SpecRequest) { r.MemoryReservation = 4096 }, "memoryReservation 4096"},
		{"reservation above limit", nil, func(r *SpecRequest) { r.Memory = 64 << 20; r.MemoryReservation = 128 << 20 }, "larger than the memory limit"},
		{"swap below -1", nil, func(r *SpecRequest) { r.Memory = 64 << 20; r.MemorySwap = -2 }, "memorySwap -2"},
		{"swap without memory", nil, func(r *SpecRequest) { r.MemorySwap = 64 << 20 }, "set memory too"},
		{"swap below memory", nil, func(r *SpecRequest) { r.Memory = 64 << 20; r.MemorySwap = 32 << 20 }, "smaller than the memory limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := base()
			c.mod(&req)
			spec, err := GenerateSpec(c.img, req, alpineFS)
			if err == nil {
				t.Fatalf("GenerateSpec succeeded (args %q), want an error containing %q", spec.Process.Args, c.want)
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("error %q does not wrap ErrInvalidArgument", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestGenerateSpecArgs(t *testing.T) {
	pinSpecHost(t)
	img := &v1.Config{Entrypoint: []string{"/entry.sh", "-x"}, Cmd: []string{"serve", "--port=80"}}
	cases := []struct {
		name       string
		img        *v1.Config
		entrypoint []string
		command    []string
		want       []string
	}{
		{"image defaults", img, nil, nil, []string{"/entry.sh", "-x", "serve", "--port=80"}},
		{"command replaces cmd", img, nil, []string{"debug"}, []string{"/entry.sh", "-x", "debug"}},
		{"empty command is image cmd", img, nil, []string{}, []string{"/entry.sh", "-x", "serve", "--port=80"}},
		{"entrypoint drops image cmd", img, []string{"/bin/sh"}, nil, []string{"/bin/sh"}},
		{"entrypoint and command", img, []string{"/bin/sh"}, []string{"-c", "id"}, []string{"/bin/sh", "-c", "id"}},
		{`entrypoint "" with command`, img, []string{""}, []string{"ls", "/"}, []string{"ls", "/"}},
		{"entrypoint [] keeps image cmd", img, []string{}, nil, []string{"serve", "--port=80"}},
		{"entrypoint [] with command", img, []string{}, []string{"ls"}, []string{"ls"}},
		{"cmd only image", &v1.Config{Cmd: []string{"/bin/sh"}}, nil, []string{"-c", "x"}, []string{"-c", "x"}},
		{`image entrypoint [""] is reset`, &v1.Config{Entrypoint: []string{""}, Cmd: []string{"/bin/sh"}}, nil, nil, []string{"/bin/sh"}},
		{"nil image", nil, nil, []string{"/bin/true"}, []string{"/bin/true"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec, err := GenerateSpec(c.img, SpecRequest{ID: specTestID, Entrypoint: c.entrypoint, Command: c.command}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(spec.Process.Args, c.want) {
				t.Errorf("args %q, want %q", spec.Process.Args, c.want)
			}
		})
	}
}

func TestGenerateSpecEnv(t *testing.T) {
	pinSpecHost(t)
	cases := []struct {
		name     string
		imageEnv []string
		reqEnv   []string
		user     string
		want     []string
	}{
		{"defaults", nil, nil, "", []string{defaultPathEnv, "HOSTNAME=3f2a9c1d7e5b", "HOME=/root"}},
		{"image path replaces default in place", []string{"PATH=/opt/bin", "LANG=C"}, nil, "",
			[]string{"PATH=/opt/bin", "HOSTNAME=3f2a9c1d7e5b", "LANG=C", "HOME=/root"}},
		{"request wins over image", []string{"A=image", "B=image"}, []string{"B=req", "C=req", "A=req2"}, "",
			[]string{defaultPathEnv, "HOSTNAME=3f2a9c1d7e5b", "A=req2", "B=req", "C=req", "HOME=/root"}},
		{"request sets HOME and HOSTNAME", nil, []string{"HOME=/x", "HOSTNAME=y"}, "app",
			[]string{defaultPathEnv, "HOSTNAME=y", "HOME=/x"}},
		{"image entries without = are dropped", []string{"BROKEN", "OK=1"}, nil, "",
			[]string{defaultPathEnv, "HOSTNAME=3f2a9c1d7e5b", "OK=1", "HOME=/root"}},
		{"value with =", nil, []string{"OPTS=a=b"}, "", []string{defaultPathEnv, "HOSTNAME=3f2a9c1d7e5b", "OPTS=a=b", "HOME=/root"}},
		{"home from passwd", nil, nil, "app", []string{defaultPathEnv, "HOSTNAME=3f2a9c1d7e5b", "HOME=/home/app"}},
		{"empty home is /", nil, nil, "nohome", []string{defaultPathEnv, "HOSTNAME=3f2a9c1d7e5b", "HOME=/"}},
		{"uid absent from passwd", nil, nil, "4242", []string{defaultPathEnv, "HOSTNAME=3f2a9c1d7e5b", "HOME=/"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := &v1.Config{Env: c.imageEnv, Cmd: []string{"sh"}}
			spec, err := GenerateSpec(img, SpecRequest{ID: specTestID, Env: c.reqEnv, User: c.user}, alpineFS)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(spec.Process.Env, c.want) {
				t.Errorf("env\n got %q\nwant %q", spec.Process.Env, c.want)
			}
		})
	}
}

func TestResolveUser(t *testing.T) {
	noGroup := fakeImageFS(map[string]string{"/etc/passwd": alpinePasswd})
	empty := fakeImageFS(nil)
	cases := []struct {
		name    string
		spec    string
		read    FileReader
		want    execUser
		wantErr string
	}{
		{"default is root with root's groups", "", alpineFS, execUser{0, 0, []uint32{0, 0, 1, 2, 10}, "/root"}, ""},
		{"root by name", "root", alpineFS, execUser{0, 0, []uint32{0, 0, 1, 2, 10}, "/root"}, ""},
		{"name", "app", alpineFS, execUser{1000, 1000, []uint32{1000, 50, 18}, "/home/app"}, ""},
		{"name, member after a space", "nginx", alpineFS, execUser{101, 101, []uint32{101, 50, 101}, "/var/cache/nginx"}, ""},
		{"uid in passwd", "1000", alpineFS, execUser{1000, 1000, []uint32{1000, 50, 18}, "/home/app"}, ""},
		{"uid not in passwd", "4242", alpineFS, execUser{4242, 0, []uint32{0}, "/"}, ""},
		{"uid:gid", "1000:1000", alpineFS, execUser{1000, 1000, []uint32{1000}, "/home/app"}, ""},
		{"uid:gid, both absent", "4242:4343", alpineFS, execUser{4242, 4343, []uint32{4343}, "/"}, ""},
		{"name:group", "app:staff", alpineFS, execUser{1000, 50, []uint32{50}, "/home/app"}, ""},
		{"uid:group", "4242:audio", alpineFS, execUser{4242, 18, []uint32{18}, "/"}, ""},
		{"name:gid", "nginx:0", alpineFS, execUser{101, 0, []uint32{0}, "/var/cache/nginx"}, ""},
		{":gid is root with that gid", ":50", alpineFS, execUser{0, 50, []uint32{50}, "/root"}, ""},
		{"name: (empty group) is implicit", "app:", alpineFS, execUser{1000, 1000, []uint32{1000, 50, 18}, "/home/app"}, ""},
		{"empty home is /", "nohome", alpineFS, execUser{1001, 1001, []uint32{1001}, "/"}, ""},
		{"no /etc/group: no supplementary groups", "app", noGroup, execUser{1000, 1000, []uint32{1000}, "/home/app"}, ""},
		{"no /etc/group: numeric group works", "app:77", noGroup, execUser{1000, 77, []uint32{77}, "/home/app"}, ""},
		{"no /etc/passwd: default root", "", empty, execUser{0, 0, []uint32{0}, "/"}, ""},
		{"no /etc/passwd: numeric works", "33:33", empty, execUser{33, 33, []uint32{33}, "/"}, ""},
		{"nil reader: numeric works", "33", nil, execUser{33, 0, []uint32{0}, "/"}, ""},
		{"no /etc/passwd: name fails", "app", empty, execUser{}, `user "app": the image has no /etc/passwd`},
		{"no /etc/group: group name fails", "app:staff", noGroup, execUser{}, `user "app:staff": the image has no /etc/group`},
		{"unknown name", "ghost", alpineFS, execUser{}, `user "ghost": no user "ghost"`},
		{"unknown group", "app:ghosts", alpineFS, execUser{}, `user "app:ghosts": no group "ghosts"`},
		{"unknown name with numeric group", "ghost:0", alpineFS, execUser{}, `no user "ghost"`},
		{"negative gid", "app:-1", alpineFS, execUser{}, "gid -1 out of range"},
		{"three fields", "a:b:c", alpineFS, execUser{}, "want user[:group]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			read := c.read
			if read == nil {
				read = fakeImageFS(nil)
			}
			got, err := resolveUser(c.spec, read)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("error %v, want an invalid argument containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestResolveUserMalformedFiles(t *testing.T) {
	read := fakeImageFS(map[string]string{
		// A line whose uid is not a number is skipped, not taken for root
		// (runc would read it as uid 0); the first valid match wins.
		"/etc/passwd": "\n  \nweird:x:abc:0::/w:/bin/sh\nshort:x:5\nweird:x:7:8::/home/weird:/bin/sh\nweird:x:9:9::/other:/bin/sh\n",
		"/etc/group":  "broken:x:zz:weird\ngrp:x:30:weird\nnomembers:x:31\n",
	})
	got, err := resolveUser("weird", read)
	if err != nil {
		t.Fatal(err)
	}
	want := execUser{7, 8, []uint32{8, 30}, "/home/weird"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if _, err := resolveUser("short", read); err == nil {
		t.Error(`"short" (a line without gid) resolved, want no such user`)
	}
}

func TestResolveUserReadError(t *testing.T) {
	boom := errors.New("layer unreadable")
	read := func(p string) ([]byte, error) { return nil, boom }
	_, err := resolveUser("app", read)
	if !errors.Is(err, boom) || errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("error %v: want the read error, not an invalid argument", err)
	}
	pinSpecHost(t)
	if _, err := GenerateSpec(alpineConfig(), SpecRequest{ID: specTestID}, read); !errors.Is(err, boom) {
		t.Fatalf("GenerateSpec: error %v, want the read error", err)
	}
}

func TestGenerateSpecRlimitNofile(t *testing.T) {
	pinSpecHost(t)
	for _, c := range []struct {
		hard, want uint64
	}{{20000, 20000}, {1048576, 1048576}, {4 << 20, 1048576}, {math.MaxUint64, 1048576}} {
		nofileHardLimit = func() (uint64, error) { return c.hard, nil }
		spec, err := GenerateSpec(alpineConfig(), SpecRequest{ID: specTestID}, alpineFS)
		if err != nil {
			t.Fatal(err)
		}
		want := []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: c.want, Soft: c.want}}
		if !reflect.DeepEqual(spec.Process.Rlimits, want) {
			t.Errorf("hard limit %d: rlimits %+v, want %+v", c.hard, spec.Process.Rlimits, want)
		}
	}
}

func TestGenerateSpecResources(t *testing.T) {
	pinSpecHost(t)
	i64 := func(v int64) *int64 { return &v }
	cases := []struct {
		name   string
		req    SpecRequest
		noSwap bool // host without swap accounting
		check  func(t *testing.T, r *specs.LinuxResources)
	}{
		{"cpus 1.5", SpecRequest{CPUs: 1.5}, false, func(t *testing.T, r *specs.LinuxResources) {
			if *r.CPU.Quota != 150000 || *r.CPU.Period != 100000 || r.CPU.Shares != nil {
				t.Errorf("cpu %+v", r.CPU)
			}
		}},
		{"cpus 0.01", SpecRequest{CPUs: 0.01}, false, func(t *testing.T, r *specs.LinuxResources) {
			if *r.CPU.Quota != 1000 {
				t.Errorf("quota %d, want 1000", *r.CPU.Quota)
			}
		}},
		{"cpus all", SpecRequest{CPUs: 4}, false, func(t *testing.T, r *specs.LinuxResources) {
			if *r.CPU.Quota != 400000 {
				t.Errorf("quota %d, want 400000", *r.CPU.Quota)
			}
		}},
		{"shares clamped low", SpecRequest{CPUShares: 1}, false, func(t *testing.T, r *specs.LinuxResources) {
			if *r.CPU.Shares != 2 || r.CPU.Quota != nil {
				t.Errorf("cpu %+v", r.CPU)
			}
		}},
		{"shares clamped high", SpecRequest{CPUShares: 1 << 20}, false, func(t *testing.T, r *specs.LinuxResources) {
			if *r.CPU.Shares != 262144 {
				t.Errorf("shares %d", *r.CPU.Shares)
			}
		}},
		{"nothing set", SpecRequest{}, false, func(t *testing.T, r *specs.LinuxResources) {
			if r.CPU != nil || r.Memory != nil || r.Pids != nil || len(r.Devices) != 13 {
				t.Errorf("resources %+v", r)
			}
		}},
		{"memory: swap defaults to twice", SpecRequest{Memory: 100 << 20}, false, func(t *testing.T, r *specs.LinuxResources) {
			if !reflect.DeepEqual(r.Memory, &specs.LinuxMemory{Limit: i64(100 << 20), Swap: i64(200 << 20)}) {
				t.Errorf("memory %+v", r.Memory)
			}
		}},
		{"memory: swap unlimited", SpecRequest{Memory: 100 << 20, MemorySwap: -1}, false, func(t *testing.T, r *specs.LinuxResources) {
			if *r.Memory.Swap != -1 {
				t.Errorf("swap %d", *r.Memory.Swap)
			}
		}},
		{"memory: swap equal to memory (no swap)", SpecRequest{Memory: 100 << 20, MemorySwap: 100 << 20}, false, func(t *testing.T, r *specs.LinuxResources) {
			if *r.Memory.Swap != 100<<20 {
				t.Errorf("swap %d", *r.Memory.Swap)
			}
		}},
		{"memory: swap -1 alone sets nothing", SpecRequest{MemorySwap: -1}, false, func(t *testing.T, r *specs.LinuxResources) {
			if r.Memory != nil {
				t.Errorf("memory %+v", r.Memory)
			}
		}},
		{"memory: huge limit, swap unlimited", SpecRequest{Memory: math.MaxInt64}, false, func(t *testing.T, r *specs.LinuxResources) {
			if *r.Memory.Swap != -1 {
				t.Errorf("swap %d", *r.Memory.Swap)
			}
		}},
		{"memory: no swap accounting", SpecRequest{Memory: 100 << 20, MemorySwap: 300 << 20}, true, func(t *testing.T, r *specs.LinuxResources) {
			if !reflect.DeepEqual(r.Memory, &specs.LinuxMemory{Limit: i64(100 << 20)}) {
				t.Errorf("memory %+v", r.Memory)
			}
		}},
		{"reservation alone", SpecRequest{MemoryReservation: 50 << 20}, false, func(t *testing.T, r *specs.LinuxResources) {
			if !reflect.DeepEqual(r.Memory, &specs.LinuxMemory{Reservation: i64(50 << 20)}) {
				t.Errorf("memory %+v", r.Memory)
			}
		}},
		{"pids unlimited", SpecRequest{PidsLimit: -5}, false, func(t *testing.T, r *specs.LinuxResources) {
			if *r.Pids.Limit != -1 {
				t.Errorf("pids %d", *r.Pids.Limit)
			}
		}},
		{"pids limit", SpecRequest{PidsLimit: 64}, false, func(t *testing.T, r *specs.LinuxResources) {
			if *r.Pids.Limit != 64 {
				t.Errorf("pids %d", *r.Pids.Limit)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			swapLimitSupported = func(bool) bool { return !c.noSwap }
			c.req.ID = specTestID
			spec, err := GenerateSpec(alpineConfig(), c.req, nil)
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, spec.Linux.Resources)
		})
	}
}

func TestGenerateSpecSeccompAndNamespaces(t *testing.T) {
	pinSpecHost(t)
	spec, err := GenerateSpec(alpineConfig(), SpecRequest{ID: specTestID, Seccomp: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Linux.Seccomp == nil || !reflect.DeepEqual(spec.Linux.Seccomp, DefaultSeccomp()) {
		t.Error("Seccomp: true did not apply DefaultSeccomp()")
	}
	spec, err = GenerateSpec(alpineConfig(), SpecRequest{ID: specTestID}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Linux.Seccomp != nil {
		t.Error("seccomp set without Seccomp: true")
	}

	types := func(s *specs.Spec) (out []specs.LinuxNamespaceType) {
		for _, n := range s.Linux.Namespaces {
			out = append(out, n.Type)
		}
		return out
	}
	for _, c := range []struct {
		network string
		v2      bool
		want    []specs.LinuxNamespaceType
	}{
		{"", false, []specs.LinuxNamespaceType{"pid", "ipc", "uts", "mount", "network"}},
		{"none", true, []specs.LinuxNamespaceType{"pid", "ipc", "uts", "mount", "network", "cgroup"}},
		{"host", false, []specs.LinuxNamespaceType{"pid", "ipc", "uts", "mount"}},
		{"host", true, []specs.LinuxNamespaceType{"pid", "ipc", "uts", "mount", "cgroup"}},
	} {
		spec, err := GenerateSpec(alpineConfig(), SpecRequest{ID: specTestID, Network: c.network, CgroupV2: c.v2}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := types(spec); !reflect.DeepEqual(got, c.want) {
			t.Errorf("network %q, v2 %v: namespaces %v, want %v", c.network, c.v2, got, c.want)
		}
	}

	// With the host's network and no hostname, the host's name is used
	// (Docker); an explicit one still wins.
	spec, err = GenerateSpec(alpineConfig(), SpecRequest{ID: specTestID, Network: "host", Hostname: "mine"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Hostname != "mine" {
		t.Errorf("hostname %q, want mine", spec.Hostname)
	}
}

// TestGenerateSpecDoesNotAlias checks that specs share no slices with the
// package's defaults or with one another.
func TestGenerateSpecDoesNotAlias(t *testing.T) {
	pinSpecHost(t)
	a, err := GenerateSpec(alpineConfig(), SpecRequest{ID: specTestID}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Process.Capabilities.Bounding[0] = "CAP_SYS_ADMIN"
	a.Linux.MaskedPaths[0] = "/x"
	a.Linux.ReadonlyPaths[0] = "/y"
	a.Mounts[0].Options[0] = "z"
	b, err := GenerateSpec(alpineConfig(), SpecRequest{ID: specTestID}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.Process.Capabilities.Bounding[0] != "CAP_CHOWN" || b.Process.Capabilities.Effective[0] != "CAP_CHOWN" ||
		b.Linux.MaskedPaths[0] != "/proc/asound" || b.Linux.ReadonlyPaths[0] != "/proc/bus" || b.Mounts[0].Options[0] != "nosuid" {
		t.Error("a second spec saw changes made to the first")
	}
}

// TestGenerateSpecRuntimes runs generated specs under runc and crun (each
// where installed; crun through the hybrid-cgroup workaround of
// shared/reference/peers-on-this-machine.md) and checks what the process sees:
// the user and groups, a working directory the runtime had to create, HOME,
// the hostname and /etc files, a read-only bind, and the limits.
func TestGenerateSpecRuntimes(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: not running containers")
	}
	testutil.RequireRoot(t)
	busybox := testutil.RequireBinary(t, "/bin/busybox")
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		t.Fatal(err)
	}
	cgroupV2 := st.Type == unix.CGROUP2_SUPER_MAGIC

	for _, rt := range testutil.Runtimes(t) {
		name, bin := rt.Name, rt.Binary
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			bundle := filepath.Join(dir, "bundle")
			rootfs := filepath.Join(bundle, "rootfs")
			for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "data", "home/app"} {
				if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			bb, err := os.ReadFile(busybox)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), bb, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, a := range []string{"sh", "id", "pwd", "cat", "hostname", "touch", "echo"} {
				if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", a)); err != nil {
					t.Fatal(err)
				}
			}
			files := map[string]string{"/etc/passwd": alpinePasswd, "/etc/group": alpineGroup}
			for p, s := range files {
				if err := os.WriteFile(filepath.Join(rootfs, p), []byte(s), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			hostData := filepath.Join(dir, "hostdata")
			if err := os.MkdirAll(hostData, 0o755); err != nil {
				t.Fatal(err)
			}
			etc := map[string]string{"hosts": "127.0.0.1 localhost\n", "hostname": "probe\n", "resolv.conf": "nameserver 192.0.2.53\n", "hostdata/file": "from the host\n"}
			for p, s := range etc {
				if err := os.WriteFile(filepath.Join(dir, p), []byte(s), 0o644); err != nil {
					t.Fatal(err)
				}
			}

			id := fmt.Sprintf("condenser-spec-test-%d-%d", os.Getpid(), time.Now().UnixNano())
			req := SpecRequest{
				ID:         id,
				Command:    []string{"sh", "-c", `id; pwd; echo "HOME=$HOME"; hostname; cat /etc/hostname /etc/resolv.conf /data/file; ulimit -n; touch /data/x 2>/dev/null || echo ro-bind`},
				User:       "app",
				WorkingDir: "/work/missing",
				Hostname:   "probe",
				Mounts:     []string{hostData + ":/data:ro"},
				Memory:     64 << 20,
				CPUs:       0.5,
				PidsLimit:  50,
				CgroupV2:   cgroupV2,
				Seccomp:    true,
				HostsPath:  filepath.Join(dir, "hosts"), HostnamePath: filepath.Join(dir, "hostname"), ResolvConfPath: filepath.Join(dir, "resolv.conf"),
				NoNewPrivileges: true,
			}
			spec, err := GenerateSpec(alpineConfig(), req, func(p string) ([]byte, error) { return os.ReadFile(filepath.Join(rootfs, p)) })
			if err != nil {
				t.Fatal(err)
			}
			data, err := json.MarshalIndent(spec, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644); err != nil {
				t.Fatal(err)
			}

			// Remove the /condenser parent cgroups this test creates (runtimes
			// remove only the container's own), once the container is gone.
			existed := map[string]bool{}
			for _, p := range cgroupParents() {
				existed[p] = true
			}
			t.Cleanup(func() {
				for _, p := range cgroupParents() {
					if !existed[p] {
						os.Remove(p) // rmdir: fails harmlessly if in use
					}
				}
			})
			state := filepath.Join(dir, "state")
			t.Cleanup(func() {
				out, err := exec.Command(bin, "--root", state, "delete", "--force", id).CombinedOutput()
				if err != nil && !strings.Contains(string(out), "does not exist") && !strings.Contains(string(out), "not found") {
					t.Logf("%s delete %s: %v: %s", name, id, err, out)
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "--root", state, "run", "--bundle", bundle, id)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s run: %v\nstdout: %s\nstderr: %s", name, err, stdout.String(), stderr.String())
			}
			wantNofile := min(hostNofile(t), 1048576)
			want := strings.Join([]string{
				"uid=1000(app) gid=1000(app) groups=18(audio),50(staff),1000(app)",
				"/work/missing",
				"HOME=/home/app",
				"probe",
				"probe",
				"nameserver 192.0.2.53",
				"from the host",
				fmt.Sprint(wantNofile),
				"ro-bind",
			}, "\n") + "\n"
			if got := stdout.String(); got != want {
				t.Errorf("container output:\n%s\nwant:\n%s\nstderr: %s", got, want, stderr.String())
			}
		})
	}
}

func hostNofile(t *testing.T) uint64 {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	return rl.Max
}

// cgroupParents lists the cgroup directories of cgroupParent (v2, or one per
// v1 hierarchy).
func cgroupParents() []string {
	v2, _ := filepath.Glob("/sys/fs/cgroup" + cgroupParent)
	v1, _ := filepath.Glob("/sys/fs/cgroup/*" + cgroupParent)
	return append(v2, v1...)
}
