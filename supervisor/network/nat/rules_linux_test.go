package nat

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/google/nftables/expr"
)

func TestDecodePublish(t *testing.T) {
	ip := netip.MustParseAddr("10.166.0.3")
	for _, p := range []Port{
		{netip.IPv4Unspecified(), 18080, 80, "tcp"},
		{netip.MustParseAddr("127.0.0.1"), 5353, 53, "udp"},
	} {
		got, gotIP, err := decodePublish(publishExprs(p, ip))
		if err != nil || got != p || gotIP != ip {
			t.Errorf("decode(publish(%v, %v)) = %v, %v, %v", p, ip, got, gotIP, err)
		}
	}
	// What is not a published port of ours is refused, not misread.
	for _, exprs := range [][]expr.Any{
		nil,
		jumpPublishedExprs(),
		postroutingExprs(netip.MustParsePrefix("10.166.0.0/24"), "raind0")[0],
		publishExprs(Port{netip.IPv4Unspecified(), 1, 2, "tcp"}, ip)[:4],
	} {
		if p, _, err := decodePublish(exprs); err == nil {
			t.Errorf("decode(%v) = %v, want an error", exprs, p)
		}
	}
}

func TestRuleComment(t *testing.T) {
	for _, tc := range []struct {
		ud   []byte
		want string
		ok   bool
	}{
		{comment("container=abc"), "container=abc", true},
		{append([]byte{1, 2, 'x', 'y'}, comment("network=n")...), "network=n", true},
		{nil, "", false},
		{[]byte{0}, "", false},
		{[]byte{0, 200, 'a'}, "", false}, // a length past the end
		{[]byte{1, 5, 'a'}, "", false},
	} {
		got, ok := ruleComment(tc.ud)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ruleComment(%q) = %q, %v; want %q, %v", tc.ud, got, ok, tc.want, tc.ok)
		}
	}
}

func TestDiff(t *testing.T) {
	gone, added := diff([]string{"a", "b", "b", "c"}, []string{"b", "c", "d", "d"})
	if !slices.Equal(gone, []string{"a", "b"}) || !slices.Equal(added, []string{"d", "d"}) {
		t.Fatalf("diff: gone %q, added %q", gone, added)
	}
	if !ours("table ip cdt12ab34_nat flags 0") || !ours(`cmp op 0 reg 1 "\n\xc6\x01\x00"(10.198.1.0)`) || ours("-A FORWARD -j DOCKER-USER") {
		t.Fatal("ours")
	}
}
