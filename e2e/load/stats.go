package load

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// collector gathers the results of every scenario's attack as they come.
type collector struct {
	start time.Time

	mu      sync.Mutex
	routes  map[routeKey]*routeStats
	seconds []map[Scenario][]time.Duration // latencies by second of sending, by scenario
	errs    []int                          // errors by second of sending
	codes   map[string]int                 // errors by code, all scenarios
	window  []time.Duration                // latencies since the last progress line
	windowN int
	shown   time.Time // when the last progress line was made
}

// The keys of a scenario's figures over all its routes, and of the run's.
const (
	allRoutes    = "all"
	allScenarios = Scenario("all")
)

type routeKey struct {
	scenario Scenario
	route    string
}

type routeStats struct {
	metrics vegeta.Metrics
	codes   map[string]int
}

func newCollector(start time.Time) *collector {
	return &collector{start: start, shown: start, routes: map[routeKey]*routeStats{}, codes: map[string]int{}}
}

// add records one result of scenario sc.
func (c *collector) add(sc Scenario, r *vegeta.Result) {
	k := routeKey{sc, routeOf(r.Method, r.URL)}
	code := errorCode(r)
	sec := max(0, int(r.Timestamp.Sub(c.start)/time.Second))
	c.mu.Lock()
	defer c.mu.Unlock()
	// The route's, the scenario's and the run's figures: vegeta's Metrics
	// add results, not other Metrics.
	var all []*routeStats
	for _, k := range []routeKey{k, {sc, allRoutes}, {allScenarios, allRoutes}} {
		rs := c.routes[k]
		if rs == nil {
			rs = &routeStats{codes: map[string]int{}}
			c.routes[k] = rs
		}
		rs.metrics.Add(r)
		all = append(all, rs)
	}
	for len(c.seconds) <= sec {
		c.seconds = append(c.seconds, map[Scenario][]time.Duration{})
		c.errs = append(c.errs, 0)
	}
	c.seconds[sec][sc] = append(c.seconds[sec][sc], r.Latency)
	if code != "" {
		for _, rs := range all {
			rs.codes[code]++
		}
		c.codes[code]++
		c.errs[sec]++
	}
	c.window = append(c.window, r.Latency)
	c.windowN++
}

var idSegment = regexp.MustCompile(`/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(/|$)`)

// routeOf is the route of a request: its method and path, ids as {id},
// without /api/v1 and the query.
func routeOf(method, rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return method + " ?"
	}
	path := strings.TrimPrefix(u.Path, "/api/v1")
	path = idSegment.ReplaceAllString(path, "/{id}$1")
	if method == "" {
		method = "?"
	}
	return method + " " + path
}

// errorCode is how a failed result is counted: the status and the API's
// error code ("409 out_of_stock"), the status alone when the body has no
// code, or the transport's failure ("timeout", "connection refused",
// "error"); "" for a success.
func errorCode(r *vegeta.Result) string {
	if r.Code >= 200 && r.Code < 400 && r.Error == "" {
		return ""
	}
	if r.Code == 0 {
		switch e := r.Error; {
		case strings.Contains(e, "Timeout") || strings.Contains(e, "deadline exceeded"):
			return "timeout"
		case strings.Contains(e, "connection refused"):
			return "connection refused"
		case strings.Contains(e, "connection reset"):
			return "connection reset"
		case strings.Contains(e, "EOF"):
			return "EOF"
		default:
			return "error"
		}
	}
	var body struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(r.Body, &body) == nil && body.Error.Code != "" {
		return fmt.Sprintf("%d %s", r.Code, body.Error.Code)
	}
	return fmt.Sprintf("%d", r.Code)
}

// progress is the line of the window since the last call: answers per
// second, p50 and p99 of the window, and every error so far by code.
func (c *collector) progress(now time.Time, total time.Duration) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	lat := c.window
	n := c.windowN
	window := now.Sub(c.shown)
	c.window, c.windowN, c.shown = nil, 0, now
	slices.Sort(lat)
	line := fmt.Sprintf("%5.1fs/%s  %7.1f answers/s  p50 %s  p99 %s", now.Sub(c.start).Seconds(), total,
		float64(n)/max(window.Seconds(), 1e-3), fmtMs(quantile(lat, 0.50)), fmtMs(quantile(lat, 0.99)))
	if len(c.codes) == 0 {
		return line + "  errors: none"
	}
	return line + "  errors: " + formatCodes(c.codes, 4)
}

// sinceShown is how long ago the last progress line was made.
func (c *collector) sinceShown(now time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return now.Sub(c.shown)
}

// formatCodes writes counts by code, the most frequent first, at most n
// (0: all) and a count of the rest.
func formatCodes(codes map[string]int, n int) string {
	keys := slices.SortedFunc(maps.Keys(codes), func(a, b string) int {
		if codes[a] != codes[b] {
			return codes[b] - codes[a]
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for i, k := range keys {
		if n > 0 && i == n {
			parts = append(parts, fmt.Sprintf("+%d more", len(keys)-n))
			break
		}
		parts = append(parts, fmt.Sprintf("%s ×%d", k, codes[k]))
	}
	return strings.Join(parts, ", ")
}

// quantile is the q-th quantile (nearest rank) of sorted latencies.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func fmtMs(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms >= 100:
		return fmt.Sprintf("%.0fms", ms)
	case ms >= 10:
		return fmt.Sprintf("%.1fms", ms)
	default:
		return fmt.Sprintf("%.2fms", ms)
	}
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// report turns what was collected into the report's statistics.
func (c *collector) report(r *Report) {
	c.mu.Lock()
	defer c.mu.Unlock()
	stats := func(k routeKey) RouteStats {
		rs := c.routes[k]
		rs.metrics.Close()
		m := &rs.metrics
		return RouteStats{Route: k.route, Requests: m.Requests, Rate: m.Rate, Success: m.Success,
			P50: millis(m.Latencies.P50), P90: millis(m.Latencies.P90), P99: millis(m.Latencies.P99),
			Max: millis(m.Latencies.Max), Statuses: m.StatusCodes, Errors: rs.codes}
	}
	for _, sc := range Scenarios {
		if c.routes[routeKey{sc, allRoutes}] == nil {
			continue
		}
		s := ScenarioStats{Scenario: sc, Total: stats(routeKey{sc, allRoutes})}
		for _, k := range slices.SortedFunc(maps.Keys(c.routes), func(a, b routeKey) int { return strings.Compare(a.route, b.route) }) {
			if k.scenario == sc && k.route != allRoutes {
				s.Routes = append(s.Routes, stats(k))
			}
		}
		r.Scenarios = append(r.Scenarios, s)
	}
	if c.routes[routeKey{allScenarios, allRoutes}] != nil {
		r.Total = stats(routeKey{allScenarios, allRoutes})
	}
	for i, sec := range c.seconds {
		s := Second{At: i, Errors: c.errs[i], Scenarios: map[Scenario]Quantiles{}}
		var every []time.Duration
		for sc, lat := range sec {
			slices.Sort(lat)
			s.Scenarios[sc] = Quantiles{Requests: len(lat), P50: millis(quantile(lat, .5)), P99: millis(quantile(lat, .99))}
			every = append(every, lat...)
		}
		slices.Sort(every)
		s.Requests, s.P50, s.P99 = len(every), millis(quantile(every, .5)), millis(quantile(every, .99))
		r.Timeline = append(r.Timeline, s)
	}
}
