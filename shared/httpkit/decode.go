package httpkit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/mercato-dev/mercato/shared/validate"
)

// MaxBodyBytes bounds every request body: DecodeJSON and ReadBody refuse
// a longer one.
const MaxBodyBytes = 1 << 20

// DecodeJSON decodes the body of r into dst strictly: JSON content type, at
// most MaxBodyBytes, no unknown fields, exactly one value. Failures are
// *Error values (400, 413 or 415) that say what is wrong, or a 422 naming
// every string of the value that holds NUL (validate.Strings: JSON may
// spell it \u0000, and PostgreSQL would refuse it with an error that is no
// client's) or bytes that are not UTF-8 (validate.ReplacedBytes:
// encoding/json would store them altered, as U+FFFD).
func DecodeJSON(r *http.Request, dst any) error {
	if err := checkJSONType(r); err != nil {
		return err
	}
	body, err := ReadBody(r)
	if err != nil {
		return err
	}
	return decodeJSONBody(body, dst)
}

// checkJSONType refuses a body that says it is not JSON (415); one that
// says nothing is taken for JSON.
func checkJSONType(r *http.Request) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return NewError(http.StatusUnsupportedMediaType, "unsupported_media_type", "the body must be application/json")
		}
	}
	return nil
}

// decodeJSONBody is DecodeJSON's decoding and checks of a body read whole.
func decodeJSONBody(body []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return BadRequest("malformed_json", "the body must hold a single JSON value")
	}
	p := validate.Problems{}
	p.Strings(dst)
	if !utf8.Valid(body) {
		p.ReplacedBytes(dst)
	}
	if len(p) > 0 {
		return Invalid(p)
	}
	return nil
}

// DecodeOptionalJSON is DecodeJSON for a body that may be left out: an
// empty (or blank) body leaves dst as it is.
func DecodeOptionalJSON(r *http.Request, dst any) error {
	body, err := ReadBody(r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if err := checkJSONType(r); err != nil {
		return err
	}
	return decodeJSONBody(body, dst)
}

// ReadBody reads the whole body of r, at most MaxBodyBytes, byte for byte
// (a signed webhook's signature covers it). Failures are *Error values: 413
// for a body too large, 400 for one that cannot be read.
func ReadBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBodyBytes))
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &maxErr):
		return nil, NewError(http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("the body exceeds %d bytes", maxErr.Limit))
	case err != nil:
		return nil, BadRequest("unreadable_body", "the request body could not be read")
	}
	return body, nil
}

func decodeError(err error) *Error {
	var (
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, io.EOF):
		return BadRequest("empty_body", "the request body is empty")
	case errors.As(err, &syntaxErr):
		return BadRequest("malformed_json", fmt.Sprintf("malformed JSON at byte %d", syntaxErr.Offset))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return BadRequest("malformed_json", "malformed JSON: unexpected end of body")
	case errors.As(err, &typeErr):
		e := BadRequest("invalid_type", fmt.Sprintf("field %q must be a %s", typeErr.Field, validate.JSONKind(typeErr.Type)))
		e.Details = map[string]any{typeErr.Field: "wrong type"}
		return e
	}
	if field, ok := validate.UnknownField(err); ok {
		e := BadRequest("unknown_field", fmt.Sprintf("unknown field %q", field))
		e.Details = map[string]any{field: "unknown field"}
		return e
	}
	return BadRequest("malformed_json", "the body is not valid JSON")
}
