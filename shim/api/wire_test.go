package api_test

import (
	"bytes"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/raind/condenser/shim/api"
	"github.com/raind/condenser/shim/api/pbref"
)

// messagePairs pairs each message of this package with protoc-gen-go's
// code for the same message of shim.proto (pbref).
var messagePairs = []struct{ ours, ref proto.Message }{
	{&api.Mount{}, &pbref.Mount{}},
	{&api.LogOptions{}, &pbref.LogOptions{}},
	{&api.CreateRequest{}, &pbref.CreateRequest{}},
	{&api.CreateResponse{}, &pbref.CreateResponse{}},
	{&api.StartRequest{}, &pbref.StartRequest{}},
	{&api.StartResponse{}, &pbref.StartResponse{}},
	{&api.StateRequest{}, &pbref.StateRequest{}},
	{&api.StateResponse{}, &pbref.StateResponse{}},
	{&api.KillRequest{}, &pbref.KillRequest{}},
	{&api.KillResponse{}, &pbref.KillResponse{}},
	{&api.WaitRequest{}, &pbref.WaitRequest{}},
	{&api.WaitResponse{}, &pbref.WaitResponse{}},
	{&api.DeleteRequest{}, &pbref.DeleteRequest{}},
	{&api.DeleteResponse{}, &pbref.DeleteResponse{}},
	{&api.StatsRequest{}, &pbref.StatsRequest{}},
	{&api.StatsResponse{}, &pbref.StatsResponse{}},
	{&api.PidsRequest{}, &pbref.PidsRequest{}},
	{&api.PidsResponse{}, &pbref.PidsResponse{}},
	{&api.ConnectRequest{}, &pbref.ConnectRequest{}},
	{&api.ConnectResponse{}, &pbref.ConnectResponse{}},
	{&api.ShutdownRequest{}, &pbref.ShutdownRequest{}},
	{&api.ShutdownResponse{}, &pbref.ShutdownResponse{}},
	{&api.ExecRequest{}, &pbref.ExecRequest{}},
	{&api.ExecResponse{}, &pbref.ExecResponse{}},
	{&api.ExecStateRequest{}, &pbref.ExecStateRequest{}},
	{&api.ExecProcess{}, &pbref.ExecProcess{}},
	{&api.ListExecsRequest{}, &pbref.ListExecsRequest{}},
	{&api.ListExecsResponse{}, &pbref.ListExecsResponse{}},
	{&api.ResizeRequest{}, &pbref.ResizeRequest{}},
	{&api.ResizeResponse{}, &pbref.ResizeResponse{}},
	{&api.StacksRequest{}, &pbref.StacksRequest{}},
	{&api.StacksResponse{}, &pbref.StacksResponse{}},
}

// TestEveryMessageIsChecked fails when a message of shim.proto has no pair.
func TestEveryMessageIsChecked(t *testing.T) {
	fd := pbref.File_shim_proto
	if got, want := len(messagePairs), fd.Messages().Len(); got != want {
		t.Fatalf("%d message pairs for the %d messages of shim.proto", got, want)
	}
	for i, p := range messagePairs {
		if got, want := reflect.TypeOf(p.ours).Elem().Name(), string(fd.Messages().Get(i).Name()); got != want {
			t.Errorf("pair %d is %s, shim.proto's message %d is %s", i, got, i, want)
		}
	}
}

// TestWireMatchesProtobuf encodes random values of every message with this
// package's codec and with protoc-gen-go's code: the bytes must be the
// same, and each side must decode the other's.
func TestWireMatchesProtobuf(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, p := range messagePairs {
		name := reflect.TypeOf(p.ours).Elem().Name()
		for i := range 200 {
			ours := reflect.New(reflect.TypeOf(p.ours).Elem())
			fill(rng, ours.Elem(), i == 0)
			ref := reflect.New(reflect.TypeOf(p.ref).Elem())
			convert(ref.Elem(), ours.Elem())

			opts := proto.MarshalOptions{Deterministic: true}
			got, err := opts.Marshal(ours.Interface().(proto.Message))
			if err != nil {
				t.Fatalf("%s: marshal: %v", name, err)
			}
			want, err := opts.Marshal(ref.Interface().(proto.Message))
			if err != nil {
				t.Fatalf("%s: marshal with protobuf: %v", name, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s %+v:\n got %x\nwant %x", name, ours.Interface(), got, want)
			}
			if n := proto.Size(ours.Interface().(proto.Message)); n != len(want) {
				t.Errorf("%s: Size %d, want %d", name, n, len(want))
			}

			back := reflect.New(ours.Type().Elem())
			if err := proto.Unmarshal(want, back.Interface().(proto.Message)); err != nil {
				t.Fatalf("%s: unmarshal %x: %v", name, want, err)
			}
			if !reflect.DeepEqual(normal(back.Elem()), normal(ours.Elem())) {
				t.Fatalf("%s: decoded %+v, want %+v", name, back.Interface(), ours.Interface())
			}
			refBack := reflect.New(ref.Type().Elem())
			if err := proto.Unmarshal(got, refBack.Interface().(proto.Message)); err != nil {
				t.Fatalf("%s: protobuf cannot decode %x: %v", name, got, err)
			}
			if !proto.Equal(refBack.Interface().(proto.Message), ref.Interface().(proto.Message)) {
				t.Fatalf("%s: protobuf decoded %v, want %v", name, refBack.Interface(), ref.Interface())
			}
		}
	}
}

// TestWireSkipsUnknownFields: a newer peer's fields are ignored, as
// protobuf ignores them, and unpacked repeated scalars are read too.
func TestWireSkipsUnknownFields(t *testing.T) {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, 7)
	b = protowire.AppendTag(b, 99, protowire.BytesType)
	b = protowire.AppendString(b, "from the future")
	b = protowire.AppendTag(b, 1, protowire.VarintType) // unpacked
	b = protowire.AppendVarint(b, 8)
	b = protowire.AppendTag(b, 100, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, 1)
	var r api.PidsResponse
	if err := proto.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r.Pids, []uint32{7, 8}) {
		t.Errorf("pids %v, want [7 8]", r.Pids)
	}
}

// FuzzWireUnmarshal decodes any bytes as every message without panicking,
// and agrees with protobuf on what protobuf accepts.
func FuzzWireUnmarshal(f *testing.F) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, p := range messagePairs {
		v := reflect.New(reflect.TypeOf(p.ours).Elem())
		fill(rng, v.Elem(), false)
		b, _ := proto.Marshal(v.Interface().(proto.Message))
		f.Add(b)
	}
	f.Add([]byte{0x0a, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, p := range messagePairs {
			ours := reflect.New(reflect.TypeOf(p.ours).Elem())
			errOurs := proto.Unmarshal(b, ours.Interface().(proto.Message))
			ref := reflect.New(reflect.TypeOf(p.ref).Elem())
			if err := proto.Unmarshal(b, ref.Interface().(proto.Message)); err != nil {
				continue // e.g. invalid UTF-8, which this codec lets through
			}
			if errOurs != nil {
				t.Fatalf("%T: protobuf decodes %x, this codec fails: %v", p.ours, b, errOurs)
			}
			want := reflect.New(ours.Type().Elem())
			convert(want.Elem(), ref.Elem())
			if !reflect.DeepEqual(normal(ours.Elem()), normal(want.Elem())) {
				t.Fatalf("%T from %x: %+v, protobuf %+v", p.ours, b, ours.Interface(), ref.Interface())
			}
		}
	})
}

// fill sets every exported field of the struct v to a random value (zero
// values often); full sets every field to a value that is not zero.
func fill(rng *rand.Rand, v reflect.Value, full bool) {
	for i := range v.NumField() {
		if v.Type().Field(i).IsExported() && (full || rng.IntN(3) > 0) {
			fillValue(rng, v.Field(i), full)
		}
	}
}

func fillValue(rng *rand.Rand, v reflect.Value, full bool) {
	ints := []int64{1, -1, 127, 128, math.MaxInt32, math.MinInt32, math.MaxInt64, math.MinInt64, 300}
	switch v.Kind() {
	case reflect.String:
		v.SetString([]string{"x", "ünïcødé", "a b\x00c", string(make([]byte, 200))}[rng.IntN(4)])
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int32:
		v.SetInt(int64(int32(ints[rng.IntN(len(ints))])))
	case reflect.Int64:
		v.SetInt(ints[rng.IntN(len(ints))])
	case reflect.Uint32, reflect.Uint64:
		x := []uint64{1, 127, 128, math.MaxUint32, math.MaxUint64}[rng.IntN(5)]
		if v.Kind() == reflect.Uint32 {
			x = uint64(uint32(x))
		}
		v.SetUint(x)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(rng, v.Elem(), full)
	case reflect.Slice:
		n := 1 + rng.IntN(3)
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := range n {
			if v.Type().Elem().Kind() == reflect.Uint8 {
				s.Index(i).SetUint(uint64(rng.IntN(256)))
			} else {
				fillValue(rng, s.Index(i), full)
			}
		}
		v.Set(s)
	}
}

// convert copies the exported fields of the struct src into the fields
// of the same names of the struct dst, following pointers and slices.
func convert(dst, src reflect.Value) {
	for i := range src.NumField() {
		sf := src.Type().Field(i)
		if !sf.IsExported() {
			continue
		}
		if df := dst.FieldByName(sf.Name); df.IsValid() {
			convertValue(df, src.Field(i))
		}
	}
}

func convertValue(dst, src reflect.Value) {
	switch src.Kind() {
	case reflect.Pointer:
		if !src.IsNil() {
			dst.Set(reflect.New(dst.Type().Elem()))
			convert(dst.Elem(), src.Elem())
		}
	case reflect.Slice:
		if src.IsNil() {
			return
		}
		dst.Set(reflect.MakeSlice(dst.Type(), src.Len(), src.Len()))
		for i := range src.Len() {
			convertValue(dst.Index(i), src.Index(i))
		}
	default:
		dst.Set(src.Convert(dst.Type()))
	}
}

// normal is v with empty slices made nil, for comparing decoded values.
func normal(v reflect.Value) any {
	c := reflect.New(v.Type()).Elem()
	c.Set(v)
	normalize(c)
	return c.Interface()
}

func normalize(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			e := reflect.New(v.Type().Elem())
			e.Elem().Set(v.Elem())
			normalize(e.Elem())
			v.Set(e)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				normalize(v.Field(i))
			}
		}
	case reflect.Slice:
		if v.Len() == 0 {
			v.Set(reflect.Zero(v.Type()))
			return
		}
		if v.Type().Elem().Kind() != reflect.Uint8 {
			c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
			reflect.Copy(c, v)
			for i := range c.Len() {
				normalize(c.Index(i))
			}
			v.Set(c)
		}
	}
}

// TestWireEdgeValues: empty but non-nil slices and bytes are not written,
// as protobuf writes none; an empty message that is set is.
func TestWireEdgeValues(t *testing.T) {
	for _, tc := range []struct{ ours, ref proto.Message }{
		{&api.ExecRequest{Process: []byte{}}, &pbref.ExecRequest{Process: []byte{}}},
		{&api.PidsResponse{Pids: []uint32{}}, &pbref.PidsResponse{Pids: []uint32{}}},
		{&api.CreateRequest{Log: &api.LogOptions{}}, &pbref.CreateRequest{Log: &pbref.LogOptions{}}},
		{&api.ExecProcess{Status: 7, ExitCode: -1}, &pbref.ExecProcess{Status: 7, ExitCode: -1}},
	} {
		got, err := proto.Marshal(tc.ours)
		if err != nil {
			t.Fatal(err)
		}
		want, err := proto.Marshal(tc.ref)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%+v: got %x, want %x", tc.ours, got, want)
		}
	}
}
