// Package names makes and checks the ids and names of containers: one rule
// for the daemon, the REST layer, the supervisor, the shim and the root
// filesystems.
//
// An id is 64 lowercase hex digits (32 random bytes), as Docker's; clients
// see its first 12 (ShortID). A name follows Docker's rule,
// [a-zA-Z0-9][a-zA-Z0-9_.-]*, here at most 128 characters, with one
// difference: a name may not itself look like an id (64 lowercase hex
// digits). A container is looked up by id, name or unique id prefix in one
// pass (the supervisor's resolve), so an id-shaped name could stand for
// another container's id; Docker, which tries full ids before names, lets
// such a name through. Names that look like an id prefix ("cafe", "0123ab")
// are accepted, as by Docker: the name wins over the prefix, and the full id
// always reaches the container.
//
// Both are safe as one path element: no '/', no NUL, never "." or "..",
// never starting with '-' or '.'.
package names

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/raind/condenser/internal/errdefs"
)

// Lengths of an id and of its short form.
const (
	IDLength      = 64
	ShortIDLength = 12
	// MaxNameLength is the longest name accepted.
	MaxNameLength = 128
)

// NewID returns a new random id: 64 lowercase hex digits.
func NewID() string {
	b := make([]byte, IDLength/2)
	rand.Read(b) // never fails (crypto/rand, Go ≥ 1.24)
	return hex.EncodeToString(b)
}

// ValidID returns nil when id is 64 lowercase hex digits, as NewID makes
// them, else an error wrapping errdefs.ErrInvalidArgument.
func ValidID(id string) error {
	if !isID(id) {
		return fmt.Errorf("container id %q: want %d lowercase hex digits: %w", truncate(id), IDLength, errdefs.ErrInvalidArgument)
	}
	return nil
}

// ShortID returns the first 12 characters of id (all of it when shorter):
// how clients show an id.
func ShortID(id string) string {
	return id[:min(len(id), ShortIDLength)]
}

// ValidName returns nil when name is a valid container name — 1 to 128 of
// letters, digits, '_', '.' and '-', starting with a letter or a digit, and
// not 64 lowercase hex digits — else an error wrapping
// errdefs.ErrInvalidArgument. The empty name is invalid: callers that let
// the daemon pick one check for it first.
func ValidName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("container name is empty: %w", errdefs.ErrInvalidArgument)
	case len(name) > MaxNameLength:
		return fmt.Errorf("container name %q: longer than %d characters: %w", truncate(name), MaxNameLength, errdefs.ErrInvalidArgument)
	case !alnum(name[0]):
		return fmt.Errorf("container name %q: must start with a letter or a digit: %w", truncate(name), errdefs.ErrInvalidArgument)
	}
	for i := 1; i < len(name); i++ {
		if c := name[i]; !alnum(c) && c != '_' && c != '.' && c != '-' {
			return fmt.Errorf("container name %q: want letters, digits, '_', '.' or '-', starting with a letter or digit: %w", truncate(name), errdefs.ErrInvalidArgument)
		}
	}
	if isID(name) {
		return fmt.Errorf("container name %q: a name cannot look like a container id (%d lowercase hex digits): %w", name, IDLength, errdefs.ErrInvalidArgument)
	}
	return nil
}

func isID(s string) bool {
	if len(s) != IDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func alnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// truncate keeps an error message short whatever it quotes.
func truncate(s string) string {
	const max = 2 * MaxNameLength
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
