// Package supervisor owns the containers: their records (bbolt, in
// containers.db under the root), the lifecycle state machine (creating →
// created → running → stopped, plus restarting and removing), the shims
// (start, connect, reconnect after a daemon restart), restart policies,
// auto-removal and lifecycle events; and OCI spec generation, the default
// seccomp profile and the per-container /etc files. It never speaks HTTP.
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
//
// # OCI spec generation (spec.go)
//
// GenerateSpec turns an image config and a create request into config.json
// with Docker's semantics. The choices a user may notice:
//
//   - Version "1.0.2": crun 1.8 refuses newer spec versions.
//   - Entrypoint/Cmd as the Docker Engine merges them: a request entrypoint
//     drops the image's Cmd; [""] (--entrypoint "") clears the entrypoint and
//     the Cmd; [] clears the entrypoint but keeps the image's Cmd.
//   - Env: PATH and HOSTNAME first, then image, then request entries, later
//     keys replacing earlier ones in place; HOME from /etc/passwd (else "/")
//     when unset. A request entry without "=" is rejected (Docker's CLI would
//     copy it from the client's environment; the REST API cannot).
//   - User: runc's rules (uid numbers need no passwd entry; supplementary
//     groups only when no group is given) and Docker's additionalGids
//     (primary gid first). Lines of /etc/passwd or /etc/group with
//     non-numeric ids are skipped, where runc would read them as 0 (root).
//   - WorkingDir: a missing directory is created by the runtime: runc 1.1.5
//     and crun 1.8.1 both mkdir -p the cwd (mode 0755, owned by root) before
//     switching user, even with a read-only root (checked on this machine;
//     TestGenerateSpecRuntimes covers it). Droplet is not verified.
//   - /etc/hosts, /etc/hostname, /etc/resolv.conf are bind mounts of the
//     per-container files, read-write like Docker's unless the root is
//     read-only. Condenser must rewrite them in place (truncate and write),
//     never by rename, or the container keeps the old inode.
//   - Binds ("/host:/ctr[:ro|rw]") must name an existing host path; ".."
//     is rejected, other spelling (//, trailing /) is cleaned. Like Docker,
//     a bind replaces a default mount on the same target (a bind on /dev
//     replaces all of /dev/*), a bind on /etc/hosts etc. wins over the
//     generated file, and binds are ordered parents first.
//   - Network "host": no network namespace, and the host's hostname unless
//     one is given (Docker). Docker's unprivileged-port and ping sysctls are
//     not set.
//   - RLIMIT_NOFILE is min(1048576, this process's hard limit), soft = hard:
//     without CAP_SYS_RESOURCE a container cannot get more than we have.
//   - Memory: --memory-swap semantics (memory+swap total, -1 unlimited,
//     unset = twice the memory); on a host without swap accounting the swap
//     limit is left out, as Docker does, since the runtime could not set it.
//     Minimum limit and reservation 6MB. CPU shares are clamped to 2..262144
//     like Docker; cpus must be within 0.01..NumCPU. PidsLimit < 0 is
//     unlimited (-1).
//   - The cgroup is /condenser/<id> (a cgroupfs path); the cgroup namespace
//     is used only on cgroup v2.
package supervisor
