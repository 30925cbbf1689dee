package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/mail"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/go-kit/kit/sd"
	"github.com/go-kit/log"
	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mercato-dev/mercato/gateway"
	"github.com/mercato-dev/mercato/notification"
	"github.com/mercato-dev/mercato/order"
	"github.com/mercato-dev/mercato/payment"
	"github.com/mercato-dev/mercato/product"
	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/localinfra"
	"github.com/mercato-dev/mercato/shared/validate"
	"github.com/mercato-dev/mercato/user"
)

// The contract test: docs/openapi.yaml against what the platform does.
// Every request an end-to-end test sends through the gateway, and the answer
// it gets, is checked against the document (checkAgainstOpenAPI, called by
// every test client: client.raw, checkoutPlatform.call and the generated Go
// client's transport, openAPITransport), and TestOpenAPIRoutesAreServed
// compares the document's routes with those the services and the gateway
// serve.

// openAPI is docs/openapi.yaml, loaded once per test run.
var openAPI struct {
	once   sync.Once
	doc    *openapi3.T
	router routers.Router
	err    error
}

func apiDocument(t testing.TB) (*openapi3.T, routers.Router) {
	t.Helper()
	openAPI.once.Do(func() {
		root, err := localinfra.RepoRoot()
		if err != nil {
			openAPI.err = err
			return
		}
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromFile(filepath.Join(root, "docs", "openapi.yaml"))
		if err != nil {
			openAPI.err = err
			return
		}
		if err := doc.Validate(context.Background()); err != nil {
			openAPI.err = err
			return
		}
		openAPI.doc = doc
		openAPI.router, openAPI.err = gorillamux.NewRouter(doc)
	})
	if openAPI.err != nil {
		t.Fatalf("docs/openapi.yaml: %v", openAPI.err)
	}
	return openAPI.doc, openAPI.router
}

// decoderCodes are the errors of the services' request decoders and
// checks (shared/httpkit) that a schema can say too: a request the document
// takes must never get one.
var decoderCodes = []string{"malformed_json", "invalid_type", "unknown_field", "empty_body", "malformed_query", "unsupported_media_type"}

// checkAgainstOpenAPI checks one exchange with the gateway against
// docs/openapi.yaml, both ways:
//   - the answer: its status is documented, its body (success or error) is
//     of the documented schema, its documented headers are there;
//   - the request, with kin-openapi's request validation, against what the
//     decoders did with it: a request the document refuses must not have
//     succeeded (the document is stricter than the service), and one it
//     takes must not have been refused by a decoder (400 malformed or
//     unknown fields, 415, or 422 validation_failed: the document is looser
//     than the service).
//
// A route of the public API (under /api/v1) that the gateway serves but the
// document does not describe fails the test; a 404 or 405 is no route
// served, and paths outside /api/v1 (/health, /docs) are not the document's.
func checkAgainstOpenAPI(t testing.TB, req *http.Request, reqBody []byte, status int, header http.Header, body []byte) {
	t.Helper()
	_, router := apiDocument(t)
	route, params, err := router.FindRoute(req)
	if err != nil {
		if strings.HasPrefix(req.URL.Path, "/api/v1/") && status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			t.Errorf("%s %s → %d: served, but not in docs/openapi.yaml (%v)", req.Method, req.URL.Path, status, err)
		}
		return
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true,
		SchemaValidationOptions: []openapi3.SchemaValidationOption{formats}}

	// The request, as it was sent.
	sent := req.Clone(context.Background())
	sent.Body = io.NopCloser(bytes.NewReader(reqBody))
	if len(reqBody) == 0 {
		sent.Body = http.NoBody
	}
	reqIn := &openapi3filter.RequestValidationInput{Request: sent, PathParams: params, Route: route, Options: opts}
	reqErr := openapi3filter.ValidateRequest(context.Background(), reqIn)
	code := errorBodyCode(body)
	switch {
	case reqErr != nil && status < 300:
		t.Errorf("%s %s → %d: the service took a request docs/openapi.yaml refuses: %v\nrequest: %.300s",
			req.Method, req.URL.RequestURI(), status, reqErr, reqBody)
	case reqErr == nil && (slices.Contains(decoderCodes, code) || code == "validation_failed" && !wordedRule(body)):
		t.Errorf("%s %s → %d %s: the service refused a request docs/openapi.yaml takes; the document is looser than the decoder\nrequest: %.300s\nanswer: %.300s",
			req.Method, req.URL.RequestURI(), status, code, reqBody, body)
	}

	// The answer.
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts},
		Status:                 status,
		Header:                 header,
		Options:                opts,
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Errorf("%s %s → %d does not match docs/openapi.yaml: %v\nbody: %.500s", req.Method, req.URL.Path, status, err, body)
	}
}

// errorBodyCode is error.code of an API error body, "" for anything else.
func errorBodyCode(body []byte) string {
	var b struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &b)
	return b.Error.Code
}

// wordedRules are the services' checks that no schema can state, each a
// 422 validation_failed naming a field (matching field) with a reason
// (matching why); the document says each in words. A refusal by any other
// check, of a request the document takes, is drift.
var wordedRules = []struct{ field, why *regexp.Regexp }{
	// The card number's Luhn check (CardInput).
	{regexp.MustCompile(`^payment\.card\.number$`), regexp.MustCompile(`^is not a valid card number$`)},
	// An expired card: the clock's, not the schema's (CardInput).
	{regexp.MustCompile(`^payment\.card\.exp_(year|month)$`), regexp.MustCompile(`^must be `)},
	// A query parameter the route does not take, or one given twice:
	// OpenAPI cannot forbid either (GET /products says so).
	{regexp.MustCompile(`.`), regexp.MustCompile(`^(unknown parameter|must be given once)`)},
}

// wordedRule reports whether every field of a validation_failed body is
// refused by one of wordedRules.
func wordedRule(body []byte) bool {
	var b struct {
		Error struct {
			Details map[string]any `json:"details"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &b) != nil || len(b.Error.Details) == 0 {
		return false
	}
	for field, why := range b.Error.Details {
		s, _ := why.(string)
		if !slices.ContainsFunc(wordedRules, func(r struct{ field, why *regexp.Regexp }) bool {
			return r.field.MatchString(field) && r.why.MatchString(s)
		}) {
			return false
		}
	}
	return true
}

// formats are the document's string formats as the services check them:
// kin-openapi asserts only the formats it is given.
var formats = openapi3.WithStringFormatValidators(map[string]openapi3.StringFormatValidator{
	"uuid": openapi3.NewCallbackValidator(func(s string) error {
		if _, ok := validate.ParseUUID(s); !ok {
			return errors.New("not a UUID")
		}
		return nil
	}),
	// The user service's rule: a bare address (no display name) as net/mail
	// reads it, with no character that shows nothing (the document says so).
	"email": openapi3.NewCallbackValidator(func(s string) error {
		if a, err := mail.ParseAddress(s); err != nil || a.Address != s || strings.ContainsFunc(s, validate.Invisible) {
			return errors.New("not an email address")
		}
		return nil
	}),
})

func TestOpenAPIDocument(t *testing.T) {
	_, router := apiDocument(t)
	// The router must find documented routes on any host, as the tests'
	// gateways listen on free ports.
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:45678/api/v1/auth/login", nil)
	if _, _, err := router.FindRoute(req); err != nil {
		t.Fatalf("POST /api/v1/auth/login not found in the document: %v", err)
	}
	req, _ = http.NewRequest(http.MethodGet, "http://127.0.0.1:45678/api/v1/nowhere", nil)
	if _, _, err := router.FindRoute(req); err == nil {
		t.Fatal("an undocumented route was found")
	}
}

// TestOpenAPICancelReasonIsTheOrderServicesLimit: the order service takes
// a cancellation reason of up to 500 characters (the status history's
// reason is TEXT, as a refund's 500-character reason is), so the document
// must take one too, and refuse what the service refuses. It said 255, so a
// client checking requests against it refused reasons the service keeps.
func TestOpenAPICancelReasonIsTheOrderServicesLimit(t *testing.T) {
	_, router := apiDocument(t)
	validate := func(reason string) error {
		body, _ := json.Marshal(map[string]string{"reason": reason})
		req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:45678/api/v1/orders/0b8a4a4e-0f7c-4c45-9d49-1f2b8c9d0e11/cancel", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Fatalf("POST /orders/{id}/cancel not found in the document: %v", err)
		}
		return openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}})
	}
	if err := validate(strings.Repeat("é", 500)); err != nil {
		t.Errorf("a reason of 500 characters, which the order service keeps, is refused by docs/openapi.yaml: %v", err)
	}
	if err := validate(strings.Repeat("x", 501)); err == nil {
		t.Error("a reason of 501 characters, which the order service refuses (422), is taken by docs/openapi.yaml")
	}
}

// TestOpenAPIRoutesAreServed compares the document's routes with the routes
// the gateway serves: every route of every service's HTTP transport under
// one of the gateway's prefixes (gateway.Routes), and the gateway's own
// under /api/v1 (the document itself). A served route the document lacks,
// or a documented route nothing serves, fails.
func TestOpenAPIRoutesAreServed(t *testing.T) {
	served := map[string]string{} // "METHOD /api/v1/path/{}" → who serves it
	add := func(who string, r *mux.Router, keep func(path string) bool) {
		err := r.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
			path, err := route.GetPathTemplate()
			if err != nil {
				return nil
			}
			methods, err := route.GetMethods()
			if err != nil || !keep(path) {
				return nil // a prefix the gateway forwards, or not served through it
			}
			for _, m := range methods {
				if m != http.MethodHead {
					served[m+" "+normalisePath(path)] = who
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	forwarded := func(path string) bool {
		for _, rt := range gateway.Routes {
			if path == rt.Prefix || strings.HasPrefix(path, rt.Prefix+"/") {
				return true
			}
		}
		return false
	}
	nop := log.NewNopLogger()
	for name, mount := range map[string]func(*mux.Router){
		"user":    func(r *mux.Router) { user.MakeHTTPHandler(r, user.Endpoints{}, nop) },
		"product": func(r *mux.Router) { product.MakeHTTPHandler(r, product.Endpoints{}, nop) },
		"order": func(r *mux.Router) {
			order.MakeHTTPHandler(r, order.Endpoints{}, nop)
			order.MakeEventsHandler(r, nil, nil, nop, order.StreamOptions{}) // the stream: a plain handler
		},
		"payment":      func(r *mux.Router) { payment.MakeHTTPHandler(r, payment.Endpoints{}, nop) },
		"notification": func(r *mux.Router) { notification.MakeHTTPHandler(r, notification.Endpoints{}, nop) },
	} {
		r := mux.NewRouter()
		mount(r)
		add(name+" service", r, forwarded)
	}
	// The routes the gateway answers itself.
	tokens, err := auth.NewTokens([]byte(jwtSecret), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	gw := mux.NewRouter()
	gateway.New(gw, gateway.Config{Instancer: func(string) sd.Instancer { return sd.FixedInstancer(nil) }},
		tokens, nil, prometheus.NewRegistry(), nop)
	add("gateway", gw, func(path string) bool { return strings.HasPrefix(path, "/api/v1/") })

	doc, _ := apiDocument(t)
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+normalisePath("/api/v1"+path)] = true
		}
	}
	for route, who := range served {
		if !documented[route] {
			t.Errorf("%s: served by the %s, missing from docs/openapi.yaml", route, who)
		}
	}
	for route := range documented {
		if served[route] == "" {
			t.Errorf("%s: in docs/openapi.yaml, but nothing serves it through the gateway", route)
		}
	}
	if len(served) < 30 {
		t.Errorf("only %d routes found: the walk missed some", len(served))
	}
	t.Logf("%d routes served through the gateway", len(served))
}

// normalisePath names every path variable {} ({id}, {ref}: the same route).
func normalisePath(path string) string {
	return regexp.MustCompile(`\{[^}]*\}`).ReplaceAllString(path, "{}")
}
