package api

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/runtime/protoiface"
)

// The messages of shim.proto are Go structs of this package (messages.go)
// that encode themselves in proto3's wire format: ttrpc needs only a
// proto.Message whose methods (protoiface.Methods) marshal and unmarshal
// it. Code from protoc-gen-go would do the same through the protobuf
// runtime's reflection, which builds descriptors of every message of the
// file and coders for each message on its first use: about 100 KiB that
// every idle shim kept for life (measured with an allocation profile of
// an idle shim; the ttrpc frames' own messages still use it). The bytes
// are those of protoc-gen-go's code (TestWireMatchesProtobuf), so a shim
// and a daemon of either kind understand each other.
//
// A struct field is a protobuf field when it has a `wire:"N"` tag, N its
// number: string, []byte, bool, int32 (and Status), int64, uint32,
// uint64, a pointer to a message, or a slice of any of these but []byte
// (repeated; scalars packed). Zero values are not written (proto3).

// message is a message of shim.proto.
type message interface {
	protoreflect.ProtoMessage
	Reset()
}

// wireMessage is the protoreflect.Message of a message: only what
// proto.Marshal, proto.Unmarshal and proto.Size call is implemented (the
// embedded interface is nil: anything else panics).
type wireMessage struct {
	protoreflect.Message
	m message
}

func (w wireMessage) Interface() protoreflect.ProtoMessage { return w.m }
func (w wireMessage) IsValid() bool                        { return !reflect.ValueOf(w.m).IsNil() }
func (w wireMessage) ProtoMethods() *protoiface.Methods    { return &wireMethods }

var wireMethods = protoiface.Methods{
	Flags: protoiface.SupportMarshalDeterministic | protoiface.SupportUnmarshalDiscardUnknown,
	Size: func(in protoiface.SizeInput) protoiface.SizeOutput {
		return protoiface.SizeOutput{Size: len(appendMessage(nil, structOf(in.Message)))}
	},
	Marshal: func(in protoiface.MarshalInput) (protoiface.MarshalOutput, error) {
		return protoiface.MarshalOutput{Buf: appendMessage(in.Buf, structOf(in.Message))}, nil
	},
	Unmarshal: func(in protoiface.UnmarshalInput) (protoiface.UnmarshalOutput, error) {
		return protoiface.UnmarshalOutput{Flags: protoiface.UnmarshalInitialized}, decodeMessage(in.Buf, structOf(in.Message))
	},
	CheckInitialized: func(protoiface.CheckInitializedInput) (protoiface.CheckInitializedOutput, error) {
		return protoiface.CheckInitializedOutput{}, nil // proto3: nothing is required
	},
}

// structOf is the struct a wireMessage points to.
func structOf(m protoreflect.Message) reflect.Value {
	return reflect.ValueOf(m.(wireMessage).m).Elem()
}

// field is one `wire` field of a message struct.
type field struct {
	num      protowire.Number
	index    int
	kind     reflect.Kind // of the value, or of the element of a slice
	repeated bool
	elem     reflect.Type // the message struct of a message field
}

// wireType is how one value of f is written: length-delimited (strings,
// bytes, messages) or a varint (the scalars).
func (f field) wireType() protowire.Type {
	switch f.kind {
	case reflect.String, reflect.Slice, reflect.Pointer:
		return protowire.BytesType
	}
	return protowire.VarintType
}

// fieldsCache holds the fields of each message type, read from its tags
// once.
var fieldsCache sync.Map // reflect.Type -> []field

func fieldsOf(t reflect.Type) []field {
	if f, ok := fieldsCache.Load(t); ok {
		return f.([]field)
	}
	var fs []field
	for i := range t.NumField() {
		sf := t.Field(i)
		tag, ok := sf.Tag.Lookup("wire")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(tag)
		if err != nil {
			panic(fmt.Sprintf("api: %s.%s: bad wire tag %q", t.Name(), sf.Name, tag))
		}
		f := field{num: protowire.Number(n), index: i, kind: sf.Type.Kind()}
		ft := sf.Type
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() != reflect.Uint8 {
			f.repeated, ft = true, ft.Elem()
			f.kind = ft.Kind()
		}
		if ft.Kind() == reflect.Pointer {
			f.elem = ft.Elem()
		}
		fs = append(fs, f)
	}
	f, _ := fieldsCache.LoadOrStore(t, fs)
	return f.([]field)
}

// appendMessage appends the fields of the message struct v.
func appendMessage(b []byte, v reflect.Value) []byte {
	for _, f := range fieldsOf(v.Type()) {
		fv := v.Field(f.index)
		switch {
		case !f.repeated:
			b = appendValue(b, f, fv, false)
		case f.wireType() == protowire.BytesType:
			for i := range fv.Len() {
				b = appendValue(b, f, fv.Index(i), true)
			}
		case fv.Len() > 0: // packed scalars
			var packed []byte
			for i := range fv.Len() {
				packed = protowire.AppendVarint(packed, varintOf(fv.Index(i)))
			}
			b = protowire.AppendTag(b, f.num, protowire.BytesType)
			b = protowire.AppendBytes(b, packed)
		}
	}
	return b
}

// appendValue appends one value of field f; zero values only as elements
// of a repeated field (always).
func appendValue(b []byte, f field, v reflect.Value, always bool) []byte {
	if !always && (v.IsZero() || f.kind == reflect.Slice && v.Len() == 0) {
		return b
	}
	switch f.kind {
	case reflect.String:
		b = protowire.AppendTag(b, f.num, protowire.BytesType)
		return protowire.AppendString(b, v.String())
	case reflect.Slice: // []byte
		b = protowire.AppendTag(b, f.num, protowire.BytesType)
		return protowire.AppendBytes(b, v.Bytes())
	case reflect.Pointer:
		b = protowire.AppendTag(b, f.num, protowire.BytesType)
		var inner []byte
		if !v.IsNil() {
			inner = appendMessage(nil, v.Elem())
		}
		return protowire.AppendBytes(b, inner)
	default:
		b = protowire.AppendTag(b, f.num, protowire.VarintType)
		return protowire.AppendVarint(b, varintOf(v))
	}
}

// varintOf is a scalar's varint: int32 and enums sign-extended to 64 bits.
func varintOf(v reflect.Value) uint64 {
	switch v.Kind() {
	case reflect.Bool:
		return protowire.EncodeBool(v.Bool())
	case reflect.Int32, reflect.Int64:
		return uint64(v.Int())
	default:
		return v.Uint()
	}
}

var errWire = errors.New("api: cannot parse invalid wire-format data")

// decodeMessage decodes b into the message struct v, merging: repeated
// fields are appended to. Unknown fields, and known ones with another
// wire type, are skipped.
func decodeMessage(b []byte, v reflect.Value) error {
	fs := fieldsOf(v.Type())
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errWire
		}
		b = b[n:]
		var f *field
		for i := range fs {
			if fs[i].num == num {
				f = &fs[i]
				break
			}
		}
		var err error
		if f == nil {
			n = protowire.ConsumeFieldValue(num, typ, b)
		} else {
			n, err = decodeField(b, typ, *f, v.Field(f.index))
		}
		if err != nil {
			return err
		}
		if n < 0 {
			return errWire
		}
		b = b[n:]
	}
	return nil
}

// decodeField decodes one value of f, of wire type typ, from b into fv
// and returns its length.
func decodeField(b []byte, typ protowire.Type, f field, fv reflect.Value) (int, error) {
	want := f.wireType()
	scalar := want == protowire.VarintType
	if scalar && f.repeated && typ == protowire.BytesType { // packed
		packed, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return n, nil
		}
		for len(packed) > 0 {
			x, m := protowire.ConsumeVarint(packed)
			if m < 0 {
				return m, nil
			}
			fv.Set(reflect.Append(fv, scalarOf(fv.Type().Elem(), x)))
			packed = packed[m:]
		}
		return n, nil
	}
	if typ != want {
		return protowire.ConsumeFieldValue(f.num, typ, b), nil
	}
	var (
		val reflect.Value
		n   int
	)
	switch {
	case scalar:
		var x uint64
		if x, n = protowire.ConsumeVarint(b); n >= 0 {
			t := fv.Type()
			if f.repeated {
				t = t.Elem()
			}
			val = scalarOf(t, x)
		}
	default:
		var raw []byte
		if raw, n = protowire.ConsumeBytes(b); n < 0 {
			return n, nil
		}
		switch f.kind {
		case reflect.String:
			val = reflect.ValueOf(string(raw))
		case reflect.Slice: // []byte
			val = reflect.ValueOf(append([]byte{}, raw...))
		default:
			val = reflect.New(f.elem)
			if !f.repeated && !fv.IsNil() {
				val = fv // a second occurrence merges into the first
			}
			if err := decodeMessage(raw, val.Elem()); err != nil {
				return n, err
			}
		}
	}
	if n < 0 {
		return n, nil
	}
	if f.repeated {
		fv.Set(reflect.Append(fv, val))
	} else {
		fv.Set(val.Convert(fv.Type()))
	}
	return n, nil
}

// scalarOf converts a varint to a value of type t (bool, int32, int64,
// uint32, uint64 or an enum), truncating as protobuf does.
func scalarOf(t reflect.Type, x uint64) reflect.Value {
	v := reflect.New(t).Elem()
	switch t.Kind() {
	case reflect.Bool:
		v.SetBool(x != 0)
	case reflect.Int32:
		v.SetInt(int64(int32(x)))
	case reflect.Int64:
		v.SetInt(int64(x))
	case reflect.Uint32:
		v.SetUint(uint64(uint32(x)))
	default:
		v.SetUint(x)
	}
	return v
}
