#!/bin/sh
# A fake of Droplet v0.1.3 (github.com/shizuku198411/Droplet) for the
# driver's tests: its command line, its files and its failure modes.
#
#   - every call is logged as "RAIND_ROOT_DIR=… ARGS" to @DIR@/calls;
#     @DIR@/fail-CMD makes CMD fail like log.Fatal with the file's text;
#   - without the audit log directory (@AUDIT@) every command fails;
#   - an error before the spec is loaded is a Go panic (exit status 2),
#     so is a config.json without linux.seccomp or process.args (checked
#     at create only);
#   - create starts a real init (setsid, output to logs/init.log) that
#     blocks on exec.fifo, writes the cgroup files under @CGROUP@/ID (which
#     it never creates) and reads io.raind.net.config; a failure leaves the
#     init, state.json ("creating"), exec.fifo and config_hash.json, and
#     the next create fails with "file exists";
#   - start writes the fifo and exits 0 whatever the init then does; the
#     init checks what the real init does (mounts, seccomp names, env,
#     @ETC@/ID/etc/hosts), fails with a log line in logs/init.log and exit
#     status 1 (or @DIR@/init-fail's text), or execs `sleep 1000` (the
#     process's args when @DIR@/init-args exists);
#   - create -t ID starts the tty shim (`droplet shim ID FIFO ARGS`, a
#     child of create, not setsid) and waits for its init.pid; the tty
#     shim, the test binary run as @HELPER@ (fakeDropletHelper), listens
#     on tty.sock, starts the init on a new terminal, writes init.pid
#     and serves the terminal as Droplet does (frames in, raw output out
#     to the one connected client, logs/console.log); it exits when the
#     init does, with its exit code (255 when a signal killed it);
#     state.json has its shimPid;
#   - exec ID ARGS runs `nsenter -t PID --all ARGS` in the background,
#     output to logs/exec.log (not truncated); exec -t ID ARGS starts
#     `droplet exec-shim ID PID ARGS` in the background, which removes
#     exec_tty.sock, listens there, runs nsenter on a new terminal,
#     removes the socket when it exits, and then panics (exit status 2,
#     whatever the process did);
#   - a pid is alive when kill -0 succeeds (a zombie does): only the pids in
#     @DIR@/inits (the fake's inits, or a test's processes) are real; any
#     other pid is a pretend process, alive until the fake "kills" it
#     (@DIR@/dead), and never signalled.
d='@DIR@'
audit='@AUDIT@'
helper='@HELPER@'
cgroot='@CGROUP@'
etcroot='@ETC@'
# Placeholders a test left: Droplet's own paths, the audit log unchecked.
case $audit in @*) audit= ;; esac
case $cgroot in @*) cgroot=/sys/fs/cgroup/raind ;; esac
case $etcroot in @*) etcroot=/etc/raind/container ;; esac
case $1 in init | shim) ;; *) printf 'RAIND_ROOT_DIR=%s %s\n' "${RAIND_ROOT_DIR-unset}" "$*" >> "$d/calls" ;; esac
cmd=$1 id=$2 tty=
# urfave/cli: flags before the arguments; what follows the id is an argument.
case $cmd in create | exec)
	if [ "$2" = -t ] || [ "$2" = --tty ]; then tty=1 id=$3; shift; fi ;;
esac
c=${RAIND_ROOT_DIR:-/etc/raind/container}/$id
now() { date '+%Y/%m/%d %H:%M:%S'; }
fail() { echo "$(now) $*" >&2; exit 1; }
panic() {
	printf 'panic: runtime error: %s\n\ngoroutine 1 [running]:\ndroplet/internal/logs.RecordAuditLog(...)\n' "$*" >&2
	exit 2
}
[ -z "$audit" ] || [ -d "$audit" ] || fail "audit logger init failed: open $audit/droplet_audit.log: no such file or directory"
[ -f "$d/fail-$cmd" ] && fail "$(cat "$d/fail-$cmd")"

alive() {
	[ "${1:-0}" -gt 0 ] || return 1
	if grep -qx "$1" "$d/inits" 2>/dev/null; then
		kill -0 "$1" 2>/dev/null
	else
		! grep -qx "$1" "$d/dead" 2>/dev/null
	fi
}
signal() { # signal PID NAME
	if grep -qx "$1" "$d/inits" 2>/dev/null; then
		kill -s "$2" "$1" 2>/dev/null || return 1
	else
		alive "$1" || return 1
		echo "$1" >> "$d/dead"
	fi
}
field() { sed -n 's/^    "'"$1"'": "\{0,1\}\([^",]*\)"\{0,1\},\{0,1\}$/\1/p' "$c/state.json"; }
write_state() { # STATUS PID [SHIMPID]
	printf '{\n    "ociVersion": "1.2.0",\n    "id": "%s",\n    "status": "%s",\n    "pid": %s,\n    "shimPid": %s,\n    "rootfs": "%s/rootfs",\n    "bundle": "%s",\n    "annotations": {}\n}\n' "$id" "$1" "$2" "${3:-0}" "$c" "$c" > "$c/state.json"
}
# status: state.json's, a running container whose pid is dead read as stopped
status() {
	[ -f "$c/state.json" ] || return 1
	status=$(field status) pid=$(field pid)
	if [ "$status" = running ] && ! alive "$pid"; then
		status=stopped pid=0
		write_state stopped 0
	fi
}
q() { jq -r "$1" "$c/config.json"; }

case $cmd in
create)
	case $id in -*) fail "Incorrect Usage: flag provided but not defined: $id" ;; esac
	[ -f "$c/config.json" ] || panic "index out of range [0] with length 0"
	q . > /dev/null 2>&1 || fail "invalid character in $c/config.json"
	sha256sum "$c/config.json" | sed 's/ .*//; s/.*/{"sha256": "&"}/' > "$c/config_hash.json"
	write_state creating 0
	mkfifo "$c/exec.fifo" 2>/dev/null || fail "file exists"
	shim=0
	if [ -n "$tty" ]; then
		rm -f "$c/tty.sock" "$c/init.pid"
		FAKE_ETC="$etcroot/$id/etc" "$0" shim "$id" "$c/exec.fifo" $(q '.process.args[]?') < /dev/null > /dev/null 2>&1 &
		shim=$!
		echo "$shim" >> "$d/inits"
		i=0
		while [ ! -s "$c/init.pid" ] && [ $i -lt 300 ]; do sleep 0.01; i=$((i + 1)); done
		[ -s "$c/init.pid" ] || fail "wait init pid timeout: context deadline exceeded"
		pid=$(cat "$c/init.pid")
	else
		FAKE_ETC="$etcroot/$id/etc" setsid "$0" init "$id" "$c/exec.fifo" $(q '.process.args[]?') < /dev/null >> "$c/logs/init.log" 2>&1 &
		pid=$!
		echo "$pid" >> "$d/inits"
	fi
	cg=$cgroot/$id
	mem=$(q '.linux.resources.memory.limit // 0') quota=$(q '.linux.resources.cpu.quota // 0') period=$(q '.linux.resources.cpu.period // 0')
	for kv in "memory.max=$mem" "cpu.max=$quota $period" "pids.max=512" "cgroup.procs=$pid"; do
		echo "${kv#*=}" > "$cg/${kv%%=*}" 2>/dev/null || fail "open $cg/${kv%%=*}: no such file or directory"
	done
	net=$(q '.annotations["io.raind.net.config"] // ""')
	[ -n "$net" ] || fail "unexpected end of JSON input"
	write_state created "$pid" "$shim"
	if [ "$(q '.linux.seccomp')" = null ] || [ "$(q '.process.args | length')" = 0 ]; then
		panic "invalid memory address or nil pointer dereference"
	fi
	exit 0 ;;
start)
	status || panic "index out of range [0] with length 0"
	[ "$status" = created ] || panic "index out of range [0] with length 0"
	printf '\001' > "$c/exec.fifo"
	rm "$c/exec.fifo"
	write_state running "$pid" "$(field shimPid)"
	exit 0 ;;
state)
	status || fail "open $c/state.json: no such file or directory"
	cat "$c/state.json"; echo; exit 0 ;;
kill)
	[ -f "$c/config.json" ] || panic "index out of range [0] with length 0"
	status || fail "open $c/state.json: no such file or directory"
	[ "$status" = running ] || fail "container: $id not running."
	sig=${3:-TERM}
	signal "$pid" "$sig" || fail "no such process"
	if [ "$sig" = TERM ]; then
		i=0
		while alive "$pid" && [ $i -lt 30 ]; do sleep 0.1; i=$((i + 1)); done
		alive "$pid" && signal "$pid" KILL
	fi
	write_state stopped 0
	exit 0 ;;
delete)
	status || panic "index out of range [0] with length 0"
	[ "$status" = running ] && panic "index out of range [0] with length 0"
	if [ "$status" = created ]; then
		signal "$pid" KILL || panic "index out of range [0] with length 0"
		write_state stopped 0
	fi
	[ -f "$c/config.json" ] || fail "open $c/config.json: no such file or directory"
	rm "$c/state.json"
	if [ "$status" = created ]; then rm "$c/exec.fifo" 2>/dev/null || fail "remove $c/exec.fifo: no such file or directory"; fi
	exit 0 ;;
exec)
	status || fail "open $c/state.json: no such file or directory"
	[ "$status" = running ] || fail "container: $id not running."
	shift 2
	if [ -n "$tty" ]; then
		"$0" exec-shim "$id" "$pid" "$@" < /dev/null > /dev/null 2>&1 &
	else
		nsenter -t "$pid" --all "$@" < /dev/null 1<> "$c/logs/exec.log" 2>&1 &
	fi
	exit 0 ;;
shim | exec-shim)
	# droplet shim ID FIFO ARGS…, droplet exec-shim ID PID ARGS…
	case $helper in @*) fail "fake droplet: no tty helper" ;; esac
	FAKE_DROPLET_HELPER=1 FAKE_SCRIPT=$0 FAKE_DIR=$d exec "$helper" "$@" ;;
init)
	# droplet init ID FIFO ARGS…: the container's init.
	FAKE_DIR=$d FAKE_C=$c
	echo "hello from init"
	t() { date "+%Y/%m/%d %H:%M:%S"; }
	[ -f "$FAKE_C/config_hash.json" ] || { echo "$(t) open $FAKE_C/config_hash.json: no such file or directory"; exit 1; }
	read -r _ < "$FAKE_C/exec.fifo"
	rm -f "$FAKE_C/config_hash.json"
	[ -f "$FAKE_DIR/init-fail" ] && { echo "$(t) $(cat "$FAKE_DIR/init-fail")"; exit 1; }
	for f in hosts hostname resolv.conf; do
		[ -f "$FAKE_ETC/$f" ] || { echo "$(t) lstat failed: $FAKE_ETC/$f: no such file or directory"; exit 1; }
	done
	err=$(jq -r '
		def denied(p; l): (p | sub("/+$"; "")) as $p | any(l[]; $p == . or ($p | startswith(. + "/")));
		( .mounts // [] | map(
		if denied(.source; ["/proc","/sys","/dev","/run","/var/run","/boot","/root","/bin","/usr/bin","/usr/local/bin","/etc/raind"]) or .source == "/" then "invalid mount source: \(.source)"
		elif denied(.destination; ["/proc","/sys","/dev","/run","/var/run","/boot"]) or .destination == "/" then "invalid mount destination: \(.destination)"
		elif (.type == "bind" and ((.options // []) | sort) == ["rbind","rprivate"]) or (.type == "" and .options == ["bind"]) then empty
		else "invalid mount type and options: \(.type): \((.options // []) | join(","))" end) )
		+ ( .linux.seccomp.syscalls // [] | map(select(.action == "SCMP_ACT_ERRNO") | .names[]
		| select(IN("bpf","perf_event_open","kexec_load","open_by_handle_at","ptrace","process_vm_readv","process_vm_writev","userfaultfd","init_module","finit_module","delete_module","name_to_handle_at","kcmp","reboot","swapon","swapoff","mount","unshare","setns") | not)
		| "unknown/unsupported syscall name amd64: \"\(.)\"") )
		| first // empty' "$FAKE_C/config.json")
	[ -n "$err" ] && { echo "$(t) $err"; exit 1; }
	if jq -e '.process.env // [] | any(contains("=") | not)' "$FAKE_C/config.json" > /dev/null; then
		echo "panic: runtime error: index out of range [1] with length 1"; exit 2
	fi
	# @DIR@/init-args: it runs the container's process (ARGS), not sleep.
	[ -f "$FAKE_DIR/init-args" ] && { shift 3; exec "$@"; }
	exec sleep 1000
	;;
*)
	echo "Incorrect Usage: no command $cmd" >&2; exit 3 ;;
esac
