package validate

import (
	"reflect"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// StringProblem is what is wrong with s as a value stored in PostgreSQL
// text, or "" when nothing is. PostgreSQL refuses NUL in text and JSONB and
// refuses bytes that are not UTF-8 in a UTF-8 database, each with an error
// the services would otherwise answer as a 500; so no string a client sends
// may hold either, whatever field or parameter it comes in.
func StringProblem(s string) string {
	switch {
	case !utf8.ValidString(s):
		return "must be valid UTF-8"
	case strings.IndexByte(s, 0) >= 0:
		return "must not contain NUL characters"
	}
	return ""
}

// Invisible reports whether r shows nothing, or not itself, in text as it is
// read: a control or format character (a zero-width space, a soft hyphen, a
// bidi override), a space other than ASCII's, a line or paragraph
// separator, a private-use or unassigned code point, a variation selector
// or another default-ignorable one (a combining grapheme joiner, a Hangul
// filler). An identifier holding one reads as another that lacks it.
func Invisible(r rune) bool {
	return !unicode.IsPrint(r) || unicode.In(r, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point)
}

// maxDepth bounds the walk of Strings; a decoded JSON request is far
// shallower, and the bound keeps a self-referencing value from looping.
const maxDepth = 32

// Strings records every string in v that StringProblem refuses: v is a
// decoded request (structs, pointers, slices, arrays, maps with their keys,
// interfaces, Optional fields), and each bad string is named by its JSON
// path ("items[2].name", "attributes.color"). Unexported fields other than
// embedded structs are not looked at: a decoder never fills them.
func (p Problems) Strings(v any) {
	p.walk("", reflect.ValueOf(v), 0, StringProblem)
}

// ReplacedBytes records, as not valid UTF-8, every string in v (walked as
// Strings walks it) that holds U+FFFD, the replacement character. It is for
// a value decoded from JSON that was not valid UTF-8: encoding/json
// replaces each such byte with U+FFFD rather than refusing it, so the
// strings that hold one are those the client sent bad bytes in (and any
// that holds a U+FFFD sent as such in the same body).
func (p Problems) ReplacedBytes(v any) {
	p.walk("", reflect.ValueOf(v), 0, func(s string) string {
		if strings.ContainsRune(s, utf8.RuneError) {
			return "must be valid UTF-8"
		}
		return ""
	})
}

// walk records problem(s) for every string s in v that problem refuses.
func (p Problems) walk(path string, v reflect.Value, depth int, problem func(string) string) {
	if !v.IsValid() || depth > maxDepth {
		return
	}
	switch v.Kind() {
	case reflect.String:
		if reason := problem(v.String()); reason != "" {
			p[orBody(path)] = reason
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			p.walk(path, v.Elem(), depth+1, problem)
		}
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			return // raw bytes (json.RawMessage) are not text
		}
		for i := 0; i < v.Len(); i++ {
			p.walk(path+"["+strconv.Itoa(i)+"]", v.Index(i), depth+1, problem)
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			key := iter.Key()
			name := join(path, key.String())
			if key.Kind() == reflect.String {
				if reason := problem(key.String()); reason != "" {
					p[orBody(path)] = "has a key that " + reason
					continue
				}
			}
			p.walk(name, iter.Value(), depth+1, problem)
		}
	case reflect.Struct:
		t := v.Type()
		if isOptional(t) {
			p.walk(path, v.FieldByName("Value"), depth+1, problem) // an Optional is its value
			return
		}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() && !f.Anonymous {
				continue
			}
			name := jsonName(f)
			if f.Anonymous && !strings.Contains(string(f.Tag), "json:") {
				p.walk(path, v.Field(i), depth+1, problem) // an embedded struct's fields are the outer one's
				continue
			}
			p.walk(join(path, name), v.Field(i), depth+1, problem)
		}
	}
}

// isOptional reports whether t is an Optional[T] of this package.
func isOptional(t reflect.Type) bool {
	return t.PkgPath() == reflect.TypeFor[Optional[int]]().PkgPath() && strings.HasPrefix(t.Name(), "Optional[")
}

// jsonName is the name f has in JSON: its tag's, else its Go name.
func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "" || name == "-" {
		return f.Name
	}
	return name
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func orBody(path string) string {
	if path == "" {
		return "body"
	}
	return path
}
