// Package snapshot renders Mercato's dashboards without Grafana: it runs
// every panel's queries against a Prometheus as range queries and draws
// each panel into a PNG with gonum/plot (time series as lines with a
// legend, stats and gauges as big numbers, the heat map as a heat map),
// plus an index (README.md) that shows them all.
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/mercato-dev/mercato/deploy/dashboards"
)

// scrapeInterval is the platform's (make run and compose): Grafana's
// $__rate_interval is derived from it, and so is ours.
const scrapeInterval = 5 * time.Second

// Options says what to snapshot, from where, to where.
type Options struct {
	Prometheus string        // base URL, http://127.0.0.1:9090
	Range      time.Duration // how far back from End
	End        time.Time     // zero: now
	Out        string        // folder: <dashboard uid>/<panel>.png and README.md
	// Service is the Service detail dashboard's service (its instance
	// variable is every instance).
	Service  string
	Progress io.Writer // a line per dashboard; nil: none
	Client   *http.Client
}

// Series is one line of a panel: its legend and its samples.
type Series struct {
	Name   string
	Labels model.Metric
	Points []model.SamplePair
}

// Run snapshots every dashboard of ds.
func Run(ctx context.Context, ds []dashboards.Dashboard, o Options) error {
	if o.Range <= 0 {
		return errors.New("the range must be positive")
	}
	if o.End.IsZero() {
		o.End = time.Now()
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 30 * time.Second}
	}
	client, err := api.NewClient(api.Config{Address: o.Prometheus, Client: o.Client})
	if err != nil {
		return fmt.Errorf("prometheus address %q: %w", o.Prometheus, err)
	}
	prom := v1.NewAPI(client)
	if _, err := prom.Buildinfo(ctx); err != nil {
		return fmt.Errorf("cannot reach Prometheus at %s (is make run up? -prometheus sets the address): %w", o.Prometheus, err)
	}
	step := stepFor(o.Range)
	in := dashboards.Intervals{Rate: model.Duration(rateInterval(step)).String(), Range: model.Duration(o.Range).String()}
	r := v1.Range{Start: o.End.Add(-o.Range), End: o.End, Step: step}

	index := &strings.Builder{}
	fmt.Fprintf(index, "# Dashboard snapshots\n\nWritten by `make dashboards-snapshot` from the Prometheus at %s: the %s up to %s, one point every %s (rate window %s). The Service detail shows the service `%s`, every instance. What each panel means: [docs/monitoring.md](../monitoring.md).\n",
		o.Prometheus, model.Duration(o.Range), o.End.UTC().Format("2006-01-02 15:04 MST"), model.Duration(step), in.Rate, o.Service)
	for _, d := range ds {
		began := time.Now()
		dir := filepath.Join(o.Out, d.UID)
		if err := os.MkdirAll(dir, 0o755); err != nil { //nolint:gosec // G301: images for the docs, nothing secret
			return err
		}
		fmt.Fprintf(index, "\n## %s\n", d.Title)
		vars := variables(d, o.Service)
		queries, series := 0, 0
		for _, p := range d.Panels() {
			var lines []Series
			for _, q := range p.Queries {
				expr := dashboards.Expand(q.Expr, vars, in)
				value, _, _, err := prom.QueryRange(ctx, expr, r)
				if err != nil {
					return fmt.Errorf("%s / %s: query %s: %w", d.Title, p.Title, expr, err)
				}
				matrix, ok := value.(model.Matrix)
				if !ok {
					return fmt.Errorf("%s / %s: query %s: a %s, want a matrix", d.Title, p.Title, expr, value.Type())
				}
				queries++
				lines = append(lines, toSeries(matrix, q.Legend)...)
			}
			series += len(lines)
			file := dashboards.Slug(p.Title) + ".png"
			if err := renderFile(filepath.Join(dir, file), p, lines, r); err != nil {
				return fmt.Errorf("%s / %s: %w", d.Title, p.Title, err)
			}
			fmt.Fprintf(index, "\n### %s\n\n![%s](%s/%s)\n", p.Title, p.Title, d.UID, file)
		}
		fmt.Fprintf(o.Progress, "%s: %d panels, %d queries, %d series → %s (%s)\n",
			d.Title, len(d.Panels()), queries, series, dir, time.Since(began).Round(time.Millisecond))
	}
	return os.WriteFile(filepath.Join(o.Out, "README.md"), []byte(index.String()), 0o644) //nolint:gosec // G306: part of the docs
}

// variables fills a dashboard's variables: the service variable with
// service, any other with its "All" value.
func variables(d dashboards.Dashboard, service string) map[string]string {
	vars := map[string]string{}
	for _, v := range d.Variables {
		if v.Name == "service" {
			vars[v.Name] = service
		} else {
			vars[v.Name] = v.AllValue
		}
	}
	return vars
}

// stepFor gives about 180 points over the range, never finer than a
// scrape, in whole seconds.
func stepFor(r time.Duration) time.Duration {
	return max(scrapeInterval, (r / 180).Truncate(time.Second))
}

// rateInterval is Grafana's $__rate_interval for a step: the step plus a
// scrape, and at least four scrapes.
func rateInterval(step time.Duration) time.Duration {
	return max(4*scrapeInterval, step+scrapeInterval)
}

var legendRef = regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}`)

// toSeries names each series of m by Grafana's legend format (or by its
// labels when the format is empty), sorted by name.
func toSeries(m model.Matrix, legend string) []Series {
	out := make([]Series, 0, len(m))
	for _, s := range m {
		name := legendRef.ReplaceAllStringFunc(legend, func(ref string) string {
			return string(s.Metric[model.LabelName(legendRef.FindStringSubmatch(ref)[1])])
		})
		if strings.TrimSpace(name) == "" {
			name = s.Metric.String()
		}
		out = append(out, Series{Name: name, Labels: s.Metric, Points: s.Values})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
