// Package oci generates containers' OCI runtime configurations
// (config.json) with Docker's semantics, the default seccomp profile
// (seccomp.go) and the per-container /etc files the configuration
// bind-mounts (etcfiles.go). It is pure apart from the few host facts it
// reads (RLIMIT_NOFILE, the number of CPUs, the hostname, whether a bind's
// host path exists, swap accounting); it does not know about records,
// shims, images or HTTP.
//
//   - Config is the user's choices (the create fields of the Raind v1
//     contract); the supervisor stores it in its create request.
//     Config.Validate is the one place they are checked, without the image.
//   - Generate(imageConfig, Request, readFile) builds the spec: Request adds
//     what the daemon decides (id, cgroup version, seccomp, the /etc files).
//   - WriteEtcFiles writes /etc/hosts, /etc/hostname and /etc/resolv.conf.
//   - DefaultSeccomp is the default seccomp profile.
//
// # The choices a user may notice
//
//   - Version "1.0.2": crun 1.8 refuses newer spec versions.
//   - Entrypoint/Cmd as the Docker Engine merges them: a request entrypoint
//     drops the image's Cmd; [""] (--entrypoint "") clears the entrypoint and
//     the Cmd; [] clears the entrypoint but keeps the image's Cmd (Config
//     keeps [] in JSON: "entrypoint" has no omitempty).
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
//     TestGenerateSpecRuntimes in supervisor/e2e_test.go covers it). Droplet
//     is not verified.
//   - /etc/hosts, /etc/hostname, /etc/resolv.conf are bind mounts of the
//     per-container files, read-write like Docker's unless the root is
//     read-only. Condenser must rewrite them in place (truncate and write),
//     never by rename, or the container keeps the old inode.
//   - Binds ("/host:/ctr[:ro|rw]") must name an existing host path (checked
//     by Generate; Validate checks the syntax only); ".." is rejected, other
//     spelling (//, trailing /) is cleaned. Like Docker, a bind replaces a
//     default mount on the same target (a bind on /dev replaces all of
//     /dev/*), a bind on /etc/hosts etc. wins over the generated file, and
//     binds are ordered parents first.
//   - Network "host": no network namespace, and the host's hostname unless
//     one is given (Docker). Docker's unprivileged-port and ping sysctls are
//     not set.
//   - Labels become annotations, over the image's labels; a label needs a
//     key.
//   - RLIMIT_NOFILE is min(1048576, this process's hard limit), soft = hard:
//     without CAP_SYS_RESOURCE a container cannot get more than we have.
//   - Memory: --memory-swap semantics (memory+swap total, -1 unlimited,
//     unset = twice the memory); on a host without swap accounting the swap
//     limit is left out, as Docker does, since the runtime could not set it.
//     Minimum limit and reservation 6MB. CPU shares are clamped to 2..262144
//     like Docker; cpus must be within 0.01..NumCPU. Memory, cpus and pids
//     must not be negative (0 is no limit).
//   - The cgroup is <parent>/<id>, a cgroupfs path: the request's
//     CgroupParent, by default CgroupParent (/condenser/<id>); see
//     ValidCgroupParent. The cgroup namespace is used only on cgroup v2.
//
// Golden files in testdata/ pin whole specs; go test ./supervisor/oci/
// -run TestGenerateSpecGolden -update rewrites them.
package oci
