// Package rootfs turns an image's unpacked layer directories
// (imagestore.Store.LayerDirs, bottom first) into one container's root
// filesystem, mounts and unmounts it, and cleans it up. It never pulls or
// parses images. The package is Linux-only.
//
// # Layout
//
// A Manager owns one directory, <root>/containers:
//
//	containers/<id>/upper/   overlay upper dir (the container's writable layer)
//	containers/<id>/work/    overlay work dir
//	containers/<id>/empty/   an empty bottom lower, only when overlay needs one
//	containers/<id>/rootfs/  copy driver: the layers copied into one tree
//
// Other files in containers/<id> (the supervisor's <id>-json.log) are left
// alone by Prepare and removed with the directory by Remove.
//
// # Drivers
//
// "overlayfs" is used when a probe mount (made once per Manager in a
// temporary directory under containers/) works; otherwise, or when
// Options.Copy asks for it, "copy" copies the layers bottom first into
// containers/<id>/rootfs, applying overlay whiteouts (0/0 character devices)
// and opaque directories (trusted.overlay.opaque=y) and preserving owners,
// modes, xattrs (except trusted.overlay.*), times, hard links within a layer,
// devices, fifos, sockets and sparse files. The copy is handed out as an
// rbind mount (plus "ro" when read-only).
//
// An overlay Mount carries lowerdir (top first), upperdir and workdir, with
// ':', ',' and '\' in paths escaped by a backslash as overlayfs expects. A
// read-only overlay has no upper and work dir, carries "ro", and gets
// containers/<id>/empty as its bottom lower when the image has a single layer
// (overlayfs needs two lowers without an upper). An image with no layers gets
// the empty dir as its only lower (read-write) or a read-only bind of it.
//
// # Many layers
//
// mount(2) copies at most one page of option data, which 60 or more layers
// under long paths exceed. MountAll therefore mounts an overlay whose option
// data is longer than 4000 bytes with the new mount API (fsopen, fsconfig,
// fsmount, move_mount), passing one "lowerdir+" per layer (Linux ≥ 6.8).
// fsconfig takes strings of at most 255 bytes; a longer layer, upper or work
// path is passed as an open directory (FSCONFIG_SET_FD, accepted by overlayfs
// since Linux 6.13). On an older kernel the mount fails with an error wrapping
// ErrKernelTooOld.
//
// # Cleanup
//
// Remove reads /proc/self/mountinfo and unmounts, deepest first, every mount
// at or below containers/<id>, every overlay whose upper, work or lower dirs
// lie there, and every bind mount of a directory there (wherever those are
// mounted, e.g. in a shim bundle left by a crash); a busy mount is detached
// lazily. It removes the directory only when nothing is mounted below it any
// more, so a stray mount never leads to deleting through it.
//
// Usage counts allocated blocks (st_blocks*512, like du) of every inode
// below the writable layer's root, hard links once: 0 for a fresh container.
package rootfs
