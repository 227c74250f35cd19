package backend

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/raind/condenser/supervisor"
)

// TestListContainersJSON checks the encoded listing against the plain one
// (what the REST layer would encode itself), for every filter, and that it
// follows the records from one generation to the next.
func TestListContainersJSON(t *testing.T) {
	labeled := func(l map[string]string) func(c *supervisor.Container) {
		return func(c *supervisor.Container) { c.Request.Labels = l }
	}
	sup := &fakeSup{containers: []*supervisor.Container{
		container("api", supervisor.StateRunning, labeled(map[string]string{"app": "web", "tier": "front"})),
		container("batch", supervisor.StateStopped, labeled(map[string]string{"app": "jobs"})),
		container("cache", supervisor.StateCreated, labeled(map[string]string{"app": "<&>"})),
		container("db", supervisor.StateRunning, func(c *supervisor.Container) { c.Args = nil }),
	}}
	b := newTest(sup, nil)
	ctx := context.Background()
	check := func(step string) {
		t.Helper()
		for _, f := range []struct {
			all    bool
			labels map[string]string
		}{
			{true, nil}, {false, nil}, {true, map[string]string{"app": "web"}}, {false, map[string]string{"app": ""}},
			{true, map[string]string{"app": "<&>"}}, {true, map[string]string{"nope": ""}},
		} {
			list, err := b.ListContainers(ctx, f.all, f.labels)
			if err != nil {
				t.Fatal(err)
			}
			for i := range list {
				normalizeSummary(&list[i])
			}
			want, err := json.Marshal(list)
			if err != nil {
				t.Fatal(err)
			}
			got, n, err := b.ListContainersJSON(ctx, f.all, f.labels)
			if err != nil || string(got) != string(want) || n != len(list) {
				t.Errorf("%s: all=%v labels=%v:\n got %s (%d), %v\nwant %s (%d)", step, f.all, f.labels, got, n, err, want, len(list))
			}
		}
	}
	check("first")
	check("cached")

	// A record changes (the supervisor replaces it) and one goes: a new
	// generation.
	sup.mu.Lock()
	c := *sup.containers[1]
	c.State = supervisor.StateRunning
	sup.containers = []*supervisor.Container{sup.containers[0], &c, sup.containers[2]}
	sup.gen++
	sup.mu.Unlock()
	check("changed")

	// No record at all: [], not null.
	sup.mu.Lock()
	sup.containers = nil
	sup.gen++
	sup.mu.Unlock()
	got, n, err := b.ListContainersJSON(ctx, true, nil)
	if err != nil || string(got) != "[]" || n != 0 {
		t.Errorf("no containers: %s (%d), %v; want []", got, n, err)
	}
}

// BenchmarkListContainersJSON is the adapter's share of GET
// /v1/containers of 100 containers, the records unchanged.
func BenchmarkListContainersJSON(b *testing.B) {
	sup := &fakeSup{}
	for i := range 100 {
		name := string(rune('a'+i%26)) + "x" + string(rune('a'+i/26))
		sup.containers = append(sup.containers, container(name, supervisor.StateRunning, nil))
	}
	bk := newTest(sup, nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := bk.ListContainersJSON(ctx, true, nil); err != nil {
			b.Fatal(err)
		}
	}
}
