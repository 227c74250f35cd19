package names

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/raind/condenser/internal/errdefs"
)

const hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestValidID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{hex64, true},
		{strings.Repeat("f", 64), true},
		{"", false},
		{hex64[:63], false},
		{hex64 + "0", false},
		{strings.ToUpper(hex64), false},
		{hex64[:63] + "g", false},
		{hex64[:12], false},
		{"..", false},
		{"web", false},
		{hex64[:32] + "/" + hex64[33:], false},
		{hex64[:63] + "\x00", false},
	} {
		err := ValidID(tc.id)
		if (err == nil) != tc.ok {
			t.Errorf("ValidID(%q) = %v, want ok=%v", tc.id, err, tc.ok)
		}
		if err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("ValidID(%q) = %v: not an invalid argument", tc.id, err)
		}
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := NewID()
		if err := ValidID(id); err != nil {
			t.Fatalf("NewID() = %q: %v", id, err)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %q", id)
		}
		seen[id] = true
	}
}

func TestShortID(t *testing.T) {
	for in, want := range map[string]string{hex64: "0123456789ab", "abc": "abc", "": ""} {
		if got := ShortID(in); got != want {
			t.Errorf("ShortID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
		msg  string // in the error
	}{
		{"web", true, ""},
		{"a", true, ""},
		{"0", true, ""},
		{"Web_1.2-x", true, ""},
		{"cafe", true, ""},                 // looks like an id prefix: allowed, as by Docker
		{hex64[:63], true, ""},             // not a whole id
		{strings.ToUpper(hex64), true, ""}, // ids are lowercase
		{"stats", true, ""},                // reserved by the REST layer, not here
		{strings.Repeat("a", 128), true, ""},
		{"", false, "empty"},
		{strings.Repeat("a", 129), false, "longer than 128"},
		{"-web", false, "start with a letter or a digit"},
		{".web", false, "start with a letter or a digit"},
		{"_web", false, "start with a letter or a digit"},
		{".", false, "start"},
		{"..", false, "start"},
		{"/web", false, "start"},
		{"a/b", false, "want letters"},
		{"a b", false, "want letters"},
		{"a\x00", false, "want letters"},
		{"wéb", false, "want letters"},
		{"a:b", false, "want letters"},
		{hex64, false, "look like a container id"},
	} {
		err := ValidName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("ValidName(%q) = %v: not an invalid argument", tc.name, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("ValidName(%q) = %q, want it to say %q", tc.name, err, tc.msg)
			}
		}
	}
}

// docker is Docker's name rule with our length bound.
var docker = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)
var idRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// safePathElement: what every valid id and name must be.
func safePathElement(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\x00") && s[0] != '-' && s[0] != '.'
}

func FuzzValidName(f *testing.F) {
	for _, s := range []string{"web", "", "-a", "a/b", hex64, strings.Repeat("z", 129), "é", "a.b_c-d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidName(s)
		want := docker.MatchString(s) && !idRE.MatchString(s)
		if (err == nil) != want {
			t.Fatalf("ValidName(%q) = %v, the regular expressions say ok=%v", s, err, want)
		}
		if err == nil && !safePathElement(s) {
			t.Fatalf("ValidName accepted %q, which is not a safe path element", s)
		}
		if err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("ValidName(%q) = %v: not an invalid argument", s, err)
		}
	})
}

func FuzzValidID(f *testing.F) {
	for _, s := range []string{hex64, "", "..", strings.ToUpper(hex64), hex64[:63] + "/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidID(s)
		if (err == nil) != idRE.MatchString(s) {
			t.Fatalf("ValidID(%q) = %v", s, err)
		}
		if err == nil && !safePathElement(s) {
			t.Fatalf("ValidID accepted %q, which is not a safe path element", s)
		}
	})
}
