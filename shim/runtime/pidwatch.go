package runtime

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pidFileWatch tells when a runtime has renamed its pid file into place:
// runc writes it to a hidden file and renames it once the container (or
// the exec'd process) is created and its state saved, the last step of a
// detached command before its exit.
type pidFileWatch struct {
	f    *os.File // inotify
	done chan struct{}
}

// watchPidFile watches path's directory for path being renamed into
// place. A file already there is removed first: only a new one counts.
// Close ends the watch.
func watchPidFile(path string) (*pidFileWatch, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, os.NewSyscallError("inotify_init1", err)
	}
	if _, err := unix.InotifyAddWatch(fd, filepath.Dir(path), unix.IN_MOVED_TO); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("inotify_add_watch", err)
	}
	w := &pidFileWatch{f: os.NewFile(uintptr(fd), "inotify"), done: make(chan struct{})}
	go w.read([]byte(filepath.Base(path)))
	return w, nil
}

// read closes w.done when name is renamed into the directory; it ends then
// or when the watch is closed.
func (w *pidFileWatch) read(name []byte) {
	buf := make([]byte, 4096)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			end := off + unix.SizeofInotifyEvent + int(ev.Len)
			if end > n {
				break
			}
			got := bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:end], "\x00")
			if bytes.Equal(got, name) {
				close(w.done)
				return
			}
			off = end
		}
	}
}

// Written is closed once the pid file is in place.
func (w *pidFileWatch) Written() <-chan struct{} { return w.done }

// Close ends the watch.
func (w *pidFileWatch) Close() error { return w.f.Close() }
