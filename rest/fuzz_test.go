package rest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raind/condenser/rest/api"
)

// The fuzzers drive the real handler (router, body and query decoding,
// validation, envelopes) over the fake backend, which never fails: so a
// 5xx can only come from the HTTP layer itself — a panic the router
// recovered, or an error it failed to classify — and any 4xx must be
// decided before the backend is called. `make fuzz` and `make
// test-reliability` run each for a bounded time; plain `go test` runs the
// seeds.

// fuzzServe runs one request through a fresh handler and fake, so that no
// state carries from one input to the next.
func fuzzServe(req *http.Request) (*httptest.ResponseRecorder, *fake) {
	f := &fake{}
	rec := httptest.NewRecorder()
	NewHandler(f, nil).ServeHTTP(rec, req)
	return rec, f
}

// checkAnswer fails on a 5xx, on a 4xx that reached the backend, and on
// an error that is not an envelope.
func checkAnswer(t *testing.T, rec *httptest.ResponseRecorder, f *fake) {
	t.Helper()
	body := rec.Body.Bytes()
	if rec.Code >= 500 {
		t.Fatalf("status %d: %s", rec.Code, body)
	}
	if rec.Code >= 400 {
		if calls := f.called(); len(calls) > 0 {
			t.Fatalf("status %d after the backend was called (%q): %s", rec.Code, calls, body)
		}
		var env api.Envelope
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&env); err != nil || env.Status != api.StatusFail || env.Message == "" {
			t.Fatalf("status %d without a fail envelope (%v): %q", rec.Code, err, body)
		}
	}
}

var createSeeds = []string{
	`{"image":"busybox"}`,
	`{"image":"alpine:latest","command":["sh","-c","echo hi"],"env":["K=V"],"mount":["/host:/ctr:ro"],"network":"raind0","tty":false,"name":"web"}`,
	`{"image":"alpine","entrypoint":[],"workdir":"/w","user":"1000:1000","hostname":"h","labels":{"a":"b"},"restartPolicy":"on-failure:3","resources":{"memory":67108864,"cpus":1.5,"pids":100},"readOnly":true,"autoRemove":true}`,
	`{"image":"alpine","entrypoint":null,"network":"host"}`,
	`{"image":`,
	`{"image" "alpine"}`,
	`{"image":"alpine","volume":["/a:/b"]}`,
	`{"image":"alpine","command":"sh"}`,
	`["alpine"]`,
	`null`,
	`""`,
	`{"image":"alpine"}{"image":"busybox"}`,
	`{"image":"alpine"} x`,
	``,
	`{"name":"web"}`,
	`{"image":"  "}`,
	`{"image":"alpine","port":["8080:80"]}`,
	`{"image":"alpine","network":"bridge"}`,
	`{"image":"alpine","name":"stats"}`,
	`{"image":"alpine","restartPolicy":"on-failure:x"}`,
	`{"image":"alpine","restartPolicy":"always:3"}`,
	`{"image":"alpine","resources":{"memory":-1}}`,
	`{"image":"alpine","resources":{"memory":1e400}}`,
	`{"image":"alpine","resources":{"cpus":-0.5}}`,
	`{"image":"alpine","resources":null}`,
	`{"image":"alpine","labels":{"":"x"}}`,
	`{"image":"alpine","tty":"yes"}`,
	`{"image":"\u0000\ud800"}`,
	`{"IMAGE":"alpine"}`,
	`{"image":"alpine","image":"busybox"}`,
	strings.Repeat("[", 20000),
	"\xff\xfe{}",
}

// FuzzDecodeCreate: POST /v1/containers with any body answers 200 with
// exactly the request the body holds, or a 4xx envelope; never a 5xx.
func FuzzDecodeCreate(f *testing.F) {
	for _, s := range createSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		rec, fk := fuzzServe(httptest.NewRequest("POST", "/v1/containers", strings.NewReader(body)))
		checkAnswer(t, rec, fk)
		if rec.Code != http.StatusOK {
			return
		}
		// Accepted: the backend got what the body says, and it is valid.
		var want api.CreateContainerRequest
		dec := json.NewDecoder(strings.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("accepted a body that does not decode (%v): %q", err, body)
		}
		fk.mu.Lock()
		got := fk.create
		fk.mu.Unlock()
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("backend got %+v, the body says %+v", got, want)
		}
		if err := validateCreate(&got); err != nil {
			t.Fatalf("accepted an invalid request (%v): %q", err, body)
		}
	})
}

// FuzzDecodePull: POST /v1/images, with or without the NDJSON stream,
// answers 200 or a 4xx envelope; never a 5xx.
func FuzzDecodePull(f *testing.F) {
	for _, s := range []string{
		`{"image":"alpine:latest"}`, `{"image":"alpine","os":"linux","arch":"arm64"}`, `{"image":""}`, `{}`,
		`{"image":1}`, `{"image":"alpine","platform":"linux/amd64"}`, `{"image":"a"}{}`, ``, `[`, `null`,
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, body string, ndjson bool) {
		req := httptest.NewRequest("POST", "/v1/images", strings.NewReader(body))
		if ndjson {
			req.Header.Set("Accept", "application/x-ndjson")
		}
		rec, fk := fuzzServe(req)
		checkAnswer(t, rec, fk)
		if rec.Code == http.StatusOK {
			var want api.PullImageRequest
			if err := json.Unmarshal([]byte(body), &want); err != nil || strings.TrimSpace(want.Image) == "" {
				t.Fatalf("accepted %q (%v)", body, err)
			}
		}
	})
}

// queryRoutes are the routes whose queries (and optional bodies) the
// handler decodes; {id} is replaced by the fuzzed reference.
var queryRoutes = []struct{ method, path string }{
	{"GET", "/v1/containers"},
	{"GET", "/v1/containers/{id}"},
	{"GET", "/v1/containers/{id}/log"},
	{"GET", "/v1/containers/{id}/logs"},
	{"POST", "/v1/containers/{id}/actions/start"},
	{"POST", "/v1/containers/{id}/actions/stop"},
	{"POST", "/v1/containers/{id}/actions/kill"},
	{"POST", "/v1/containers/{id}/actions/restart"},
	{"POST", "/v1/containers/{id}/actions/wait"},
	{"DELETE", "/v1/containers/{id}/actions/delete"},
	{"DELETE", "/v1/images"},
	{"GET", "/v1/images/status"},
	{"POST", "/v1/containers/{id}/actions/resize"},
	{"POST", "/v1/containers/{id}/execs/{id}/resize"},
	{"GET", "/v1/containers/{id}/execs"},
	{"GET", "/v1/containers/{id}/stdio"},
	{"GET", "/v1/networks"},
	{"GET", "/v1/networks/{id}"},
	{"DELETE", "/v1/networks/{id}"},
}

// FuzzDecodeQuery: the container actions, logs, lists and image routes
// with any query string, reference and body answer 2xx or a 4xx envelope;
// never a 5xx. What they pass on is valid (a stop timeout is not negative,
// a signal is a real one).
func FuzzDecodeQuery(f *testing.F) {
	seeds := []struct {
		route            uint8
		ref, query, body string
	}{
		{0, "", "all=0&label=a=b&label=c", ""},
		{0, "", "label==x", ""},
		{0, "", "all=maybe", ""},
		{1, "web", "", ""},
		{1, "stats", "", ""},
		{2, "web", "tail_lines=10", ""},
		{2, "web", "tail_lines=ten", ""},
		{3, "web", "follow=1&since=10m&timestamps=1&stdout=1&stderr=0&tail=all", ""},
		{3, "web", "since=2024-01-02T03:04:05Z&tail=-5", ""},
		{3, "web", "since=1704164645.5", ""},
		{3, "web", "stdout=0&stderr=0", ""},
		{3, "web", "since=yesterday", ""},
		{4, "web", "", `{"tty":true}`},
		{4, "web", "", `{"tty":true,"detach":1}`},
		{5, "web", "timeout=0", ""},
		{5, "web", "timeout=-1", "{}"},
		{5, "web", "timeout=99999999999", ""},
		{6, "web", "signal=TERM", ""},
		{6, "web", "signal=sigkill", ""},
		{6, "web", "signal=65", ""},
		{6, "web", "signal=HUP%00", ""},
		{7, "web", "timeout=3", ""},
		{8, "web", "", "[]"},
		{9, "web", "force=1", ""},
		{9, "web", "force=perhaps", ""},
		{10, "", "image=alpine&force", ""},
		{10, "", "", `{"image":"alpine"}`},
		{10, "", "", `{"image":""}`},
		{11, "", "image=alpine", ""},
		{11, "", "image=", ""},
		{12, "web", "h=24&w=80", ""},
		{12, "web", "h=24&w=65536", ""},
		{12, "web", "h=&w=", "{}"},
		{13, "web", "h=1&w=1", ""},
		{14, "web", "", ""},
		{15, "web", "stdin=1&detachKeys=ctrl-x", ""},
		{16, "", "", ""},
		{17, "raind0", "", ""},
		{18, "backend", "", ""},
		{18, "backend", "", "{}"},
		{18, "backend", "force=1", `{"force":true}`},
		{1, "a%2Fb", "", ""},
		{1, "%zz", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.route, s.ref, s.query, s.body)
	}
	f.Fuzz(func(t *testing.T, route uint8, ref, query, body string) {
		r := queryRoutes[int(route)%len(queryRoutes)]
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req := httptest.NewRequest(r.method, "/", rd)
		// Set the URL's parts directly: any bytes, as a client could send.
		req.URL.Path = strings.ReplaceAll(r.path, "{id}", ref)
		req.URL.RawQuery = query
		req.RequestURI = req.URL.RequestURI()
		rec, fk := fuzzServe(req)
		checkAnswer(t, rec, fk)
		if rec.Code >= 400 {
			return
		}
		for _, call := range fk.called() {
			f := strings.Fields(call)
			last := f[len(f)-1]
			switch f[0] {
			case "StopContainer", "RestartContainer":
				if d, err := time.ParseDuration(last); err != nil || d < 0 {
					t.Fatalf("bad timeout passed on: %q (query %q)", call, query)
				}
			case "KillContainer":
				if n, err := strconv.Atoi(last); err != nil || n < 1 || n > 64 {
					t.Fatalf("bad signal passed on: %q (query %q)", call, query)
				}
			case "ResizeTerminal":
				var rows, cols uint16
				if _, err := fmt.Sscanf(last, "%dx%d", &rows, &cols); err != nil {
					t.Fatalf("bad size passed on: %q (query %q)", call, query)
				}
			}
		}
	})
}

// FuzzDecodeCreateNetwork: POST /v1/networks with any body answers 200
// with exactly the request the body holds, whose name is a valid one, or a
// 4xx envelope; never a 5xx.
func FuzzDecodeCreateNetwork(f *testing.F) {
	for _, s := range []string{
		`{"name":"backend"}`, `{"name":"backend","subnet":"10.167.0.0/24","gateway":"10.167.0.1"}`,
		`{"name":"b.e_n-d1","subnet":"fd00::/64"}`, `{"name":""}`, `{"name":"-x"}`, `{"name":"a/b"}`, `{"name":".."}`,
		`{"name":"` + strings.Repeat("a", 129) + `"}`, `{"name":"` + strings.Repeat("ab", 32) + `"}`,
		`{"name":"backend","subnet":24}`, `{"name":"backend","driver":"macvlan"}`, `{"subnet":"10.0.0.0/8"}`,
		`{}`, ``, `[`, `null`, `"backend"`, `{"name":"a"}{"name":"b"}`, `{"name":"\u0000"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		rec, fk := fuzzServe(httptest.NewRequest("POST", "/v1/networks", strings.NewReader(body)))
		checkAnswer(t, rec, fk)
		if rec.Code != http.StatusOK {
			return
		}
		var want api.CreateNetworkRequest
		dec := json.NewDecoder(strings.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("accepted a body that does not decode (%v): %q", err, body)
		}
		fk.mu.Lock()
		got := fk.netCreate
		fk.mu.Unlock()
		if got != want {
			t.Fatalf("backend got %+v, the body says %+v", got, want)
		}
		if err := validNetworkName(got.Name); err != nil {
			t.Fatalf("accepted an invalid name (%v): %q", err, body)
		}
	})
}

// FuzzDecodeExec: POST …/actions/exec and POST …/execs with any body
// answer 200 with the request the body holds (and the endpoint's detach
// default), or a 4xx envelope; never a 5xx.
func FuzzDecodeExec(f *testing.F) {
	for _, s := range []string{
		`{"command":["sh"],"tty":true}`, `{"command":["ls","-l"],"tty":false}`, `{"command":["sh"]}`,
		`{"command":["env"],"stdin":true,"env":["A=1"],"user":"1000:1000","workdir":"/tmp","detach":false}`,
		`{"command":[]}`, `{"command":null}`, `{}`, ``, `{"command":"sh"}`, `{"command":[""]}`, `{"command":["sh"],"detach":1}`,
		`{"command":["sh"],"interactive":true}`, `[`, `null`,
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, body string, raind bool) {
		path := "/v1/containers/web/execs"
		if raind {
			path = "/v1/containers/web/actions/exec"
		}
		rec, fk := fuzzServe(httptest.NewRequest("POST", path, strings.NewReader(body)))
		checkAnswer(t, rec, fk)
		if rec.Code != http.StatusOK {
			return
		}
		var want api.ExecRequest
		dec := json.NewDecoder(strings.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&want); err != nil || len(want.Command) == 0 {
			t.Fatalf("accepted %q (%v)", body, err)
		}
		if want.Detach == nil {
			d := raind && !want.Tty
			want.Detach = &d
		}
		fk.mu.Lock()
		got := fk.exec
		fk.mu.Unlock()
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("backend got %+v, the body says %+v", got, want)
		}
	})
}

// FuzzParseDetachKeys: any spec is a 400 or one key per comma-separated
// part: the character itself, or a control character for ctrl-X.
func FuzzParseDetachKeys(f *testing.F) {
	for _, s := range []string{"ctrl-p,ctrl-q", "", "a", "ctrl-a,d", `ctrl-@,ctrl-[,ctrl-\,ctrl-],ctrl-^,ctrl-_`, ",", "ctrl-", "ctrl-1", "CTRL-Z", "ab,c", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		keys, err := parseDetachKeys(spec)
		if err != nil {
			if statusOf(err) != http.StatusBadRequest {
				t.Fatalf("%q: %v is not a 400", spec, err)
			}
			return
		}
		if spec == "" {
			if keys != nil {
				t.Fatalf("empty spec: %v, want no keys", keys)
			}
			return
		}
		parts := strings.Split(spec, ",")
		if len(keys) != len(parts) {
			t.Fatalf("%q: %d keys for %d parts", spec, len(keys), len(parts))
		}
		for i, p := range parts {
			switch {
			case len(p) == 1:
				if keys[i] != p[0] {
					t.Fatalf("%q: key %d is %#x, want %#x", spec, i, keys[i], p[0])
				}
			case !strings.EqualFold(p[:min(len(p), 5)], "ctrl-") || keys[i] > 31:
				t.Fatalf("%q: part %q gave %#x", spec, p, keys[i])
			}
		}
	})
}
