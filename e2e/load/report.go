package load

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what a run saw. Latencies are in milliseconds.
type Report struct {
	Label           string          `json:"label,omitempty"`
	Target          string          `json:"target"`
	Started         time.Time       `json:"started"`
	SetupSeconds    float64         `json:"setup_seconds"` // catalogue, shoppers, restock, before the first request
	Rate            float64         `json:"rate"`          // asked for, requests per second
	DurationSeconds float64         `json:"duration_seconds"`
	Users           int             `json:"users"`
	Mix             string          `json:"mix"`
	Scenarios       []ScenarioStats `json:"scenarios"`
	Total           RouteStats      `json:"total"`
	// Timeline is the run second by second, by when requests were sent.
	Timeline []Second `json:"timeline"`
	// Orders are the orders the platform acknowledged (201), with the
	// status each had when the run stopped waiting for them.
	Orders     []Order     `json:"orders"`
	Invariants []Invariant `json:"invariants"`
}

// ScenarioStats are a scenario's figures, over all its routes and by route.
type ScenarioStats struct {
	Scenario Scenario     `json:"scenario"`
	Total    RouteStats   `json:"total"`
	Routes   []RouteStats `json:"routes"`
}

// RouteStats are the figures of one route (or "all" of them): vegeta's
// metrics, its t-digest quantiles among them, and the errors by code.
type RouteStats struct {
	Route    string  `json:"route"`
	Requests uint64  `json:"requests"`
	Rate     float64 `json:"rate"`    // requests sent per second
	Success  float64 `json:"success"` // share of 2xx and 3xx answers
	P50      float64 `json:"p50_ms"`
	P90      float64 `json:"p90_ms"`
	P99      float64 `json:"p99_ms"`
	Max      float64 `json:"max_ms"`
	// Statuses count the answers by HTTP status ("0": no answer).
	Statuses map[string]int `json:"statuses"`
	// Errors count the failed ones by status and API error code
	// ("409 out_of_stock"), or by transport failure ("timeout").
	Errors map[string]int `json:"errors"`
}

// Second is one second of the run: requests sent in it, how many failed,
// and their latency quantiles, in all and by scenario.
type Second struct {
	At        int                    `json:"at"` // seconds since the first request
	Requests  int                    `json:"requests"`
	Errors    int                    `json:"errors"`
	P50       float64                `json:"p50_ms"`
	P99       float64                `json:"p99_ms"`
	Scenarios map[Scenario]Quantiles `json:"scenarios"`
}

// Quantiles are a scenario's requests of one second and their latency.
type Quantiles struct {
	Requests int     `json:"requests"`
	P50      float64 `json:"p50_ms"`
	P99      float64 `json:"p99_ms"`
}

// Order is an order the platform acknowledged.
type Order struct {
	ID     string `json:"id"`
	UserID string `json:"user_id"`
	Total  string `json:"total"`
	Last4  string `json:"card_last4"`
	// Expected is the final status its card leads to; Status the one it
	// had last.
	Expected string `json:"expected"`
	Status   string `json:"status"`
}

// Invariant is one check after the run.
type Invariant struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// OK reports whether every invariant checked held.
func (r *Report) OK() bool {
	for _, inv := range r.Invariants {
		if !inv.OK {
			return false
		}
	}
	return true
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the summary: a row per scenario and route, the orders
// and the invariants.
func (r *Report) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "%s: %g req/s asked for %gs, %d shoppers, mix %s (setup %.1fs)\n",
		r.Target, r.Rate, r.DurationSeconds, r.Users, r.Mix, r.SetupSeconds)
	// Names left, figures right: tabwriter aligns every column one way, so
	// the figures are padded to a width of their own.
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\troute\trequests  rate/s  p50 ms  p90 ms  p99 ms   max ms\terrors")
	row := func(scenario string, s RouteStats) {
		errs := "-"
		if len(s.Errors) > 0 {
			errs = formatCodes(s.Errors, 0)
		}
		fmt.Fprintf(tw, "%s\t%s\t%8d  %6.1f  %6.1f  %6.1f  %6.1f  %7.1f\t%s\n", scenario, s.Route, s.Requests, s.Rate,
			s.P50, s.P90, s.P99, s.Max, errs)
	}
	for _, sc := range r.Scenarios {
		for _, rt := range sc.Routes {
			row(string(sc.Scenario), rt)
		}
		if len(sc.Routes) > 1 {
			row(string(sc.Scenario), sc.Total)
		}
	}
	row("all", r.Total)
	tw.Flush()
	if asked := r.Rate; asked > 0 && r.Total.Rate < 0.95*asked {
		fmt.Fprintf(w, "note: requests left at %.1f/s, below the %g/s asked for: the generator itself fell behind (CPU, or -max-workers reached)\n",
			r.Total.Rate, asked)
	}
	fmt.Fprintln(w, r.ordersLine())
	for _, inv := range r.Invariants {
		mark := "ok  "
		if !inv.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "%s %s: %s\n", mark, inv.Name, inv.Detail)
	}
}

func (r *Report) ordersLine() string {
	by := map[string]int{}
	for _, o := range r.Orders {
		by[cmp.Or(o.Status, "unknown")]++
	}
	var parts []string
	for _, st := range slices.Sorted(maps.Keys(by)) {
		parts = append(parts, fmt.Sprintf("%s %d", st, by[st]))
	}
	if len(parts) == 0 {
		return "orders acknowledged: 0"
	}
	return fmt.Sprintf("orders acknowledged: %d (%s)", len(r.Orders), strings.Join(parts, ", "))
}
