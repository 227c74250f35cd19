package imagestore

import (
	"errors"
	"testing"

	"github.com/raind/condenser/internal/errdefs"
)

func TestParseReference(t *testing.T) {
	const dgst = "sha256:9a7c4cbe2f4a0bb0a54b2d8c8db3c9e1a36e01fb1b6b0b1d6e3d3c0e8b8a5f3c"
	tests := []struct {
		in, canonical, familiar string
	}{
		{"alpine", "docker.io/library/alpine:latest", "alpine:latest"},
		{"alpine:3.20", "docker.io/library/alpine:3.20", "alpine:3.20"},
		{"library/alpine", "docker.io/library/alpine:latest", "alpine:latest"},
		{"docker.io/library/alpine:edge", "docker.io/library/alpine:edge", "alpine:edge"},
		{"index.docker.io/library/alpine", "docker.io/library/alpine:latest", "alpine:latest"},
		{"user/app:1", "docker.io/user/app:1", "user/app:1"},
		{"127.0.0.1:5000/test/busybox", "127.0.0.1:5000/test/busybox:latest", "127.0.0.1:5000/test/busybox:latest"},
		{"ghcr.io/a/b/c:v1", "ghcr.io/a/b/c:v1", "ghcr.io/a/b/c:v1"},
		{"alpine@" + dgst, "docker.io/library/alpine@" + dgst, "alpine@" + dgst},
		{"localhost:5000/x@" + dgst, "localhost:5000/x@" + dgst, "localhost:5000/x@" + dgst},
		{"Registry.LAN:5000/team/my-app__x.y_z:1", "Registry.LAN:5000/team/my-app__x.y_z:1", "Registry.LAN:5000/team/my-app__x.y_z:1"},
		{"[::1]:5000/x", "[::1]:5000/x:latest", "[::1]:5000/x:latest"},
		{"a--b/c---d", "docker.io/a--b/c---d:latest", "a--b/c---d:latest"},
	}
	for _, tc := range tests {
		r, err := ParseReference(tc.in)
		if err != nil {
			t.Errorf("ParseReference(%q): %v", tc.in, err)
			continue
		}
		if r.String() != tc.canonical || r.Familiar() != tc.familiar {
			t.Errorf("ParseReference(%q) = %s (%s), want %s (%s)", tc.in, r, r.Familiar(), tc.canonical, tc.familiar)
		}
	}
}

func TestParseReferenceInvalid(t *testing.T) {
	for _, in := range []string{"", " alpine", "Alpine", "alpine:", "alpine@sha256:abc", "a b", "alpine:tag with space", "/alpine", "alpine::1", "UPPER/case",
		// Path traversal and names that parse as a registry of dots (they
		// used to be dialled: https://../v2/).
		"../../etc/passwd", "../x:1", "./x", ".../x", "..", "foo/..", "a/../b", "a/./b",
		"localhost:5000/../x", "a..b/c", "..foo/bar", "foo../bar", "-x.io/y", "x.io-/y",
		// Separators where Docker's grammar has none.
		"-x/y", "x/.-y", "x/y-", "x/_y", "x/y.", "registry.lan:port/x"} {
		if _, err := ParseReference(in); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("ParseReference(%q) = %v, want ErrInvalidArgument", in, err)
		}
	}
}
