package docker

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
)

// filters are the ?filters= of list and prune requests: each key (label,
// status, name, dangling, …) with its set of values.
type filters map[string]map[string]bool

// parseFilters reads ?filters=, in either of the forms clients send:
// {"label":{"a=b":true}} (the current one) or {"label":["a=b"]} (the
// legacy one). Absent or empty is no filter.
func parseFilters(r *http.Request) (filters, error) {
	return decodeFilters(r.URL.Query().Get("filters"))
}

func decodeFilters(raw string) (filters, error) {
	f := filters{}
	if strings.TrimSpace(raw) == "" {
		return f, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return nil, invalid("invalid filter %q: %v", raw, err)
	}
	for k, v := range m {
		set := map[string]bool{}
		var byValue map[string]bool
		var list []string
		switch {
		case json.Unmarshal(v, &byValue) == nil:
			for val, on := range byValue {
				if on {
					set[val] = true
				}
			}
		case json.Unmarshal(v, &list) == nil:
			for _, val := range list {
				set[val] = true
			}
		default:
			return nil, invalid("invalid filter %q: the values of %q are neither a list nor a set", raw, k)
		}
		f[k] = set
	}
	return f, nil
}

// values returns the values of key, sorted.
func (f filters) values(key string) []string {
	var out []string
	for v := range f[key] {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

// has reports whether key is filtered on.
func (f filters) has(key string) bool { return len(f[key]) > 0 }

// allow reports whether key lets value pass: no filter on key, or value is
// one of its values.
func (f filters) allow(key, value string) bool {
	return !f.has(key) || f[key][value]
}

// validate refuses keys other than those given, as Docker does ("invalid
// filter 'x'").
func (f filters) validate(keys ...string) error {
	for k := range f {
		if !slices.Contains(keys, k) {
			return invalid("invalid filter '%s'", k)
		}
	}
	return nil
}

// matchLabels reports whether labels satisfy every label filter: "k" needs
// the label k, "k=v" needs it with value v (and "label!" filters the
// other way round).
func (f filters) matchLabels(labels map[string]string) bool {
	for want := range f["label"] {
		k, v, withValue := strings.Cut(want, "=")
		got, ok := labels[k]
		if !ok || (withValue && got != v) {
			return false
		}
	}
	for notWant := range f["label!"] {
		k, v, withValue := strings.Cut(notWant, "=")
		if got, ok := labels[k]; ok && (!withValue || got == v) {
			return false
		}
	}
	return true
}
