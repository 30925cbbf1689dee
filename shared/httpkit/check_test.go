package httpkit

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/mux"
)

func TestDecodeJSONRefusesNUL(t *testing.T) {
	var dst struct {
		Email string   `json:"email"`
		Tags  []string `json:"tags"`
	}
	r := httptest.NewRequest("POST", "/", strings.NewReader(`{"email":"ada\u0000@example.com","tags":["ok","\u0000"]}`))
	err := DecodeJSON(r, &dst)
	var e *Error
	if !errors.As(err, &e) || e.Status != 422 || e.Details["email"] == nil || e.Details["tags[1]"] == nil {
		t.Fatalf("err = %#v, want a 422 naming email and tags[1]", err)
	}
	r = httptest.NewRequest("POST", "/", strings.NewReader(`{"email":"ada@example.com","tags":["é","\ufffd"]}`))
	if err := DecodeJSON(r, &dst); err != nil {
		t.Fatalf("clean body (U+FFFD, sent as such, included): %v", err)
	}
}

// Bytes that are not UTF-8 are refused, naming where they are:
// encoding/json decoded them as U+FFFD, so the value was stored altered.
func TestDecodeJSONRefusesBytesThatAreNotUTF8(t *testing.T) {
	var dst struct {
		Email string            `json:"email"`
		Attrs map[string]string `json:"attrs"`
	}
	r := httptest.NewRequest("POST", "/", strings.NewReader("{\"email\":\"ada\xff@example.com\",\"attrs\":{\"c\xc3\":\"x\"}}"))
	err := DecodeJSON(r, &dst)
	var e *Error
	if !errors.As(err, &e) || e.Status != 422 || e.Details["email"] != "must be valid UTF-8" || e.Details["attrs"] == nil {
		t.Fatalf("err = %#v, want a 422 naming email and attrs", err)
	}
}

func TestCheckRequest(t *testing.T) {
	tests := []struct {
		query, id  string
		wantStatus int
		wantField  string
	}{
		{"page=2&q=caf%C3%A9", "3f2504e0-4f89-41d3-9a0c-0305e82c3301", 0, ""},
		{"email=a%00b", "x", 422, "email"},
		{"q=%ff", "x", 422, "q"},
		{"%00=1", "x", 422, "query"},
		{"page=%zz", "x", 400, ""},
		{"a=1;b=2", "x", 400, ""},
		{"", "a\x00b", 404, ""},
		{"", "\xff", 404, ""},
	}
	for _, tc := range tests {
		var got error
		router := mux.NewRouter()
		router.Path("/things/{id}").HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			_, got = Checked(func(context.Context, *http.Request) (any, error) { return "decoded", nil })(r.Context(), r)
		})
		req := httptest.NewRequest("GET", "/things/x", nil)
		req.URL.Path, req.URL.RawPath, req.URL.RawQuery = "/things/"+tc.id, "", tc.query
		router.ServeHTTP(httptest.NewRecorder(), req)
		var e *Error
		switch {
		case tc.wantStatus == 0 && got != nil:
			t.Errorf("%q %q: %v, want it decoded", tc.query, tc.id, got)
		case tc.wantStatus != 0 && (!errors.As(got, &e) || e.Status != tc.wantStatus):
			t.Errorf("%q %q: %v, want %d", tc.query, tc.id, got, tc.wantStatus)
		case tc.wantField != "" && e.Details[tc.wantField] == nil:
			t.Errorf("%q: %v does not name %s", tc.query, e.Details, tc.wantField)
		}
	}
}
