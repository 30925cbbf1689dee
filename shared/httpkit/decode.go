package httpkit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// MaxBodyBytes bounds every JSON request body.
const MaxBodyBytes = 1 << 20

// DecodeJSON decodes the body of r into dst strictly: JSON content type, at
// most MaxBodyBytes, no unknown fields, exactly one value. Failures are
// *Error values (400, 413 or 415) that say what is wrong.
func DecodeJSON(r *http.Request, dst any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return NewError(http.StatusUnsupportedMediaType, "unsupported_media_type", "the body must be application/json")
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return BadRequest("malformed_json", "the body must hold a single JSON value")
	}
	return nil
}

func decodeError(err error) *Error {
	var (
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
		maxErr    *http.MaxBytesError
	)
	switch {
	case errors.Is(err, io.EOF):
		return BadRequest("empty_body", "the request body is empty")
	case errors.As(err, &syntaxErr):
		return BadRequest("malformed_json", fmt.Sprintf("malformed JSON at byte %d", syntaxErr.Offset))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return BadRequest("malformed_json", "malformed JSON: unexpected end of body")
	case errors.As(err, &typeErr):
		e := BadRequest("invalid_type", fmt.Sprintf("field %q must be a %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String())))
		e.Details = map[string]any{typeErr.Field: "wrong type"}
		return e
	case errors.As(err, &maxErr):
		return NewError(http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("the body exceeds %d bytes", maxErr.Limit))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		e := BadRequest("unknown_field", fmt.Sprintf("unknown field %q", field))
		e.Details = map[string]any{field: "unknown field"}
		return e
	default:
		return BadRequest("malformed_json", "the body is not valid JSON")
	}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "array"
	case "struct", "map", "ptr":
		return "object"
	default:
		return "number"
	}
}
