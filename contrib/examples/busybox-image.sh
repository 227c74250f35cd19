#!/bin/sh
# Writes a one-layer `docker save` tarball of the host's static busybox
# (Debian: apt-get install busybox-static) to stdout, tagged busybox:latest,
# for trying Condenser offline:
#   sh contrib/examples/busybox-image.sh > busybox.tar
#   condenserctl image import busybox.tar (or: bin/condenser import busybox.tar)
set -eu
busybox=${BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] || { echo "no static busybox at $busybox (apt-get install busybox-static)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/tmp" "$work/image"
cp "$busybox" "$work/rootfs/bin/busybox"
for a in $("$work/rootfs/bin/busybox" --list); do
	[ "$a" = busybox ] || ln -s busybox "$work/rootfs/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$work/rootfs/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' > "$work/rootfs/etc/group"
chmod 1777 "$work/rootfs/tmp"
tar --numeric-owner --owner=0 --group=0 --mtime=@0 --sort=name -C "$work/rootfs" -cf "$work/image/layer.tar" .
diffid=$(sha256sum "$work/image/layer.tar" | cut -d' ' -f1)
printf '{"architecture":"%s","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"created":"1970-01-01T00:00:00Z"}' \
	"$(dpkg --print-architecture 2>/dev/null || echo amd64)" "$diffid" > "$work/image/config.json"
printf '[{"Config":"config.json","RepoTags":["busybox:latest"],"Layers":["layer.tar"]}]' > "$work/image/manifest.json"
tar -C "$work/image" -cf - manifest.json config.json layer.tar
