package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/errdefs"
)

// execFifo is the FIFO in runc's state directory of a created container:
// its init process blocks opening it for writing, writes one byte once a
// reader comes, and then executes the container's process. `runc start`
// does nothing more than read it and remove it (runc 1.1 runs poststart
// hooks at create). Doing the same in the shim saves a runtime process on
// every start, about 5 ms here; anything unexpected falls back to `runc
// start`.
const execFifo = "exec.fifo"

// errNoFifo means the container has no exec FIFO to start it by.
var errNoFifo = errors.New("no exec fifo")

// startByFifo lets the created container whose init is pid run, through
// its exec FIFO at path. It returns errNoFifo when there is none.
//
// Opening the FIFO commits the start: the init, blocked opening its end,
// writes its byte and executes the container's process whether or not the
// byte is read. So ctx is heeded only before that; afterwards it waits for
// the byte as long as the init lives.
func startByFifo(ctx context.Context, path string, pid int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%w: %v", errNoFifo, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return fmt.Errorf("%w: %s is not a fifo", errNoFifo, path)
	}
	// Until the init has opened its end, a read would see end-of-file:
	// wait for its byte, checking now and then that it still lives.
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 50)
		if err != nil && err != unix.EINTR {
			return fmt.Errorf("exec fifo: %w", err)
		}
		if n > 0 {
			break
		}
		if !alive(pid) {
			return fmt.Errorf("container init %d exited before it was started: %w", pid, errdefs.ErrConflict)
		}
	}
	var b [8]byte
	n, err := unix.Read(fd, b[:])
	if err != nil || n == 0 {
		return fmt.Errorf("container init %d exited before it was started (exec fifo: read %d bytes, %v): %w", pid, n, err, errdefs.ErrConflict)
	}
	// runc tells created from running by the FIFO's presence.
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("exec fifo: %w", err)
	}
	return nil
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	if pid <= 0 || unix.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
