package localinfra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
)

// A Prometheus for the tests: Debian's (`make deps` installs it), on
// 127.0.0.1 only, scraping a fixed list of targets that the caller keeps in
// step (SetTargets) through a file_sd file, the way `make run` mirrors
// Consul into one, with the same target labels (service, instance).

// debianPrometheus is where Debian's prometheus package installs the server.
const debianPrometheus = "/usr/bin/prometheus"

// FindPrometheus returns the Prometheus server: Debian's, else prometheus on PATH.
func FindPrometheus() (string, error) {
	if isExecutable(debianPrometheus) {
		return debianPrometheus, nil
	}
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("localinfra: prometheus %w (%s or on PATH); run `make deps` (it installs Debian's prometheus)", ErrNotFound, debianPrometheus)
}

// PrometheusTarget is one /metrics endpoint and the labels its series get
// (service and instance, as `make run` gives them).
type PrometheusTarget struct {
	Addr   string            // host:port
	Labels map[string]string // e.g. service, instance
}

// PrometheusOptions configures StartPrometheus.
type PrometheusOptions struct {
	Dir       string             // holds the configuration, the targets file, the data and, by default, the log
	Port      int                // HTTP API and UI; 0 picks a free one
	Targets   []PrometheusTarget // scraped at /metrics; SetTargets changes them
	RuleFiles []string           // rule files to load, e.g. deploy/prometheus/alerts.yml
	// AlertmanagerURL, when set, is where firing alerts are sent
	// (http://host:port).
	AlertmanagerURL string
	// Interval is the scrape and rule evaluation interval; default 1 s.
	Interval time.Duration
	Binary   string // default: FindPrometheus()
	LogFile  string // default Dir/prometheus.log
}

// Prometheus is a Prometheus server.
type Prometheus struct {
	httpServer // URL: the API under /api/v1, the graph page at /classic/graph (2.42)
	opts       PrometheusOptions
}

// StartPrometheus writes the configuration and targets into Dir, starts
// Prometheus and waits until it reports ready. ctx bounds the start-up only.
func StartPrometheus(ctx context.Context, o PrometheusOptions) (*Prometheus, error) {
	if err := serverFolder("prometheus", "PrometheusOptions", &o.Dir, &o.LogFile); err != nil {
		return nil, err
	}
	if o.Binary == "" {
		bin, err := FindPrometheus()
		if err != nil {
			return nil, err
		}
		o.Binary = bin
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	for i, f := range o.RuleFiles {
		abs, err := filepath.Abs(f)
		if err != nil {
			return nil, fmt.Errorf("localinfra: prometheus: %w", err)
		}
		o.RuleFiles[i] = abs
	}
	p := &Prometheus{httpServer: httpServer{name: "prometheus"}, opts: o}
	if err := p.SetTargets(o.Targets); err != nil {
		return nil, err
	}
	cfg, err := p.config()
	if err != nil {
		return nil, err
	}
	if err := writeConfig("prometheus", o.Dir, "prometheus.yml", cfg); err != nil {
		return nil, err
	}
	err = p.start(ctx, o.Port, o.LogFile, "/-/ready", func(addr string) *exec.Cmd {
		//nolint:gosec // G204: the Prometheus binary localinfra found, with arguments built here
		cmd := exec.Command(o.Binary,
			"--config.file", filepath.Join(o.Dir, "prometheus.yml"),
			"--storage.tsdb.path", filepath.Join(o.Dir, "data"),
			"--web.listen-address", addr,
		)
		cmd.Dir = o.Dir
		return cmd
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// config is the configuration file: one job reading the targets file.
func (p *Prometheus) config() (string, error) {
	interval := promDuration(p.opts.Interval)
	cfg := map[string]any{
		"global": map[string]any{"scrape_interval": interval, "evaluation_interval": interval},
		"scrape_configs": []map[string]any{{
			"job_name":        "mercato",
			"metrics_path":    "/metrics",
			"file_sd_configs": []map[string]any{{"files": []string{p.targetsFile()}, "refresh_interval": interval}},
		}},
	}
	if len(p.opts.RuleFiles) > 0 {
		cfg["rule_files"] = p.opts.RuleFiles
	}
	if p.opts.AlertmanagerURL != "" {
		u, err := url.Parse(p.opts.AlertmanagerURL)
		if err != nil || u.Host == "" {
			return "", fmt.Errorf("localinfra: prometheus: AlertmanagerURL %q is not http://host:port", p.opts.AlertmanagerURL)
		}
		cfg["alerting"] = map[string]any{"alertmanagers": []map[string]any{{
			"scheme": u.Scheme, "static_configs": []map[string]any{{"targets": []string{u.Host}}},
		}}}
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("localinfra: prometheus config: %w", err)
	}
	return "# Written by localinfra on every start.\n" + string(b), nil
}

// promDuration formats d as Prometheus durations are written (1s, 500ms).
func promDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.Itoa(int(d/time.Second)) + "s"
	}
	return strconv.Itoa(int(d/time.Millisecond)) + "ms"
}

func (p *Prometheus) targetsFile() string { return filepath.Join(p.opts.Dir, "targets.json") }

// SetTargets replaces the scrape targets. Prometheus notices the file
// within an Interval; the file is replaced by a rename, so it never reads
// half of it.
func (p *Prometheus) SetTargets(targets []PrometheusTarget) error {
	type group struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	groups := make([]group, 0, len(targets))
	for _, t := range targets {
		groups = append(groups, group{Targets: []string{t.Addr}, Labels: t.Labels})
	}
	body, err := json.MarshalIndent(groups, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(p.opts.Dir, 0o750); err != nil {
		return fmt.Errorf("localinfra: prometheus: %w", err)
	}
	tmp := p.targetsFile() + ".tmp"
	if err := os.WriteFile(tmp, body, 0o600); err != nil {
		return fmt.Errorf("localinfra: prometheus: %w", err)
	}
	if err := os.Rename(tmp, p.targetsFile()); err != nil {
		return fmt.Errorf("localinfra: prometheus: %w", err)
	}
	return nil
}

// PrometheusSample is one series of an instant query's answer.
type PrometheusSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"` // [unix time, "value"]
}

// PrometheusQueryError is a query Prometheus refused or failed to run.
type PrometheusQueryError struct {
	Query, Type, Message string
}

func (e *PrometheusQueryError) Error() string {
	return fmt.Sprintf("prometheus: query %q: %s: %s", e.Query, e.Type, e.Message)
}

// Query runs the instant query expr now (/api/v1/query) and returns its
// series: a scalar or string answer is returned as one sample without
// labels. A query Prometheus rejects gives a *PrometheusQueryError.
func (p *Prometheus) Query(ctx context.Context, expr string) ([]PrometheusSample, error) {
	resp, err := postQuery(ctx, p.URL()+"/api/v1/query", expr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("prometheus: query %q: %s: %w", expr, resp.Status, err)
	}
	if body.Status != "success" {
		return nil, &PrometheusQueryError{Query: expr, Type: body.ErrorType, Message: body.Error}
	}
	switch body.Data.ResultType {
	case "vector", "matrix":
		var samples []PrometheusSample
		if err := json.Unmarshal(body.Data.Result, &samples); err != nil {
			return nil, fmt.Errorf("prometheus: query %q: %w", expr, err)
		}
		return samples, nil
	case "scalar", "string":
		var v [2]any
		if err := json.Unmarshal(body.Data.Result, &v); err != nil {
			return nil, fmt.Errorf("prometheus: query %q: %w", expr, err)
		}
		return []PrometheusSample{{Metric: map[string]string{}, Value: v}}, nil
	}
	return nil, fmt.Errorf("prometheus: query %q: result type %q", expr, body.Data.ResultType)
}

// PrometheusAlert is an alert as Prometheus's API (/api/v1/alerts) lists it.
type PrometheusAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"` // pending or firing
}

// Alerts lists the alerts that are pending or firing now.
func (p *Prometheus) Alerts(ctx context.Context) ([]PrometheusAlert, error) {
	var body struct {
		Data struct {
			Alerts []PrometheusAlert `json:"alerts"`
		} `json:"data"`
	}
	if err := getJSON(ctx, p.URL()+"/api/v1/alerts", &body); err != nil {
		return nil, err
	}
	return body.Data.Alerts, nil
}

// errNoSeries is returned by Value when the query has no answer.
var errNoSeries = errors.New("no series")

// Value runs the instant query expr and returns the value of its single
// series, an error when it has none or several.
func (p *Prometheus) Value(ctx context.Context, expr string) (float64, error) {
	samples, err := p.Query(ctx, expr)
	if err != nil {
		return 0, err
	}
	if len(samples) != 1 {
		if len(samples) == 0 {
			return 0, fmt.Errorf("prometheus: query %q: %w", expr, errNoSeries)
		}
		return 0, fmt.Errorf("prometheus: query %q: %d series, want 1", expr, len(samples))
	}
	s, _ := samples[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}
