package httpkit

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-kit/log"

	"github.com/mercato-dev/mercato/shared/metrics"
)

// The method label of http_requests_total is bounded: net/http serves any
// token as a method, so a client that made up a method per request would
// otherwise add a series (and a histogram's worth of them) per request, on
// a route or on none.
func TestObserveBoundsTheMethodLabel(t *testing.T) {
	reg := metrics.NewRegistry()
	r := Router(log.NewNopLogger(), reg, metrics.NewHTTP(reg, "test"), nil)
	r.PathPrefix("/things/").HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	srv := httptest.NewServer(Handler(log.NewNopLogger(), r))
	defer srv.Close()
	send := func(method, path string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	for i := range 50 {
		for _, path := range []string{"/things/1", "/nope"} {
			send(fmt.Sprintf("X%d", i), path)
		}
	}
	send(http.MethodGet, "/things/1")

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	methods := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() != "http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "method" {
					methods[l.GetValue()] = true
				}
			}
		}
	}
	if !methods[http.MethodGet] {
		t.Errorf("no series for GET: %v", methods)
	}
	if len(methods) > 2 {
		t.Fatalf("http_requests_total has %d method label values after 100 requests with made-up methods, want GET and one for all others", len(methods))
	}
}
