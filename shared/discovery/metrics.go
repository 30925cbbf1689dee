package discovery

import (
	"errors"
	"time"

	"github.com/go-kit/kit/metrics"
	kitprometheus "github.com/go-kit/kit/metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics exposes the state of every upstream instance's circuit breaker.
// Build it once in main and pass it in Options.Metrics.
type Metrics struct {
	// BreakerOpen is circuit_breaker_open{upstream,instance}: 1 while the
	// instance's breaker is open (calls to it are rejected), 0 while closed.
	BreakerOpen metrics.Gauge
	// Rejected is circuit_breaker_rejected_total{upstream,instance,reason}:
	// calls the breaker refused without sending them; reason is
	// "circuit_open" or "max_concurrency".
	Rejected metrics.Counter

	// Requests is upstream_requests_total{upstream,outcome} and Duration
	// upstream_request_duration_seconds{upstream,outcome}: one per attempt
	// at an instance, retries included, by how it ended (see Outcomes).
	Requests metrics.Counter
	Duration metrics.Histogram
	// Retries is upstream_retries_total{upstream}: attempts beyond a call's
	// first.
	Retries metrics.Counter

	// open is kept beside its go-kit wrapper because go-kit gauges cannot
	// delete a series, and instances that leave Consul should not stay on
	// dashboards forever; duration because a go-kit histogram cannot make a
	// series without observing a value, and every upstream's series start
	// at zero.
	open     *prometheus.GaugeVec
	duration *prometheus.HistogramVec
}

// The outcomes of one attempt at an upstream instance, the outcome label of
// upstream_requests_total and upstream_request_duration_seconds.
const (
	// OutcomeSuccess: the instance answered below 500 (a 4xx is a business
	// answer, not a failure).
	OutcomeSuccess = "success"
	// OutcomeError: the instance answered a 5xx other than 502-504, or the
	// attempt failed for a reason of the request's own (an answer that
	// does not decode, the caller giving up): what does not count against
	// the instance.
	OutcomeError = "error"
	// OutcomeUnavailable: what counts against the instance's breaker
	// (CountsAgainstInstance): a transport error, a timeout, a 502, 503 or
	// 504.
	OutcomeUnavailable = "unavailable"
	// OutcomeRejected: the instance's breaker refused the attempt (open, or
	// at its concurrency limit); nothing was sent.
	OutcomeRejected = "rejected"
)

// Outcomes are every value of the outcome label.
var Outcomes = []string{OutcomeSuccess, OutcomeError, OutcomeUnavailable, OutcomeRejected}

// NewMetrics registers the breaker metrics on reg (never the global
// registry). Calling it twice with the same registry returns metrics backed
// by the collectors already registered, so two clients in one process can
// share them; any other registration error panics, as a wiring mistake.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	open := register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "circuit_breaker_open",
		Help: "1 while the circuit breaker of an upstream instance is open, 0 while closed.",
	}, []string{"upstream", "instance"}))
	rejected := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "circuit_breaker_rejected_total",
		Help: "Calls to an upstream instance rejected by its circuit breaker without being sent.",
	}, []string{"upstream", "instance", "reason"}))
	requests := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "upstream_requests_total",
		Help: "Attempts at an upstream instance, retries included, by outcome: success, error, unavailable, rejected.",
	}, []string{"upstream", "outcome"}))
	duration := register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "upstream_request_duration_seconds",
		Help:    "Time one attempt at an upstream instance took, in seconds, by outcome.",
		Buckets: prometheus.DefBuckets,
	}, []string{"upstream", "outcome"}))
	retries := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "upstream_retries_total",
		Help: "Attempts at an upstream beyond the first of each call.",
	}, []string{"upstream"}))
	return &Metrics{
		BreakerOpen: kitprometheus.NewGauge(open),
		Rejected:    kitprometheus.NewCounter(rejected),
		Requests:    kitprometheus.NewCounter(requests),
		Duration:    kitprometheus.NewHistogram(duration),
		Retries:     kitprometheus.NewCounter(retries),
		open:        open,
		duration:    duration,
	}
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var already prometheus.AlreadyRegisteredError
		if errors.As(err, &already) {
			if existing, ok := already.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}

// initUpstream makes upstream's request and retry series, at zero, so a
// dashboard shows 0 rather than no data before the first call.
func (m *Metrics) initUpstream(upstream string) {
	if m == nil {
		return
	}
	for _, outcome := range Outcomes {
		m.Requests.With("upstream", upstream, "outcome", outcome).Add(0)
		m.duration.WithLabelValues(upstream, outcome)
	}
	m.Retries.With("upstream", upstream).Add(0)
}

// observeAttempt records one attempt at an instance of upstream that took
// took and ended with err: DoC's error, or else the error the instance's
// endpoint returned that does not count against it (nil for an answer).
func (m *Metrics) observeAttempt(upstream string, took time.Duration, err error) {
	if m == nil {
		return
	}
	outcome := attemptOutcome(err)
	m.Requests.With("upstream", upstream, "outcome", outcome).Add(1)
	m.Duration.With("upstream", upstream, "outcome", outcome).Observe(took.Seconds())
}

// attemptOutcome names how an attempt that ended with err went.
func attemptOutcome(err error) string {
	switch {
	case err == nil:
		return OutcomeSuccess
	case rejection(err) != "":
		return OutcomeRejected
	case CountsAgainstInstance(err):
		return OutcomeUnavailable
	default:
		return OutcomeError
	}
}

func (m *Metrics) observeRetry(upstream string) {
	if m == nil {
		return
	}
	m.Retries.With("upstream", upstream).Add(1)
}

// observeBreaker records the breaker state of one instance after a call.
func (m *Metrics) observeBreaker(upstream, instance string, open bool) {
	if m == nil {
		return
	}
	v := 0.0
	if open {
		v = 1
	}
	m.BreakerOpen.With("upstream", upstream, "instance", instance).Set(v)
}

func (m *Metrics) observeRejected(upstream, instance, reason string) {
	if m == nil {
		return
	}
	m.Rejected.With("upstream", upstream, "instance", instance, "reason", reason).Add(1)
}

// forget drops the gauge series of an instance that left Consul. The rejected
// counter stays: counters must not go backwards within a scrape target.
func (m *Metrics) forget(upstream, instance string) {
	if m == nil {
		return
	}
	m.open.DeleteLabelValues(upstream, instance)
}
