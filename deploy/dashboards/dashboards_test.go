package dashboards

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// grafanaDir is deploy/grafana, seen from this package.
const grafanaDir = "../grafana"

// TestCommittedFilesAreCurrent fails when deploy/grafana/dashboards or
// queries.json differ from what the definitions make.
func TestCommittedFilesAreCurrent(t *testing.T) {
	files, err := Files(All())
	if err != nil {
		t.Fatal(err)
	}
	for rel, want := range files {
		got, err := os.ReadFile(filepath.Join(grafanaDir, rel))
		if err != nil {
			t.Errorf("deploy/grafana/%s: %v; run make monitoring-config", rel, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("deploy/grafana/%s is stale: run make monitoring-config and commit the result", rel)
		}
	}
	onDisk, err := filepath.Glob(filepath.Join(grafanaDir, "dashboards", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range onDisk {
		rel, _ := filepath.Rel(grafanaDir, path)
		if _, ok := files[rel]; !ok {
			t.Errorf("deploy/grafana/%s is made by no dashboard: run make monitoring-config", rel)
		}
	}
}

// TestQueriesParseAndUseTheCatalogue parses every query of queries.json (the
// variables filled in) as PromQL and checks each series it selects, and each
// label it matches on, is in the catalogue.
func TestQueriesParseAndUseTheCatalogue(t *testing.T) {
	queries := CheckQueries(All())
	if len(queries) < 40 {
		t.Fatalf("%d queries; the four dashboards have more than that", len(queries))
	}
	p := parser.NewParser(parser.Options{})
	for _, q := range queries {
		if err := checkQuery(p, q.Expr); err != nil {
			t.Errorf("%s / %s %v: %v\n  %s", q.Dashboard, q.Panel, q.Vars, err, q.Expr)
		}
	}
}

// TestCheckQueryCatches shows checkQuery fails the mistakes it is there for.
func TestCheckQueryCatches(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	for expr, want := range map[string]string{
		`sum(rate(http_requests_total{code=~"5.."}[1m]))`:                                  "",
		`histogram_quantile(0.9, rate(order_service_duration_seconds_bucket{le="1"}[1m]))`: "",
		`rate({__name__="payment_service_duration_seconds_count"}[1m])`:                    "",
		`sum(rate(http_requests_total{status=~"5.."}[1m]))`:                                `no label "status"`,
		`rate(orders_placed_total[1m])`:                                                    "not in the catalogue",
		`rate(http_request_duration_seconds[1m])`:                                          "not in the catalogue",
		`rate(http_requests_total[$__rate_interval])`:                                      "variable left",
		`sum(rate(http_requests_total[1m])`:                                                "parse error",
		`vector(1)`:                                                                        "selects no metric",
		`http_requests_total{le="1"}`:                                                      `no label "le"`,
		`{__name__=~"http_.+"}`:                                                            "by exact name",
	} {
		err := checkQuery(p, expr)
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v, want no error", expr, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: %v, want an error saying %q", expr, err, want)
		}
	}
}

func checkQuery(p parser.Parser, expr string) error {
	if strings.Contains(expr, "$") {
		return fmt.Errorf("a variable left in the query")
	}
	e, err := p.ParseExpr(expr)
	if err != nil {
		return err
	}
	var problems []string
	selected := 0
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		selected++
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel && name == "" {
				if m.Type != labels.MatchEqual {
					problems = append(problems, "select a metric by exact name, not "+m.String())
				}
				name = m.Value
			}
		}
		metric, matchable, ok := Lookup(name)
		if !ok {
			problems = append(problems, name+" is not in the catalogue")
			return nil
		}
		for _, m := range vs.LabelMatchers {
			if !slices.Contains(matchable, m.Name) {
				problems = append(problems, metric.Name+" has no label \""+m.Name+"\"")
			}
		}
		return nil
	})
	if selected == 0 {
		problems = append(problems, "the query selects no metric")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

// TestPanelsAreWellFormed: unique titles (the snapshots' file names), a
// description for the reader, queries, and services that exist.
func TestPanelsAreWellFormed(t *testing.T) {
	uids := map[string]bool{}
	for _, d := range All() {
		if uids[d.UID] {
			t.Errorf("two dashboards with uid %s", d.UID)
		}
		uids[d.UID] = true
		slugs := map[string]bool{}
		for _, p := range d.Panels() {
			if slugs[Slug(p.Title)] {
				t.Errorf("%s: two panels named %q", d.Title, p.Title)
			}
			slugs[Slug(p.Title)] = true
			if p.Description == "" || len(p.Queries) == 0 {
				t.Errorf("%s / %s: a panel needs a description and a query", d.Title, p.Title)
			}
			for _, s := range p.Services {
				if !slices.Contains(Services, s) {
					t.Errorf("%s / %s: unknown service %q", d.Title, p.Title, s)
				}
			}
		}
	}
	if len(uids) != 4 {
		t.Errorf("%d dashboards, want the four of issue 13", len(uids))
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"service": "order", "instance": ".+"}
	in := Intervals{Rate: "1m", Range: "5m"}
	for expr, want := range map[string]string{
		`rate(x{service="$service", instance=~"$instance"}[$__rate_interval])`: `rate(x{service="order", instance=~".+"}[1m])`,
		`{__name__="${service}_service_duration_seconds_count"}`:               `{__name__="order_service_duration_seconds_count"}`,
		`increase(x[$__range])`:  `increase(x[5m])`,
		`x{a="$unknown"}`:        `x{a="$unknown"}`,
		`x{service="$services"}`: `x{service="$services"}`,
	} {
		if got := Expand(expr, vars, in); got != want {
			t.Errorf("Expand(%s) = %s, want %s", expr, got, want)
		}
	}
}

// TestBindings: the Service detail's queries are listed once per service
// that has data, with every instance; the others once.
func TestBindings(t *testing.T) {
	d := ServiceDetail()
	byPanel := map[string][]string{}
	for _, q := range CheckQueries([]Dashboard{d}) {
		if q.Vars["instance"] != ".+" {
			t.Errorf("%s: instance = %q, want .+", q.Panel, q.Vars["instance"])
		}
		byPanel[q.Panel] = append(byPanel[q.Panel], q.Vars["service"])
	}
	if got := byPanel["Requests per route"]; !slices.Equal(got, Services) {
		t.Errorf("Requests per route for %v, want every service %v", got, Services)
	}
	if got := byPanel["Retries by target"]; !slices.Equal(got, callers) {
		t.Errorf("Retries by target for %v, want the callers %v", got, callers)
	}
	for _, q := range CheckQueries([]Dashboard{Overview()}) {
		if len(q.Vars) != 0 {
			t.Errorf("overview %s has variables %v", q.Panel, q.Vars)
		}
	}
}

// TestProvisioning: the datasource Grafana provisions has the uid the
// panels use, and the dashboard provider reads the folder compose mounts
// deploy/grafana/dashboards at.
func TestProvisioning(t *testing.T) {
	var ds struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	readYAML(t, filepath.Join(grafanaDir, "provisioning/datasources/prometheus.yml"), &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].UID != DatasourceUID || ds.Datasources[0].Type != "prometheus" {
		t.Errorf("datasources %+v, want one prometheus datasource with uid %s", ds.Datasources, DatasourceUID)
	}
	var providers struct {
		Providers []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, filepath.Join(grafanaDir, "provisioning/dashboards/mercato.yml"), &providers)
	if len(providers.Providers) != 1 || providers.Providers[0].Type != "file" {
		t.Fatalf("providers %+v, want one file provider", providers.Providers)
	}
	var compose struct {
		Services map[string]struct {
			Volumes     []string          `yaml:"volumes"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	readYAML(t, "../../docker-compose.yml", &compose)
	grafana := compose.Services["grafana"]
	mounts := map[string]string{}
	for _, v := range grafana.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 {
			mounts[parts[0]] = parts[1]
		}
	}
	if got := mounts["./deploy/grafana/provisioning"]; got != "/etc/grafana/provisioning" {
		t.Errorf("compose mounts the provisioning folder at %q, want /etc/grafana/provisioning", got)
	}
	if got, want := mounts["./deploy/grafana/dashboards"], providers.Providers[0].Options.Path; got != want {
		t.Errorf("compose mounts the dashboards at %q, the provider reads %q", got, want)
	}
	if !strings.Contains(ds.Datasources[0].URL, "$") || grafana.Environment["PROMETHEUS_URL"] == "" {
		t.Errorf("the datasource URL %q should come from PROMETHEUS_URL, which compose sets (%q)", ds.Datasources[0].URL, grafana.Environment["PROMETHEUS_URL"])
	}
	home := grafana.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
	if rel, ok := strings.CutPrefix(home, providers.Providers[0].Options.Path+"/"); !ok || !fileExists(filepath.Join(grafanaDir, "dashboards", rel)) {
		t.Errorf("the home dashboard %q is not one of deploy/grafana/dashboards", home)
	}
}

// TestCatalogueIsDocumented: docs/monitoring.md lists every metric of the
// catalogue.
func TestCatalogueIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/monitoring.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range Catalogue {
		if !bytes.Contains(doc, []byte("`"+m.Name+"`")) {
			t.Errorf("docs/monitoring.md does not list %s", m.Name)
		}
	}
	for _, d := range All() {
		for _, p := range d.Panels() {
			if !bytes.Contains(doc, []byte(p.Title)) {
				t.Errorf("docs/monitoring.md does not describe the panel %s / %s", d.Title, p.Title)
			}
		}
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// TestLatencyLeavesTheStreamsOut: a latency quantile over HTTP requests
// that does not split them by route leaves the order status streams out
// (notStream): each lasts as long as its client watches, in the last
// bucket, and a few of them put a whole service's p95 there.
func TestLatencyLeavesTheStreamsOut(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	for _, q := range CheckQueries(All()) {
		e, err := p.ParseExpr(q.Expr)
		if err != nil {
			continue // TestQueriesParseAndUseTheCatalogue says so
		}
		parser.Inspect(e, func(node parser.Node, path []parser.Node) error {
			vs, ok := node.(*parser.VectorSelector)
			if !ok || vs.Name != "http_request_duration_seconds_bucket" {
				return nil
			}
			quantile := false
			for _, n := range path {
				if a, ok := n.(*parser.AggregateExpr); ok && slices.Contains(a.Grouping, "route") && !a.Without {
					return nil // one line per route: the streams' is their own
				}
				if c, ok := n.(*parser.Call); ok && c.Func.Name == "histogram_quantile" {
					quantile = true
				}
			}
			if !quantile {
				return nil // a heat map shows them as the band they are
			}
			for _, m := range vs.LabelMatchers {
				if m.Name == "route" && m.Type == labels.MatchNotEqual && m.Value == "/api/v1/orders/{id}/events" {
					return nil
				}
			}
			t.Errorf("%s / %s: the quantile takes in the order status streams (add notStream)\n  %s", q.Dashboard, q.Panel, q.Expr)
			return nil
		})
	}
}
