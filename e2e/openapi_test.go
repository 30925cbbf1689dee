package e2e

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/mercato-dev/mercato/shared/localinfra"
)

// openAPI is docs/openapi.yaml, loaded once per test run.
var openAPI struct {
	once   sync.Once
	router routers.Router
	err    error
}

func apiRouter(t *testing.T) routers.Router {
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
		openAPI.router, openAPI.err = gorillamux.NewRouter(doc)
	})
	if openAPI.err != nil {
		t.Fatalf("docs/openapi.yaml: %v", openAPI.err)
	}
	return openAPI.router
}

// checkAgainstOpenAPI validates a response the gateway gave to req against
// docs/openapi.yaml: status documented, body of the documented schema. A
// route of the public API (under /api/v1) that the gateway serves but the
// document does not describe fails the test; a 404 or 405 is no route
// served, and paths outside /api/v1 (/health) are not the document's.
func checkAgainstOpenAPI(t *testing.T, req *http.Request, status int, header http.Header, body []byte) {
	t.Helper()
	route, params, err := apiRouter(t).FindRoute(req)
	if err != nil {
		if strings.HasPrefix(req.URL.Path, "/api/v1/") && status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			t.Errorf("%s %s → %d: served, but not in docs/openapi.yaml (%v)", req.Method, req.URL.Path, status, err)
		}
		return
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true}
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

func TestOpenAPIDocument(t *testing.T) {
	router := apiRouter(t)
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
