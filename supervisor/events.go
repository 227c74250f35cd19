package supervisor

import (
	"sync"
	"time"
)

// Event is a lifecycle event.
type Event struct {
	Time     time.Time `json:"time"`
	Type     string    `json:"type"`   // "container", "image"
	Action   string    `json:"action"` // create, start, die, stop, destroy, …
	ID       string    `json:"id"`
	Name     string    `json:"name,omitempty"`
	ExitCode *int      `json:"exitCode,omitempty"`
}

// hub fans events out to subscribers; a subscriber that does not keep up
// loses events rather than blocking the daemon.
type hub struct {
	mu   sync.Mutex
	subs map[chan Event]struct{}
}

func newHub() *hub { return &hub{subs: map[chan Event]struct{}{}} }

func (h *hub) publish(e Event) {
	e.Time = time.Now().UTC()
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- e:
		default:
		}
	}
}

// Subscribe returns a channel of events from now on; call the returned
// function to stop.
func (s *Supervisor) Subscribe() (<-chan Event, func()) {
	ch := make(chan Event, 256)
	s.events.mu.Lock()
	s.events.subs[ch] = struct{}{}
	s.events.mu.Unlock()
	return ch, func() {
		s.events.mu.Lock()
		delete(s.events.subs, ch)
		s.events.mu.Unlock()
	}
}
