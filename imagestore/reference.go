package imagestore

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/raind/condenser/internal/errdefs"
)

// dockerHub is how Docker names Docker Hub in references; go-containerregistry
// calls it index.docker.io.
const dockerHub = "docker.io"

// Reference is a parsed image reference with Docker's defaults applied:
// "alpine" is docker.io/library/alpine:latest.
type Reference struct {
	Domain string // registry host[:port], "docker.io" for Docker Hub
	Path   string // repository path, "library/alpine"
	Tag    string // "latest"; empty when Digest is set
	Digest string // "sha256:…", or empty
}

// Docker's reference grammar (distribution/reference): a registry is a
// host name (dot-separated labels of letters, digits and inner hyphens) or a
// bracketed IPv6 address, with an optional port; each component of a
// repository path is lowercase letters and digits separated by '.', '_',
// '__' or hyphens.
var (
	domainRE        = regexp.MustCompile(`^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$`)
	pathComponentRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
)

// ParseReference parses s as Docker does. An invalid reference is an
// errdefs.ErrInvalidArgument.
func ParseReference(s string) (Reference, error) {
	if s == "" || strings.TrimSpace(s) != s || strings.HasPrefix(s, "/") || strings.Contains(s, "//") {
		return Reference{}, fmt.Errorf("invalid reference %q: %w", s, errdefs.ErrInvalidArgument)
	}
	r, err := name.ParseReference(s)
	if err != nil {
		return Reference{}, fmt.Errorf("invalid reference %q: %v: %w", s, err, errdefs.ErrInvalidArgument)
	}
	ref := Reference{Domain: r.Context().RegistryStr(), Path: r.Context().RepositoryStr()}
	// go-containerregistry takes any first component with a dot or a colon
	// for a registry ("../../etc/passwd" is host ".." and path
	// "../etc/passwd"): hold both to Docker's grammar, so that such a name
	// is refused here rather than dialled.
	if !domainRE.MatchString(ref.Domain) {
		return Reference{}, fmt.Errorf("invalid reference %q: %q is not a registry host[:port]: %w", s, ref.Domain, errdefs.ErrInvalidArgument)
	}
	for _, c := range strings.Split(ref.Path, "/") {
		if !pathComponentRE.MatchString(c) {
			return Reference{}, fmt.Errorf("invalid reference %q: repository path component %q: want lowercase letters and digits, separated by '.', '_', '__' or '-': %w", s, c, errdefs.ErrInvalidArgument)
		}
	}
	if ref.Domain == name.DefaultRegistry {
		ref.Domain = dockerHub
	}
	switch r := r.(type) {
	case name.Digest:
		ref.Digest = r.DigestStr()
	case name.Tag:
		ref.Tag = r.TagStr()
	}
	return ref, nil
}

// Repository is the reference without tag or digest.
func (r Reference) Repository() string { return r.Domain + "/" + r.Path }

// Identifier is the tag, or the digest when there is one.
func (r Reference) Identifier() string {
	if r.Digest != "" {
		return r.Digest
	}
	return r.Tag
}

// String is the canonical form, e.g. docker.io/library/alpine:latest.
func (r Reference) String() string {
	if r.Digest != "" {
		return r.Repository() + "@" + r.Digest
	}
	return r.Repository() + ":" + r.Tag
}

// Familiar is the short form Docker prints: alpine:latest, user/app:1.
func (r Reference) Familiar() string {
	repo := r.Repository()
	if r.Domain == dockerHub {
		repo = strings.TrimPrefix(r.Path, "library/")
	}
	if r.Digest != "" {
		return repo + "@" + r.Digest
	}
	return repo + ":" + r.Tag
}
