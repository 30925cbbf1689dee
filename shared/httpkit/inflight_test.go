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

// http_requests_in_flight counts requests while they are served, unmatched
// ones included, and leaves out probes and scrapes: a scrape that counted
// itself would never read 0.
func TestRequestsInFlight(t *testing.T) {
	reg := metrics.NewRegistry()
	r := Router(log.NewNopLogger(), reg, metrics.NewHTTP(reg, "test"), nil)
	entered, release := make(chan struct{}), make(chan struct{})
	r.Methods("GET").Path("/slow").HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		entered <- struct{}{}
		<-release
		w.WriteHeader(http.StatusNoContent)
	})
	h := Handler(log.NewNopLogger(), r)

	inFlight := func(want string) {
		t.Helper()
		expected := "# HELP http_requests_in_flight HTTP requests being served now (health checks, readiness checks and scrapes aside).\n" +
			"# TYPE http_requests_in_flight gauge\n" +
			`http_requests_in_flight{service="test"} ` + want + "\n"
		if err := testutil.GatherAndCompare(reg, strings.NewReader(expected), "http_requests_in_flight"); err != nil {
			t.Error(err)
		}
	}
	inFlight("0") // before any request: the series exists

	done := make(chan int, 2)
	for range 2 {
		go func() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/slow", nil))
			done <- rec.Code
		}()
		<-entered
	}
	inFlight("2")

	// Probes, scrapes and 404s while the two are held: the probes are not
	// counted, and the 404 was counted only while it was served.
	for _, path := range []string{"/health", "/ready", "/metrics", "/no-such-route"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if path == "/metrics" && !strings.Contains(rec.Body.String(), `http_requests_in_flight{service="test"} 2`) {
			t.Errorf("a scrape during two slow requests reads:\n%s", grepLines(rec.Body.String(), "http_requests_in_flight"))
		}
	}
	inFlight("2")

	close(release)
	for range 2 {
		if code := <-done; code != http.StatusNoContent {
			t.Errorf("slow request answered %d", code)
		}
	}
	inFlight("0")
}

func grepLines(s, substr string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
