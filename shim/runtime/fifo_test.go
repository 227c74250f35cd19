package runtime

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/errdefs"
)

// deadPid returns the pid of a process that has exited and been reaped.
func deadPid(t *testing.T) int {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestStartByFifo(t *testing.T) {
	tests := []struct {
		name    string
		make    func(t *testing.T, path string) // prepares path
		writer  func(t *testing.T, path string) // plays the container's init
		pid     func(t *testing.T) int
		wantErr error // nil: started, fifo removed
	}{
		{name: "no fifo", make: func(*testing.T, string) {}, pid: func(*testing.T) int { return os.Getpid() }, wantErr: errNoFifo},
		{name: "regular file", make: func(t *testing.T, p string) {
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, pid: func(*testing.T) int { return os.Getpid() }, wantErr: errNoFifo},
		{name: "init writes its byte", make: mkfifo, writer: func(t *testing.T, p string) {
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				t.Error(err)
				return
			}
			f.Write([]byte("0"))
			f.Close()
		}, pid: func(*testing.T) int { return os.Getpid() }},
		{name: "init closes without writing", make: mkfifo, writer: func(t *testing.T, p string) {
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				t.Error(err)
				return
			}
			f.Close()
		}, pid: func(*testing.T) int { return os.Getpid() }, wantErr: errdefs.ErrConflict},
		{name: "init is dead", make: mkfifo, pid: deadPid, wantErr: errdefs.ErrConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), execFifo)
			tt.make(t, path)
			done := make(chan struct{})
			go func() {
				defer close(done)
				if tt.writer != nil {
					tt.writer(t, path)
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := startByFifo(ctx, path, tt.pid(t))
			<-done
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("startByFifo: %v", err)
				}
				if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("the fifo is still there (%v): runc would think the container is still created", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("startByFifo = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestStartByFifoCancelled: a context cancelled before the start leaves the
// FIFO alone; one cancelled once the FIFO is open does not abandon the
// start, which the open has committed.
func TestStartByFifoCancelled(t *testing.T) {
	path := filepath.Join(t.TempDir(), execFifo)
	mkfifo(t, path)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := startByFifo(ctx, path, os.Getpid()); !errors.Is(err, context.Canceled) {
		t.Fatalf("startByFifo with a cancelled context = %v", err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("the fifo went: %v", err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- startByFifo(ctx, path, os.Getpid()) }()
	f, err := os.OpenFile(path, os.O_WRONLY, 0) // returns once startByFifo has opened its end
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	time.Sleep(120 * time.Millisecond) // past a poll round, where a cancelled start would give up
	f.Write([]byte("0"))
	f.Close()
	if err := <-done; err != nil {
		t.Fatalf("startByFifo cancelled after the open: %v", err)
	}
}

func mkfifo(t *testing.T, path string) {
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
}
