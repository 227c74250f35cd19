package runtime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeRunc is a `runc` that writes its pid file as runc does (a hidden
// file renamed into place) and then, unlike runc, stays until the test
// lets it go; or fails before any pid file.
const fakeRunc = `#!/bin/sh
dir=$(dirname "$0")
echo $$ > "$dir/self"
while [ $# -gt 0 ]; do
	case "$1" in
	--pid-file) pidfile=$2; shift ;;
	esac
	shift
done
if [ -e "$dir/fail" ]; then
	echo '{"level":"error","msg":"no such thing"}' >> "$dir/runtime.log"
	exit 1
fi
echo 4242 > "$(dirname "$pidfile")/.$(basename "$pidfile")"
mv "$(dirname "$pidfile")/.$(basename "$pidfile")" "$pidfile"
i=0
while [ ! -e "$dir/release" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
`

// runc's create and exec --detach answer once the pid file is in place,
// not when the runtime's process has exited; a runtime that fails before
// writing it is still waited for and its error reported.
func TestCreateAnswersAtPidFile(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(map[bool]string{false: "created", true: "fails"}[fail], func(t *testing.T) {
			dir := t.TempDir()
			bin := filepath.Join(dir, "runc")
			if err := os.WriteFile(bin, []byte(fakeRunc), 0o755); err != nil {
				t.Fatal(err)
			}
			if fail {
				os.WriteFile(filepath.Join(dir, "fail"), nil, 0o644)
			}
			t.Cleanup(func() { os.WriteFile(filepath.Join(dir, "release"), nil, 0o644) })
			bundle := filepath.Join(dir, "bundle")
			os.Mkdir(bundle, 0o755)
			// A pid file left from an earlier run must not count.
			os.WriteFile(filepath.Join(bundle, "init.pid"), []byte("1"), 0o644)
			o := &OCI{Binary: bin, Root: dir, Monitor: execMonitor{}}
			p, err := o.Create(context.Background(), CreateOptions{ID: "c1", Bundle: bundle})
			if fail {
				if err == nil || !strings.Contains(err.Error(), "exit status 1") {
					t.Fatalf("create: %+v %v, want runc's failure", p, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Pid != 4242 {
				t.Errorf("pid %d, want the pid file's 4242", p.Pid)
			}
			b, err := os.ReadFile(filepath.Join(dir, "self"))
			if err != nil {
				t.Fatal(err)
			}
			self, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			if err := syscall.Kill(self, 0); err != nil {
				t.Errorf("create answered after the runtime's exit (%v): it waited for more than the pid file", err)
			}
			os.WriteFile(filepath.Join(dir, "release"), nil, 0o644)
			deadline := time.Now().Add(10 * time.Second)
			for syscall.Kill(self, 0) == nil && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if err := syscall.Kill(self, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("the runtime's process was not reaped: %v", err)
			}
		})
	}
}
