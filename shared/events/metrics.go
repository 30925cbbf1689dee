package events

import (
	"github.com/go-kit/kit/metrics"
	kitprometheus "github.com/go-kit/kit/metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics instruments the relay and consumers. A nil *Metrics, or a nil
// field, records nothing, so tests and tools need not build one.
type Metrics struct {
	Published     metrics.Counter // labels: type
	Consumed      metrics.Counter // labels: group, type
	Failed        metrics.Counter // labels: group, type
	DeadLettered  metrics.Counter // labels: group, type
	OutboxBacklog metrics.Gauge   // unpublished outbox rows, as last counted
}

// NewMetrics registers the event metrics on reg (built in main, never the
// global registry, so tests can build as many as they like), each carrying
// a constant service label.
func NewMetrics(reg prometheus.Registerer, service string) *Metrics {
	f := promauto.With(reg)
	labels := prometheus.Labels{"service": service}
	counter := func(name, help string, by ...string) metrics.Counter {
		return kitprometheus.NewCounter(f.NewCounterVec(prometheus.CounterOpts{
			Name: name, Help: help, ConstLabels: labels,
		}, by))
	}
	return &Metrics{
		Published:    counter("events_published_total", "Events the outbox relay published to the stream.", "type"),
		Consumed:     counter("events_consumed_total", "Events a consumer group handled and acknowledged.", "group", "type"),
		Failed:       counter("events_failed_total", "Handler attempts that failed and were left for redelivery.", "group", "type"),
		DeadLettered: counter("events_dead_lettered_total", "Events moved to the dead-letter stream.", "group", "type"),
		OutboxBacklog: kitprometheus.NewGauge(f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "outbox_backlog", Help: "Outbox rows not yet published.", ConstLabels: labels,
		}, nil)),
	}
}

func (m *Metrics) published(typ string) {
	if m != nil && m.Published != nil {
		m.Published.With("type", typ).Add(1)
	}
}

func (m *Metrics) consumed(group, typ string) {
	if m != nil && m.Consumed != nil {
		m.Consumed.With("group", group, "type", typ).Add(1)
	}
}

func (m *Metrics) failed(group, typ string) {
	if m != nil && m.Failed != nil {
		m.Failed.With("group", group, "type", typ).Add(1)
	}
}

func (m *Metrics) deadLettered(group, typ string) {
	if m != nil && m.DeadLettered != nil {
		m.DeadLettered.With("group", group, "type", typ).Add(1)
	}
}

func (m *Metrics) backlog(n int) {
	if m != nil && m.OutboxBacklog != nil {
		m.OutboxBacklog.Set(float64(n))
	}
}
