package main

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mercato-dev/mercato/shared/discovery"
)

// debianPrometheus is where Debian's prometheus package installs the server.
const debianPrometheus = "/usr/bin/prometheus"

// findPrometheus returns the Prometheus server to run, or "" when there is
// none: the platform runs without metrics collection then.
func findPrometheus() string {
	if isExecutable(debianPrometheus) {
		return debianPrometheus
	}
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p
	}
	return ""
}

// The types below are the part of Prometheus' configuration file we write.
// Marshalling typed values rather than filling a text template keeps the
// file valid YAML whatever the values hold.
type (
	promConfig struct {
		Global        promGlobal         `yaml:"global"`
		RuleFiles     []string           `yaml:"rule_files,omitempty"`
		Alerting      *promAlerting      `yaml:"alerting,omitempty"`
		ScrapeConfigs []promScrapeConfig `yaml:"scrape_configs"`
	}
	promAlerting struct {
		Alertmanagers []promAlertmanager `yaml:"alertmanagers"`
	}
	promAlertmanager struct {
		StaticConfigs []promStatic `yaml:"static_configs"`
	}
	promStatic struct {
		Targets []string `yaml:"targets,flow"`
	}
	promGlobal struct {
		ScrapeInterval     string `yaml:"scrape_interval"`
		EvaluationInterval string `yaml:"evaluation_interval"`
	}
	promScrapeConfig struct {
		JobName         string            `yaml:"job_name"`
		MetricsPath     string            `yaml:"metrics_path"`
		ConsulSDConfigs []promConsulSD    `yaml:"consul_sd_configs,omitempty"`
		FileSDConfigs   []promFileSD      `yaml:"file_sd_configs,omitempty"`
		RelabelConfigs  []promRelabelRule `yaml:"relabel_configs"`
	}
	promConsulSD struct {
		Server string `yaml:"server"`
		Token  string `yaml:"token,omitempty"` // a read-only token (ConsulReadPolicy)
	}
	promFileSD struct {
		Files           []string `yaml:"files,flow"`
		RefreshInterval string   `yaml:"refresh_interval,omitempty"`
	}
	promRelabelRule struct {
		SourceLabels []string `yaml:"source_labels,flow"`
		Separator    string   `yaml:"separator,omitempty"`
		Regex        string   `yaml:"regex,omitempty"`
		Action       string   `yaml:"action,omitempty"`
		TargetLabel  string   `yaml:"target_label,omitempty"`
		Replacement  string   `yaml:"replacement,omitempty"`
	}
)

// metricsTagRegex matches Consul's tag list as Prometheus presents it in
// __meta_consul_tags: the tags joined with "," and wrapped in "," (e.g.
// ",metrics,version=dev,"), so a whole tag is matched, not a substring.
const metricsTagRegex = ".*,metrics,.*"

// adminPortLabel is the label consul_sd_configs makes of an instance's
// discovery.AdminPortMeta metadata (the gateway's admin listener).
const adminPortLabel = "__meta_consul_service_metadata_" + discovery.AdminPortMeta

// adminAddressRule scrapes an instance that registered an admin port there
// rather than on its public port, which does not serve /metrics (the
// gateway). An instance without one does not match and keeps its address.
var adminAddressRule = promRelabelRule{
	SourceLabels: []string{"__meta_consul_service_address", adminPortLabel},
	Separator:    ";",
	Regex:        "(.+);([0-9]+)",
	TargetLabel:  "__address__",
	Replacement:  "$1:$2",
}

// alerting is what Prometheus does with alerts: the rule files it
// evaluates and the Alertmanager (host:port) it sends them to; either may
// be empty.
type alerting struct {
	ruleFiles    []string
	alertmanager string
}

// prometheusConfig renders the configuration for a Prometheus that finds
// every instance through the Consul agent at consulAddr and evaluates the
// rules of alerts. It is the one place that builds the file.
//
// With targetsFile empty, Prometheus asks Consul itself (consul_sd_configs),
// with consulToken, a token that only reads the catalogue; the file is
// written 0600.
// Otherwise it reads targetsFile (file_sd_configs), which mirrorTargets keeps
// in step with Consul for Prometheus builds without Consul discovery, such as
// Debian's. The file carries the same __meta_consul_* labels, so the relabel
// rules, and the labels series end up with, are the same either way.
func prometheusConfig(consulAddr, consulToken, targetsFile string, alerts alerting) ([]byte, error) {
	job := promScrapeConfig{
		JobName:     "mercato",
		MetricsPath: "/metrics",
		RelabelConfigs: []promRelabelRule{
			// Every instance registers with the tag "metrics" (package
			// discovery); anything else in Consul (Consul itself) is not a
			// scrape target.
			{SourceLabels: []string{"__meta_consul_tags"}, Regex: metricsTagRegex, Action: "keep"},
			adminAddressRule,
			{SourceLabels: []string{"__meta_consul_service"}, TargetLabel: "service"},
			// The Consul service ID (<service>-<host>-<port>) rather than the
			// bare address, so a series can be matched to the instance the
			// Consul UI shows.
			{SourceLabels: []string{"__meta_consul_service_id"}, TargetLabel: "instance"},
		},
	}
	if targetsFile == "" {
		job.ConsulSDConfigs = []promConsulSD{{Server: consulAddr, Token: consulToken}}
	} else {
		// Prometheus watches the file (inotify); the refresh is a backstop.
		job.FileSDConfigs = []promFileSD{{Files: []string{targetsFile}, RefreshInterval: "30s"}}
	}
	cfg := promConfig{
		// 5 s rather than the usual 15 s or 1 m: a person watching a local
		// run should see a request show up in a graph almost at once.
		Global:        promGlobal{ScrapeInterval: "5s", EvaluationInterval: "5s"},
		RuleFiles:     alerts.ruleFiles,
		ScrapeConfigs: []promScrapeConfig{job},
	}
	if alerts.alertmanager != "" {
		cfg.Alerting = &promAlerting{Alertmanagers: []promAlertmanager{{StaticConfigs: []promStatic{{Targets: []string{alerts.alertmanager}}}}}}
	}
	var b bytes.Buffer
	b.WriteString("# Written by mercato-local on every start; edits are overwritten.\n")
	if targetsFile != "" {
		fmt.Fprintf(&b, "# This Prometheus has no Consul discovery: mercato-local mirrors Consul's\n# catalogue (agent %s) into %s.\n", consulAddr, targetsFile)
	}
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2) // the usual style of Prometheus configuration files
	if err := enc.Encode(cfg); err != nil {
		return nil, fmt.Errorf("prometheus config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("prometheus config: %w", err)
	}
	return b.Bytes(), nil
}

// supportsConsulSD reports whether the Prometheus at promBin understands
// consul_sd_configs, by asking the promtool installed beside it to check a
// configuration that uses it. Debian's package is built without Consul
// discovery. Without a promtool, an upstream build (which has it) is assumed.
func supportsConsulSD(promBin string) (bool, error) {
	promtool := filepath.Join(filepath.Dir(promBin), "promtool")
	if !isExecutable(promtool) {
		var err error
		if promtool, err = exec.LookPath("promtool"); err != nil {
			return true, nil
		}
	}
	cfg, err := prometheusConfig(consulAddr, "", "", alerting{})
	if err != nil {
		return false, err
	}
	f, err := os.CreateTemp("", "mercato-prometheus-*.yml")
	if err != nil {
		return false, err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(cfg)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, err
	}
	out, err := exec.Command(promtool, "check", "config", f.Name()).CombinedOutput() //nolint:gosec // G204: Debian's promtool, found on PATH
	switch {
	case err == nil:
		return true, nil
	case strings.Contains(string(out), "consul_sd_configs not found"):
		return false, nil
	default:
		// Our own configuration is wrong: better to say so than to guess.
		return false, fmt.Errorf("prometheus: %s check config rejects the generated configuration: %v\n%s", promtool, err, indent(strings.TrimSpace(string(out))))
	}
}

// startPrometheus writes the configuration into dir (see prometheusConfig
// for targetsFile and alerts), runs Prometheus with its data in dir/data
// and waits until it reports ready.
func startPrometheus(ctx context.Context, bin, dir, targetsFile, consulToken, logPath string, alerts alerting) (*child, error) {
	cfg, err := prometheusConfig(consulAddr, consulToken, targetsFile, alerts)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o750); err != nil {
		return nil, fmt.Errorf("prometheus: %w", err)
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		return nil, fmt.Errorf("prometheus: %w", err)
	}
	c, err := startChild("prometheus", logPath, nil, bin,
		"--config.file", cfgPath,
		"--storage.tsdb.path", filepath.Join(dir, "data"),
		"--web.listen-address", prometheusAddr,
	)
	if err != nil {
		return nil, err
	}
	err = waitUntil(ctx, nil, 60*time.Second, []*child{c}, answersOK("http://"+prometheusAddr+"/-/ready", "/-/ready"))
	if err != nil {
		c.Kill()
		return nil, err
	}
	return c, nil
}

// graphURL is the address of Prometheus's graph page showing expr over the
// last 15 minutes: the classic UI's /classic/graph on 2.x (Debian's 2.42
// has no other), /query on 3.x.
func graphURL(promBin, expr string) string {
	path := "/classic/graph"
	if out, err := exec.Command(promBin, "--version").CombinedOutput(); err == nil && strings.Contains(string(out), "version 3.") { //nolint:gosec // G204: the Prometheus binary found by findPrometheus
		path = "/query"
	}
	q := url.Values{"g0.expr": {expr}, "g0.tab": {"0"}, "g0.range_input": {"15m"}}
	return "http://" + prometheusAddr + path + "?" + q.Encode()
}

// graphQuery is the query of the banner's graph link: requests per second
// by service, probes left out.
const graphQuery = `sum by (service) (rate(http_requests_total{route!~"/health|/ready|/metrics"}[1m]))`
