package backend

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"

	"github.com/raind/condenser/rest"
	"github.com/raind/condenser/rest/api"
	"github.com/raind/condenser/supervisor"
)

// GET /v1/containers is the request clients repeat most (a `ps` loop, a
// dashboard, an orchestrator's poll), and its answer changes only when a
// record does. So the adapter keeps it encoded, derived from one snapshot
// of the records (supervisor.Snapshot, which copies nothing): each
// record's summary, encoded once per version of the record, and the two
// unfiltered listings (every container, the running ones), assembled once
// per generation. A request then costs a generation check and a write of
// bytes already made, whatever the number of containers; a change costs
// the encoding of the changed records alone and one concatenation.

var _ rest.EncodedLister = (*Backend)(nil)

// listCache is what one generation of the records lists as. Its fields are
// never modified once it is published.
type listCache struct {
	gen uint64
	// summaries are the encoded summaries by record: a record is replaced,
	// never modified, when it changes, so a pointer names one version.
	summaries      map[*supervisor.Container][]byte
	all, running   []byte // JSON arrays
	nAll, nRunning int
}

// lister holds the latest listCache; mu serializes the rebuilds.
type lister struct {
	mu    sync.Mutex
	cache atomic.Pointer[listCache]
}

// ListContainersJSON is ListContainers encoded as the JSON array the REST
// layer sends (empty lists as []). The bytes are shared: the caller must not
// modify them.
func (b *Backend) ListContainersJSON(_ context.Context, all bool, labels map[string]string) ([]byte, int, error) {
	snap := b.sup.Snapshot()
	lc := b.list.cache.Load()
	if lc == nil || lc.gen != snap.Gen {
		var err error
		if lc, err = b.list.rebuild(snap); err != nil {
			return nil, 0, err
		}
	}
	switch {
	case len(labels) == 0 && all:
		return lc.all, lc.nAll, nil
	case len(labels) == 0:
		return lc.running, lc.nRunning, nil
	}
	out, n := assemble(lc, snap.Containers, func(c *supervisor.Container) bool {
		return (all || c.State == supervisor.StateRunning) && hasLabels(c.Request.Labels, labels)
	})
	return out, n, nil
}

// rebuild returns the listCache of snap, encoding the records that changed
// since the last one, and publishes it unless a later one is already.
func (l *lister) rebuild(snap supervisor.Snapshot) (*listCache, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	prev := l.cache.Load()
	if prev != nil && prev.gen == snap.Gen { // rebuilt by another request meanwhile
		return prev, nil
	}
	lc := &listCache{gen: snap.Gen, summaries: make(map[*supervisor.Container][]byte, len(snap.Containers))}
	for _, c := range snap.Containers {
		b, ok := []byte(nil), false
		if prev != nil {
			b, ok = prev.summaries[c]
		}
		if !ok {
			s := summary(c)
			normalizeSummary(&s)
			var err error
			if b, err = json.Marshal(s); err != nil {
				return nil, err
			}
		}
		lc.summaries[c] = b
	}
	lc.all, lc.nAll = assemble(lc, snap.Containers, func(*supervisor.Container) bool { return true })
	lc.running, lc.nRunning = assemble(lc, snap.Containers, func(c *supervisor.Container) bool { return c.State == supervisor.StateRunning })
	if prev == nil || snap.Gen > prev.gen {
		l.cache.Store(lc)
	}
	return lc, nil
}

// assemble is the JSON array of the encoded summaries of the records in cs
// that keep selects, and their number.
func assemble(lc *listCache, cs []*supervisor.Container, keep func(*supervisor.Container) bool) ([]byte, int) {
	size, n := 2, 0
	for _, c := range cs {
		if keep(c) {
			size += len(lc.summaries[c]) + 1
		}
	}
	out := make([]byte, 0, size)
	out = append(out, '[')
	for _, c := range cs {
		if !keep(c) {
			continue
		}
		if n > 0 {
			out = append(out, ',')
		}
		out = append(out, lc.summaries[c]...)
		n++
	}
	return append(out, ']'), n
}

// normalizeSummary sends empty lists as [] rather than null, as the REST
// layer does for the summaries it encodes itself.
func normalizeSummary(s *api.ContainerSummary) {
	if s.Command == nil {
		s.Command = []string{}
	}
	if s.Forwards == nil {
		s.Forwards = []api.Forward{}
	}
}
