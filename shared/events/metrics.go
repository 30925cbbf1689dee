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
	// OutboxOldestAge is outbox_oldest_event_age_seconds: how long the
	// oldest unpublished outbox row has waited, 0 when there is none, as
	// last counted (with OutboxBacklog).
	OutboxOldestAge metrics.Gauge
	// ConsumerPending and ConsumerLag (labels: group, stream) are the
	// consumer group's entries delivered and not yet acknowledged, and the
	// stream's entries not yet delivered to the group, as the group's
	// consumer last read them from XINFO GROUPS.
	ConsumerPending metrics.Gauge
	ConsumerLag     metrics.Gauge
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
	gauge := func(name, help string, by ...string) metrics.Gauge {
		return kitprometheus.NewGauge(f.NewGaugeVec(prometheus.GaugeOpts{
			Name: name, Help: help, ConstLabels: labels,
		}, by))
	}
	return &Metrics{
		Published:     counter("events_published_total", "Events the outbox relay published to the stream.", "type"),
		Consumed:      counter("events_consumed_total", "Events a consumer group handled and acknowledged.", "group", "type"),
		Failed:        counter("events_failed_total", "Handler attempts that failed and were left for redelivery.", "group", "type"),
		DeadLettered:  counter("events_dead_lettered_total", "Events moved to the dead-letter stream.", "group", "type"),
		OutboxBacklog: gauge("outbox_backlog", "Outbox rows not yet published."),
		OutboxOldestAge: gauge("outbox_oldest_event_age_seconds",
			"Seconds the oldest unpublished outbox row has waited; 0 when the outbox is drained."),
		ConsumerPending: gauge("events_consumer_pending",
			"Stream entries delivered to the consumer group and not yet acknowledged (XINFO GROUPS pending).", "group", "stream"),
		ConsumerLag: gauge("events_consumer_lag",
			"Stream entries not yet delivered to the consumer group (XINFO GROUPS lag).", "group", "stream"),
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

func (m *Metrics) backlog(n int, oldestAge float64) {
	if m == nil {
		return
	}
	if m.OutboxBacklog != nil {
		m.OutboxBacklog.Set(float64(n))
	}
	if m.OutboxOldestAge != nil {
		m.OutboxOldestAge.Set(oldestAge)
	}
}

// groupBacklog records a consumer group's pending entries and its lag; a
// negative lag (Redis could not tell) leaves the lag gauge as it was.
func (m *Metrics) groupBacklog(group, stream string, pending, lag int64) {
	if m == nil {
		return
	}
	if m.ConsumerPending != nil {
		m.ConsumerPending.With("group", group, "stream", stream).Set(float64(pending))
	}
	if m.ConsumerLag != nil && lag >= 0 {
		m.ConsumerLag.With("group", group, "stream", stream).Set(float64(lag))
	}
}
