package oci

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/raind/condenser/internal/errdefs"
)

var specUpdate = flag.Bool("update", false, "rewrite the golden files in testdata/")

const specTestID = "3f2a9c1d7e5b4a60c8d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0"

// pinSpecHost replaces the host facts Generate reads with fixed ones.
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

// fakeImageFS reads files from a map of file contents.
func fakeImageFS(files map[string]string) fileReader {
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

func withEtcFiles(r Request) Request {
	dir := "/run/condenser/shims/" + r.ID
	r.Etc = EtcFiles{Hosts: dir + "/hosts", Hostname: dir + "/hostname", ResolvConf: dir + "/resolv.conf"}
	return r
}

func TestGenerateSpecGolden(t *testing.T) {
	pinSpecHost(t)
	cases := []struct {
		name string
		img  *v1.Config
		req  Request
	}{
		{
			// docker run alpine: image defaults, Condenser's default network.
			name: "alpine-default",
			img:  alpineConfig(),
			req:  withEtcFiles(Request{ID: specTestID, Name: "quirky_turing", Config: Config{Network: "raind0"}}),
		},
		{
			// docker run --entrypoint /bin/echo -e X=1 -u nginx --label ... nginx hello
			name: "nginx-entrypoint-user-env-labels",
			img:  nginxConfig(),
			req: withEtcFiles(Request{ID: specTestID, Name: "web", Config: Config{
				Entrypoint: []string{"/bin/echo"},
				Command:    []string{"hello"},
				Env:        []string{"NGINX_VERSION=override", "X=1", "EMPTY="},
				User:       "nginx",
				Labels:     map[string]string{"org.example.tier": "request", "com.example.owner": "ops"},
			}}),
		},
		{
			// docker run --network host --read-only --security-opt no-new-privileges -u 1000:50 -w /srv -v ...
			name: "host-network-readonly-binds",
			img:  alpineConfig(),
			req: withEtcFiles(Request{ID: specTestID, Name: "hostnet", NoNewPrivileges: true, Config: Config{
				Command:    []string{"sh", "-c", "sleep 1"},
				Network:    "host",
				ReadOnly:   true,
				User:       "1000:50",
				WorkingDir: "/srv/app/",
				Mounts:     []string{"/srv/data/cache:/data/cache", "/srv/data:/data:ro", "/etc/ssl/certs:/etc/ssl/certs:rw"},
			}}),
		},
		{
			// Resource limits on a cgroup v2 host, user with supplementary groups.
			name: "resources-cgroupv2",
			img:  alpineConfig(),
			req: Request{ID: specTestID, Name: "limited", CgroupV2: true, Config: Config{
				Command:           []string{"/bin/sh"},
				Hostname:          "worker-1",
				User:              "app",
				Memory:            256 << 20,
				MemoryReservation: 128 << 20,
				MemorySwap:        512 << 20,
				CPUs:              1.5,
				CPUShares:         512,
				PidsLimit:         100,
				Network:           "none",
			}},
		},
		{
			// Binds that replace default mounts and /etc files; cleared
			// entrypoint keeps the image's Cmd ([] through the API).
			name: "bind-overrides",
			img:  nginxConfig(),
			req: withEtcFiles(Request{ID: specTestID, Name: "overrides", Config: Config{
				Entrypoint: []string{},
				Mounts:     []string{"/host/shm:/dev/shm", "/host/hosts:/etc/hosts:ro", "/host/deep:/a/b/c", "/host/a:/a"},
				Memory:     64 << 20,
				PidsLimit:  32,
			}}),
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec, err := Generate(c.img, c.req, alpineFS)
			if err != nil {
				t.Fatalf("Generate: %v", err)
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
				t.Fatalf("%v (run go test ./supervisor/oci/ -run TestGenerateSpecGolden -update to create it)", err)
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

// TestConfigValidate is Validate's table: what is judged without an image.
// Every case is also checked through Generate, which must refuse (or accept)
// the same config.
func TestConfigValidate(t *testing.T) {
	pinSpecHost(t)
	cases := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" is valid
	}{
		{"zero config", Config{}, ""},
		{"everything valid", Config{
			Entrypoint: []string{"/bin/sh"}, Command: []string{"-c", "true"}, Env: []string{"A=1", "B=", "C=x=y"},
			Mounts: []string{"/srv:/data:ro", "/srv/x:/x:rw", "/tmp//y/:/y/"}, WorkingDir: "/w", User: "app:staff",
			Hostname: "web-1.example_x", Labels: map[string]string{"a": ""}, Network: "host",
			Memory: 6 << 20, CPUs: 4, PidsLimit: 1, ReadOnly: true,
			MemoryReservation: 6 << 20, MemorySwap: -1, CPUShares: 1,
		}, ""},
		{"entrypoint []", Config{Entrypoint: []string{}}, ""},
		{`entrypoint [""]`, Config{Entrypoint: []string{""}, Command: []string{"x"}}, ""},
		{"networks", Config{Network: "raind0"}, ""},
		{"network none", Config{Network: "none"}, ""},
		{"bad network name", Config{Network: "a/b"}, `network "a/b": not a valid network name`},
		{"hostname 64 bytes", Config{Hostname: strings.Repeat("h", 64)}, ""},
		{"hostname too long", Config{Hostname: strings.Repeat("h", 65)}, "longer than 64"},
		{"hostname bad chars", Config{Hostname: "a b"}, `hostname "a b": only letters`},
		{"relative workdir", Config{WorkingDir: "app"}, `workdir "app": not an absolute path`},
		{"user name is not checked", Config{User: "ghost:ghosts"}, ""},
		{"negative uid", Config{User: "-1"}, "uid -1 out of range"},
		{"uid too large", Config{User: "2147483648"}, "uid 2147483648 out of range"},
		{"negative gid", Config{User: "app:-1"}, "gid -1 out of range"},
		{"too many colons", Config{User: "1:2:3"}, "want user[:group]"},
		{"nul in command", Config{Command: []string{"echo", "a\x00b"}}, `command ["echo" "a\x00b"]: an argument contains a NUL byte`},
		{"nul in entrypoint", Config{Entrypoint: []string{"a\x00"}}, "entrypoint"},
		{"env without =", Config{Env: []string{"A=1", "FOO"}}, `env "FOO": want KEY=VALUE`},
		{"env empty key", Config{Env: []string{"=x"}}, `env "=x": empty variable name`},
		{"env nul", Config{Env: []string{"A=\x00"}}, "contains a NUL byte"},
		{"mount one part", Config{Mounts: []string{"/data"}}, `mount "/data": want /host/path:/container/path`},
		{"mount four parts", Config{Mounts: []string{"/a:/b:ro:z"}}, "want /host/path:/container/path"},
		{"mount bad mode", Config{Mounts: []string{"/a:/b:z"}}, `unknown mode "z"`},
		{"mount relative host", Config{Mounts: []string{"data:/data"}}, `host path "data" is not absolute`},
		{"mount named volume", Config{Mounts: []string{"vol:/data"}}, `host path "vol" is not absolute`},
		{"mount empty host", Config{Mounts: []string{":/data"}}, `host path "" is not absolute`},
		{"mount host dotdot", Config{Mounts: []string{"/srv/../etc:/data"}}, `host path "/srv/../etc" contains ".."`},
		{"mount relative target", Config{Mounts: []string{"/srv:data"}}, `container path "data" is not absolute`},
		{"mount empty target", Config{Mounts: []string{"/srv:"}}, `container path "" is not absolute`},
		{"mount target dotdot", Config{Mounts: []string{"/srv:/data/../etc"}}, `container path "/data/../etc" contains ".."`},
		{"mount target root", Config{Mounts: []string{"/srv:/"}}, "container's root"},
		{"mount target root unclean", Config{Mounts: []string{"/srv://."}}, "container's root"},
		{"mount duplicate target", Config{Mounts: []string{"/a:/data", "/b:/data/"}}, "duplicate mount point /data"},
		{"label without key", Config{Labels: map[string]string{"ok": "1", "": "x"}}, "labels: a label needs a key"},
		{"cpus negative", Config{CPUs: -1}, "cpus -1: range of CPUs is from 0.01 to 4.00"},
		{"cpus too small", Config{CPUs: 0.001}, "cpus 0.001"},
		{"cpus too many", Config{CPUs: 4.5}, "cpus 4.5"},
		{"cpus NaN", Config{CPUs: math.NaN()}, "cpus NaN"},
		{"cpus Inf", Config{CPUs: math.Inf(1)}, "cpus +Inf"},
		{"pids negative", Config{PidsLimit: -1}, "pids -1: must not be negative"},
		{"memory negative", Config{Memory: -1}, "memory -1: must not be negative"},
		{"memory too small", Config{Memory: 1 << 20}, "memory 1048576: the minimum memory limit is 6MB"},
		{"reservation negative", Config{MemoryReservation: -5}, "memoryReservation -5"},
		{"reservation too small", Config{MemoryReservation: 4096}, "memoryReservation 4096"},
		{"reservation above limit", Config{Memory: 64 << 20, MemoryReservation: 128 << 20}, "larger than the memory limit"},
		{"swap below -1", Config{Memory: 64 << 20, MemorySwap: -2}, "memorySwap -2"},
		{"swap without memory", Config{MemorySwap: 64 << 20}, "set memory too"},
		{"swap below memory", Config{Memory: 64 << 20, MemorySwap: 32 << 20}, "smaller than the memory limit"},
		// Validate does not look at the host: a missing host path is
		// Generate's to refuse (TestGenerateSpecInvalid).
		{"mount host missing is not checked", Config{Mounts: []string{"/srv/missing:/data"}}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			check := func(what string, err error) {
				t.Helper()
				switch {
				case c.want == "" && err != nil:
					t.Errorf("%s: %v, want no error", what, err)
				case c.want != "" && err == nil:
					t.Errorf("%s succeeded, want an error containing %q", what, c.want)
				case c.want != "" && !errors.Is(err, errdefs.ErrInvalidArgument):
					t.Errorf("%s: error %q does not wrap ErrInvalidArgument", what, err)
				case c.want != "" && !strings.Contains(err.Error(), c.want):
					t.Errorf("%s: error %q does not contain %q", what, err, c.want)
				}
			}
			check("Validate", c.cfg.Validate())
			if strings.Contains(c.name, "not checked") { // Generate refuses it
				return
			}
			_, err := Generate(alpineConfig(), Request{ID: specTestID, Config: c.cfg}, alpineFS)
			check("Generate", err)
		})
	}
}

// TestGenerateSpecInvalid: what only Generate can refuse, knowing the id,
// the image and the host.
func TestGenerateSpecInvalid(t *testing.T) {
	pinSpecHost(t)
	base := func() Request { return Request{ID: specTestID, Config: Config{Command: []string{"true"}}} }
	cases := []struct {
		name string
		img  *v1.Config
		mod  func(*Request)
		want string // substring of the error
	}{
		{"no id", nil, func(r *Request) { r.ID = "" }, `container id ""`},
		{"id with slash", nil, func(r *Request) { r.ID = "a/b" }, `container id "a/b"`},
		{"id dotdot", nil, func(r *Request) { r.ID = ".." }, `container id ".."`},
		{"id is a name", nil, func(r *Request) { r.ID = "web-1" }, `container id "web-1"`},
		{"id of upper-case hex", nil, func(r *Request) { r.ID = strings.ToUpper(specTestID) }, "lowercase hex"},
		{"short id", nil, func(r *Request) { r.ID = specTestID[:12] }, "lowercase hex"},
		{"invalid config", nil, func(r *Request) { r.Config.Network = "a b" }, `network "a b"`},
		{"empty command, no image", nil, func(r *Request) { r.Config.Command = nil }, "no command specified"},
		{"empty command, image without cmd", &v1.Config{}, func(r *Request) { r.Config.Command = []string{} }, "no command specified"},
		{"entrypoint cleared drops image cmd", alpineConfig(), func(r *Request) { r.Config.Command = nil; r.Config.Entrypoint = []string{""} }, "no command specified"},
		{"empty program", nil, func(r *Request) { r.Config.Command = []string{"", "x"} }, "program name is empty"},
		{"nul in image cmd", &v1.Config{Cmd: []string{"a\x00"}}, func(r *Request) { r.Config.Command = nil }, "NUL"},
		{"relative image workdir", &v1.Config{WorkingDir: "app"}, func(r *Request) {}, `WorkingDir "app"`},
		{"unknown user", nil, func(r *Request) { r.Config.User = "ghost" }, `no user "ghost"`},
		{"unknown group", nil, func(r *Request) { r.Config.User = "app:ghosts" }, `no group "ghosts"`},
		{"image user unknown", &v1.Config{User: "ghost", Cmd: []string{"x"}}, func(r *Request) { r.Config.Command = nil }, `no user "ghost"`},
		{"image user out of range", &v1.Config{User: "-1", Cmd: []string{"x"}}, func(r *Request) { r.Config.Command = nil }, "uid -1 out of range"},
		{"mount host missing", nil, func(r *Request) { r.Config.Mounts = []string{"/srv:/ok", "/srv/missing:/data"} }, `mount "/srv/missing:/data": host path "/srv/missing" does not exist`},
		{"hosts path relative", nil, func(r *Request) { r.Etc.Hosts = "hosts" }, `Etc.Hosts "hosts"`},
		{"resolv.conf path dotdot", nil, func(r *Request) { r.Etc.ResolvConf = "/run/../etc/resolv.conf" }, "Etc.ResolvConf"},
		{"cgroup parent dotdot", nil, func(r *Request) { r.CgroupParent = "/condenser/../x" }, `cgroup parent "/condenser/../x"`},
		{"cgroup parent systemd", nil, func(r *Request) { r.CgroupParent = "system.slice:condenser:x" }, "cgroup parent"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := base()
			c.mod(&req)
			spec, err := Generate(c.img, req, alpineFS)
			if err == nil {
				t.Fatalf("Generate succeeded (args %q), want an error containing %q", spec.Process.Args, c.want)
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

func TestValidCgroupParent(t *testing.T) {
	for _, p := range []string{"/condenser", "/condenser-test-0123abcd", "/a/b.c/d_e", "/docker"} {
		if err := ValidCgroupParent(p); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
	for _, p := range []string{"", "/", "//", "condenser", "./condenser", "/condenser/", "/a//b", "/a/./b", "/a/../b", "/..", "/a/..",
		"system.slice:condenser:x", "/a b", "/a\tb", "/a\nb", "/a\x00b", "/a\\b", "/\xff"} {
		if err := ValidCgroupParent(p); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%q: %v, want an error wrapping ErrInvalidArgument", p, err)
		}
	}
}

// TestConfigJSON: Config's JSON keys are the stored records' (a record
// written before the move still decodes), and an entrypoint cleared with []
// survives a round trip — it still clears the image's entrypoint after a
// daemon restart reloads the record.
func TestConfigJSON(t *testing.T) {
	pinSpecHost(t)
	old := `{"entrypoint":["/e"],"command":["c"],"env":["A=1"],"mounts":["/a:/b"],"workdir":"/w","user":"u",` +
		`"hostname":"h","labels":{"k":"v"},"network":"host","memory":1,"cpus":0.5,"pids":3,"readOnly":true}`
	var got Config
	if err := json.Unmarshal([]byte(old), &got); err != nil {
		t.Fatal(err)
	}
	want := Config{Entrypoint: []string{"/e"}, Command: []string{"c"}, Env: []string{"A=1"}, Mounts: []string{"/a:/b"},
		WorkingDir: "/w", User: "u", Hostname: "h", Labels: map[string]string{"k": "v"}, Network: "host",
		Memory: 1, CPUs: 0.5, PidsLimit: 3, ReadOnly: true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded %+v, want %+v", got, want)
	}

	for _, c := range []struct {
		name       string
		entrypoint []string
		json       string
		args       []string
	}{
		{"nil keeps the image's", nil, `{"entrypoint":null}`, []string{"/docker-entrypoint.sh", "nginx", "-g", "daemon off;"}},
		{"[] clears it", []string{}, `{"entrypoint":[]}`, []string{"nginx", "-g", "daemon off;"}},
		{`[""] clears it and the cmd`, []string{""}, `{"entrypoint":[""],"command":["ls"]}`, []string{"ls"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := Config{Entrypoint: c.entrypoint}
			if len(c.entrypoint) > 0 && c.entrypoint[0] == "" {
				cfg.Command = []string{"ls"}
			}
			b, err := json.Marshal(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != c.json {
				t.Errorf("JSON %s, want %s", b, c.json)
			}
			var back Config
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if (back.Entrypoint == nil) != (c.entrypoint == nil) || len(back.Entrypoint) != len(c.entrypoint) {
				t.Errorf("entrypoint %#v after the round trip, want %#v", back.Entrypoint, c.entrypoint)
			}
			spec, err := Generate(nginxConfig(), Request{ID: specTestID, Config: back}, alpineFS)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(spec.Process.Args, c.args) {
				t.Errorf("args %q, want %q", spec.Process.Args, c.args)
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
			spec, err := Generate(c.img, Request{ID: specTestID, Config: Config{Entrypoint: c.entrypoint, Command: c.command}}, nil)
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
			spec, err := Generate(img, Request{ID: specTestID, Config: Config{Env: c.reqEnv, User: c.user}}, alpineFS)
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
		read    fileReader
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
	if _, err := Generate(alpineConfig(), Request{ID: specTestID}, read); !errors.Is(err, boom) {
		t.Fatalf("Generate: error %v, want the read error", err)
	}
}

func TestGenerateSpecRlimitNofile(t *testing.T) {
	pinSpecHost(t)
	for _, c := range []struct {
		hard, want uint64
	}{{20000, 20000}, {1048576, 1048576}, {4 << 20, 1048576}, {math.MaxUint64, 1048576}} {
		nofileHardLimit = func() (uint64, error) { return c.hard, nil }
		spec, err := Generate(alpineConfig(), Request{ID: specTestID}, alpineFS)
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
		req    Config
		noSwap bool // host without swap accounting
		check  func(t *testing.T, r *specs.LinuxResources)
	}{
		{"cpus 1.5", Config{CPUs: 1.5}, false, func(t *testing.T, r *specs.LinuxResources) {
			if *r.CPU.Quota != 150000 || *r.CPU.Period != 100000 || r.CPU.Shares != nil {
				t.Errorf("cpu %+v", r.CPU)
			}
		}},
		{"cpus 0.01", Config{CPUs: 0.01}, false, func(t *testing.T, r *specs.LinuxResources) {
			if *r.CPU.Quota != 1000 {
				t.Errorf("quota %d, want 1000", *r.CPU.Quota)
			}
		}},
		{"cpus all", Config{CPUs: 4}, false, func(t *testing.T, r *specs.LinuxResources) {
			if *r.CPU.Quota != 400000 {
				t.Errorf("quota %d, want 400000", *r.CPU.Quota)
			}
		}},
		{"shares clamped low", Config{CPUShares: 1}, false, func(t *testing.T, r *specs.LinuxResources) {
			if *r.CPU.Shares != 2 || r.CPU.Quota != nil {
				t.Errorf("cpu %+v", r.CPU)
			}
		}},
		{"shares clamped high", Config{CPUShares: 1 << 20}, false, func(t *testing.T, r *specs.LinuxResources) {
			if *r.CPU.Shares != 262144 {
				t.Errorf("shares %d", *r.CPU.Shares)
			}
		}},
		{"nothing set", Config{}, false, func(t *testing.T, r *specs.LinuxResources) {
			if r.CPU != nil || r.Memory != nil || r.Pids != nil || len(r.Devices) != 13 {
				t.Errorf("resources %+v", r)
			}
		}},
		{"memory: swap defaults to twice", Config{Memory: 100 << 20}, false, func(t *testing.T, r *specs.LinuxResources) {
			if !reflect.DeepEqual(r.Memory, &specs.LinuxMemory{Limit: i64(100 << 20), Swap: i64(200 << 20)}) {
				t.Errorf("memory %+v", r.Memory)
			}
		}},
		{"memory: swap unlimited", Config{Memory: 100 << 20, MemorySwap: -1}, false, func(t *testing.T, r *specs.LinuxResources) {
			if *r.Memory.Swap != -1 {
				t.Errorf("swap %d", *r.Memory.Swap)
			}
		}},
		{"memory: swap equal to memory (no swap)", Config{Memory: 100 << 20, MemorySwap: 100 << 20}, false, func(t *testing.T, r *specs.LinuxResources) {
			if *r.Memory.Swap != 100<<20 {
				t.Errorf("swap %d", *r.Memory.Swap)
			}
		}},
		{"memory: swap -1 alone sets nothing", Config{MemorySwap: -1}, false, func(t *testing.T, r *specs.LinuxResources) {
			if r.Memory != nil {
				t.Errorf("memory %+v", r.Memory)
			}
		}},
		{"memory: huge limit, swap unlimited", Config{Memory: math.MaxInt64}, false, func(t *testing.T, r *specs.LinuxResources) {
			if *r.Memory.Swap != -1 {
				t.Errorf("swap %d", *r.Memory.Swap)
			}
		}},
		{"memory: no swap accounting", Config{Memory: 100 << 20, MemorySwap: 300 << 20}, true, func(t *testing.T, r *specs.LinuxResources) {
			if !reflect.DeepEqual(r.Memory, &specs.LinuxMemory{Limit: i64(100 << 20)}) {
				t.Errorf("memory %+v", r.Memory)
			}
		}},
		{"reservation alone", Config{MemoryReservation: 50 << 20}, false, func(t *testing.T, r *specs.LinuxResources) {
			if !reflect.DeepEqual(r.Memory, &specs.LinuxMemory{Reservation: i64(50 << 20)}) {
				t.Errorf("memory %+v", r.Memory)
			}
		}},
		{"pids limit", Config{PidsLimit: 64}, false, func(t *testing.T, r *specs.LinuxResources) {
			if *r.Pids.Limit != 64 {
				t.Errorf("pids %d", *r.Pids.Limit)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			swapLimitSupported = func(bool) bool { return !c.noSwap }
			spec, err := Generate(alpineConfig(), Request{ID: specTestID, Config: c.req}, nil)
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, spec.Linux.Resources)
		})
	}
}

func TestGenerateSpecSeccompAndNamespaces(t *testing.T) {
	pinSpecHost(t)
	spec, err := Generate(alpineConfig(), Request{ID: specTestID, Seccomp: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Linux.Seccomp == nil || !reflect.DeepEqual(spec.Linux.Seccomp, DefaultSeccomp()) {
		t.Error("Seccomp: true did not apply DefaultSeccomp()")
	}
	spec, err = Generate(alpineConfig(), Request{ID: specTestID}, nil)
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
		spec, err := Generate(alpineConfig(), Request{ID: specTestID, CgroupV2: c.v2, Config: Config{Network: c.network}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := types(spec); !reflect.DeepEqual(got, c.want) {
			t.Errorf("network %q, v2 %v: namespaces %v, want %v", c.network, c.v2, got, c.want)
		}
	}

	// With the host's network and no hostname, the host's name is used
	// (Docker); an explicit one still wins.
	spec, err = Generate(alpineConfig(), Request{ID: specTestID, Config: Config{Network: "host", Hostname: "mine"}}, nil)
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
	a, err := Generate(alpineConfig(), Request{ID: specTestID}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Process.Capabilities.Bounding[0] = "CAP_SYS_ADMIN"
	a.Linux.MaskedPaths[0] = "/x"
	a.Linux.ReadonlyPaths[0] = "/y"
	a.Mounts[0].Options[0] = "z"
	b, err := Generate(alpineConfig(), Request{ID: specTestID}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.Process.Capabilities.Bounding[0] != "CAP_CHOWN" || b.Process.Capabilities.Effective[0] != "CAP_CHOWN" ||
		b.Linux.MaskedPaths[0] != "/proc/asound" || b.Linux.ReadonlyPaths[0] != "/proc/bus" || b.Mounts[0].Options[0] != "nosuid" {
		t.Error("a second spec saw changes made to the first")
	}
}

// TestGenerateSpecFields: how each field of the request and the image ends
// up in the spec.
func TestGenerateSpecFields(t *testing.T) {
	pinSpecHost(t)
	dests := func(s *specs.Spec) (out []string) {
		for _, m := range s.Mounts {
			out = append(out, m.Destination)
		}
		return out
	}
	mount := func(s *specs.Spec, dst string) *specs.Mount {
		for i := range s.Mounts {
			if s.Mounts[i].Destination == dst {
				return &s.Mounts[i]
			}
		}
		return nil
	}
	defaults := []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"}
	etc := EtcFiles{Hosts: "/run/e/hosts", Hostname: "/run/e/hostname", ResolvConf: "/run/e/resolv.conf"}
	cases := []struct {
		name  string
		img   *v1.Config
		req   Request
		check func(t *testing.T, s *specs.Spec)
	}{
		// Working directory.
		{"workdir default /", alpineConfig(), Request{}, func(t *testing.T, s *specs.Spec) {
			if s.Process.Cwd != "/" {
				t.Errorf("cwd %q", s.Process.Cwd)
			}
		}},
		{"workdir from the image", nginxConfig(), Request{}, func(t *testing.T, s *specs.Spec) {
			if s.Process.Cwd != "/usr/share/nginx" {
				t.Errorf("cwd %q", s.Process.Cwd)
			}
		}},
		{"workdir request wins, cleaned", nginxConfig(), Request{Config: Config{WorkingDir: "/srv//app/"}}, func(t *testing.T, s *specs.Spec) {
			if s.Process.Cwd != "/srv/app" {
				t.Errorf("cwd %q", s.Process.Cwd)
			}
		}},
		// Users and groups.
		{"user by name, supplementary groups", alpineConfig(), Request{Config: Config{User: "app"}}, func(t *testing.T, s *specs.Spec) {
			want := specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{1000, 50, 18}}
			if !reflect.DeepEqual(s.Process.User, want) {
				t.Errorf("user %+v, want %+v", s.Process.User, want)
			}
		}},
		{"user:group, no supplementary groups", alpineConfig(), Request{Config: Config{User: "app:audio"}}, func(t *testing.T, s *specs.Spec) {
			want := specs.User{UID: 1000, GID: 18, AdditionalGids: []uint32{18}}
			if !reflect.DeepEqual(s.Process.User, want) {
				t.Errorf("user %+v, want %+v", s.Process.User, want)
			}
		}},
		{"image's user", &v1.Config{User: "nginx", Cmd: []string{"x"}}, Request{}, func(t *testing.T, s *specs.Spec) {
			want := specs.User{UID: 101, GID: 101, AdditionalGids: []uint32{101, 50, 101}}
			if !reflect.DeepEqual(s.Process.User, want) {
				t.Errorf("user %+v, want %+v", s.Process.User, want)
			}
		}},
		{"request user wins over the image's", &v1.Config{User: "nginx", Cmd: []string{"x"}}, Request{Config: Config{User: "0"}}, func(t *testing.T, s *specs.Spec) {
			if s.Process.User.UID != 0 || s.Process.User.GID != 0 {
				t.Errorf("user %+v", s.Process.User)
			}
		}},
		// Hostname.
		{"hostname: short id", alpineConfig(), Request{}, func(t *testing.T, s *specs.Spec) {
			if s.Hostname != "3f2a9c1d7e5b" || s.Process.Env[1] != "HOSTNAME=3f2a9c1d7e5b" {
				t.Errorf("hostname %q, env %q", s.Hostname, s.Process.Env)
			}
		}},
		{"hostname: given", alpineConfig(), Request{Config: Config{Hostname: "web"}}, func(t *testing.T, s *specs.Spec) {
			if s.Hostname != "web" || s.Process.Env[1] != "HOSTNAME=web" {
				t.Errorf("hostname %q, env %q", s.Hostname, s.Process.Env)
			}
		}},
		{"hostname: host network uses the host's", alpineConfig(), Request{Config: Config{Network: "host"}}, func(t *testing.T, s *specs.Spec) {
			if s.Hostname != "buildhost" {
				t.Errorf("hostname %q", s.Hostname)
			}
		}},
		{"hostname: host network, given", alpineConfig(), Request{Config: Config{Network: "host", Hostname: "mine"}}, func(t *testing.T, s *specs.Spec) {
			if s.Hostname != "mine" {
				t.Errorf("hostname %q", s.Hostname)
			}
		}},
		// Labels.
		{"labels: none", alpineConfig(), Request{}, func(t *testing.T, s *specs.Spec) {
			if s.Annotations != nil {
				t.Errorf("annotations %v", s.Annotations)
			}
		}},
		{"labels: request over image", nginxConfig(), Request{Config: Config{Labels: map[string]string{"org.example.tier": "req", "x": ""}}}, func(t *testing.T, s *specs.Spec) {
			want := map[string]string{"maintainer": "NGINX Docker Maintainers", "org.example.tier": "req", "x": ""}
			if !reflect.DeepEqual(s.Annotations, want) {
				t.Errorf("annotations %v, want %v", s.Annotations, want)
			}
		}},
		// Root and /etc files.
		{"writable root: /etc files rw", alpineConfig(), Request{Etc: etc}, func(t *testing.T, s *specs.Spec) {
			if s.Root.Readonly || s.Root.Path != "rootfs" {
				t.Errorf("root %+v", s.Root)
			}
			for dst, src := range map[string]string{"/etc/hosts": etc.Hosts, "/etc/hostname": etc.Hostname, "/etc/resolv.conf": etc.ResolvConf} {
				if m := mount(s, dst); m == nil || m.Source != src || !reflect.DeepEqual(m.Options, []string{"rbind", "rw", "rprivate"}) {
					t.Errorf("%s: mount %+v", dst, m)
				}
			}
		}},
		{"read-only root: /etc files ro", alpineConfig(), Request{Etc: etc, Config: Config{ReadOnly: true}}, func(t *testing.T, s *specs.Spec) {
			if !s.Root.Readonly {
				t.Errorf("root %+v", s.Root)
			}
			if m := mount(s, "/etc/hosts"); m == nil || m.Options[1] != "ro" {
				t.Errorf("/etc/hosts: mount %+v", m)
			}
		}},
		{"no /etc files", alpineConfig(), Request{}, func(t *testing.T, s *specs.Spec) {
			if got := dests(s); !reflect.DeepEqual(got, defaults) {
				t.Errorf("mounts %q, want %q", got, defaults)
			}
		}},
		// Binds.
		{"binds: after the defaults, parents first, cleaned", alpineConfig(), Request{Config: Config{
			Mounts: []string{"/h/c:/a/b/c", "/h/b/:/a/b:ro", "/h//a:/a"}}}, func(t *testing.T, s *specs.Spec) {
			want := append(append([]string(nil), defaults...), "/a", "/a/b", "/a/b/c")
			if got := dests(s); !reflect.DeepEqual(got, want) {
				t.Errorf("mounts %q, want %q", got, want)
			}
			if m := mount(s, "/a/b"); m.Source != "/h/b" || m.Type != "bind" || !reflect.DeepEqual(m.Options, []string{"rbind", "ro", "rprivate"}) {
				t.Errorf("/a/b: %+v", m)
			}
			if m := mount(s, "/a"); m.Source != "/h/a" || m.Options[1] != "rw" {
				t.Errorf("/a: %+v", m)
			}
		}},
		{"binds: same depth keep their order", alpineConfig(), Request{Config: Config{Mounts: []string{"/h:/z", "/h:/y", "/h:/x"}}}, func(t *testing.T, s *specs.Spec) {
			if got := dests(s)[len(defaults):]; !reflect.DeepEqual(got, []string{"/z", "/y", "/x"}) {
				t.Errorf("binds %q, want /z /y /x", got)
			}
		}},
		{"binds: replace a default mount", alpineConfig(), Request{Config: Config{Mounts: []string{"/h/shm:/dev/shm", "/h/cg:/sys/fs/cgroup/"}}}, func(t *testing.T, s *specs.Spec) {
			want := []string{"/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys", "/dev/shm", "/sys/fs/cgroup"}
			if got := dests(s); !reflect.DeepEqual(got, want) {
				t.Errorf("mounts %q, want %q", got, want)
			}
			if m := mount(s, "/sys/fs/cgroup"); m.Type != "bind" || m.Source != "/h/cg" {
				t.Errorf("/sys/fs/cgroup: %+v", m)
			}
		}},
		{"binds: /dev replaces every /dev mount", alpineConfig(), Request{Config: Config{Mounts: []string{"/h/dev:/dev"}}}, func(t *testing.T, s *specs.Spec) {
			want := []string{"/proc", "/sys", "/sys/fs/cgroup", "/dev"}
			if got := dests(s); !reflect.DeepEqual(got, want) {
				t.Errorf("mounts %q, want %q", got, want)
			}
		}},
		{"binds: win over an /etc file", alpineConfig(), Request{Etc: etc, Config: Config{Mounts: []string{"/h/hosts:/etc/hosts:ro"}}}, func(t *testing.T, s *specs.Spec) {
			n := 0
			for _, m := range s.Mounts {
				if m.Destination == "/etc/hosts" {
					n++
				}
			}
			if m := mount(s, "/etc/hosts"); n != 1 || m.Source != "/h/hosts" {
				t.Errorf("%d /etc/hosts mounts, first %+v", n, m)
			}
			if m := mount(s, "/etc/hostname"); m == nil || m.Source != etc.Hostname {
				t.Errorf("/etc/hostname: %+v", m)
			}
		}},
		// Namespaces and cgroup.
		{"cgroup v1: no cgroup namespace", alpineConfig(), Request{}, func(t *testing.T, s *specs.Spec) {
			for _, n := range s.Linux.Namespaces {
				if n.Type == specs.CgroupNamespace {
					t.Error("cgroup namespace on v1")
				}
			}
			if s.Linux.CgroupsPath != CgroupParent+"/"+specTestID {
				t.Errorf("cgroupsPath %q", s.Linux.CgroupsPath)
			}
		}},
		{"cgroup parent", alpineConfig(), Request{CgroupParent: "/condenser-test/sub"}, func(t *testing.T, s *specs.Spec) {
			if s.Linux.CgroupsPath != "/condenser-test/sub/"+specTestID {
				t.Errorf("cgroupsPath %q", s.Linux.CgroupsPath)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.req.ID = specTestID
			spec, err := Generate(c.img, c.req, alpineFS)
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, spec)
		})
	}
}
