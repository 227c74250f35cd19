package docker

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raind/condenser/supervisor"
)

func TestEventsLiveAndReplay(t *testing.T) {
	ts := newTestServer(t, Deps{})
	id := strings.Repeat("c", 64)
	ts.sup.containers = []*supervisor.Container{{ID: id, Name: "web", Image: "docker.io/library/busybox:latest"}}
	ts.sup.containers[0].Request.Labels = map[string]string{"tier": "front"}

	// A live stream sees the events as they come.
	resp, err := http.Get(ts.url + "/v1.50/events?filters=" + urlQuery(`{"type":{"container":true}}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	code := 3
	ts.sup.events <- supervisor.Event{Time: time.Now(), Type: "container", Action: "creating", ID: id, Name: "web"}
	ts.sup.events <- supervisor.Event{Time: time.Now(), Type: "container", Action: "create", ID: id, Name: "web"}
	ts.sup.events <- supervisor.Event{Time: time.Now(), Type: "container", Action: "die", ID: id, Name: "web", ExitCode: &code}
	sc := bufio.NewScanner(resp.Body)
	var got []map[string]any
	for len(got) < 2 && sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	if len(got) != 2 {
		t.Fatalf("stream ended: %v", sc.Err())
	}
	first := got[0]
	actor := first["Actor"].(map[string]any)
	attrs := actor["Attributes"].(map[string]any)
	if first["Type"] != "container" || first["Action"] != "create" || first["status"] != "create" || first["id"] != id ||
		first["from"] != "busybox:latest" || first["scope"] != "local" || actor["ID"] != id ||
		attrs["name"] != "web" || attrs["image"] != "busybox:latest" || attrs["tier"] != "front" {
		t.Fatalf("create event %v", first)
	}
	ts.h.s.note(t.Context(), "volume", "create", "data", nil) // filtered out by type
	if got[1]["Action"] != "die" || got[1]["Actor"].(map[string]any)["Attributes"].(map[string]any)["exitCode"] != "3" {
		t.Fatalf("die event %v", got[1])
	}

	// since in the past replays from the ring; until ends the stream.
	until := strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10)
	for _, tc := range []struct {
		filter string
		want   []string
	}{
		{``, []string{"container/create", "container/die", "volume/create"}},
		{`{"type":{"volume":true}}`, []string{"volume/create"}},
		{`{"event":{"die":true}}`, []string{"container/die"}},
		{`{"container":{"web":true}}`, []string{"container/create", "container/die"}},
		{`{"container":{"` + id[:12] + `":true}}`, []string{"container/create", "container/die"}},
		{`{"image":{"busybox:latest":true}}`, []string{"container/create", "container/die"}},
		{`{"label":{"tier=front":true}}`, []string{"container/create", "container/die"}},
		{`{"container":{"other":true}}`, nil},
	} {
		body := ts.want(200, "GET", "/events?since=0&until="+until+"&filters="+urlQuery(tc.filter), "")
		var seen []string
		for _, m := range readLines(t, body) {
			seen = append(seen, m["Type"].(string)+"/"+m["Action"].(string))
		}
		if strings.Join(seen, " ") != strings.Join(tc.want, " ") {
			t.Errorf("filter %s: %v, want %v", tc.filter, seen, tc.want)
		}
	}
	ts.want(400, "GET", "/events?since=yesterday", "")
	ts.want(400, "GET", "/events?filters="+urlQuery(`{"nope":{"x":true}}`), "")
}

func TestEventLogRing(t *testing.T) {
	l := newEventLog(3)
	base := time.Unix(1700000000, 0)
	for i := range 5 {
		l.add(newEvent(base, "container", "start", strconv.Itoa(i), nil)) // same time: made strictly increasing
	}
	ms, _ := l.after(0)
	if len(ms) != 3 || ms[0].Actor.ID != "2" || ms[2].Actor.ID != "4" {
		t.Fatalf("ring %+v", ms)
	}
	for i := 1; i < len(ms); i++ {
		if ms[i].TimeNano <= ms[i-1].TimeNano {
			t.Fatalf("times not increasing: %d, %d", ms[i-1].TimeNano, ms[i].TimeNano)
		}
	}
	if after, _ := l.after(ms[1].TimeNano); len(after) != 1 || after[0].Actor.ID != "4" {
		t.Fatalf("after: %+v", after)
	}
}

func TestParseEventTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"1700000000", time.Unix(1700000000, 0), true},
		{"1700000000.5", time.Unix(1700000000, 500000000), true},
		{"1700000000.123456789123", time.Unix(1700000000, 123456789), true},
		{"-1", time.Time{}, false},
		{"1.x", time.Time{}, false},
		{"", time.Time{}, false},
	} {
		got, err := parseEventTime(tc.in)
		if (err == nil) != tc.ok || (tc.ok && !got.Equal(tc.want)) {
			t.Errorf("parseEventTime(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func FuzzParseEventTime(f *testing.F) {
	for _, s := range []string{"0", "1700000000.000000001", "1.-5", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := parseEventTime(s)
		if err == nil && tm.Before(time.Unix(0, 0)) {
			t.Fatalf("%q: time before the epoch %v", s, tm)
		}
	})
}
