// Package contrib_test checks the files under contrib/: the systemd units
// pass systemd-analyze verify, their ExecStart names only flags the daemon
// has, and make install ships them with the CLI (condenserctl) and its
// completions.
package contrib_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/raind/condenser/internal/testutil"
)

var units = []string{"condenser.socket", "condenser-tls.socket", "condenser-docker.socket", "condenser.service"}

const installedBinary = "/usr/local/bin/condenser"

// buildCondenser builds cmd/condenser into a temporary directory.
func buildCondenser(t *testing.T) string {
	t.Helper()
	goBin := testutil.RequireBinary(t, "go")
	bin := filepath.Join(t.TempDir(), "condenser")
	cmd := exec.Command(goBin, "build", "-o", bin, "../cmd/condenser")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ../cmd/condenser: %v\n%s", err, out)
	}
	return bin
}

// execStart returns the service's ExecStart line (without the key).
func execStart(t *testing.T, service string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^ExecStart=(.*)$`).FindAllStringSubmatch(service, -1)
	if len(m) != 1 {
		t.Fatalf("condenser.service: want exactly one ExecStart=, got %d", len(m))
	}
	return m[0][1]
}

func TestUnitsVerify(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Log("systemd-analyze comes with the Debian package systemd (apt-get install systemd)")
	}
	analyze := testutil.RequireBinary(t, "systemd-analyze")
	bin := buildCondenser(t)

	// systemd-analyze verify checks that ExecStart's binary exists, so the
	// copies run the freshly built daemon instead of the installed path.
	dir := t.TempDir()
	var paths []string
	for _, u := range units {
		b, err := os.ReadFile(filepath.Join("systemd", u))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if u == "condenser.service" {
			if cmd := execStart(t, s); !strings.HasPrefix(cmd, installedBinary+" ") {
				t.Fatalf("ExecStart=%s: want it to run %s", cmd, installedBinary)
			}
			s = strings.Replace(s, "ExecStart="+installedBinary, "ExecStart="+bin, 1)
		}
		p := filepath.Join(dir, u)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}

	cmd := exec.Command(analyze, append([]string{"verify", "--man=no"}, paths...)...)
	out, err := cmd.CombinedOutput()
	// Without systemd as PID 1 systemd-analyze may warn about the host;
	// only what it says about our units counts.
	var ours []string
	for _, line := range strings.Split(string(out), "\n") {
		for _, u := range units {
			if strings.Contains(line, u) {
				ours = append(ours, line)
				break
			}
		}
	}
	if len(ours) > 0 {
		t.Errorf("systemd-analyze verify complains about the units:\n%s", strings.Join(ours, "\n"))
	}
	if err != nil {
		// A non-zero exit without a line naming our units still means a
		// unit (or one it depends on) failed to load.
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestExecStartFlags checks that the daemon accepts every flag ExecStart
// passes, so a renamed flag cannot leave the unit failing to start.
func TestExecStartFlags(t *testing.T) {
	b, err := os.ReadFile("systemd/condenser.service")
	if err != nil {
		t.Fatal(err)
	}
	bin := buildCondenser(t)
	var help bytes.Buffer
	cmd := exec.Command(bin, "-h")
	cmd.Stdout, cmd.Stderr = &help, &help
	_ = cmd.Run() // -h exits 2 after printing the usage
	for _, f := range strings.Fields(execStart(t, string(b)))[1:] {
		if !strings.HasPrefix(f, "-") {
			continue
		}
		name := strings.TrimLeft(strings.SplitN(f, "=", 2)[0], "-")
		if !strings.Contains(help.String(), "  -"+name+" ") && !strings.Contains(help.String(), "  -"+name+"\n") {
			t.Errorf("ExecStart passes %s, which condenser -h does not list:\n%s", f, help.String())
		}
	}
}

func TestMakeInstallDryRun(t *testing.T) {
	makeBin := testutil.RequireBinary(t, "make")
	dest := filepath.Join(t.TempDir(), "stage")
	cmd := exec.Command(makeBin, "-n", "-C", "..", "install", "DESTDIR="+dest)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n install: %v\n%s", err, out)
	}
	s := string(out)
	// The CLI is condenserctl: raind is the real Raind CLI's name, which
	// make install must not take.
	if strings.Contains(s, "raind") {
		t.Errorf("make -n install DESTDIR=%s installs something named raind:\n%s", dest, s)
	}
	for _, want := range []string{
		"bin/condenser ",
		"bin/condenser-shim ",
		"contrib/systemd/condenser.socket",
		"contrib/systemd/condenser-docker.socket",
		"contrib/systemd/condenser.service",
		dest + "/usr/local/bin",
		dest + "/etc/systemd/system",
		"bin/condenserctl ", // guarded: installed only when it exists
		dest + "/usr/local/share/bash-completion/completions/condenserctl;",
		dest + "/usr/local/share/zsh/site-functions/_condenserctl;",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("make -n install DESTDIR=%s does not mention %q:\n%s", dest, want, s)
		}
	}
}
