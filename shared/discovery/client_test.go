package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/afex/hystrix-go/hystrix"
	"github.com/go-kit/kit/sd"
	"github.com/go-kit/kit/sd/lb"
	"github.com/prometheus/client_golang/prometheus"
)

func TestRoundRobinSpreadsCalls(t *testing.T) {
	a, b := newBackend(t, 0), newBackend(t, 0)
	e := NewEndpoint(sd.FixedInstancer{a.addr(), b.addr()}, "rr", thingFactory(http.MethodGet, "", nil), testLogger(), Options{})
	ready(t, e, a, b)

	served := map[string]int{}
	for range 10 {
		resp, err := call(e)
		if err != nil {
			t.Fatalf("call: %v", err)
		}
		served[resp.Server]++
	}
	if served[a.addr()] != 5 || served[b.addr()] != 5 {
		t.Errorf("served = %v, want 5 calls on each instance", served)
	}
	if a.hits.Load() != 5 || b.hits.Load() != 5 {
		t.Errorf("hits = %d/%d, want 5/5", a.hits.Load(), b.hits.Load())
	}
}

func TestClosedInstanceIsRetriedElsewhere(t *testing.T) {
	dead, alive := newBackend(t, 0), newBackend(t, 0)
	dead.srv.Close() // its port now refuses connections
	reg := prometheus.NewRegistry()
	opts := Options{RequestVolumeThreshold: 4, SleepWindow: time.Minute, Metrics: NewMetrics(reg)}
	e := NewEndpoint(sd.FixedInstancer{dead.addr(), alive.addr()}, "closed", thingFactory(http.MethodPost, "", nil), testLogger(), opts)
	ready(t, e, alive)

	// POST without a key: connection refused is retried anyway, since
	// nothing was sent.
	for i := range 20 {
		resp, err := call(e)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if resp.Server != alive.addr() {
			t.Fatalf("call %d served by %q", i, resp.Server)
		}
	}
	if got := alive.hits.Load(); got != 20 {
		t.Errorf("alive instance got %d calls, want 20", got)
	}
	// Refused connections are transport failures: the dead instance's own
	// breaker opens, and the calls it rejects are still retried elsewhere.
	deadLabels := map[string]string{"upstream": "closed", "instance": dead.addr()}
	eventually(t, 5*time.Second, "dead instance's breaker to open", func() bool {
		if _, err := call(e); err != nil {
			t.Fatalf("call: %v", err)
		}
		v, _ := metricValue(t, reg, "circuit_breaker_open", deadLabels)
		return v == 1
	})
}

// Calls made at the same time share the round robin, so a call's retry
// must still go to another instance than its failed attempt, not to
// wherever the shared counter points now: with one instance refusing
// connections and one healthy, every call must succeed.
func TestConcurrentRetriesGoToAnotherInstance(t *testing.T) {
	dead, alive := newBackend(t, 0), newBackend(t, 0)
	dead.srv.Close() // its port now refuses connections
	// A breaker that never opens: only the retries are under test.
	opts := Options{RequestVolumeThreshold: 1 << 30}
	e := NewEndpoint(sd.FixedInstancer{dead.addr(), alive.addr()}, "concurrent-retries", thingFactory(http.MethodPost, "", nil), testLogger(), opts)
	ready(t, e, alive)

	var (
		wg       sync.WaitGroup
		failed   atomic.Int64
		firstErr atomic.Value
	)
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if _, err := call(e); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of 400 calls failed with a healthy instance to retry on; first: %v", n, firstErr.Load())
	}
}

func TestFailingInstanceOpensOnlyItsBreaker(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		// retried: GET answered 502-504 goes to the other instance, so no
		// call fails even before the breaker opens. (A 500 is final and does
		// not count against the instance: TestRequestFailuresDoNotTripTheBreaker.)
		retried bool
	}{
		{"502 is retried", http.StatusBadGateway, true},
		{"503 is retried", http.StatusServiceUnavailable, true},
		{"504 is retried", http.StatusGatewayTimeout, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad, good := newBackend(t, 0), newBackend(t, 0)
			reg := prometheus.NewRegistry()
			opts := Options{RequestVolumeThreshold: 4, ErrorPercentThreshold: 50, SleepWindow: time.Minute, Metrics: NewMetrics(reg)}
			upstream := "failing-" + http.StatusText(tc.status)
			e := NewEndpoint(sd.FixedInstancer{bad.addr(), good.addr()}, upstream, thingFactory(http.MethodGet, "", nil), testLogger(), opts)
			ready(t, e, bad, good)
			bad.status.Store(int64(tc.status))

			badLabels := map[string]string{"upstream": upstream, "instance": bad.addr()}
			goodLabels := map[string]string{"upstream": upstream, "instance": good.addr()}
			failures := 0
			eventually(t, 5*time.Second, "bad instance's breaker to open", func() bool {
				if _, err := call(e); err != nil {
					failures++
					var up *UpstreamError
					if !errors.As(err, &up) || up.StatusCode != tc.status || up.Instance != bad.addr() {
						t.Fatalf("error %v, want an UpstreamError %d from the bad instance", err, tc.status)
					}
				}
				v, _ := metricValue(t, reg, "circuit_breaker_open", badLabels)
				return v == 1
			})
			if tc.retried && failures > 0 {
				t.Errorf("%d calls failed; 503 on GET should have been retried", failures)
			}
			if !tc.retried && failures == 0 {
				t.Error("no call failed; a 500 must not be retried")
			}

			bad.hits.Store(0)
			good.hits.Store(0)
			for i := range 20 {
				resp, err := call(e)
				if err != nil {
					t.Fatalf("call %d with the bad breaker open: %v", i, err)
				}
				if resp.Server != good.addr() {
					t.Fatalf("call %d served by %q", i, resp.Server)
				}
			}
			if n := bad.hits.Load(); n != 0 {
				t.Errorf("bad instance got %d calls while its breaker was open", n)
			}
			if v, ok := metricValue(t, reg, "circuit_breaker_open", badLabels); !ok || v != 1 {
				t.Errorf("circuit_breaker_open for bad = %v (present %v), want 1", v, ok)
			}
			if v, ok := metricValue(t, reg, "circuit_breaker_open", goodLabels); !ok || v != 0 {
				t.Errorf("circuit_breaker_open for good = %v (present %v), want 0", v, ok)
			}
			rejected := map[string]string{"upstream": upstream, "instance": bad.addr(), "reason": "circuit_open"}
			if v, _ := metricValue(t, reg, "circuit_breaker_rejected_total", rejected); v < 10 {
				t.Errorf("circuit_breaker_rejected_total for bad = %v, want >= 10 (every other call)", v)
			}
		})
	}
}

// An instance answering 500 has a bug that the request triggered, not an
// outage: the 500 reaches the caller (it is final, never retried), but the
// instance's breaker stays closed, so whoever sends such requests cannot take
// the instance out of rotation for everyone else.
func TestRequestFailuresDoNotTripTheBreaker(t *testing.T) {
	for _, status := range []int{http.StatusInternalServerError, http.StatusNotImplemented} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			bad, good := newBackend(t, 0), newBackend(t, 0)
			reg := prometheus.NewRegistry()
			opts := Options{RequestVolumeThreshold: 4, ErrorPercentThreshold: 50, SleepWindow: time.Minute, Metrics: NewMetrics(reg)}
			upstream := "request-failure-" + http.StatusText(status)
			e := NewEndpoint(sd.FixedInstancer{bad.addr(), good.addr()}, upstream, thingFactory(http.MethodGet, "", nil), testLogger(), opts)
			ready(t, e, bad, good)
			bad.status.Store(int64(status))
			bad.hits.Store(0)

			failures := 0
			for range 40 {
				if _, err := call(e); err != nil {
					failures++
					var up *UpstreamError
					if !errors.As(err, &up) || up.StatusCode != status || up.Instance != bad.addr() || IsRetryable(err) {
						t.Fatalf("error %v, want a final UpstreamError %d from the bad instance", err, status)
					}
				}
			}
			if failures != 20 || bad.hits.Load() != 20 {
				t.Errorf("%d calls failed, the bad instance saw %d; want 20 and 20 (round robin, no retry, no breaker)", failures, bad.hits.Load())
			}
			badLabels := map[string]string{"upstream": upstream, "instance": bad.addr()}
			if v, ok := metricValue(t, reg, "circuit_breaker_open", badLabels); !ok || v != 0 {
				t.Errorf("circuit_breaker_open for the instance answering %d = %v (present %v), want 0", status, v, ok)
			}
		})
	}
}

func TestCountsAgainstInstance(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"500", &UpstreamError{StatusCode: 500}, false},
		{"501", &UpstreamError{StatusCode: 501}, false},
		{"502", &UpstreamError{StatusCode: 502}, true},
		{"503, retryable", Retryable(&UpstreamError{StatusCode: 503}), true},
		{"504", &UpstreamError{StatusCode: 504}, true},
		{"connection refused", &url.Error{Op: "Get", URL: "http://x", Err: syscall.ECONNREFUSED}, true},
		{"bare errno", syscall.ECONNRESET, true},
		{"answer cut short", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"hystrix timeout", hystrix.ErrTimeout, true},
		{"deadline", context.DeadlineExceeded, true},
		{"undecodable answer", errors.New("decode 200 response: invalid character"), false},
	} {
		if got := CountsAgainstInstance(tc.err); got != tc.want {
			t.Errorf("%s: CountsAgainstInstance(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestUnsafeRequestsAreNotRetried(t *testing.T) {
	for _, tc := range []struct {
		name, key    string
		wantFailures int
	}{
		{"POST without idempotency key", "", 5},
		{"POST with idempotency key", "order-42", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad, good := newBackend(t, 0), newBackend(t, 0)
			// A volume the test never reaches keeps the breakers out of it.
			opts := Options{RequestVolumeThreshold: 1000}
			e := NewEndpoint(sd.FixedInstancer{bad.addr(), good.addr()}, "unsafe-"+tc.key, thingFactory(http.MethodPost, tc.key, nil), testLogger(), opts)
			ready(t, e, bad, good)
			bad.status.Store(http.StatusServiceUnavailable)

			failures := 0
			for range 10 {
				if _, err := call(e); err != nil {
					failures++
					if IsRetryable(err) {
						t.Errorf("error %v of an unkeyed POST is marked retryable", err)
					}
				}
			}
			if failures != tc.wantFailures {
				t.Errorf("%d of 10 calls failed, want %d", failures, tc.wantFailures)
			}
			if good.hits.Load() != 10-int64(failures) {
				t.Errorf("good instance served %d requests, want %d", good.hits.Load(), 10-failures)
			}
			if tc.key == "" && bad.hits.Load() != int64(failures) {
				t.Errorf("bad instance saw %d requests for %d failed calls: an unkeyed POST was sent twice", bad.hits.Load(), failures)
			}
			if tc.key != "" && bad.hits.Load() < 5 {
				t.Errorf("bad instance saw %d requests, want at least 5 (round robin)", bad.hits.Load())
			}
		})
	}
}

func TestBusinessErrorsDoNotTripTheBreaker(t *testing.T) {
	b := newBackend(t, http.StatusNotFound)
	reg := prometheus.NewRegistry()
	opts := Options{RequestVolumeThreshold: 4, SleepWindow: time.Minute, Metrics: NewMetrics(reg)}
	e := NewEndpoint(sd.FixedInstancer{b.addr()}, "business", thingFactory(http.MethodGet, "", nil), testLogger(), opts)
	ready(t, e, b)

	for i := range 30 {
		resp, err := call(e)
		if err != nil {
			t.Fatalf("call %d: 404 came back as an error: %v", i, err)
		}
		if !errors.Is(resp.Failed(), errThingNotFound) {
			t.Fatalf("call %d: Failed() = %v, want errThingNotFound", i, resp.Failed())
		}
	}
	if n := b.hits.Load(); n != 30 {
		t.Errorf("instance saw %d requests, want 30 (no retries of business answers)", n)
	}
	if v, ok := metricValue(t, reg, "circuit_breaker_open", map[string]string{"upstream": "business", "instance": b.addr()}); !ok || v != 0 {
		t.Errorf("circuit_breaker_open = %v (present %v), want 0", v, ok)
	}
}

func TestCallerCancellationDoesNotTripTheBreaker(t *testing.T) {
	b := newBackend(t, 0)
	reg := prometheus.NewRegistry()
	opts := Options{RequestVolumeThreshold: 4, SleepWindow: time.Minute, Metrics: NewMetrics(reg)}
	e := NewEndpoint(sd.FixedInstancer{b.addr()}, "cancel", thingFactory(http.MethodGet, "", nil), testLogger(), opts)
	ready(t, e, b)
	b.block = true // safe: no request is in flight

	for i := range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		_, err := e(ctx, struct{}{})
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, hystrix.ErrCircuitOpen) {
			t.Fatalf("call %d: error %v, want only the caller's deadline", i, err)
		}
	}
	// hystrix counts asynchronously: give it time to (wrongly) open.
	circuit, _, _ := hystrix.GetCircuit("cancel@" + b.addr())
	for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if circuit.IsOpen() {
			t.Fatal("the caller's deadlines opened the instance's breaker")
		}
	}
	if v, _ := metricValue(t, reg, "circuit_breaker_open", map[string]string{"upstream": "cancel", "instance": b.addr()}); v != 0 {
		t.Errorf("circuit_breaker_open = %v, want 0", v)
	}
}

// An instance that takes calls and never answers (stuck on a lock, its
// database pool exhausted, while its /health still passes) keeps each call
// waiting for all of Options.Timeout: that is a timeout of the instance's,
// which opens its breaker, so the calls go to the other instance instead of
// timing out half the time for as long as it hangs. The caller's own
// deadline does not count (TestCallerCancellationDoesNotTripTheBreaker).
func TestHungInstanceOpensItsBreaker(t *testing.T) {
	hung, good := newBackend(t, 0), newBackend(t, 0)
	reg := prometheus.NewRegistry()
	opts := Options{Timeout: 50 * time.Millisecond, RequestVolumeThreshold: 4, SleepWindow: time.Minute, Metrics: NewMetrics(reg)}
	e := NewEndpoint(sd.FixedInstancer{hung.addr(), good.addr()}, "hung", thingFactory(http.MethodGet, "", nil), testLogger(), opts)
	ready(t, e, hung, good)
	hung.block = true // safe: no request is in flight

	timedOut := 0
	eventually(t, 5*time.Second, "the hung instance's breaker to open", func() bool {
		if _, err := call(e); err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("error %v, want the call's timeout", err)
			}
			timedOut++
		}
		circuit, _, _ := hystrix.GetCircuit("hung@" + hung.addr())
		return circuit.IsOpen()
	})
	hung.hits.Store(0)
	for i := range 10 {
		if resp, err := call(e); err != nil || resp.Server != good.addr() {
			t.Fatalf("call %d with the hung instance's breaker open: %+v, %v; want the good instance's answer", i, resp, err)
		}
	}
	if n := hung.hits.Load(); n != 0 {
		t.Errorf("the hung instance got %d calls while its breaker was open", n)
	}
	unavailable := map[string]string{"upstream": "hung", "outcome": OutcomeUnavailable}
	eventually(t, time.Second, fmt.Sprintf("upstream_requests_total{outcome=unavailable} to count the %d timed out calls", timedOut), func() bool {
		v, _ := metricValue(t, reg, "upstream_requests_total", unavailable)
		return v >= float64(timedOut)
	})
}

func TestNoInstances(t *testing.T) {
	for _, tc := range []struct {
		name    string
		event   sd.Event
		wrapped error
	}{
		{"no passing instance", sd.Event{}, lb.ErrNoEndpoints},
		{"consul unreachable", sd.Event{Err: errConsulDown}, errConsulDown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t, 0)
			closed := &closeLog{}
			instancer := newTestInstancer(b.addr())
			e := NewEndpoint(instancer, "none", thingFactory(http.MethodGet, "", closed), testLogger(), Options{InvalidateAfter: time.Millisecond})
			ready(t, e, b)
			instancer.update(tc.event)

			var err error
			eventually(t, 2*time.Second, "ErrNoInstances", func() bool {
				_, err = call(e)
				return err != nil
			})
			if !errors.Is(err, ErrNoInstances) || !errors.Is(err, tc.wrapped) {
				t.Errorf("error %v, want ErrNoInstances wrapping %v", err, tc.wrapped)
			}
			var re *RetryError
			if !errors.As(err, &re) || len(re.RawErrors) != 1 {
				t.Errorf("error %v, want a *RetryError after exactly one attempt", err)
			}
			if closed.count(b.addr()) != 1 {
				t.Errorf("client of the vanished instance closed %d times, want 1", closed.count(b.addr()))
			}
		})
	}
}

func TestSettledEndpointerCloses(t *testing.T) {
	// NewEndpoint keeps its endpointer for good, but one built on settled
	// must still close: Deregister takes the relay off the instancer, so a
	// later update reaches no closed channel.
	instancer := newTestInstancer("127.0.0.1:1")
	e := sd.NewEndpointer(&settled{Instancer: instancer}, thingFactory(http.MethodGet, "", nil), testLogger())
	if eps, err := e.Endpoints(); len(eps) != 1 || err != nil {
		t.Fatalf("Endpoints just after NewEndpointer = %d, %v; want the instancer's one", len(eps), err)
	}
	e.Close()
	instancer.mu.Lock()
	registered := len(instancer.subs)
	instancer.mu.Unlock()
	if registered != 0 {
		t.Fatalf("%d channels still registered after Close", registered)
	}
	instancer.update(sd.Event{}) // reaches no one
}

var errConsulDown = errors.New("consul down")

func TestInstanceLeavingIsClosed(t *testing.T) {
	a, b := newBackend(t, 0), newBackend(t, 0)
	reg := prometheus.NewRegistry()
	closed := &closeLog{}
	instancer := newTestInstancer(a.addr(), b.addr())
	e := NewEndpoint(instancer, "leaving", thingFactory(http.MethodGet, "", closed), testLogger(), Options{Metrics: NewMetrics(reg)})
	ready(t, e, a, b)
	_, _ = call(e) // one call to each instance: only the breakers matter here
	_, _ = call(e)
	aLabels := map[string]string{"upstream": "leaving", "instance": a.addr()}
	if _, ok := metricValue(t, reg, "circuit_breaker_open", aLabels); !ok {
		t.Fatal("no breaker gauge for a after calling it")
	}

	instancer.update(sd.Event{Instances: []string{b.addr()}})
	eventually(t, 2*time.Second, "a's client to be closed", func() bool { return closed.count(a.addr()) == 1 })
	a.hits.Store(0)
	for range 6 {
		if resp, err := call(e); err != nil || resp.Server != b.addr() {
			t.Fatalf("call = %+v, %v; want served by b", resp, err)
		}
	}
	if a.hits.Load() != 0 {
		t.Errorf("a got %d calls after leaving", a.hits.Load())
	}
	if closed.count(b.addr()) != 0 {
		t.Error("b's client was closed though b stayed")
	}
	if _, ok := metricValue(t, reg, "circuit_breaker_open", aLabels); ok {
		t.Error("breaker gauge of a departed instance is still exported")
	}
}

func TestNewMetricsTwiceOnOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	m1, m2 := NewMetrics(reg), NewMetrics(reg)
	m1.observeBreaker("u", "i:1", true)
	m2.observeRejected("u", "i:1", "circuit_open")
	if v, _ := metricValue(t, reg, "circuit_breaker_open", map[string]string{"upstream": "u", "instance": "i:1"}); v != 1 {
		t.Errorf("circuit_breaker_open = %v, want 1", v)
	}
	if v, _ := metricValue(t, reg, "circuit_breaker_rejected_total", map[string]string{"upstream": "u", "instance": "i:1", "reason": "circuit_open"}); v != 1 {
		t.Errorf("circuit_breaker_rejected_total = %v, want 1", v)
	}
	var nilMetrics *Metrics // Options without metrics
	nilMetrics.observeBreaker("u", "i", true)
	nilMetrics.forget("u", "i")
}

func TestFirstCallFindsTheInstances(t *testing.T) {
	// sd.NewEndpointer applies the instancer's first set on a goroutine of
	// its own; NewEndpoint returns only once it has, so a call made at once
	// (a client's first, just after start-up) finds the instance. Many
	// endpoints, since a lost race shows only now and then.
	a := newBackend(t, 0)
	for i := range 500 {
		e := NewEndpoint(sd.FixedInstancer{a.addr()}, "first", thingFactory(http.MethodGet, "", nil), testLogger(), Options{})
		if _, err := call(e); err != nil {
			t.Fatalf("endpoint %d: first call: %v", i, err)
		}
	}
}

// An instance that hangs fails its Consul check too, so it leaves while
// calls to it are still waiting for their timeout (as one that leaves to
// shut down does with calls it is still serving). Those calls end after its
// breaker gauge was dropped: they must not export it again, or
// circuit_breaker_open of an instance that is gone stays at its last value
// for good: 1 here, so CircuitBreakerOpen fires for as long as the caller
// runs.
func TestCallEndingAfterItsInstanceLeftKeepsTheGaugeDropped(t *testing.T) {
	hung, good := newBackend(t, 0), newBackend(t, 0)
	reg := prometheus.NewRegistry()
	closed := &closeLog{}
	instancer := newTestInstancer(hung.addr())
	opts := Options{Timeout: 300 * time.Millisecond, RequestVolumeThreshold: 4, SleepWindow: time.Minute, Metrics: NewMetrics(reg)}
	e := NewEndpoint(instancer, "gone", thingFactory(http.MethodGet, "", closed), testLogger(), opts)
	ready(t, e, hung)
	hung.block = true // safe: no request is in flight

	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = call(e)
		}()
	}
	eventually(t, 2*time.Second, "the calls to reach the hung instance", func() bool { return hung.hits.Load() == 8 })
	instancer.update(sd.Event{Instances: []string{good.addr()}})
	eventually(t, 2*time.Second, "the hung instance's client to be closed", func() bool { return closed.count(hung.addr()) == 1 })
	wg.Wait()

	labels := map[string]string{"upstream": "gone", "instance": hung.addr()}
	if v, ok := metricValue(t, reg, "circuit_breaker_open", labels); ok {
		t.Errorf("circuit_breaker_open of the departed instance exported again, at %v, by calls that ended after it left", v)
	}
}
