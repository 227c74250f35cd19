// Package client is the daemon's side of condenser-shim: Launch starts a
// shim (the two-phase start: `condenser-shim start` binds bundle/shim.sock,
// starts the detached server and returns once it serves), Dial reaches a
// running one over ttrpc, and Cleanup runs `condenser-shim delete` for a
// container whose shim is gone or must go (the out-of-band clean-up of
// containerd's shim manager) and returns the exit status the shim left, if
// any.
//
// Its methods take and return the domain types of types.go, never protobuf,
// and their errors wrap the kinds of internal/errdefs. It links neither the
// shim's server, its runtime drivers, the reaper nor the stats code: those
// live in the shim process (depcheck_test.go keeps it so). What the daemon
// may read in a bundle (exit.json) is in shim/api.
//
// A launch and a clean-up of the same bundle never overlap: both take the
// bundle's lock (bundle/shim.lock), so a Cleanup after a daemon was killed
// in the middle of a Launch waits for that launch and then removes the shim
// it made.
package client
