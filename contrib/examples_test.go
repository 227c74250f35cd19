package contrib_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raind/condenser/internal/testutil"
)

// TestBusyboxImageScript imports the tarball the offline walkthrough builds
// and checks the image is there.
func TestBusyboxImageScript(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "/bin/busybox")
	dir := t.TempDir()
	tarball := filepath.Join(dir, "busybox.tar")
	out, err := exec.Command("sh", "-c", "sh examples/busybox-image.sh > "+tarball).CombinedOutput()
	if err != nil {
		t.Fatalf("script: %v\n%s", err, out)
	}
	bin := filepath.Join(dir, "condenser")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/condenser").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	root := filepath.Join(dir, "root")
	var stdout bytes.Buffer
	cmd := exec.Command(bin, "--root", root, "import", tarball)
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "imported busybox:latest") {
		t.Errorf("import said %q", stdout.String())
	}
}
