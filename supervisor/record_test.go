package supervisor

import (
	"net/netip"
	"reflect"
	"testing"
)

// fill sets every field reachable from v to a non-zero value, giving every
// slice and map one element.
func fill(t *testing.T, v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, v.Elem())
	case reflect.Struct:
		if v.Type().PkgPath() == "time" { // time.Time: opaque, a value
			v.Set(reflect.ValueOf(reflect.Zero(v.Type()).Interface()))
			return
		}
		switch v.Type() { // opaque values
		case reflect.TypeFor[netip.Addr]():
			v.Set(reflect.ValueOf(netip.MustParseAddr("10.0.0.1")))
			return
		case reflect.TypeFor[netip.Prefix]():
			v.Set(reflect.ValueOf(netip.MustParsePrefix("10.0.0.0/24")))
			return
		}
		for i := range v.NumField() {
			fill(t, v.Field(i))
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(t, v.Index(0))
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(t, k)
		fill(t, e)
		v.SetMapIndex(k, e)
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint64, reflect.Uint16:
		v.SetUint(1)
	case reflect.Float64:
		v.SetFloat(1)
	default:
		t.Fatalf("fill: a %s field: teach the test (and Container.clone) about it", v.Kind())
	}
}

// shared reports where a and b share memory.
func shared(a, b reflect.Value, path string) []string {
	switch a.Type() {
	case reflect.TypeFor[netip.Addr](), reflect.TypeFor[netip.Prefix](): // immutable values (their zone is interned)
		return nil
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map:
		if a.IsNil() {
			return nil
		}
		if a.UnsafePointer() == b.UnsafePointer() {
			return []string{path}
		}
	}
	var out []string
	switch a.Kind() {
	case reflect.Pointer:
		out = shared(a.Elem(), b.Elem(), path)
	case reflect.Struct:
		for i := range a.NumField() {
			out = append(out, shared(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name)...)
		}
	case reflect.Slice:
		for i := range a.Len() {
			out = append(out, shared(a.Index(i), b.Index(i), path+"[]")...)
		}
	}
	return out
}

// TestCloneSharesNothing: the record cache hands out clones that callers
// change freely; a field added to Container without its copy in clone
// fails here.
func TestCloneSharesNothing(t *testing.T) {
	var c Container
	fill(t, reflect.ValueOf(&c).Elem())
	d := c.clone()
	if !reflect.DeepEqual(&c, d) {
		t.Fatalf("clone differs:\n%+v\n%+v", c, *d)
	}
	if s := shared(reflect.ValueOf(&c).Elem(), reflect.ValueOf(d).Elem(), "Container"); len(s) > 0 {
		t.Errorf("clone shares %v with the original", s)
	}
}
