package docker

import (
	"net/http"
	"reflect"
	"testing"
)

func TestDecodeFilters(t *testing.T) {
	for _, tc := range []struct {
		raw     string
		want    filters
		wantErr bool
	}{
		{raw: "", want: filters{}},
		{raw: "  ", want: filters{}},
		{raw: `{"label":{"a=b":true,"c":false}}`, want: filters{"label": {"a=b": true}}},
		{raw: `{"label":["a=b","c"],"status":["exited"]}`, want: filters{"label": {"a=b": true, "c": true}, "status": {"exited": true}}},
		{raw: `{"label":"a=b"}`, wantErr: true},
		{raw: `{"label":{"a":"yes"}}`, wantErr: true},
		{raw: `[1,2]`, wantErr: true},
		{raw: `{`, wantErr: true},
	} {
		got, err := decodeFilters(tc.raw)
		if tc.wantErr {
			if err == nil || statusOf(err) != http.StatusBadRequest {
				t.Errorf("%q: %v, want a 400", tc.raw, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %v %v, want %v", tc.raw, got, err, tc.want)
		}
	}
}

func TestFiltersMatch(t *testing.T) {
	f, err := decodeFilters(`{"label":["a=b","c"],"label!":["d"],"status":["running"]}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		labels map[string]string
		want   bool
	}{
		{map[string]string{"a": "b", "c": ""}, true},
		{map[string]string{"a": "b", "c": "x", "e": "f"}, true},
		{map[string]string{"a": "x", "c": ""}, false},
		{map[string]string{"a": "b"}, false},
		{map[string]string{"a": "b", "c": "", "d": "1"}, false},
		{nil, false},
	} {
		if got := f.matchLabels(tc.labels); got != tc.want {
			t.Errorf("matchLabels(%v) = %v, want %v", tc.labels, got, tc.want)
		}
	}
	if !f.allow("status", "running") || f.allow("status", "exited") || !f.allow("name", "anything") {
		t.Error("allow: wrong")
	}
	if err := f.validate("label", "label!", "status"); err != nil {
		t.Errorf("validate: %v", err)
	}
	if err := f.validate("label"); err == nil || statusOf(err) != http.StatusBadRequest {
		t.Errorf("validate of an unknown key: %v, want a 400", err)
	}
}

// FuzzDecodeFilters: any ?filters= is a 400 or filters whose every value
// is set, and never a panic.
func FuzzDecodeFilters(f *testing.F) {
	for _, s := range []string{"", `{"label":{"a=b":true}}`, `{"label":["a"]}`, `{"a":null}`, `{"a":{}}`, `null`, `{"a":[1]}`, "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := decodeFilters(raw)
		if err != nil {
			if statusOf(err) != http.StatusBadRequest {
				t.Fatalf("%q: %v is not a 400", raw, err)
			}
			return
		}
		for k, set := range got {
			for v, on := range set {
				if !on {
					t.Fatalf("%q: %s=%s is in the set but off", raw, k, v)
				}
			}
			_ = got.matchLabels(map[string]string{k: k})
		}
	})
}
