package rootfs

import (
	"context"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
)

// mountInfo is one line of /proc/self/mountinfo.
type mountInfo struct {
	id, parent int
	majmin     string // "major:minor" of the filesystem
	root       string // path of the mount's root inside its filesystem
	mountPoint string
	fstype     string
	source     string
	superOpts  []string // unescaped, one per option
	optional   []string // the optional fields: shared:N, master:N, …
	order      int      // position, for sorting
}

func readMountinfo() ([]mountInfo, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var ms []mountInfo
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" {
			continue
		}
		mi, err := parseMountinfoLine(line)
		if err != nil {
			return nil, err
		}
		mi.order = len(ms)
		ms = append(ms, mi)
	}
	return ms, nil
}

// parseMountinfoLine parses
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
func parseMountinfoLine(line string) (mountInfo, error) {
	f := strings.Split(line, " ")
	bad := func() (mountInfo, error) {
		return mountInfo{}, fmt.Errorf("mountinfo: malformed line %q", line)
	}
	if len(f) < 10 {
		return bad()
	}
	var mi mountInfo
	var err error
	if mi.id, err = strconv.Atoi(f[0]); err != nil {
		return bad()
	}
	if mi.parent, err = strconv.Atoi(f[1]); err != nil {
		return bad()
	}
	mi.majmin = f[2]
	mi.root = unescapeOctal(f[3])
	mi.mountPoint = unescapeOctal(f[4])
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 || sep+2 >= len(f) {
		return bad()
	}
	mi.optional = f[6:sep]
	mi.fstype = f[sep+1]
	mi.source = unescapeOctal(f[sep+2])
	if sep+3 < len(f) {
		for _, o := range strings.Split(f[sep+3], ",") {
			mi.superOpts = append(mi.superOpts, unescapeOctal(o))
		}
	}
	return mi, nil
}

// DetachIfSlave lazily unmounts dir from the calling process's mount
// namespace when dir is a mount point there that receives propagation
// from another namespace (a slave, "master:N" in mountinfo), and reports
// whether it did. Any other mount, or none, is left as it is.
func DetachIfSlave(dir string) (bool, error) {
	ms, err := readMountinfo()
	if err != nil {
		return false, err
	}
	for _, mi := range ms {
		if mi.mountPoint != dir {
			continue
		}
		for _, o := range mi.optional {
			if strings.HasPrefix(o, "master:") {
				if err := unmountPath(dir); err != nil {
					return false, err
				}
				return true, nil
			}
		}
	}
	return false, nil
}

// unescapeOctal undoes the kernel's \ooo escaping in mountinfo.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// overlayDirs returns the upper, work and lower dirs of an overlay mount.
func overlayDirs(mi mountInfo) []string {
	var dirs []string
	for _, o := range mi.superOpts {
		k, v, ok := strings.Cut(o, "=")
		if !ok {
			continue
		}
		// Paths show as they were given: escaped for overlayfs in
		// upperdir, workdir and lowerdir, plain in lowerdir+ and datadir+.
		switch k {
		case "upperdir", "workdir":
			dirs = append(dirs, unescapeOverlayPath(v))
		case "lowerdir+", "datadir+":
			dirs = append(dirs, v)
		case "lowerdir":
			l, d := splitLowerdir(v)
			dirs = append(append(dirs, l...), d...)
		}
	}
	return dirs
}

// unmountContainer unmounts every mount that belongs to the container
// directory cdir (inside mdir): mounted at or below it, an overlay using a
// dir in it, or a bind mount of a dir in it. It fails when something stays
// mounted below cdir.
func unmountContainer(ctx context.Context, mdir, cdir string) error {
	for pass := 0; ; pass++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		mounts, err := readMountinfo()
		if err != nil {
			return err
		}
		ours := containerMounts(mounts, mdir, cdir)
		var inside []string
		for _, mi := range ours {
			if within(mi.mountPoint, cdir) {
				inside = append(inside, mi.mountPoint)
			}
		}
		if len(ours) == 0 || pass == 4 {
			if len(inside) > 0 {
				return fmt.Errorf("still mounted: %s", strings.Join(inside, ", "))
			}
			return nil
		}
		sortDeepestFirst(ours)
		gone := map[int]bool{}
		for _, mi := range ours {
			if !within(mi.mountPoint, cdir) && coveredBy(mounts, mi, gone) {
				continue // something else is mounted over it: leave both
			}
			if err := unmountPath(mi.mountPoint); err != nil {
				return err
			}
			gone[mi.id] = true
		}
	}
}

// coveredBy reports whether a mount not in gone is stacked on mi.
func coveredBy(mounts []mountInfo, mi mountInfo, gone map[int]bool) bool {
	for _, o := range mounts {
		if o.parent == mi.id && o.mountPoint == mi.mountPoint && !gone[o.id] {
			return true
		}
	}
	return false
}

// containerMounts selects the mounts that belong to cdir (see
// unmountContainer).
func containerMounts(mounts []mountInfo, mdir, cdir string) []mountInfo {
	// The mount holding mdir, to recognise bind mounts of dirs in cdir by
	// their filesystem and root.
	holder := -1
	for i, mi := range mounts {
		if within(mdir, mi.mountPoint) && (holder < 0 || len(mi.mountPoint) >= len(mounts[holder].mountPoint)) {
			holder = i
		}
	}
	var majmin, cdirRel string
	if holder >= 0 {
		h := mounts[holder]
		majmin = h.majmin
		cdirRel = path.Join(h.root, strings.TrimPrefix(cdir, h.mountPoint))
	}
	var ours []mountInfo
	for _, mi := range mounts {
		switch {
		case within(mi.mountPoint, cdir):
		case majmin != "" && mi.majmin == majmin && within(mi.root, cdirRel):
		case mi.fstype == "overlay" && anyWithin(overlayDirs(mi), cdir):
		default:
			continue
		}
		ours = append(ours, mi)
	}
	return ours
}

func anyWithin(ps []string, dir string) bool {
	for _, p := range ps {
		if within(path.Clean(p), dir) {
			return true
		}
	}
	return false
}
