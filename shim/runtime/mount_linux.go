package runtime

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// mountFlags are the options that are mount(2) flags rather than data.
var mountFlags = map[string]struct {
	clear bool
	flag  uintptr
}{
	"ro":          {false, unix.MS_RDONLY},
	"rw":          {true, unix.MS_RDONLY},
	"nosuid":      {false, unix.MS_NOSUID},
	"nodev":       {false, unix.MS_NODEV},
	"noexec":      {false, unix.MS_NOEXEC},
	"bind":        {false, unix.MS_BIND},
	"rbind":       {false, unix.MS_BIND | unix.MS_REC},
	"noatime":     {false, unix.MS_NOATIME},
	"relatime":    {false, unix.MS_RELATIME},
	"strictatime": {false, unix.MS_STRICTATIME},
}

// MountAll mounts ms on target in order.
func MountAll(ms []Mount, target string) error {
	for i, m := range ms {
		var flags uintptr
		var data []string
		for _, o := range m.Options {
			if f, ok := mountFlags[o]; ok {
				if f.clear {
					flags &^= f.flag
				} else {
					flags |= f.flag
				}
				continue
			}
			data = append(data, o)
		}
		bind := flags&unix.MS_BIND != 0
		mflags := flags
		if bind {
			mflags &^= unix.MS_RDONLY // a bind mount is made read-only by a remount
		}
		err := unix.Mount(m.Source, target, m.Type, mflags, strings.Join(data, ","))
		if err == nil && bind && flags&unix.MS_RDONLY != 0 {
			err = unix.Mount("", target, "", flags|unix.MS_REMOUNT, "")
		}
		if err != nil {
			for j := 0; j < i; j++ {
				unix.Unmount(target, unix.MNT_DETACH)
			}
			return fmt.Errorf("mount %s on %s: %w", m.Type, target, err)
		}
	}
	return nil
}

// UnmountAll unmounts everything mounted on target, innermost first.
func UnmountAll(target string) error {
	for i := 0; i < 64; i++ {
		err := unix.Unmount(target, 0)
		switch {
		case err == nil:
			continue
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil // not a mount point (any more)
		case errors.Is(err, unix.EBUSY):
			if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
				return fmt.Errorf("unmount %s: %w", target, err)
			}
		default:
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
	return fmt.Errorf("unmount %s: still mounted", target)
}
