package rest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/rest/api"
)

// partialImporter reads only the first n bytes of an import's body, as the
// image store does (it stops at the archive's end marker, or at its first
// error), then fails with err or succeeds.
type partialImporter struct {
	*fake
	n   int64
	err error
}

func (p *partialImporter) ImportImage(_ context.Context, r io.Reader, progress func(api.PullProgress)) ([]api.ImageSummary, error) {
	if _, err := io.CopyN(io.Discard, r, p.n); err != nil && err != io.EOF {
		return nil, err
	}
	progress(api.PullProgress{Layer: "sha256:aa", Status: "done"})
	return nil, p.err
}

// TestImportLeavesNoBodyUnread imports over kept-alive connections bodies
// the backend does not read to their end: net/http must not panic
// ("invalid concurrent Body.Read call", golang/go#68560, from the
// full-duplex mode of the import) and every request must get its answer.
func TestImportLeavesNoBodyUnread(t *testing.T) {
	for _, tc := range []struct {
		name   string
		read   int64
		err    error
		status int
	}{
		{"success before the body's end", 512, nil, 200},
		{"failure at once", 0, fmt.Errorf("not a tarball: %w", errdefs.ErrInvalidArgument), 400},
		{"failure midway", 4096, fmt.Errorf("not a tarball: %w", errdefs.ErrInvalidArgument), 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var serverLog syncBuffer
			ts := httptest.NewUnstartedServer(NewHandler(&partialImporter{fake: &fake{}, n: tc.read, err: tc.err}, nil))
			ts.Config.ErrorLog = log.New(&serverLog, "", 0)
			ts.Start()
			defer ts.Close()
			for _, size := range []int{1 << 10, 64 << 10} {
				for _, ndjson := range []bool{false, true} {
					for _, chunked := range []bool{false, true} {
						for range 3 {
							var body io.Reader = bytes.NewReader(bytes.Repeat([]byte{'x'}, size))
							if chunked {
								body = io.MultiReader(body) // no Content-Length
							}
							req, _ := http.NewRequest("POST", ts.URL+"/v1/images/import", body)
							want := tc.status
							if ndjson {
								req.Header.Set("Accept", "application/x-ndjson")
								want = 200 // the stream has started: the envelope is its last line
							}
							resp, err := ts.Client().Do(req)
							if err != nil {
								t.Fatalf("size %d ndjson=%v chunked=%v: %v\nserver log:\n%s", size, ndjson, chunked, err, serverLog.String())
							}
							b, err := io.ReadAll(resp.Body)
							resp.Body.Close()
							if err != nil || resp.StatusCode != want {
								t.Fatalf("size %d ndjson=%v chunked=%v: %d %q %v", size, ndjson, chunked, resp.StatusCode, b, err)
							}
						}
					}
				}
			}
			if strings.Contains(serverLog.String(), "panic") {
				t.Fatalf("the server panicked:\n%s", serverLog.String())
			}
		})
	}
}

// blockingWaiter's waits last until their context ends.
type blockingWaiter struct {
	*fake
	waiting chan struct{}
}

func (b *blockingWaiter) WaitContainer(ctx context.Context, _ string) (int, error) {
	b.waiting <- struct{}{}
	<-ctx.Done()
	return 0, ctx.Err()
}

// TestShutdownEndsStreams: Shutdown ends the requests that last as long as
// their client wants — events and followed logs end cleanly (the chunked
// response's proper end: the client reads EOF, not an error), a wait gets
// 503 — so that http.Server.Shutdown, which does not cancel the requests
// in flight, returns at once instead of at its deadline.
func TestShutdownEndsStreams(t *testing.T) {
	f := &fake{}
	f.logs = func(ctx context.Context, _ string, _ LogOptions, fn func(api.LogEntry) error) error {
		if err := fn(api.LogEntry{Log: "hi\n"}); err != nil {
			return err
		}
		<-ctx.Done()
		return ctx.Err()
	}
	waiting := make(chan struct{}, 1)
	h := NewHandler(&blockingWaiter{fake: f, waiting: waiting}, nil)
	srv := httptest.NewUnstartedServer(h)
	srv.Config.RegisterOnShutdown(h.Shutdown)
	srv.Start()
	defer srv.Close()

	type result struct {
		path   string
		status int
		body   string
		err    error
	}
	results := make(chan result, 3)
	ready := make(chan struct{}, 3)
	for _, rq := range [][2]string{{"GET", "/v1/events"}, {"GET", "/v1/containers/web/logs?follow=1"}, {"POST", "/v1/containers/web/actions/wait"}} {
		go func() {
			req, _ := http.NewRequest(rq[0], srv.URL+rq[1], nil)
			if rq[0] == "POST" {
				// The wait's answer comes only at its end: its being in
				// the backend says it is in flight.
				go func() { <-waiting; ready <- struct{}{} }()
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				results <- result{path: rq[1], err: err}
				return
			}
			if rq[0] == "GET" {
				ready <- struct{}{} // the stream's headers are in
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- result{rq[1], resp.StatusCode, string(b), err}
		}()
	}
	for range 3 {
		<-ready
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Config.Shutdown(ctx); err != nil {
		srv.CloseClientConnections() // ends the handlers, so that srv.Close returns
		t.Fatalf("shutdown with streams open: %v (they were not ended)", err)
	}
	for range 3 {
		r := <-results
		switch {
		case r.err != nil:
			t.Errorf("%s: %v, want a clean end", r.path, r.err)
		case strings.Contains(r.path, "wait"):
			if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "shutting down") {
				t.Errorf("%s: %d %s, want 503 shutting down", r.path, r.status, r.body)
			}
		case r.status != 200:
			t.Errorf("%s: %d %s", r.path, r.status, r.body)
		case strings.Contains(r.path, "logs") && r.body != "hi\n":
			t.Errorf("%s: %q", r.path, r.body)
		}
	}
}
