package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

// Two services in one process (as in tests) each get their own registry, so
// registering the same metric names twice must not panic.
func TestRegistriesAreIndependent(t *testing.T) {
	for _, svc := range []string{"a", "b"} {
		reg := NewRegistry()
		m := NewHTTP(reg, svc)
		m.Requests.With("method", "GET", "route", "/x", "code", "200").Add(1)
		m.Duration.With("method", "GET", "route", "/x", "code", "200").Observe(0.25)

		rec := httptest.NewRecorder()
		Handler(reg).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		body, _ := io.ReadAll(rec.Body)
		for _, want := range []string{
			`http_requests_total{code="200",method="GET",route="/x",service="` + svc + `"} 1`,
			`http_request_duration_seconds_sum{code="200",method="GET",route="/x",service="` + svc + `"} 0.25`,
			`http_requests_in_flight{service="` + svc + `"} 0`,
			"go_goroutines",
		} {
			if !strings.Contains(string(body), want) {
				t.Errorf("%s: /metrics lacks %q", svc, want)
			}
		}
	}
}
