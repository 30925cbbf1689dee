package dashboards

import (
	"strconv"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// TestSLOLatencyIsTheAlerts: the overview's latency SLO panels measure the
// bucket the latency burn-rate alerts are recorded from
// (slo:gateway_slow:ratio_rate5m in deploy/prometheus/alerts.yml), so the
// budget an operator reads on the dashboard is the one that pages.
func TestSLOLatencyIsTheAlerts(t *testing.T) {
	var rules struct {
		Groups []struct {
			Rules []struct {
				Record string `yaml:"record"`
				Expr   string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, "../prometheus/alerts.yml", &rules)
	var recorded string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Record == "slo:gateway_slow:ratio_rate5m" {
				recorded = r.Expr
			}
		}
	}
	if recorded == "" {
		t.Fatal("deploy/prometheus/alerts.yml records no slo:gateway_slow:ratio_rate5m")
	}
	p := parser.NewParser(parser.Options{})
	alertLE := bucketMatchers(t, p, recorded)
	if len(alertLE) != 1 || alertLE[0].Type != labels.MatchEqual {
		t.Fatalf("slo:gateway_slow:ratio_rate5m: le matchers %v; want one le=", alertLE)
	}
	seconds, err := strconv.ParseFloat(alertLE[0].Value, 64)
	if err != nil {
		t.Fatal(err)
	}
	if sloLatencySeconds != seconds {
		t.Errorf("the dashboards' latency SLO is %g s, the alerts' %g s (le=%q)", sloLatencySeconds, seconds, alertLE[0].Value)
	}
	var panel *Panel
	for _, pn := range Overview().Panels() {
		if pn.Title == "Latency error budget left" {
			panel = &pn
		}
	}
	if panel == nil {
		t.Fatal("no panel Latency error budget left")
	}
	for _, m := range bucketMatchers(t, p, Expand(panel.Queries[0].Expr, nil, CheckIntervals)) {
		for _, le := range []string{alertLE[0].Value, strconv.FormatFloat(seconds, 'f', 1, 64)} {
			if !m.Matches(le) {
				t.Errorf("Latency error budget left: %s does not match the alerts' bucket le=%q", m, le)
			}
		}
	}
}

// bucketMatchers are the le matchers of expr's selectors of
// http_request_duration_seconds_bucket.
func bucketMatchers(t *testing.T, p parser.Parser, expr string) []*labels.Matcher {
	t.Helper()
	e, err := p.ParseExpr(expr)
	if err != nil {
		t.Fatalf("%v\n  %s", err, expr)
	}
	var out []*labels.Matcher
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok && vs.Name == "http_request_duration_seconds_bucket" {
			for _, m := range vs.LabelMatchers {
				if m.Name == "le" {
					out = append(out, m)
				}
			}
		}
		return nil
	})
	if len(out) == 0 {
		t.Fatalf("no http_request_duration_seconds_bucket{le} in %s", expr)
	}
	return out
}
