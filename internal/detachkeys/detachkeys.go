// Package detachkeys reads Docker's detach-key sequences ("ctrl-p,ctrl-q")
// and finds them in a client's input: the keys that end an attached
// session without stopping its process.
package detachkeys

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/raind/condenser/internal/errdefs"
)

// Default is Docker's sequence.
const Default = "ctrl-p,ctrl-q"

// Parse reads a sequence in Docker's syntax: comma-separated keys, each a
// single character or ctrl-X with X one of a-z, @, [, \, ], ^, _ (ctrl-@
// is 0, ctrl-a 1 … ctrl-z 26, ctrl-[ 27 … ctrl-_ 31; "ctrl-" and the
// letter in any case). "" is none: nothing detaches. A malformed sequence
// is errdefs.ErrInvalidArgument.
func Parse(spec string) ([]byte, error) {
	if spec == "" {
		return nil, nil
	}
	var keys []byte
	for k := range strings.SplitSeq(spec, ",") {
		switch {
		case len(k) == 1:
			keys = append(keys, k[0])
			continue
		case len(k) == 6 && strings.EqualFold(k[:5], "ctrl-"):
			switch c := k[5]; {
			case c >= 'a' && c <= 'z':
				keys = append(keys, c-'a'+1)
				continue
			case c >= 'A' && c <= 'Z', c == '@', c >= '[' && c <= '_':
				keys = append(keys, c-'@')
				continue
			}
		}
		return nil, fmt.Errorf("%q is not a key: want comma-separated keys, each a single character "+
			"or ctrl-<a-z, @, [, \\, ], ^ or _> (the default is %s): %w", k, Default, errdefs.ErrInvalidArgument)
	}
	return keys, nil
}

// Scanner finds the keys in a stream of input, as Docker does: the bytes
// that may begin the sequence are held back until it is typed out (the
// caller detaches; they are dropped) or not (they go on). The zero value
// with no Keys passes everything on.
type Scanner struct {
	Keys []byte
	held []byte // a proper prefix of Keys, typed last
	out  []byte
}

// Feed returns the bytes of p that go on to the process, and whether the
// keys were typed (the bytes after them are dropped). The result is valid
// until the next call.
func (d *Scanner) Feed(p []byte) ([]byte, bool) {
	if len(d.Keys) == 0 {
		return p, false
	}
	d.out = d.out[:0]
	for i := 0; i < len(p); {
		if len(d.held) == 0 {
			j := bytes.IndexByte(p[i:], d.Keys[0])
			if j < 0 {
				d.out = append(d.out, p[i:]...)
				break
			}
			d.out = append(d.out, p[i:i+j]...)
			i += j
		}
		d.held = append(d.held, p[i])
		i++
		// On a mismatch the held bytes go on one by one until what is
		// left may still begin the keys.
		for len(d.held) > 0 && !bytes.HasPrefix(d.Keys, d.held) {
			d.out = append(d.out, d.held[0])
			d.held = append(d.held[:0], d.held[1:]...)
		}
		if len(d.held) == len(d.Keys) {
			d.held = d.held[:0]
			return d.out, true
		}
	}
	return d.out, false
}

// Flush returns the bytes held back, which go on (the input ends), and
// forgets them. The result is valid until the next call.
func (d *Scanner) Flush() []byte {
	d.out = append(d.out[:0], d.held...)
	d.held = d.held[:0]
	return d.out
}
