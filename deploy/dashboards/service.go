package dashboards

// callers are the services with discovery clients (gateway → every service,
// order → product and payment, notification → user): those that record
// upstream calls and retries.
var callers = []string{"gateway", "order", "notification"}

// ServiceDetail is one service, or some of its instances, in depth: RED per
// route, its latency heat map, the calls it makes upstream and the breakers
// its callers hold on it.
func ServiceDetail() Dashboard {
	const sel = `service="$service", instance=~"$instance"`
	return Dashboard{
		UID:         "mercato-service",
		Title:       "Mercato / Service detail",
		Description: "One service in depth; pick the service and some or all of its instances (Consul service IDs).",
		Variables: []Variable{
			{Name: "service", Label: "Service", Query: `label_values(up, service)`},
			{Name: "instance", Label: "Instance", Query: `label_values(up{service="$service"}, instance)`, AllValue: ".+"},
		},
		Rows: []Row{
			{Title: "Requests, errors, duration per route", Panels: []Panel{
				{
					Title:       "Requests per route",
					Description: "Requests per second by method and route (the route template, not the raw path).",
					Kind:        TimeSeries, Unit: "reqps",
					Queries: []Query{{Expr: `sum by (method, route) (rate(http_requests_total{` + sel + `}[$__rate_interval]))`, Legend: "{{method}} {{route}}"}},
				},
				{
					Title:       "5xx ratio per route",
					Description: "Share of each route's responses that were a 5xx. A route alone in red is a bug or a broken upstream of that route; all of them together is the service or its database.",
					Kind:        TimeSeries, Unit: "percentunit", Min: ptr(0.0),
					Queries: []Query{{
						Expr:   `(sum by (method, route) (rate(http_requests_total{` + sel + `, code=~"5.."}[$__rate_interval])) or sum by (method, route) (rate(http_requests_total{` + sel + `}[$__rate_interval])) * 0) / sum by (method, route) (rate(http_requests_total{` + sel + `}[$__rate_interval]))`,
						Legend: "{{method}} {{route}}",
					}},
				},
				{
					Title:       "p95 duration per route",
					Description: "95th percentile of request duration by route.",
					Kind:        TimeSeries, Unit: "s",
					Queries: []Query{{Expr: `histogram_quantile(0.95, sum by (method, route, le) (rate(http_request_duration_seconds_bucket{` + sel + `}[$__rate_interval])))`, Legend: "{{method}} {{route}}"}},
				},
				{
					Title:       "Responses by code",
					Description: "Responses per second by status code: the 4xx a client caused beside the 5xx the service did.",
					Kind:        TimeSeries, Unit: "reqps", Width: 12,
					Queries: []Query{{Expr: `sum by (code) (rate(http_requests_total{` + sel + `}[$__rate_interval]))`, Legend: "{{code}}"}},
				},
				{
					Title:       "p95 duration per service method",
					Description: "95th percentile of the service layer's own methods (<service>_service_duration_seconds), by method and whether it succeeded: the time spent in the service below the HTTP transport. The gateway has none.",
					Kind:        TimeSeries, Unit: "s", Width: 12,
					Services: []string{"user", "product", "order", "payment"},
					Queries:  []Query{{Expr: `histogram_quantile(0.95, sum by (method, success, le) (rate({__name__="${service}_service_duration_seconds_bucket", instance=~"$instance"}[$__rate_interval])))`, Legend: "{{method}} success={{success}}"}},
				},
			}},
			{Title: "Latency distribution", Panels: []Panel{
				{
					Title:       "Request duration heat map",
					Description: "How many requests fell in each duration bucket over time (darker: more). Two bands mean two kinds of request (cache hits and misses, reads and writes); a band moving up is everything slowing down.",
					Kind:        Heatmap, Unit: "s", Width: 24,
					Queries: []Query{{Expr: `sum by (le) (increase(http_request_duration_seconds_bucket{` + sel + `}[$__rate_interval]))`, Legend: "{{le}}"}},
				},
			}},
			{Title: "Upstream calls (made by this service)", Panels: []Panel{
				{
					Title:       "Upstream attempts by target and outcome",
					Description: "Attempts per second this service sent to each upstream, by outcome: success (an answer below 500), error (5xx), unavailable (refused, timed out, 502/503/504) and rejected (its breaker refused it; never sent). Only the gateway, order and notification call other services.",
					Kind:        TimeSeries, Unit: "reqps", Width: 12,
					Services: callers,
					Queries:  []Query{{Expr: `sum by (upstream, outcome) (rate(upstream_requests_total{` + sel + `}[$__rate_interval]))`, Legend: "{{upstream}} {{outcome}}"}},
				},
				{
					Title:       "Upstream p95 by target",
					Description: "95th percentile of each attempt's duration, by upstream.",
					Kind:        TimeSeries, Unit: "s", Width: 6,
					Services: callers,
					Queries:  []Query{{Expr: `histogram_quantile(0.95, sum by (upstream, le) (rate(upstream_request_duration_seconds_bucket{` + sel + `}[$__rate_interval])))`, Legend: "{{upstream}}"}},
				},
				{
					Title:       "Retries by target",
					Description: "Attempts beyond the first, per second, by upstream: safe calls retried on another instance after a refused connection or a 502/503.",
					Kind:        TimeSeries, Unit: "reqps", Width: 6,
					Services: callers,
					Queries:  []Query{{Expr: `sum by (upstream) (rate(upstream_retries_total{` + sel + `}[$__rate_interval]))`, Legend: "{{upstream}}"}},
				},
			}},
			{Title: "Circuit breakers (held by callers on this service's instances)", Panels: []Panel{
				{
					Title:       "Breakers open on this service",
					Description: "1 while a caller's breaker on one of this service's instances is open (its calls to that instance are refused). The legend is the caller, then the instance's address as the caller sees it (label exported_instance); breakers appear after a caller's first call.",
					Kind:        TimeSeries, Unit: "short", Width: 12, Min: ptr(0.0),
					Services: []string{"user", "product", "order", "payment"},
					Queries:  []Query{{Expr: `max by (service, exported_instance) (circuit_breaker_open{upstream="$service"})`, Legend: "{{service}} → {{exported_instance}}"}},
				},
				{
					Title:       "Breaker rejections",
					Description: "Calls to this service that a caller's breaker refused, per second, by caller and reason (circuit_open, max_concurrency); 0 for every caller holding a breaker on it when nothing was refused.",
					Kind:        TimeSeries, Unit: "reqps", Width: 12,
					Services: []string{"user", "product", "order", "payment"},
					Queries:  []Query{{Expr: `sum by (service, reason) (rate(circuit_breaker_rejected_total{upstream="$service"}[$__rate_interval])) or max by (service) (circuit_breaker_open{upstream="$service"}) * 0`, Legend: "{{service}} {{reason}}"}},
				},
			}},
		},
	}
}
