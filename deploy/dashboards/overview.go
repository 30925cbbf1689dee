package dashboards

import "fmt"

// The service level objectives of the platform, measured at the gateway
// (what clients see): availability is the share of requests answered
// without a 5xx; latency is the share answered within sloLatencySeconds,
// and the p99 should stay under it.
const (
	sloAvailability   = 0.995 // 99.5 %: an error budget of 0.5 % of requests
	sloLatencyShare   = 0.99  // 99 % of requests within sloLatencySeconds
	sloLatencySeconds = 0.5   // a bucket boundary of prometheus.DefBuckets, as in the alerts (slo:gateway_slow:*)
)

// notStream leaves the gateway's order status streams (GET
// /api/v1/orders/{id}/events) out of a latency query.
const notStream = `route!="/api/v1/orders/{id}/events"`

// leMatcher matches a histogram bucket boundary whether Prometheus stores it
// as scraped ("1", Prometheus 2) or normalised ("1.0", Prometheus 3).
func leMatcher(le float64) string { return fmt.Sprintf(`le=~"%g(\\.0)?"`, le) }

// Overview is the platform at a glance: the brief's request rate, p95
// response time and 5xx error rate by service, saturation, instances up and
// the SLOs.
func Overview() Dashboard {
	gatewayAll := `sum(increase(http_requests_total{service="gateway"}[$__range]))`
	gateway5xx := `(sum(increase(http_requests_total{service="gateway", code=~"5.."}[$__range])) or vector(0))`
	// The latency SLO leaves out the order status streams (their own route
	// at the gateway), which stay open as long as their client watches.
	gatewayFast := fmt.Sprintf(`sum(increase(http_request_duration_seconds_bucket{service="gateway", %s, %s}[$__range]))`, notStream, leMatcher(sloLatencySeconds))
	gatewayCount := `sum(increase(http_request_duration_seconds_count{service="gateway", ` + notStream + `}[$__range]))`
	return Dashboard{
		UID:         "mercato-overview",
		Title:       "Mercato / Platform overview",
		Description: "Every service at a glance: traffic, latency, errors, saturation, instances and the SLOs.",
		Rows: []Row{
			{Title: "Traffic, latency, errors", Panels: []Panel{
				{
					Title:       "Request rate by service",
					Description: "HTTP requests served per second by every instance of each service (Consul health checks and scrapes included). The gateway's line is the client traffic; each service's is what the gateway and the other services ask of it.",
					Kind:        TimeSeries, Unit: "reqps",
					Queries: []Query{{Expr: `sum by (service) (rate(http_requests_total[$__rate_interval]))`, Legend: "{{service}}"}},
				},
				{
					Title:       "p95 response time by service",
					Description: "95th percentile of HTTP request duration per service, from the histogram buckets of all its instances, order status streams aside (each lasts as long as its client watches). A service whose line climbs while its request rate is flat is slowing down on its own; one that climbs with the gateway's is waiting for an upstream.",
					Kind:        TimeSeries, Unit: "s",
					Queries: []Query{{Expr: `histogram_quantile(0.95, sum by (service, le) (rate(http_request_duration_seconds_bucket{` + notStream + `}[$__rate_interval])))`, Legend: "{{service}}"}},
				},
				{
					Title:       "5xx error rate by service",
					Description: "Share of each service's responses with a 5xx code (label code). 0 is normal; business errors (400, 404, 409, 422) are not errors here.",
					Kind:        TimeSeries, Unit: "percentunit", Min: ptr(0.0),
					Queries: []Query{{
						Expr:   `(sum by (service) (rate(http_requests_total{code=~"5.."}[$__rate_interval])) or sum by (service) (rate(http_requests_total[$__rate_interval])) * 0) / sum by (service) (rate(http_requests_total[$__rate_interval]))`,
						Legend: "{{service}}",
					}},
				},
				{
					Title:       "Gateway responses by code",
					Description: "What clients get back, by status code: 2xx, the 4xx of bad requests and unknown ids, 429 when the rate limit refuses a client, 5xx when something failed.",
					Kind:        TimeSeries, Unit: "reqps", Width: 12,
					Queries: []Query{{Expr: `sum by (code) (rate(http_requests_total{service="gateway"}[$__rate_interval]))`, Legend: "{{code}}"}},
				},
				{
					Title:       "Rate-limited requests",
					Description: "Requests the gateway's per-client rate limit refused (429), per second. A steady line is one client over its limit; a burst across many is a traffic spike.",
					Kind:        TimeSeries, Unit: "reqps", Width: 12,
					Queries: []Query{{Expr: `sum(rate(gateway_rate_limited_total[$__rate_interval]))`, Legend: "rate limited"}},
				},
			}},
			{Title: "Saturation", Panels: []Panel{
				{
					Title:       "In-flight requests by service",
					Description: "Requests being served right now, summed over each service's instances. It grows when a service, or something it waits on, cannot keep up.",
					Kind:        TimeSeries, Unit: "short", Width: 6,
					Queries: []Query{{Expr: `sum by (service) (http_requests_in_flight)`, Legend: "{{service}}"}},
				},
				{
					Title:       "Goroutines per instance",
					Description: "Goroutines alive in each process. A line that only ever rises is a leak (requests or connections that never finish).",
					Kind:        TimeSeries, Unit: "short", Width: 6,
					Queries: []Query{{Expr: `go_goroutines`, Legend: "{{instance}}"}},
				},
				{
					Title:       "Memory per instance",
					Description: "Resident memory of each process. Compose limits every service container to 256 MiB.",
					Kind:        TimeSeries, Unit: "bytes", Width: 6,
					Queries: []Query{{Expr: `process_resident_memory_bytes`, Legend: "{{instance}}"}},
				},
				{
					Title:       "Go heap in use per instance",
					Description: "Bytes of the Go heap in use; with the resident memory beside it, tells the Go heap from everything else.",
					Kind:        TimeSeries, Unit: "bytes", Width: 6,
					Queries: []Query{{Expr: `go_memstats_heap_inuse_bytes`, Legend: "{{instance}}"}},
				},
				{
					Title:       "CPU per instance",
					Description: "CPU seconds used per second by each process (1 = one core busy).",
					Kind:        TimeSeries, Unit: "short", Width: 12,
					Queries: []Query{{Expr: `rate(process_cpu_seconds_total[$__rate_interval])`, Legend: "{{instance}}"}},
				},
				{
					Title:       "Instances up per service",
					Description: "Instances whose last scrape succeeded, out of those Prometheus found in Consul for each service. Two of every backend and one gateway run in make run and compose; fewer up than found is an instance down or unreachable.",
					Kind:        Stat, Unit: "short", Width: 12,
					Queries: []Query{
						{Expr: `sum by (service) (up)`, Legend: "{{service}} up"},
						{Expr: `count by (service) (up)`, Legend: "{{service}} found"},
					},
				},
			}},
			{Title: fmt.Sprintf("SLO (gateway, over the dashboard's time range): %.1f %% without 5xx, %.0f %% within %g s", sloAvailability*100, sloLatencyShare*100, sloLatencySeconds), Panels: []Panel{
				{
					Title:       "Availability",
					Description: fmt.Sprintf("Share of the gateway's responses over the time range that were not a 5xx. Target %.1f %%: red below it.", sloAvailability*100),
					Kind:        Stat, Unit: "percentunit", Width: 6,
					Thresholds: []Step{{Color: "red"}, {Value: sloAvailability, Color: "green"}},
					Queries:    []Query{{Expr: fmt.Sprintf(`1 - %s / %s`, gateway5xx, gatewayAll), Legend: "availability", Instant: true}},
				},
				{
					Title:       "Availability error budget left",
					Description: fmt.Sprintf("How much of the %.1f %% error budget the range has not spent: 100 %% is no 5xx at all, 0 %% (or less) is the SLO missed.", (1-sloAvailability)*100),
					Kind:        Gauge, Unit: "percentunit", Width: 6, Min: ptr(0.0), Max: ptr(1.0),
					Thresholds: []Step{{Color: "red"}, {Value: 0.25, Color: "orange"}, {Value: 0.5, Color: "green"}},
					Queries:    []Query{{Expr: fmt.Sprintf(`1 - (%s / %s) / %g`, gateway5xx, gatewayAll, 1-sloAvailability), Legend: "budget left", Instant: true}},
				},
				{
					Title:       "p99 response time",
					Description: fmt.Sprintf("99th percentile of the gateway's request duration over the range. Target: under %g s (red above).", sloLatencySeconds),
					Kind:        Stat, Unit: "s", Width: 6,
					Thresholds: []Step{{Color: "green"}, {Value: sloLatencySeconds, Color: "red"}},
					Queries:    []Query{{Expr: `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{service="gateway", ` + notStream + `}[$__range])))`, Legend: "p99", Instant: true}},
				},
				{
					Title:       "Latency error budget left",
					Description: fmt.Sprintf("Of the %.0f %% of requests allowed to take longer than %g s, the share not yet used over the range.", (1-sloLatencyShare)*100, sloLatencySeconds),
					Kind:        Gauge, Unit: "percentunit", Width: 6, Min: ptr(0.0), Max: ptr(1.0),
					Thresholds: []Step{{Color: "red"}, {Value: 0.25, Color: "orange"}, {Value: 0.5, Color: "green"}},
					Queries:    []Query{{Expr: fmt.Sprintf(`1 - (1 - %s / %s) / %g`, gatewayFast, gatewayCount, 1-sloLatencyShare), Legend: "budget left", Instant: true}},
				},
			}},
		},
	}
}
