package imagestore

import (
	"io"
	"sync"
	"time"
)

// Status is the state of one layer in a pull or import.
type Status string

const (
	StatusDownloading Status = "downloading" // Current of Total compressed bytes received (and unpacked on the fly)
	StatusExtracting  Status = "extracting"  // unpacking a blob already stored; Current of Total bytes read
	StatusDone        Status = "done"        // stored and unpacked
	StatusExists      Status = "exists"      // already present: nothing to do
)

// Progress is one event of a pull or import.
type Progress struct {
	Layer   string `json:"layer"` // blob digest
	Status  Status `json:"status"`
	Current int64  `json:"current,omitempty"`
	Total   int64  `json:"total,omitempty"`
}

// ProgressFunc receives progress events. The store never calls it
// concurrently; it must not block for long.
type ProgressFunc func(Progress)

// reporter serializes calls to a ProgressFunc (nil: discard).
type reporter struct {
	mu sync.Mutex
	fn ProgressFunc
}

func newReporter(fn ProgressFunc) *reporter { return &reporter{fn: fn} }

func (r *reporter) send(p Progress) {
	if r.fn == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fn(p)
}

// progressInterval bounds how often byte counts are reported for one layer.
const progressInterval = 100 * time.Millisecond

// countingReader reports bytes read, at most every progressInterval, and
// once more at the end of the stream.
type countingReader struct {
	r    io.Reader
	rep  *reporter
	ev   Progress
	last time.Time
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.ev.Current += int64(n)
	if c.rep.fn != nil {
		now := time.Now()
		if err == io.EOF || now.Sub(c.last) >= progressInterval {
			c.last = now
			c.rep.send(c.ev)
		}
	}
	return n, err
}
