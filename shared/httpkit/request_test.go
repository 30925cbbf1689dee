package httpkit

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	httptransport "github.com/go-kit/kit/transport/http"
	"github.com/gorilla/mux"
)

// statusOf is the status and code of err as an *Error, or 0 and "" for nil.
func statusOf(t *testing.T, err error) (int, string) {
	t.Helper()
	if err == nil {
		return 0, ""
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want *Error, got %T %v", err, err)
	}
	return e.Status, e.Code
}

func TestDecodeRequests(t *testing.T) {
	type thing struct {
		Name string `json:"name"`
	}
	tests := []struct {
		name       string
		dec        httptransport.DecodeRequestFunc
		body       string
		want       any
		wantStatus int
		wantCode   string
	}{
		{"JSON", DecodeJSONRequest[thing], `{"name":"a"}`, thing{Name: "a"}, 0, ""},
		{"JSON fails as DecodeJSON does", DecodeJSONRequest[thing], `{"nmae":"a"}`, nil, 400, "unknown_field"},
		{"JSON of a missing body", DecodeJSONRequest[thing], ``, nil, 400, "empty_body"},
		{"empty ignores the body", DecodeEmptyRequest[thing], `garbage`, thing{}, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.dec(t.Context(), httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body)))
			if status, code := statusOf(t, err); status != tc.wantStatus || code != tc.wantCode {
				t.Fatalf("got %d %s (%v), want %d %s", status, code, err, tc.wantStatus, tc.wantCode)
			}
			if got != tc.want {
				t.Errorf("request = %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestPathUUID(t *testing.T) {
	const id = "6f1c1f0e-8c55-4a0d-9b63-2d7f0f1a9e11"
	tests := []struct {
		name, path, want string
		wantStatus       int
	}{
		{"canonical", "/things/" + id, id, 0},
		{"upper case is canonicalised", "/things/" + strings.ToUpper(id), id, 0},
		{"not a UUID", "/things/42", "", 404},
		{"32 hex digits", "/things/" + strings.ReplaceAll(id, "-", ""), "", 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var (
				got string
				err error
			)
			r := mux.NewRouter()
			r.Path("/things/{id}").HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got, err = PathUUID(r, "id") })
			r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, tc.path, nil))
			status, code := statusOf(t, err)
			if got != tc.want || status != tc.wantStatus || (status != 0 && code != "not_found") {
				t.Errorf("PathUUID = %q, %d %s, want %q, %d not_found", got, status, code, tc.want, tc.wantStatus)
			}
		})
	}
}

func TestDecodeIDRequest(t *testing.T) {
	type getThing struct{ ID string }
	const id = "6f1c1f0e-8c55-4a0d-9b63-2d7f0f1a9e11"
	tests := []struct {
		path       string
		want       any
		wantStatus int
	}{
		{"/things/" + strings.ToUpper(id), getThing{ID: id}, 0},
		{"/things/nope", nil, 404},
	}
	for _, tc := range tests {
		var (
			got any
			err error
		)
		r := mux.NewRouter()
		r.Path("/things/{id}").HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			got, err = DecodeIDRequest[getThing](r.Context(), r)
		})
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, tc.path, nil))
		if status, _ := statusOf(t, err); got != tc.want || status != tc.wantStatus {
			t.Errorf("%s: %#v, %v, want %#v, %d", tc.path, got, err, tc.want, tc.wantStatus)
		}
	}
}

func TestDecodePathAndBody(t *testing.T) {
	type renameThing struct {
		ID   string `json:"-"`
		Name string `json:"name"`
	}
	fill := func(r *http.Request, req *renameThing) error {
		return PathAndBody(r, "id", &req.ID, req, DecodeJSON)
	}
	const id = "6f1c1f0e-8c55-4a0d-9b63-2d7f0f1a9e11"
	tests := []struct {
		path, body string
		want       any
		wantStatus int
		wantCode   string
	}{
		{"/things/" + strings.ToUpper(id), `{"name":"a"}`, renameThing{ID: id, Name: "a"}, 0, ""},
		{"/things/nope", `garbage`, nil, 404, "not_found"}, // the id first
		{"/things/" + id, `{"nmae":"a"}`, nil, 400, "unknown_field"},
	}
	for _, tc := range tests {
		var (
			got any
			err error
		)
		r := mux.NewRouter()
		r.Path("/things/{id}").HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			got, err = DecodeRequest(fill)(r.Context(), r)
		})
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPatch, tc.path, strings.NewReader(tc.body)))
		if status, code := statusOf(t, err); got != tc.want || status != tc.wantStatus || code != tc.wantCode {
			t.Errorf("%s %s: %#v, %v, want %#v, %d %s", tc.path, tc.body, got, err, tc.want, tc.wantStatus, tc.wantCode)
		}
	}
}

func TestAddressBlock(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":                        "192.0.2.7",
		"::ffff:192.0.2.7":                 "192.0.2.7",
		"2001:db8:1:2:aaaa:bbbb:cccc:dddd": "2001:db8:1:2::/64",
		"2001:db8:1:2::1%eth0":             "2001:db8:1:2::/64",
		"2001:db8:1:3::1":                  "2001:db8:1:3::/64",
	} {
		if got := AddressBlock(netip.MustParseAddr(in)); got != want {
			t.Errorf("AddressBlock(%s) = %s, want %s", in, got, want)
		}
	}
}
