// Package supervisor owns the containers: their records (bbolt, in
// containers.db under the root, with a copy in memory), the lifecycle state
// machine, the shims (launch, connect, reconnect after a daemon restart),
// restart policies, auto-removal and lifecycle events. It never speaks HTTP
// and never runs a runtime binary: everything about a container's processes
// goes through its shim (Shims, Shim). OCI spec generation, the default
// seccomp profile and the per-container /etc files are package oci
// (supervisor/oci).
//
// # Dependencies
//
// The supervisor owns small interfaces for what it uses (deps.go): Images
// (StoreImages adapts the image store), Rootfs (*rootfs.Manager),
// Shims/Shim (ShimManager runs condenser-shim through shim/client) and
// Networks (NetworkManager over supervisor/network and its nat package).
// The state machine is unit-tested with fakes of them all, without root
// (fake_test.go, state_test.go, exec_test.go, networks_test.go); the
// integration tests run real shims, runc, bridges and a real registry.
//
// # Terminals, exec and networks
//
// The shim holds every process's standard streams and exec processes; the
// supervisor checks the container's state, builds an exec's process from
// the init's and hands over the shim's stream (exec.go). A container on a
// bridge network gets a namespace of Condenser's own before the runtime's
// create, connected beside the shim's create and torn down in release
// with the runtime's container; Open reconciles what no live container
// owns (networks.go).
//
// # The lifecycle
//
//	creating ─► created ─► running ─► stopped ─► restarting ─► running
//	    │          │                     │  ▲          │
//	    └──────────┴──────► removing ◄───┴──┴──────────┘
//
// Every change of state goes through transition (state.go), which checks
// it against the table, writes the record and publishes the event; an
// exit is recorded in one place (exited). A container's lock is held from
// the moment its record exists: no request sees a container half-made.
// A stopped container keeps no process and no mount: once its exit status
// is recorded its shim deletes the runtime's container, unmounts and exits
// (release); a start brings a new shim, a spec generated again and the
// same writable layer.
//
// # Crashes
//
// A daemon killed at any moment leaves nothing behind. The record says
// where a shim will serve before it is launched. At the next start every
// record with a shim is dialled and decide (reconnect.go, table-tested)
// says what to do: creates and deletes cut short are finished (shim,
// runtime state, cgroups, mounts, directories and record removed), a
// (re)start cut short after the shim created the container leaves it
// created, exits that happened meanwhile are recorded from the shim, and a
// shim that is gone is cleaned up out of band (`condenser-shim delete`,
// which waits for a launch still going on, kills what is left in the
// container's cgroups and tells the exit status the shim left, if any;
// none is recorded as unknown). Directories without a record are swept.
//
// # Restart policies
//
// As Docker's: on-failure[:max], always, unless-stopped. The back-off
// doubles from 100 ms up to a minute with each quick restart and starts
// again after a run of 10 s or more; while it waits the container is
// "restarting" (a stop ends the wait, a plain delete is refused). A manual
// start gives the policy its tries back. When the daemon starts, a stopped
// container whose policy says so starts again — it exited while the daemon
// was away, or the host rebooted under it — "always" even when its user
// had stopped it, "unless-stopped" not; an unknown exit status counts as
// a failure. A stopped auto-remove container is removed.
package supervisor
