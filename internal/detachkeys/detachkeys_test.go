package detachkeys

import (
	"bytes"
	"testing"

	"github.com/raind/condenser/internal/errdefs"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want []byte
		ok   bool
	}{
		{"", nil, true},
		{Default, []byte{16, 17}, true},
		{"ctrl-P,CTRL-q", []byte{16, 17}, true},
		{"a,ctrl-@,ctrl-[,ctrl-_", []byte{'a', 0, 27, 31}, true},
		{"ctrl-", nil, false},
		{"ctrl-1", nil, false},
		{"ab", nil, false},
		{"a,,b", nil, false},
	} {
		got, err := Parse(tc.spec)
		if (err == nil) != tc.ok || !bytes.Equal(got, tc.want) {
			t.Errorf("Parse(%q) = %v, %v", tc.spec, got, err)
		}
		if err != nil && errdefs.Kind(err) != errdefs.ErrInvalidArgument {
			t.Errorf("Parse(%q): error kind %v", tc.spec, err)
		}
	}
}

func TestScanner(t *testing.T) {
	keys := []byte{16, 17}
	for _, tc := range []struct {
		chunks   []string
		want     string
		detached bool
	}{
		{[]string{"hello"}, "hello", false},
		{[]string{"ab\x10\x11cd"}, "ab", true},
		{[]string{"ab\x10", "\x11cd"}, "ab", true},
		{[]string{"ab\x10", "x"}, "ab\x10x", false},
		{[]string{"\x10\x10\x11"}, "\x10", true},
		{[]string{"\x10"}, "\x10", false}, // flushed at the end
	} {
		s := Scanner{Keys: keys}
		var out []byte
		detached := false
		for _, c := range tc.chunks {
			p, d := s.Feed([]byte(c))
			out = append(out, p...)
			if d {
				detached = true
				break
			}
		}
		if !detached {
			out = append(out, s.Flush()...)
		}
		if string(out) != tc.want || detached != tc.detached {
			t.Errorf("%q: %q %v, want %q %v", tc.chunks, out, detached, tc.want, tc.detached)
		}
	}
	var none Scanner
	if p, d := none.Feed([]byte("\x10\x11")); string(p) != "\x10\x11" || d {
		t.Fatal("no keys: everything goes on")
	}
}

// FuzzScanner: however the input is cut, what goes on is the input up to
// the first occurrence of the keys (or all of it), and the keys are found
// exactly when they occur.
func FuzzScanner(f *testing.F) {
	f.Add("ctrl-p,ctrl-q", []byte("ab\x10\x11cd"), uint8(3))
	f.Add("a,a,b", []byte("aaab"), uint8(1))
	f.Add("x", []byte(""), uint8(0))
	f.Fuzz(func(t *testing.T, spec string, in []byte, cut uint8) {
		keys, err := Parse(spec)
		if err != nil || len(keys) == 0 {
			return
		}
		s := Scanner{Keys: keys}
		step := int(cut)%7 + 1
		var out []byte
		detached := false
		for i := 0; i < len(in) && !detached; i += step {
			p, d := s.Feed(in[i:min(i+step, len(in))])
			out = append(out, p...)
			detached = d
		}
		if !detached {
			out = append(out, s.Flush()...)
		}
		want, found := in, false
		if j := bytes.Index(in, keys); j >= 0 {
			want, found = in[:j], true
		}
		if detached != found || !bytes.Equal(out, want) {
			t.Fatalf("keys %q in %q by %d: %q %v, want %q %v", keys, in, step, out, detached, want, found)
		}
	})
}
