package rest

import (
	"encoding/json"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/raind/condenser/rest/api"
)

// TestWriteEncoded checks that an envelope around data already encoded is
// byte for byte the one writeJSON encodes, HTML escaping included.
func TestWriteEncoded(t *testing.T) {
	for _, tc := range []struct {
		message string
		data    any
	}{
		{"0 containers", []api.ContainerSummary{}},
		{"2 containers", []api.ContainerSummary{{ContainerID: "a", Name: "<x&y>", Command: []string{}, Forwards: []api.Forward{}}, {ContainerID: "b", Command: []string{"sh"}, Forwards: []api.Forward{}}}},
		{`a "quoted" <message>`, map[string]int{"n": 1}},
	} {
		want := httptest.NewRecorder()
		writeJSON(want, 200, api.Envelope{Status: api.StatusSuccess, Message: tc.message, Data: tc.data})
		data, err := json.Marshal(tc.data)
		if err != nil {
			t.Fatal(err)
		}
		got := httptest.NewRecorder()
		writeEncoded(got, tc.message, data)
		if got.Body.String() != want.Body.String() || got.Code != want.Code {
			t.Errorf("%s:\n got %d %s\nwant %d %s", tc.message, got.Code, got.Body, want.Code, want.Body)
		}
		for _, h := range []string{"Content-Type", "X-Content-Type-Options"} {
			if got.Header().Get(h) != want.Header().Get(h) {
				t.Errorf("%s: %s %q, want %q", tc.message, h, got.Header().Get(h), want.Header().Get(h))
			}
		}
		if cl := got.Header().Get("Content-Length"); cl != strconv.Itoa(got.Body.Len()) {
			t.Errorf("%s: Content-Length %s for a body of %d bytes", tc.message, cl, got.Body.Len())
		}
	}
}
