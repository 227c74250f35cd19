package docker

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"

	"github.com/raind/condenser/shim/logging"
	"github.com/raind/condenser/supervisor"
)

func TestLogs(t *testing.T) {
	t0 := time.Date(2024, 5, 1, 12, 0, 0, 120000000, time.UTC)
	entries := []logging.Entry{
		{Log: "a\n", Stream: "stdout", Time: t0},
		{Log: "b\n", Stream: "stderr", Time: t0.Add(time.Second)},
		{Log: "c\n", Stream: "stdout", Time: t0.Add(2 * time.Second)},
	}
	for _, tc := range []struct {
		name, query    string
		tty            bool
		contentType    string
		stdout, stderr string
	}{
		{"all", "stdout=1&stderr=1", false, "application/vnd.docker.multiplexed-stream", "a\nc\n", "b\n"},
		{"stdout", "stdout=1", false, "application/vnd.docker.multiplexed-stream", "a\nc\n", ""},
		{"tail", "stdout=1&stderr=1&tail=2", false, "application/vnd.docker.multiplexed-stream", "c\n", "b\n"},
		{"tail all", "stdout=1&stderr=1&tail=all", false, "application/vnd.docker.multiplexed-stream", "a\nc\n", "b\n"},
		{"until", "stdout=1&stderr=1&until=1714564801.5", false, "application/vnd.docker.multiplexed-stream", "a\n", "b\n"},
		{"since", "stdout=1&stderr=1&since=1714564800.5", false, "application/vnd.docker.multiplexed-stream", "c\n", "b\n"},
		{"timestamps", "stdout=1&tail=1&timestamps=1", false, "application/vnd.docker.multiplexed-stream", "2024-05-01T12:00:02.120000000Z c\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newStreamsFake(tc.tty, supervisor.StateStopped)
			f.log = entries
			srv := streamsServer(t, f)
			resp, err := http.Get(srv.URL + "/v1.50/containers/c1/logs?" + tc.query)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tc.contentType {
				t.Fatalf("%s %q", resp.Status, resp.Header.Get("Content-Type"))
			}
			var out, errb bytes.Buffer
			if _, err := stdcopy.StdCopy(&out, &errb, resp.Body); err != nil || out.String() != tc.stdout || errb.String() != tc.stderr {
				t.Fatalf("out %q err %q (%v), want %q %q", out.String(), errb.String(), err, tc.stdout, tc.stderr)
			}
		})
	}
}

func TestLogsTTYAndErrors(t *testing.T) {
	f := newStreamsFake(true, supervisor.StateStopped)
	f.log = []logging.Entry{{Log: "a\r\n", Stream: "stdout"}, {Log: "b\r\n", Stream: "stdout"}}
	srv := streamsServer(t, f)
	resp, err := http.Get(srv.URL + "/containers/c1/logs?stdout=1&stderr=1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("Content-Type") != "application/vnd.docker.raw-stream" || string(b) != "a\r\nb\r\n" {
		t.Fatalf("tty log: %q %q", resp.Header.Get("Content-Type"), b)
	}
	for _, tc := range []struct {
		query  string
		status int
		msg    string
	}{
		{"/containers/c1/logs", 400, "you must choose at least one stream"},
		{"/containers/c1/logs?stdout=1&since=yesterday", 400, "invalid value for since"},
		{"/containers/nope/logs?stdout=1", 404, "No such container: nope"},
	} {
		resp, err := http.Get(srv.URL + tc.query)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.msg) {
			t.Errorf("%s: %d %s", tc.query, resp.StatusCode, b)
		}
	}
}

// TestLogsFollowShutdown: a followed log sends its headers at once and
// ends at Shutdown.
func TestLogsFollowShutdown(t *testing.T) {
	f := newStreamsFake(false, supervisor.StateRunning)
	f.log = []logging.Entry{{Log: "a\n", Stream: "stdout"}}
	h := NewHandler(Deps{Streams: f}, nil)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/containers/c1/logs?stdout=1&follow=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 10)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf[8:]) != "a\n" {
		t.Fatalf("first entry %q %v", buf, err)
	}
	h.Shutdown()
	if rest, err := io.ReadAll(resp.Body); err != nil || len(rest) != 0 {
		t.Fatalf("after shutdown: %q %v", rest, err)
	}
}

func TestParseLogTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"0", time.Time{}, true},
		{"1714564800", time.Unix(1714564800, 0).UTC(), true},
		{"1714564800.5", time.Unix(1714564800, 500000000).UTC(), true},
		{"1714564800.000000001", time.Unix(1714564800, 1).UTC(), true},
		{"2024-05-01T12:00:00Z", time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC), true},
		{"1714564800.", time.Time{}, false},
		{"1714564800.1234567890", time.Time{}, false},
		{"-1", time.Time{}, false},
		{"1e9", time.Time{}, false},
		{"", time.Time{}, false},
	} {
		got, err := parseLogTime(tc.in)
		if (err == nil) != tc.ok || !got.Equal(tc.want) {
			t.Errorf("parseLogTime(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func FuzzParseLogTime(f *testing.F) {
	for _, s := range []string{"0", "1714564800.5", "2024-05-01T12:00:00Z", "1.", "-3", "99999999999999999999", "1.0000000001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseLogTime(s)
		if err != nil || got.IsZero() {
			return
		}
		// Whatever was read reads back the same from Docker's own form.
		again, err := parseLogTime(fmt.Sprintf("%d.%09d", got.Unix(), got.Nanosecond()))
		if got.Unix() >= 0 && (err != nil || !again.Equal(got)) {
			t.Fatalf("%q: %v, read back as %v, %v", s, got, again, err)
		}
	})
}
