package httpkit

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mercato-dev/mercato/shared/metrics"
)

// A handler that panics is answered 500 by Recover, outside the router: the
// request is still counted and timed, as that 500, so HighErrorRatio and
// the gateway's availability SLO see it. The panic went past Observe's
// recording before, and the 500s of a crashing route were in no series.
// An answer aborted after its headers (http.ErrAbortHandler, as the
// gateway's ReverseProxy does when an instance's answer breaks off) is
// counted with the status that was sent.
func TestObserveCountsAPanicAs500(t *testing.T) {
	reg := metrics.NewRegistry()
	m := metrics.NewHTTP(reg, "test")
	r := Router(log.NewNopLogger(), reg, m, nil)
	r.Methods("GET").Path("/boom/{id}").HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })
	r.Methods("GET").Path("/aborted").HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
		panic(http.ErrAbortHandler)
	})
	h := Handler(log.NewNopLogger(), r)

	for range 3 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/boom/1", nil))
		if rec.Code != http.StatusInternalServerError {
			t.Fatalf("status %d, want 500", rec.Code)
		}
	}
	func() {
		defer func() {
			if p := recover(); p != http.ErrAbortHandler {
				t.Errorf("aborted answer: recovered %v, want http.ErrAbortHandler passed on to the server", p)
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/aborted", nil))
	}()
	expected := `
# HELP http_requests_total HTTP requests served.
# TYPE http_requests_total counter
http_requests_total{code="500",method="GET",route="/boom/{id}",service="test"} 3
http_requests_total{code="200",method="GET",route="/aborted",service="test"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected), "http_requests_total"); err != nil {
		t.Fatalf("after requests that panicked: %v", err)
	}
	if n := testutil.CollectAndCount(reg, "http_request_duration_seconds"); n != 2 {
		t.Fatalf("http_request_duration_seconds has %d series after requests that panicked on 2 routes, want 2", n)
	}
}
