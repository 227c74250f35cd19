// Package reaper makes the shim a child subreaper that reaps every child —
// the container's init, orphans re-parented to it, and the runtime commands
// it runs — in one SIGCHLD loop, and hands each exit to whoever waits for it.
package reaper

import "time"

// Exit is one reaped process.
type Exit struct {
	Pid       int
	Status    int // exit code, or 128+n when killed by signal n
	Signal    int // the signal that killed it, or 0
	Timestamp time.Time
}
