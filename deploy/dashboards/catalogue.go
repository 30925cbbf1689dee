package dashboards

import "strings"

// MetricType is a Prometheus metric type, as the catalogue records it.
type MetricType string

// The metric types of the catalogue.
const (
	TypeCounter   MetricType = "counter"
	TypeGauge     MetricType = "gauge"
	TypeHistogram MetricType = "histogram"
)

// Metric is one series family that something on the platform exports.
type Metric struct {
	Name   string
	Type   MetricType
	Labels []string // its own labels, besides the service and instance Prometheus adds (and le of a histogram's buckets)
	Source string   // who exports it
	Help   string
}

// Catalogue lists every metric a dashboard may use: the metrics contract of
// issue 13 (the names every part of the monitoring relies on). A panel query
// naming anything else fails the tests, and docs/monitoring.md must list
// every entry. Prometheus adds service (the Consul service name) and
// instance (the Consul service ID) to every series; where a metric has a
// label of its own called instance (the breaker's upstream instance, as
// host:port), Prometheus keeps it as exported_instance, and so does the
// catalogue.
var Catalogue = []Metric{
	{"up", TypeGauge, nil, "Prometheus", "1 while the last scrape of the instance succeeded"},

	{"http_requests_total", TypeCounter, labelNames("method", "route", "code"), "every service and the gateway", "HTTP requests served, by route and status code"},
	{"http_request_duration_seconds", TypeHistogram, labelNames("method", "route", "code"), "every service and the gateway", "HTTP request latency (default buckets, 5 ms to 10 s)"},
	{"http_requests_in_flight", TypeGauge, nil, "every service and the gateway", "requests being served now"},
	{"user_service_duration_seconds", TypeHistogram, labelNames("method", "success"), "user", "service-layer call latency by method"},
	{"product_service_duration_seconds", TypeHistogram, labelNames("method", "success"), "product", "service-layer call latency by method"},
	{"order_service_duration_seconds", TypeHistogram, labelNames("method", "success"), "order", "service-layer call latency by method"},
	{"payment_service_duration_seconds", TypeHistogram, labelNames("method", "success"), "payment", "service-layer call latency by method"},
	{"notification_service_duration_seconds", TypeHistogram, labelNames("method", "success"), "notification", "service-layer call latency by method"},

	{"go_goroutines", TypeGauge, nil, "every process", "goroutines alive"},
	{"go_memstats_heap_inuse_bytes", TypeGauge, nil, "every process", "bytes in in-use heap spans"},
	{"process_resident_memory_bytes", TypeGauge, nil, "every process", "resident memory"},
	{"process_cpu_seconds_total", TypeCounter, nil, "every process", "CPU time used"},

	{"upstream_requests_total", TypeCounter, labelNames("upstream", "outcome"), "discovery clients (gateway, order, notification)", "attempts sent to an upstream instance; outcome success, error, unavailable or rejected"},
	{"upstream_request_duration_seconds", TypeHistogram, labelNames("upstream", "outcome"), "discovery clients", "latency of each attempt"},
	{"upstream_retries_total", TypeCounter, labelNames("upstream"), "discovery clients", "attempts beyond the first"},
	{"circuit_breaker_open", TypeGauge, labelNames("upstream", "exported_instance"), "discovery clients", "1 while the breaker of one upstream instance is open"},
	{"circuit_breaker_rejected_total", TypeCounter, labelNames("upstream", "exported_instance", "reason"), "discovery clients", "calls a breaker refused; reason circuit_open or max_concurrency"},

	{"events_published_total", TypeCounter, labelNames("type"), "every service with an outbox", "events the relay published to the stream"},
	{"events_consumed_total", TypeCounter, labelNames("group", "type"), "every consumer", "events a group handled and acknowledged"},
	{"events_failed_total", TypeCounter, labelNames("group", "type"), "every consumer", "handler attempts that failed and were left for redelivery"},
	{"events_dead_lettered_total", TypeCounter, labelNames("group", "type"), "every consumer", "events moved to the dead-letter stream"},
	{"outbox_backlog", TypeGauge, nil, "every service with an outbox", "outbox rows not yet published"},
	{"outbox_oldest_event_age_seconds", TypeGauge, nil, "every service with an outbox", "age of the oldest unpublished row, 0 when empty"},
	{"events_consumer_pending", TypeGauge, labelNames("group", "stream"), "every consumer", "entries delivered to the group and not yet acknowledged"},
	{"events_consumer_lag", TypeGauge, labelNames("group", "stream"), "every consumer", "entries in the stream not yet delivered to the group"},

	{"users_registered_total", TypeCounter, nil, "user", "accounts registered"},
	{"logins_total", TypeCounter, labelNames("result"), "user", "logins by result"},
	{"token_refreshes_total", TypeCounter, labelNames("result"), "user", "token refreshes by result"},
	{"reservations_total", TypeCounter, labelNames("result"), "product", "stock reservations by result (reserved, replayed, out_of_stock, ...)"},
	{"reservation_commits_total", TypeCounter, labelNames("result"), "product", "reservations committed (order confirmed)"},
	{"reservation_releases_total", TypeCounter, labelNames("reason"), "product", "reservations released; reason released or expired"},
	{"catalogue_cache_requests_total", TypeCounter, labelNames("kind", "result"), "product", "catalogue cache lookups by hit or miss"},
	{"product_low_stock_products", TypeGauge, nil, "product", "active products and variants at or below their min_stock_quantity"},
	{"order_checkouts_total", TypeCounter, labelNames("result"), "order", "checkouts by result: success, a business error code, error"},
	{"order_transitions_total", TypeCounter, labelNames("status"), "order", "orders entering a status (confirmed, cancelled, shipped, ...)"},
	{"order_status_streams_open", TypeGauge, nil, "order", "order status streams (GET /orders/{id}/events) open on the instance"},
	{"order_revenue_cents_total", TypeCounter, labelNames("currency"), "order", "total of every order that became confirmed, in cents"},
	{"payments_total", TypeCounter, labelNames("status"), "payment", "payments by status"},
	{"payment_failures_total", TypeCounter, labelNames("code"), "payment", "failed charges by decline code"},
	{"refunds_total", TypeCounter, nil, "payment", "refunds made"},
	{"refunded_amount_cents_total", TypeCounter, nil, "payment", "amount refunded, in cents"},
	{"sandbox_webhook_deliveries_total", TypeCounter, labelNames("result"), "payment", "the sandbox processor's webhook deliveries"},
	{"notification_attempts_total", TypeCounter, labelNames("channel", "template", "status"), "notification", "delivery attempts; status sent, retrying, failed or skipped"},
	{"notification_attempt_duration_seconds", TypeHistogram, labelNames("channel", "status"), "notification", "latency of each delivery attempt"},
	{"gateway_rate_limited_total", TypeCounter, nil, "gateway", "requests refused by the rate limit (429)"},
}

// labelNames is a label list, to keep the catalogue's lines short.
func labelNames(names ...string) []string { return names }

// Lookup finds the catalogued metric a series name belongs to: the metric
// itself, or for a histogram its _bucket, _sum and _count series. It
// returns the label names a selector of that series may match on.
func Lookup(series string) (m Metric, matchable []string, ok bool) {
	for _, m := range Catalogue {
		suffix, found := strings.CutPrefix(series, m.Name)
		switch {
		case !found:
			continue
		case suffix == "" && m.Type != TypeHistogram,
			m.Type == TypeHistogram && (suffix == "_sum" || suffix == "_count"):
			return m, append([]string{"__name__", "service", "instance"}, m.Labels...), true
		case m.Type == TypeHistogram && suffix == "_bucket":
			return m, append([]string{"__name__", "service", "instance", "le"}, m.Labels...), true
		}
	}
	return Metric{}, nil, false
}
