// Package metrics builds the Prometheus registry a service exposes on
// /metrics and the go-kit metrics every HTTP server records. Everything is
// registered on a registry built in main, never on the global one, so tests
// can build as many services in one process as they like.
package metrics

import (
	"net/http"
	"time"

	"github.com/go-kit/kit/metrics"
	kitprometheus "github.com/go-kit/kit/metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves reg in the Prometheus text format.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// HTTP holds the request metrics of one HTTP server.
type HTTP struct {
	Requests metrics.Counter   // http_requests_total{service,method,route,code}
	Duration metrics.Histogram // http_request_duration_seconds{service,method,route,code}
	InFlight metrics.Gauge     // http_requests_in_flight{service}
}

// NewHTTP registers the request metrics of service on reg.
func NewHTTP(reg prometheus.Registerer, service string) *HTTP {
	labels := []string{"service", "method", "route", "code"}
	m := &HTTP{
		Requests: NewCounter(reg, "http_requests_total", "HTTP requests served.", labels...).With("service", service),
		Duration: NewHistogram(reg, "http_request_duration_seconds", "HTTP request latency in seconds.",
			prometheus.DefBuckets, labels...).With("service", service),
		InFlight: NewGauge(reg, "http_requests_in_flight",
			"HTTP requests being served now (health checks, readiness checks and scrapes aside).", "service").With("service", service),
	}
	m.InFlight.Set(0) // the series exists before the first request
	return m
}

// NewCounter registers a counter vector on reg and returns it as a go-kit counter.
func NewCounter(reg prometheus.Registerer, name, help string, labels ...string) metrics.Counter {
	cv := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	reg.MustRegister(cv)
	return kitprometheus.NewCounter(cv)
}

// NewGauge registers a gauge vector on reg and returns it as a go-kit gauge.
func NewGauge(reg prometheus.Registerer, name, help string, labels ...string) metrics.Gauge {
	gv := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	reg.MustRegister(gv)
	return kitprometheus.NewGauge(gv)
}

// NewHistogram registers a histogram vector on reg and returns it as a go-kit histogram.
func NewHistogram(reg prometheus.Registerer, name, help string, buckets []float64, labels ...string) metrics.Histogram {
	hv := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	reg.MustRegister(hv)
	return kitprometheus.NewHistogram(hv)
}

// MethodDuration is a service's <service>_service_duration_seconds
// histogram, labelled by method and success, as every service's
// instrumenting middleware records it.
type MethodDuration struct {
	h metrics.Histogram
}

// NewMethodDuration registers the histogram called name on reg.
func NewMethodDuration(reg prometheus.Registerer, name, help string) MethodDuration {
	return MethodDuration{h: NewHistogram(reg, name, help, prometheus.DefBuckets, "method", "success")}
}

// Observe records one call of method that began at begin and ended with err.
func (d MethodDuration) Observe(method string, begin time.Time, err error) {
	success := "false"
	if err == nil {
		success = "true"
	}
	d.h.With("method", method, "success", success).Observe(time.Since(begin).Seconds())
}
