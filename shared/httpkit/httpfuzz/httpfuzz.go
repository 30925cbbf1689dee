// Package httpfuzz is the native Go fuzzing (testing.F) every service's
// routes share: it sends a fuzzed path variable, query string, body and
// Idempotency-Key to one route of a handler and fails on an answer of 500 or
// more, or an error answer that is not API.md's JSON error format. A panic
// fails it too. Its seeds (Seeds) are the inputs known to have produced a
// 500, so `go test` runs them as ordinary test cases, and `go test -fuzz`
// (make fuzz) searches further.
//
// Stub and Serve build the handler of a service's real decoders, request
// checks and error encoder over endpoints that only validate, for fuzzing
// the decoders alone; the services' stacks over a real PostgreSQL are
// fuzzed with the same Fuzz.
package httpfuzz

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/log"
	"github.com/gorilla/mux"

	"github.com/mercato-dev/mercato/shared/httpkit"
	"github.com/mercato-dev/mercato/shared/metrics"
	"github.com/mercato-dev/mercato/shared/validate"
)

// Route is the route fuzzed: its method and path template, whose {name}
// variables are all filled with the fuzzed Var, and the headers sent with
// every request (a bearer token, say). Prepare, when set, finishes each
// request last (a webhook's signature over the fuzzed body).
type Route struct {
	Method  string
	Path    string
	Header  http.Header
	Prepare func(r *http.Request, in Input)
}

// Input is one request: the value of the path's variables, the raw query
// string, the body and the Idempotency-Key header.
type Input struct {
	Var, Query, Body, Key string
}

// Seeds are the inputs every route is seeded with: those that produced a
// 500 before (NUL and invalid UTF-8 in a field, a query parameter or the
// path; a page whose OFFSET overflowed; escapes that do not parse) and a
// few plain ones the fuzzer mutates from.
func Seeds() []Input {
	const id = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
	return []Input{
		{Var: id},
		{Var: id, Query: "page=2&page_size=10", Body: `{}`},
		{Var: "a\x00b", Query: "status=%00&order_id=%00&q=%00&category=%00&sort=%00"},
		{Var: "\xff\xfe", Query: "q=%ff%fe&category=%C0%AF"},
		{Var: id, Query: "page=9223372036854775807&page_size=100"},
		{Var: id, Query: "page=4611686018427387904&page_size=100"},
		{Var: id, Query: "page=-9223372036854775808&page_size=-1"},
		{Var: id, Query: "page=%zz&a;b"},
		{Var: id, Query: "%00=1&\xff=2"},
		{Var: id, Body: `{"email":"ada\u0000@example.com","password":"password123"}`},
		{Var: id, Body: `{"email":"ada\u0000@example.com","password":"password123","first_name":"A\u0000","last_name":"B"}`},
		{Var: id, Body: "{\"email\":\"ada\xff@example.com\",\"password\":\"\xc3\x28\"}"},
		{Var: id, Body: `{"name":"\u0000","items":[{"product_id":"\u0000","quantity":9223372036854775807}],"reason":"\u0000"}`},
		{Var: id, Body: `{"quantity":1e400,"delta":-9223372036854775808,"price":"99999999999999999999.99","page":1e18}`},
		{Var: id, Body: `{"attributes":{"\u0000":"x"},"metadata":{"k":"\u0000"}}`},
		{Var: id, Body: `[`, Key: "key\x00"},
		{Var: id, Body: `{"refresh_token":"\u0000"}`, Key: strings.Repeat("k", 300)},
	}
}

// Fuzz seeds f with Seeds and seeds, then fuzzes h on rt with Check.
func Fuzz(f *testing.F, h http.Handler, rt Route, seeds ...Input) {
	for _, in := range append(Seeds(), seeds...) {
		f.Add(in.Var, in.Query, in.Body, in.Key)
	}
	f.Fuzz(func(t *testing.T, v, query, body, key string) {
		Check(t, h, rt, Input{Var: v, Query: query, Body: body, Key: key})
	})
}

// Bearer is the header of a request with token.
func Bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

// Check sends in to h on rt and fails t on a status of 500 or more, or on
// an error answer that is not a JSON error with a code.
func Check(t testing.TB, h http.Handler, rt Route, in Input) {
	t.Helper()
	req := httptest.NewRequest(rt.Method, "http://service.test/", strings.NewReader(in.Body))
	req.URL.Path = fill(rt.Path, in.Var)
	req.URL.RawPath = fill(rt.Path, url.PathEscape(in.Var))
	req.URL.RawQuery = in.Query
	req.RequestURI = req.URL.RequestURI()
	for name, values := range rt.Header {
		req.Header[name] = values
	}
	req.Header.Set("Content-Type", "application/json")
	if in.Key != "" {
		req.Header.Set("Idempotency-Key", in.Key)
	}
	if rt.Prepare != nil {
		rt.Prepare(req, in)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code >= 500 {
		t.Fatalf("%s %s?%q with body %q, key %q: %d %s", rt.Method, req.URL.Path, in.Query, in.Body, in.Key, rec.Code, rec.Body)
	}
	if rec.Code >= 400 && rec.Code != http.StatusMovedPermanently {
		var e struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code == "" {
			t.Fatalf("%s %s?%q: %d with a body that is no JSON error: %q", rt.Method, req.URL.Path, in.Query, rec.Code, rec.Body)
		}
	}
}

// Unsafe says what in a decoded and validated request would make the
// service or PostgreSQL fail, or "" when nothing would: a string holding NUL
// or invalid UTF-8 (validate.Strings), or a Page and PageSize whose OFFSET,
// (Page-1)*PageSize, overflows or is negative.
func Unsafe(request any) string {
	p := validate.Problems{}
	p.Strings(request)
	if err := p.Err(); err != nil {
		return err.Error()
	}
	v := reflect.Indirect(reflect.ValueOf(request))
	if v.Kind() != reflect.Struct {
		return ""
	}
	page, size := v.FieldByName("Page"), v.FieldByName("PageSize")
	if !page.IsValid() || !size.IsValid() || !page.CanInt() || !size.CanInt() {
		return ""
	}
	pg, sz := page.Int(), size.Int()
	if pg < 1 || sz < 1 || pg-1 > math.MaxInt32/sz {
		return fmt.Sprintf("page %d of %d gives an OFFSET out of range", pg, sz)
	}
	return ""
}

// fill returns path with every {name} variable replaced by v.
func fill(path, v string) string {
	var b strings.Builder
	for {
		open := strings.IndexByte(path, '{')
		end := strings.IndexByte(path, '}')
		if open < 0 || end < open {
			return b.String() + path
		}
		b.WriteString(path[:open] + v)
		path = path[end+1:]
	}
}

// Stub sets every endpoint.Endpoint field of the struct endpoints points to
// (a service's Endpoints) to one that answers check(request): its error as
// the endpoint's error (which the error encoder shows), else an empty JSON
// object. check is the requests' own validation, which only the service's
// package can call; a shared request type's exported Validate (such as
// endpointkit.PageRequest's) runs as well. A request that passes check must be safe to hand to the
// service (Unsafe); one that is not is answered with a 500, which fails Check.
func Stub(endpoints any, check func(request any) error) {
	v := reflect.ValueOf(endpoints).Elem()
	stub := endpoint.Endpoint(func(_ context.Context, request any) (any, error) {
		if err := check(request); err != nil {
			return nil, err
		}
		if r, ok := request.(interface{ Validate() error }); ok {
			if err := r.Validate(); err != nil {
				return nil, err
			}
		}
		if why := Unsafe(request); why != "" {
			return nil, fmt.Errorf("a request passed its checks but would fail in the service: %s", why)
		}
		return struct{}{}, nil
	})
	for i := 0; i < v.NumField(); i++ {
		if f := v.Field(i); f.Type() == reflect.TypeOf(stub) && f.CanSet() {
			f.Set(reflect.ValueOf(stub))
		}
	}
}

// Serve returns the handler a service's main builds (httpkit's router and
// outer middleware), with the routes mount adds.
func Serve(service string, mount func(r *mux.Router, logger log.Logger)) http.Handler {
	logger := log.NewNopLogger()
	reg := metrics.NewRegistry()
	router := httpkit.Router(logger, reg, metrics.NewHTTP(reg, service), nil)
	mount(router, logger)
	return httpkit.Handler(logger, router)
}

// Stubbed is the handler of a service's routes (mount, its MakeHTTPHandler)
// over Endpoints E stubbed with check (Stub): its real decoders, request
// checks and error encoder, and no service behind them.
func Stubbed[E any](service string, mount func(*mux.Router, E, log.Logger), check func(request any) error) http.Handler {
	var e E
	Stub(&e, check)
	return Serve(service, func(r *mux.Router, logger log.Logger) { mount(r, e, logger) })
}

// Decoder fuzzes the route method path of a service's handler (mount, its
// MakeHTTPHandler) over stubbed endpoints (Stubbed), with Seeds and seeds.
func Decoder[E any](f *testing.F, service string, mount func(*mux.Router, E, log.Logger), check func(request any) error, method, path string, seeds ...Input) {
	Fuzz(f, Stubbed(service, mount, check), Route{Method: method, Path: path}, seeds...)
}
