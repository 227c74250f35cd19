package docker

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/moby/moby/api/types/events"

	"github.com/raind/condenser/supervisor"
)

// Events. Docker replays the events of the recent past (docker events
// --since 1m) and the supervisor only fans out events as they happen, so
// the handler keeps the latest of them in a ring fed from the supervisor's
// events by one goroutine (owned by the server, ended by Shutdown). The
// image, volume and network handlers add their own events to it.

// eventRingSize bounds the events kept for replay.
const eventRingSize = 1024

// eventSource is the supervisor's stream of lifecycle events.
type eventSource interface {
	Subscribe() (<-chan supervisor.Event, func())
}

// containerGetter finds a container's record, to tell an event's image.
type containerGetter interface {
	Get(ctx context.Context, ref string) (*supervisor.Container, error)
}

// eventMessage is events.Message with the fields API 1.52 dropped and
// clients at 1.50 still read (the docker CLI's default format prints
// status/id/from for containers).
type eventMessage struct {
	Status string `json:"status,omitempty"`
	ID     string `json:"id,omitempty"`
	From   string `json:"from,omitempty"`
	events.Message
}

// eventLog is the ring of recent events and the wake-up of their readers.
type eventLog struct {
	mu      sync.Mutex
	ring    []eventMessage // the last len ≤ size events, oldest first
	size    int
	changed chan struct{} // closed, and replaced, when an event is added
}

func newEventLog(size int) *eventLog {
	return &eventLog{size: size, changed: make(chan struct{})}
}

// add appends m, dropping the oldest event when the ring is full.
func (l *eventLog) add(m eventMessage) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ring) == l.size {
		copy(l.ring, l.ring[1:])
		l.ring = l.ring[:len(l.ring)-1]
	}
	// Keep times strictly increasing, even when two sources race: a
	// reader resumes after the time of the last event it read.
	if n := len(l.ring); n > 0 && l.ring[n-1].TimeNano >= m.TimeNano {
		m.TimeNano = l.ring[n-1].TimeNano + 1
		m.Time = m.TimeNano / int64(time.Second)
	}
	l.ring = append(l.ring, m)
	close(l.changed)
	l.changed = make(chan struct{})
}

// after returns the events later than afterNano (time in ns, exclusive)
// and the channel closed when the next one is added.
func (l *eventLog) after(afterNano int64) ([]eventMessage, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := len(l.ring)
	for i > 0 && l.ring[i-1].TimeNano > afterNano {
		i--
	}
	return append([]eventMessage(nil), l.ring[i:]...), l.changed
}

// newEvent makes Docker's message for an event of typ on the object id.
func newEvent(t time.Time, typ, action, id string, attrs map[string]string) eventMessage {
	if attrs == nil {
		attrs = map[string]string{}
	}
	m := eventMessage{Message: events.Message{
		Type: events.Type(typ), Action: events.Action(action),
		Actor: events.Actor{ID: id, Attributes: attrs},
		Scope: "local", Time: t.Unix(), TimeNano: t.UnixNano(),
	}}
	if typ == "container" {
		m.Status, m.ID, m.From = action, id, attrs["image"]
	}
	return m
}

// note records an event of the Docker API's own (image pulls and tags,
// volume and network changes).
func (s *server) note(_ context.Context, typ, action, id string, attrs map[string]string) {
	if s.events != nil {
		s.events.add(newEvent(time.Now(), typ, action, id, attrs))
	}
}

// startEvents makes the event log and, when a dependency publishes
// lifecycle events, the goroutine that feeds it until Shutdown.
func (s *server) startEvents() {
	s.events = newEventLog(eventRingSize)
	var src eventSource
	var get containerGetter
	for _, d := range []any{s.Containers, s.Streams, s.Networks} {
		if e, ok := d.(eventSource); ok && src == nil {
			src = e
		}
		if g, ok := d.(containerGetter); ok && get == nil {
			get = g
		}
	}
	if src == nil {
		return
	}
	ch, unsubscribe := src.Subscribe()
	go func() {
		defer unsubscribe()
		// known remembers the attributes (image, labels) of each
		// container seen, for the events after its record is gone
		// (destroy).
		known := map[string]map[string]string{}
		for {
			select {
			case <-s.stopping.Done():
				return
			case e, ok := <-ch:
				if !ok {
					return // the supervisor closed
				}
				if m, ok := containerEvent(s.stopping, e, get, known); ok {
					s.events.add(m)
				}
			}
		}
	}()
}

// containerEvent turns a supervisor event into Docker's, with the
// container's image and labels as attributes (as Docker's); the
// supervisor's own steps (creating) are not Docker events.
func containerEvent(ctx context.Context, e supervisor.Event, get containerGetter, known map[string]map[string]string) (eventMessage, bool) {
	if e.Type != "container" || e.Action == "creating" || e.Action == "" {
		return eventMessage{}, false
	}
	attrs := map[string]string{}
	base, ok := known[e.ID]
	if !ok && get != nil {
		if c, err := get.Get(ctx, e.ID); err == nil {
			base = maps.Clone(c.Request.Labels)
			if base == nil {
				base = map[string]string{}
			}
			base["image"] = familiarImage(c.Image)
			known[e.ID] = base
		}
	}
	maps.Copy(attrs, base)
	attrs["name"] = e.Name
	if e.ExitCode != nil {
		attrs["exitCode"] = strconv.Itoa(*e.ExitCode)
	}
	if e.Action == "destroy" {
		delete(known, e.ID)
	}
	t := e.Time
	if t.IsZero() {
		t = time.Now()
	}
	return newEvent(t, e.Type, e.Action, e.ID, attrs), true
}

// parseEventTime reads since/until as Docker's clients send them: unix
// seconds, with an optional fraction ("1700000000.123456789").
func parseEventTime(v string) (time.Time, error) {
	secs, frac, _ := cutDot(v)
	s, err := strconv.ParseInt(secs, 10, 64)
	if err != nil || s < 0 {
		return time.Time{}, invalid("invalid time %q: want unix seconds", v)
	}
	var ns int64
	if frac != "" {
		if len(frac) > 9 {
			frac = frac[:9]
		}
		for len(frac) < 9 {
			frac += "0"
		}
		if ns, err = strconv.ParseInt(frac, 10, 64); err != nil || ns < 0 {
			return time.Time{}, invalid("invalid time %q: want unix seconds", v)
		}
	}
	return time.Unix(s, ns), nil
}

func cutDot(v string) (string, string, bool) {
	for i := 0; i < len(v); i++ {
		if v[i] == '.' {
			return v[:i], v[i+1:], true
		}
	}
	return v, "", false
}

// matchEvent applies the events filters: type, event (action), container
// (id or name), image, label, network, volume.
func matchEvent(f filters, m eventMessage) bool {
	if !f.allow("type", string(m.Type)) || !f.allow("event", string(m.Action)) {
		return false
	}
	a := m.Actor.Attributes
	if f.has("container") && (m.Type != "container" || !(f["container"][m.Actor.ID] || f["container"][a["name"]] || shortIDMatch(f["container"], m.Actor.ID))) {
		return false
	}
	if f.has("image") {
		id := ""
		if m.Type == "image" {
			id = m.Actor.ID
		}
		if !(f["image"][a["image"]] || f["image"][id] || f["image"][a["name"]]) {
			return false
		}
	}
	if f.has("network") && (m.Type != "network" || !(f["network"][m.Actor.ID] || f["network"][a["name"]])) {
		return false
	}
	if f.has("volume") && (m.Type != "volume" || !f["volume"][m.Actor.ID]) {
		return false
	}
	return f.matchLabels(a)
}

// shortIDMatch tells whether one of the wanted values is a prefix (≥ 12
// digits, as the CLI prints them) of id.
func shortIDMatch(want map[string]bool, id string) bool {
	for w := range want {
		if len(w) >= 12 && len(w) <= len(id) && id[:len(w)] == w {
			return true
		}
	}
	return false
}

// events streams events as JSON lines: those since ?since= from the ring,
// then new ones until ?until= (or until the client leaves).
func (s *server) eventsStream(w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilters(r)
	if err != nil {
		return err
	}
	if err := f.validate("type", "event", "container", "image", "label", "label!", "network", "volume", "scope", "daemon"); err != nil {
		return err
	}
	now := time.Now()
	since, until := now, time.Time{}
	if v := r.URL.Query().Get("since"); v != "" {
		if since, err = parseEventTime(v); err != nil {
			return err
		}
	}
	if v := r.URL.Query().Get("until"); v != "" {
		if until, err = parseEventTime(v); err != nil {
			return err
		}
	}
	ctx, cancel := s.streamContext(r)
	defer cancel()
	var deadline <-chan time.Time
	if !until.IsZero() {
		d := time.Until(until)
		if d < 0 {
			d = 0
		}
		t := time.NewTimer(d)
		defer t.Stop()
		deadline = t.C
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flush(w)
	enc := json.NewEncoder(w)
	last := since.UnixNano() - 1
	for {
		ms, changed := s.events.after(last)
		for _, m := range ms {
			last = m.TimeNano
			if !until.IsZero() && m.TimeNano > until.UnixNano() {
				return nil
			}
			if !matchEvent(f, m) {
				continue
			}
			if err := enc.Encode(m); err != nil {
				return err
			}
		}
		if len(ms) > 0 {
			flush(w)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-deadline:
			return nil
		case <-changed:
		}
	}
}
