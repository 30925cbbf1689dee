package validate

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"

	"github.com/mercato-dev/mercato/shared/money"
)

// Optional is one field of a partial update: Set says whether the request
// changes it, and a nil Value clears a nullable field. In JSON an absent key
// is unset and null is Set with a nil Value; a value of the wrong type is
// kept (err) for Present to name, instead of failing the whole decode. A
// value is decoded as strictly as the body around it (httpkit.DecodeJSON):
// an object with a field T does not have fails the whole decode, with
// encoding/json's unknown-field error, as it would anywhere else in the body.
type Optional[T any] struct {
	Set   bool
	Value *T
	err   error
}

// Some is an Optional set to v.
func Some[T any](v T) Optional[T] { return Optional[T]{Set: true, Value: &v} }

// UnmarshalJSON records the field as present; see Optional.
func (o *Optional[T]) UnmarshalJSON(b []byte) error {
	// Nothing of a value given before for the same key is kept: the last
	// one wins, as with every other field.
	*o = Optional[T]{Set: true}
	if string(b) == "null" {
		return nil
	}
	var v T
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		if _, unknown := UnknownField(err); unknown {
			return err
		}
		o.err = err
		return nil
	}
	o.Value = &v
	return nil
}

// MarshalJSON writes the value, or null; omit unset fields with omitzero.
func (o Optional[T]) MarshalJSON() ([]byte, error) {
	if o.Value == nil {
		return []byte("null"), nil
	}
	return json.Marshal(*o.Value)
}

// Present reports whether an Optional field holds a value to check further.
// It records in p a value of the wrong type, and null where null is not
// allowed (nullable false).
func Present[T any](p Problems, field string, o Optional[T], nullable bool) bool {
	switch {
	case !o.Set:
		return false
	case o.err != nil:
		p[field] = "has the wrong type: " + typeHint(o.err)
		return false
	case o.Value == nil:
		if !nullable {
			p[field] = "must not be null"
		}
		return false
	}
	return true
}

// IfPresent runs check on the value of o when Present finds one to check:
// the shape of every field of a PATCH body.
func IfPresent[T any](p Problems, field string, o Optional[T], nullable bool, check func(p Problems, field string, v T)) {
	if Present(p, field, o, nullable) {
		check(p, field, *o.Value)
	}
}

// Required is Present for a field that must be given.
func Required[T any](p Problems, field string, o Optional[T]) bool {
	if !o.Set {
		p[field] = "is required"
		return false
	}
	return Present(p, field, o, false)
}

// typeHint says what a field should have been, from its decoding error.
func typeHint(err error) string {
	if errors.Is(err, money.ErrInvalid) {
		return `must be a decimal string with at most two places, like "19.99"`
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "must be a " + JSONKind(te.Type)
	}
	return "cannot be read"
}

// UnknownField returns the field that a decoder with DisallowUnknownFields
// refused, when err is that refusal: encoding/json has no error type for it,
// only this message.
func UnknownField(err error) (field string, ok bool) {
	const prefix = "json: unknown field "
	if err == nil || !strings.HasPrefix(err.Error(), prefix) {
		return "", false
	}
	return strings.Trim(strings.TrimPrefix(err.Error(), prefix), `"`), true
}

// JSONKind names the JSON type a value of Go type t is written as: string,
// boolean, array, object or number. It words the errors of values of the
// wrong type.
func JSONKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeFor[json.Number]():
		return "number"
	case t.Kind() == reflect.String:
		return "string"
	case t.Kind() == reflect.Bool:
		return "boolean"
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
		return "array"
	case t.Kind() == reflect.Struct || t.Kind() == reflect.Map:
		return "object"
	default:
		return "number"
	}
}
