package discovery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/afex/hystrix-go/hystrix"
	"github.com/go-kit/kit/sd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestAttemptOutcome(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, OutcomeSuccess},
		{&UpstreamError{StatusCode: http.StatusInternalServerError}, OutcomeError},
		{&UpstreamError{StatusCode: http.StatusNotImplemented}, OutcomeError},
		{&UpstreamError{StatusCode: http.StatusBadGateway}, OutcomeUnavailable},
		{Retryable(&UpstreamError{StatusCode: http.StatusServiceUnavailable}), OutcomeUnavailable},
		{&UpstreamError{StatusCode: http.StatusGatewayTimeout}, OutcomeUnavailable},
		{&url.Error{Op: "Get", URL: "http://x", Err: syscall.ECONNREFUSED}, OutcomeUnavailable},
		{hystrix.ErrTimeout, OutcomeUnavailable},
		{context.DeadlineExceeded, OutcomeUnavailable},
		{fmt.Errorf("product@x: %w", hystrix.ErrCircuitOpen), OutcomeRejected},
		{hystrix.ErrMaxConcurrency, OutcomeRejected},
		{context.Canceled, OutcomeError},
		{errors.New("decode: unexpected end of JSON"), OutcomeError},
	} {
		if got := attemptOutcome(tc.err); got != tc.want {
			t.Errorf("attemptOutcome(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// Every attempt is counted once by how it ended, with its duration, and
// every attempt after a call's first is a retry; an upstream's series exist
// at 0 before its first call.
func TestUpstreamAttemptMetrics(t *testing.T) {
	b := newBackend(t, 0)
	reg := prometheus.NewRegistry()
	// A breaker that never opens here: only the outcomes are under test.
	opts := Options{MaxAttempts: 3, RequestVolumeThreshold: 1000, Metrics: NewMetrics(reg)}
	e := NewEndpoint(sd.FixedInstancer{b.addr()}, "metered", thingFactory(http.MethodGet, "", nil), testLogger(), opts)
	wantUpstream(t, reg, "metered", map[string]int{}, 0)

	ready(t, e, b) // one successful attempt
	_, _ = call(e) // 200: success
	b.status.Store(http.StatusNotFound)
	_, _ = call(e) // a business answer: success
	b.status.Store(http.StatusInternalServerError)
	_, _ = call(e) // error, never retried
	b.status.Store(http.StatusServiceUnavailable)
	_, _ = call(e) // a GET answered 503: three attempts, two retries
	b.srv.Close()
	_, _ = call(e) // connection refused: three attempts, two retries
	wantUpstream(t, reg, "metered", map[string]int{OutcomeSuccess: 3, OutcomeError: 1, OutcomeUnavailable: 6}, 4)
}

// An attempt the breaker refuses is counted as rejected, never sent.
func TestRejectedAttemptMetrics(t *testing.T) {
	b := newBackend(t, http.StatusServiceUnavailable)
	reg := prometheus.NewRegistry()
	opts := Options{MaxAttempts: 1, RequestVolumeThreshold: 4, ErrorPercentThreshold: 50, SleepWindow: time.Minute, Metrics: NewMetrics(reg)}
	e := NewEndpoint(sd.FixedInstancer{b.addr()}, "refused", thingFactory(http.MethodGet, "", nil), testLogger(), opts)
	ready(t, e, b)
	calls := 1
	eventually(t, 5*time.Second, "an attempt to be rejected", func() bool {
		_, err := call(e)
		calls++
		return errors.Is(err, hystrix.ErrCircuitOpen)
	})
	sent := int(b.hits.Load()) + 1 // ready's attempt came before the reset
	wantUpstream(t, reg, "refused", map[string]int{OutcomeUnavailable: sent, OutcomeRejected: calls - sent}, 0)
	if calls-sent < 1 {
		t.Errorf("%d calls, %d sent: none rejected", calls, sent)
	}
}

// wantUpstream checks upstream's attempt counters (outcomes missing from
// want at 0), that the duration histogram holds as many observations per
// outcome, and the retries.
func wantUpstream(t *testing.T, reg *prometheus.Registry, upstream string, want map[string]int, retries int) {
	t.Helper()
	var exp strings.Builder
	exp.WriteString("# HELP upstream_requests_total Attempts at an upstream instance, retries included, by outcome: success, error, unavailable, rejected.\n")
	exp.WriteString("# TYPE upstream_requests_total counter\n")
	for _, o := range []string{OutcomeError, OutcomeRejected, OutcomeSuccess, OutcomeUnavailable} { // sorted, as gathered
		fmt.Fprintf(&exp, "upstream_requests_total{outcome=%q,upstream=%q} %d\n", o, upstream, want[o])
	}
	exp.WriteString("# HELP upstream_retries_total Attempts at an upstream beyond the first of each call.\n")
	exp.WriteString("# TYPE upstream_retries_total counter\n")
	fmt.Fprintf(&exp, "upstream_retries_total{upstream=%q} %d\n", upstream, retries)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(exp.String()), "upstream_requests_total", "upstream_retries_total"); err != nil {
		t.Error(err)
	}

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range families {
		if f.GetName() != "upstream_request_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			var outcome string
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" {
					outcome = l.GetValue()
				}
			}
			seen[outcome] = true
			if got := m.GetHistogram().GetSampleCount(); float64(got) != float64(want[outcome]) {
				t.Errorf("upstream_request_duration_seconds{outcome=%q} holds %d observations, want %d", outcome, got, want[outcome])
			}
		}
	}
	for _, o := range Outcomes {
		if !seen[o] {
			t.Errorf("no upstream_request_duration_seconds series for outcome %q", o)
		}
	}
}
