// Package supervisor owns the containers: their records (bbolt, in
// containers.db under the root), the lifecycle state machine (creating →
// created → running → stopped, plus restarting and removing), the shims
// (start, connect, reconnect after a daemon restart), restart policies,
// auto-removal and lifecycle events. It never speaks HTTP. OCI spec
// generation, the default seccomp profile and the per-container /etc files
// are package oci (supervisor/oci).
//
// # Crashes
//
// A daemon killed at any moment leaves nothing behind: at the next start,
// launches of shims it left running are waited for, creates and deletes cut
// short are finished (shim, runtime state, cgroups, mounts, directories and
// record removed), a (re)start cut short after the shim created the
// container leaves it created, and directories without a record are swept.
// A container whose shim dies (killed, crashed) — noticed at once, or at the
// next start — is recorded as stopped with an unknown exit code (nil); its
// processes, which outlive the shim, are killed and its runtime state,
// cgroups and root filesystem mount removed, while its config, writable
// layer and log stay, so that it can be started again or deleted.
//
// # Restart policies when the daemon starts
//
// Once reconnected, the daemon applies the restart policies as Docker does
// when it starts: a stopped container whose policy says so starts again —
// it exited while the daemon was away, the host rebooted under it (its
// configuration is generated again: the bundle was on the state tmpfs), or
// a restart was waiting out its back-off. "always" brings back even a
// container its user stopped, "unless-stopped" does not, "on-failure"
// counts an unknown exit status as a failure. A stopped auto-remove
// container is removed.
package supervisor
