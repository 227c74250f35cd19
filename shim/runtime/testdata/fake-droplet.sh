#!/bin/sh
d='@DIR@'
printf 'RAIND_ROOT_DIR=%s %s\n' "${RAIND_ROOT_DIR-unset}" "$*" >> "$d/calls"
cmd=$1 id=$2
c=$RAIND_ROOT_DIR/$id
fail() { echo "2026/01/28 16:57:24 $*" >&2; exit 1; }
[ -f "$d/fail-$cmd" ] && fail "$(cat "$d/fail-$cmd")"
case $cmd in
create)
	[ -f "$c/config.json" ] || fail "open $c/config.json: no such file or directory"
	echo "hello from init" >> "$c/logs/init.log"
	status=created pid=4242 ;;
start|kill|delete|state)
	[ -f "$c/state.json" ] || fail "open $c/state.json: no such file or directory"
	status=$(sed -n 's/.*"status": "\(.*\)".*/\1/p' "$c/state.json")
	pid=$(sed -n 's/.*"pid": \([0-9]*\).*/\1/p' "$c/state.json") ;;
*)
	echo "Incorrect Usage: no command $cmd" >&2; exit 3 ;;
esac
case $cmd in
start) [ "$status" = created ] || fail "container: $id is not created. currnet status: $status"; status=running ;;
kill) [ "$status" = running ] || fail "container: $id not running."; status=stopped pid=0 ;;
delete) [ "$status" = running ] && fail "container: $id is not stopped. current status: $status"; rm "$c/state.json"; exit 0 ;;
state) cat "$c/state.json"; echo; exit 0 ;;
esac
printf '{\n    "ociVersion": "1.2.0",\n    "id": "%s",\n    "status": "%s",\n    "pid": %s,\n    "shimPid": 0,\n    "rootfs": "%s/rootfs",\n    "bundle": "%s",\n    "annotations": {}\n}\n' "$id" "$status" "$pid" "$c" "$c" > "$c/state.json"
