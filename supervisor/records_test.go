package supervisor

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/raind/condenser/internal/errdefs"
)

func openRecords(t *testing.T) *records {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "containers.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists(bucketContainers); return err }); err != nil {
		t.Fatal(err)
	}
	r := &records{db: db}
	if err := r.load(); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRecordsResolve checks the lookups by id, name and id prefix, and the
// name index through inserts, renames (a put) and deletes.
func TestRecordsResolve(t *testing.T) {
	r := openRecords(t)
	ids := map[string]string{"web": "abcd" + strings.Repeat("1", 60), "db": "abce" + strings.Repeat("2", 60), "cache": "ffff" + strings.Repeat("3", 60)}
	for name, id := range ids {
		if err := r.insert(&Container{ID: id, Name: name, State: StateRunning}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.insert(&Container{ID: strings.Repeat("9", 64), Name: "web"}); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("a taken name: %v, want a conflict", err)
	}
	for _, tc := range []struct {
		ref, want string // want: a name, or an error kind's text
	}{
		{ids["web"], "web"}, {"db", "db"}, {"ffff", "cache"}, {"abcd", "web"}, {"abce1", "not found"},
		{"abc", "not found"}, // a prefix shorter than 4
		{"ab", "not found"}, {"", "invalid argument"},
	} {
		c, err := r.resolve(tc.ref)
		got := ""
		switch {
		case err != nil:
			got = errdefs.Kind(err).Error()
		default:
			got = c.Name
		}
		if got != tc.want {
			t.Errorf("resolve(%q) = %q, want %q", tc.ref, got, tc.want)
		}
	}
	if err := r.insert(&Container{ID: "abcf" + strings.Repeat("4", 60), Name: "other"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.resolve("abc"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("a 3-character prefix of 3 ids: %v, want not found", err)
	}
	if err := r.insert(&Container{ID: "abcd" + strings.Repeat("5", 60), Name: "twin"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.resolve("abcd"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("ambiguous prefix: %v, want invalid argument", err)
	}

	// A put that renames frees the old name; a delete frees the name.
	c, err := r.resolve("web")
	if err != nil {
		t.Fatal(err)
	}
	c.Name = "www"
	if err := r.put(c); err != nil {
		t.Fatal(err)
	}
	if _, err := r.resolve("web"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("old name after a rename: %v", err)
	}
	if got, err := r.resolve("www"); err != nil || got.ID != ids["web"] {
		t.Errorf("new name: %v, %v", got, err)
	}
	if err := r.delete(ids["db"]); err != nil {
		t.Fatal(err)
	}
	if _, err := r.resolve("db"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("deleted: %v", err)
	}
	if err := r.insert(&Container{ID: strings.Repeat("8", 64), Name: "db"}); err != nil {
		t.Errorf("a freed name: %v", err)
	}
}

// TestRecordsSnapshot checks that a snapshot is shared until a write, that
// every write changes the generation, and that it is sorted by id.
func TestRecordsSnapshot(t *testing.T) {
	r := openRecords(t)
	s0 := r.snapshot()
	if len(s0.Containers) != 0 {
		t.Fatalf("empty store: %d records", len(s0.Containers))
	}
	for _, id := range []string{"c", "a", "b"} {
		if err := r.insert(&Container{ID: strings.Repeat(id, 64), Name: id}); err != nil {
			t.Fatal(err)
		}
	}
	s1, s2 := r.snapshot(), r.snapshot()
	if s1.Gen == s0.Gen || s1.Gen != s2.Gen || &s1.Containers[0] != &s2.Containers[0] {
		t.Errorf("generations %d, %d, %d; the same generation must share its list", s0.Gen, s1.Gen, s2.Gen)
	}
	var names []string
	for _, c := range s1.Containers {
		names = append(names, c.Name)
	}
	if got := strings.Join(names, ""); got != "abc" {
		t.Errorf("order %q, want abc", got)
	}
	c, err := r.get(strings.Repeat("a", 64))
	if err != nil {
		t.Fatal(err)
	}
	c.State = StateRunning
	if err := r.put(c); err != nil {
		t.Fatal(err)
	}
	s3 := r.snapshot()
	if s3.Gen == s1.Gen || s3.Containers[0] == s1.Containers[0] || s3.Containers[0].State != StateRunning {
		t.Errorf("after a put: generation %d (was %d), state %s", s3.Gen, s1.Gen, s3.Containers[0].State)
	}
	if s1.Containers[0].State != "" {
		t.Error("a put modified a record of an earlier snapshot")
	}
	if s3.Containers[1] != s1.Containers[1] {
		t.Error("an unchanged record was replaced")
	}
	if err := r.delete(strings.Repeat("b", 64)); err != nil {
		t.Fatal(err)
	}
	if s4 := r.snapshot(); s4.Gen == s3.Gen || len(s4.Containers) != 2 {
		t.Errorf("after a delete: generation %d (was %d), %d records", s4.Gen, s3.Gen, len(s4.Containers))
	}
}
