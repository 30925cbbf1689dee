package discovery

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mercato-dev/mercato/shared/httpkit"
)

var errCodecNotFound = errors.New("thing not found")

var codecMappings = []httpkit.ErrorMapping{
	{Err: errCodecNotFound, Status: http.StatusNotFound, Code: "not_found"},
}

type codecThing struct {
	Name   string `json:"name"`
	Status int    `json:"-"`
	Err    error  `json:"-"`
}

func codecResponse(status int, body string) *http.Response {
	rec := httptest.NewRecorder()
	rec.Header().Set("Content-Type", "application/json")
	rec.WriteHeader(status)
	_, _ = io.WriteString(rec, body) // a recorder's writes cannot fail
	return rec.Result()
}

func TestDecodeResponse(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   codecThing // compared without Err
		check  func(t *testing.T, resp codecThing, err error)
	}{
		{name: "200 decoded", status: http.StatusOK, body: `{"name":"widget"}`,
			want: codecThing{Name: "widget", Status: http.StatusOK}},
		{name: "204 zero value", status: http.StatusNoContent,
			want: codecThing{Status: http.StatusNoContent}},
		{name: "404 mapped to the domain error", status: http.StatusNotFound,
			body: `{"error":{"code":"not_found","message":"no such thing"}}`,
			check: func(t *testing.T, resp codecThing, err error) {
				if err != nil || resp.Err != errCodecNotFound {
					t.Fatalf("got (%+v, %v), want a response with errCodecNotFound", resp, err)
				}
			}},
		{name: "422 unknown code as *httpkit.Error", status: http.StatusUnprocessableEntity,
			body: `{"error":{"code":"validation_failed","message":"bad","details":{"name":"required"}}}`,
			check: func(t *testing.T, resp codecThing, err error) {
				var e *httpkit.Error
				if err != nil || !errors.As(resp.Err, &e) {
					t.Fatalf("got (%+v, %v), want a response with an *httpkit.Error", resp, err)
				}
				if e.Status != http.StatusUnprocessableEntity || e.Code != "validation_failed" || e.Details["name"] != "required" {
					t.Fatalf("got %+v", e)
				}
			}},
		{name: "503 is an *UpstreamError, not a response", status: http.StatusServiceUnavailable, body: "down",
			check: func(t *testing.T, resp codecThing, err error) {
				var up *UpstreamError
				if !errors.As(err, &up) || up.StatusCode != http.StatusServiceUnavailable {
					t.Fatalf("got (%+v, %v), want an *UpstreamError 503", resp, err)
				}
			}},
		{name: "malformed error body falls back naming the service", status: http.StatusBadRequest, body: `<html>nope</html>`,
			check: func(t *testing.T, resp codecThing, err error) {
				var e *httpkit.Error
				if err != nil || !errors.As(resp.Err, &e) {
					t.Fatalf("got (%+v, %v), want a response with an *httpkit.Error", resp, err)
				}
				if e.Status != http.StatusBadRequest || e.Code != "upstream_error" || !strings.Contains(e.Message, "thing service") {
					t.Fatalf("got %+v", e)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dec := DecodeResponse("thing", codecMappings,
				func(err error) codecThing { return codecThing{Err: err} },
				func(r *codecThing, resp *http.Response) { r.Status = resp.StatusCode })
			out, err := dec(context.Background(), codecResponse(tc.status, tc.body))
			resp, _ := out.(codecThing)
			if tc.check != nil {
				tc.check(t, resp, err)
				return
			}
			if err != nil || resp != tc.want {
				t.Fatalf("got (%+v, %v), want %+v", resp, err, tc.want)
			}
		})
	}
}

func TestDecodeErrorBody(t *testing.T) {
	for _, tc := range []struct {
		name     string
		status   int
		body     string
		wantIs   error
		wantCode string
	}{
		{name: "mapped", status: http.StatusNotFound, body: `{"error":{"code":"not_found","message":"x"}}`, wantIs: errCodecNotFound},
		{name: "same code, other status", status: http.StatusConflict, body: `{"error":{"code":"not_found","message":"x"}}`, wantCode: "not_found"},
		{name: "unknown code", status: http.StatusForbidden, body: `{"error":{"code":"forbidden","message":"x"}}`, wantCode: "forbidden"},
		{name: "no code", status: http.StatusBadRequest, body: `{"error":{}}`, wantCode: "upstream_error"},
		{name: "not JSON", status: http.StatusBadRequest, body: `oops`, wantCode: "upstream_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := DecodeErrorBody(codecResponse(tc.status, tc.body), "thing", codecMappings)
			if tc.wantIs != nil {
				if err != tc.wantIs {
					t.Fatalf("got %v, want %v", err, tc.wantIs)
				}
				return
			}
			var e *httpkit.Error
			if !errors.As(err, &e) || e.Status != tc.status || e.Code != tc.wantCode {
				t.Fatalf("got %#v, want *httpkit.Error %d %s", err, tc.status, tc.wantCode)
			}
			if tc.wantCode == "upstream_error" && e.Message != "thing service answered 400" {
				t.Fatalf("fallback message %q does not name the service", e.Message)
			}
		})
	}
}

func TestSetJSONBody(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/thing", nil)
	if err := SetJSONBody(r, codecThing{Name: "widget"}); err != nil {
		t.Fatal(err)
	}
	const want = `{"name":"widget"}`
	if got := r.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q", got)
	}
	if r.ContentLength != int64(len(want)) {
		t.Errorf("ContentLength = %d, want %d", r.ContentLength, len(want))
	}
	if b, _ := io.ReadAll(r.Body); string(b) != want {
		t.Errorf("body = %s, want %s", b, want)
	}
	if r.GetBody == nil {
		t.Fatal("GetBody is nil: a retry could not resend the body")
	}
	for range 2 { // each retry gets the whole body again
		body, err := r.GetBody()
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := io.ReadAll(body); string(b) != want {
			t.Errorf("resent body = %s, want %s", b, want)
		}
	}
	if err := SetJSONBody(r, func() {}); err == nil {
		t.Error("an unmarshalable body is not an error")
	}
}
