package runtime

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sendFile connects to path and sends f as runc does: its name as the data,
// its descriptor as SCM_RIGHTS.
func sendFile(t *testing.T, path string, f *os.File) {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Error(err)
		return
	}
	defer c.Close()
	if _, _, err := c.(*net.UnixConn).WriteMsgUnix([]byte(f.Name()), unix.UnixRights(int(f.Fd())), nil); err != nil {
		t.Error(err)
	}
}

func TestConsoleSocket(t *testing.T) {
	short := func(t *testing.T) {
		old := consoleWait
		consoleWait = 100 * time.Millisecond
		t.Cleanup(func() { consoleWait = old })
	}
	t.Run("received", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "c.sock")
		cs, err := listenConsole(path)
		if err != nil {
			t.Fatal(err)
		}
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		defer w.Close()
		sendFile(t, path, w)
		got, err := cs.wait(true)
		if err != nil {
			t.Fatal(err)
		}
		defer got.Close()
		if got.Name() != w.Name() {
			t.Errorf("name %q, want %q", got.Name(), w.Name())
		}
		// Non-blocking, so that closing it interrupts a read (Fd would make
		// it blocking: look through SyscallConn).
		rc, err := got.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var flags int
		rc.Control(func(fd uintptr) { flags, err = unix.FcntlInt(fd, unix.F_GETFL, 0) })
		if err != nil || flags&unix.O_NONBLOCK == 0 {
			t.Errorf("flags %#x %v, want O_NONBLOCK", flags, err)
		}
		if _, err := got.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1)
		if n, err := r.Read(b); n != 1 || b[0] != 'x' {
			t.Errorf("read %q %v through the received descriptor", b[:n], err)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("socket left: %v", err)
		}
	})
	t.Run("the runtime never connects", func(t *testing.T) {
		short(t)
		cs, err := listenConsole(filepath.Join(t.TempDir(), "c.sock"))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if f, err := cs.wait(true); err == nil || f != nil {
			t.Fatalf("got %v %v, want an error", f, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("waited %v", d)
		}
	})
	t.Run("the runtime connects and sends nothing", func(t *testing.T) {
		short(t)
		path := filepath.Join(t.TempDir(), "c.sock")
		cs, err := listenConsole(path)
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if f, err := cs.wait(true); err == nil || f != nil {
			t.Fatalf("got %v %v, want an error", f, err)
		}
	})
	t.Run("the runtime failed", func(t *testing.T) {
		cs, err := listenConsole(filepath.Join(t.TempDir(), "c.sock"))
		if err != nil {
			t.Fatal(err)
		}
		if f, err := cs.wait(false); err != nil || f != nil {
			t.Fatalf("got %v %v, want nothing", f, err)
		}
	})
	t.Run("path too long", func(t *testing.T) {
		_, err := listenConsole("/" + strings.Repeat("x", 120))
		if err == nil || !strings.Contains(err.Error(), "longer than") {
			t.Fatalf("error %v", err)
		}
	})
}
