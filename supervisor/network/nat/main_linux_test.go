package nat

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMain undoes what `ip netns add` (the tests' topologies) leaves on
// the host: /run/netns made a mount point of its own.
func TestMain(m *testing.M) {
	const dir = "/run/netns"
	_, err := os.Stat(dir)
	existed := err == nil
	code := m.Run()
	if !existed {
		if ents, err := os.ReadDir(dir); err == nil && len(ents) == 0 {
			unix.Unmount(dir, unix.MNT_DETACH)
			os.Remove(dir)
		}
	}
	os.Exit(code)
}
