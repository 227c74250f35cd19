package rest

import (
	"net/http"
	"strings"
	"testing"
)

// The Raind CLI's policy and netflow calls are routes: 501 with a fail
// envelope saying what is missing, never 404 or 405, and no Backend call.
func TestPolicyRoutesNotImplemented(t *testing.T) {
	f := &fake{}
	h, _ := newTestHandler(f)
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/v1/policies", `{"chain":"RAIND-EW","source":"a","dest":"b","protocol":"tcp","dport":80,"comment":""}`},
		{"GET", "/v1/policies/RAIND-EW", ""},
		{"GET", "/v1/policies/RAIND-NS-OBS", ""},
		{"GET", "/v1/policies/commit", ""}, // a chain named commit
		{"POST", "/v1/policies/commit", ""},
		{"POST", "/v1/policies/revert", ""},
		{"DELETE", "/v1/policies/0123abcd", ""},
		{"POST", "/v1/policies/ns/mode", `{"mode":"enforce"}`},
		{"GET", "/v1/logs/netflow", ""},
		{"GET", "/v1/logs/netflow?tail_lines=20", ""},
	} {
		rec := do(h, tc.method, tc.path, tc.body)
		if rec.Code != http.StatusNotImplemented {
			t.Errorf("%s %s: %d, want 501: %s", tc.method, tc.path, rec.Code, rec.Body)
			continue
		}
		env := decodeEnvelope(t, rec.Body.Bytes())
		if env.Status != "fail" || !strings.Contains(env.Message, "network policies are not implemented by Condenser yet") {
			t.Errorf("%s %s: envelope %+v", tc.method, tc.path, env)
		}
	}
	if c := f.called(); len(c) != 0 {
		t.Errorf("backend called: %v", c)
	}
	// Other methods on these paths are still 405, unknown paths 404.
	if rec := do(h, "PUT", "/v1/policies/commit", ""); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("PUT /v1/policies/commit: %d, want 405", rec.Code)
	}
	if rec := do(h, "GET", "/v1/logs/other", ""); rec.Code != http.StatusNotFound {
		t.Errorf("GET /v1/logs/other: %d, want 404", rec.Code)
	}
}
