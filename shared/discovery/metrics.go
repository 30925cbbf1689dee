package discovery

import (
	"errors"

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

	// open is kept beside its go-kit wrapper because go-kit gauges cannot
	// delete a series, and instances that leave Consul should not stay on
	// dashboards forever.
	open *prometheus.GaugeVec
}

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
	return &Metrics{
		BreakerOpen: kitprometheus.NewGauge(open),
		Rejected:    kitprometheus.NewCounter(rejected),
		open:        open,
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
